//! The federation's clock, accelerated as a soak runs it: business time runs fast, real time
//! (heartbeats, liveness, TLS) does not.

use std::time::{Duration, SystemTime};

use fedmesh_proto::pb;
use fedmesh_proto::pb::catalogue_service_client::CatalogueServiceClient;
use fedmesh_proto::pb::journal_service_client::JournalServiceClient;
use fedmesh_proto::pb::offer_service_client::OfferServiceClient;
use fedmesh_tests::{TestFederation, example_offer, wait_for};

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accelerated_federation_dates_its_writes_in_business_time() {
    // A day of business time in each second of the system's.
    let fast = ["clock.speed=86400"];
    let fed = TestFederation::start_with(1, &fast, &fast).await;
    let anchor = fedmesh_core::clock::acceleration()
        .expect("the federation's clock is accelerated")
        .anchor;
    // At least a second of the system's after the anchor: at least a day of business time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let provider = fed.as_admin(fed.member(0));
    let offer = OfferServiceClient::new(provider.clone())
        .publish_offer(pb::PublishOfferRequest {
            offer: Some(example_offer("otp")),
            etag: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .offer
        .unwrap();
    let published = SystemTime::try_from(offer.update_time.unwrap()).unwrap();
    assert!(
        published >= anchor + DAY,
        "the offer is dated in business time: {published:?}, anchor {anchor:?}"
    );
    let entries = JournalServiceClient::new(provider)
        .list_entries(pb::ListEntriesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    let recorded = SystemTime::try_from(entries.last().unwrap().record_time.unwrap()).unwrap();
    assert!(recorded >= anchor + DAY, "{recorded:?}");
    // Heartbeats stay in real time: the provider's node is up in the catalogue, not stale
    // after days of business time without one.
    let coordinator = fed.as_admin(fed.coordinator());
    wait_for(
        "the offer at the coordinator, its provider up",
        Duration::from_secs(10),
        || {
            let coordinator = coordinator.clone();
            async move {
                CatalogueServiceClient::new(coordinator)
                    .get_catalogue_offer(pb::GetCatalogueOfferRequest {
                        offer_id: "unistra.otp".into(),
                    })
                    .await
                    .ok()
                    .and_then(|r| r.into_inner().offer)
                    .filter(|o| o.provider_node_up)
            }
        },
    )
    .await;
}
