//! Convergence of the catalogue: the time from `PublishOffer` returning on a provider's node
//! to the new version arriving (a) in the coordinator's catalogue and (b) in another member's
//! `catalogue watch` stream (its node's cached catalogue), over a whole in-process federation
//! on loopback with real mTLS and real sled files.
//!
//! Baseline in the same run: the publish round trip itself (validation, a durable journal
//! write, the acknowledgement).
//!
//! ```sh
//! cargo bench -p fedmesh-tests --bench convergence -- --nodes 10 --publishes 200
//! cargo bench -p fedmesh-tests --bench convergence -- --nodes 50 --publishes 200
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use fedmesh_proto::pb;
use fedmesh_proto::pb::catalogue_service_client::CatalogueServiceClient;
use fedmesh_proto::pb::offer_service_client::OfferServiceClient;
use fedmesh_tests::bench::{arg, catalogue_watch as watch, percentile, until_version};
use fedmesh_tests::{TestFederation, example_offer};

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<34} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   (n = {})",
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap()),
        samples.len()
    );
}

#[tokio::main]
async fn main() {
    let nodes = arg("--nodes", 10).max(2);
    let publishes = arg("--publishes", 200);
    let fed = TestFederation::start(nodes).await;
    let provider = fed.as_admin(fed.member(0));
    let mut offers = OfferServiceClient::new(provider.clone());

    // Warm up: the first publish reaches the coordinator and the watching member once every
    // node has registered and is followed.
    let mut offer = example_offer("otp");
    offer.version = "warm-up".into();
    let mut etag = offers
        .publish_offer(pb::PublishOfferRequest {
            offer: Some(offer),
            etag: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .offer
        .unwrap()
        .etag;
    let mut at_coordinator = watch(fed.as_admin(fed.coordinator())).await;
    let mut at_member = watch(fed.as_admin(fed.member(1))).await;
    let started = Instant::now();
    loop {
        let seen = CatalogueServiceClient::new(fed.as_admin(fed.member(1)))
            .get_catalogue_offer(pb::GetCatalogueOfferRequest {
                offer_id: "unistra.otp".into(),
            })
            .await;
        if seen.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the federation never converged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut acks = Vec::with_capacity(publishes);
    let mut to_coordinator = Vec::with_capacity(publishes);
    let mut to_member = Vec::with_capacity(publishes);
    for i in 0..publishes {
        let version = format!("1.{i}");
        let mut offer = example_offer("otp");
        offer.version = version.clone();
        let sent = Instant::now();
        etag = offers
            .publish_offer(pb::PublishOfferRequest {
                offer: Some(offer),
                etag,
            })
            .await
            .unwrap()
            .into_inner()
            .offer
            .unwrap()
            .etag;
        let acked = Instant::now();
        acks.push(acked - sent);
        let (coordinator_seen, member_seen) = tokio::join!(
            until_version(&mut at_coordinator, &version),
            until_version(&mut at_member, &version)
        );
        to_coordinator.push(coordinator_seen - acked);
        to_member.push(member_seen - acked);
    }
    println!("convergence, {nodes} nodes, {publishes} sequential publishes");
    report("baseline: publish acknowledged", acks);
    report("publish -> coordinator catalogue", to_coordinator);
    report("publish -> another member's watch", to_member);
    let (running, _dir) = fed.into_parts();
    running.shutdown().await.unwrap();
}
