//! What other members' reads of a provider's journal cost the provider's own admin: rennes2's
//! journal holds `--batches` usage batches of 1,000 records (which no other member may see)
//! and a few tenancies and offers; `--readers` nodes of other members page it from the start
//! with `JournalService.ListEntries`, again and again. The provider's admin's `ListOffers`
//! latency is measured alone and under that load, in alternating rounds of the same run.
//!
//! ```sh
//! cargo bench -p fedmesh-tests --bench foreign_reads -- --batches 150 --readers 16 --rounds 2
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fedmesh_proto::pb;
use fedmesh_tests::TestFederation;
use fedmesh_tests::bench::arg;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    fedmesh_tests::bench::percentile(sorted, p).as_secs_f64() * 1000.0
}

/// `calls` sequential `ListOffers` of the provider's admin: their latencies, sorted.
async fn admin_latencies(channel: &fedmesh_grpc::GrpcChannel, calls: usize) -> Vec<Duration> {
    let mut client = pb::offer_service_client::OfferServiceClient::new(channel.clone());
    let mut out = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        client
            .list_offers(pb::ListOffersRequest::default())
            .await
            .unwrap();
        out.push(started.elapsed());
    }
    out.sort();
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let batches = arg("--batches", 150);
    let readers = arg("--readers", 16);
    let rounds = arg("--rounds", 2);
    let calls = arg("--calls", 200);
    let fed = TestFederation::start(3).await;
    fed.running.seed_example_offers().await.unwrap();
    fed.running.seed_example_usage().await.unwrap();
    let rennes2 = fed.member(1).clone();
    let tenancy =
        pb::subscription_service_client::SubscriptionServiceClient::new(fed.as_admin(&rennes2))
            .list_subscriptions(pb::ListSubscriptionsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .subscriptions
            .into_iter()
            .find(|s| s.state == pb::SubscriptionState::Active as i32)
            .expect("an active tenancy on rennes2.collab");
    let agent = fed.issue(&fed.uri("member/rennes2/agent/bench"));
    let mut usage = pb::usage_service_client::UsageServiceClient::new(fed.channel(
        &rennes2.endpoint,
        &agent.cert_path,
        &agent.key_path,
    ));
    let start = fedmesh_grpc::figures::now() - 86_400;
    for b in 0..batches {
        let records = (0..1000)
            .map(|i| pb::UsageRecord {
                record_id: format!("bench-{b:05}-{i:04}"),
                offer_id: tenancy.offer_id.clone(),
                subscription_id: tenancy.subscription_id.clone(),
                metric: "requests".into(),
                value: 1.0,
                period: Some(pb::Period {
                    start_time: Some(prost_types::Timestamp {
                        seconds: start + i64::from(i),
                        nanos: 0,
                    }),
                    end_time: Some(prost_types::Timestamp {
                        seconds: start + i64::from(i) + 60,
                        nanos: 0,
                    }),
                }),
                ..Default::default()
            })
            .collect();
        let answer = usage
            .report_usage(pb::ReportUsageRequest { records })
            .await
            .unwrap()
            .into_inner();
        assert!(answer.rejections.is_empty(), "{:?}", answer.rejections);
    }
    let admin = fed.as_admin(&rennes2);
    // Other members' nodes (identities of the federation, each its own peer for the limits).
    let nodes: Vec<fedmesh_grpc::GrpcChannel> = (0..readers)
        .map(|i| {
            let issued = fed.issue(&fed.uri(&format!("member/reader{i:02}/node")));
            fed.channel(&rennes2.endpoint, &issued.cert_path, &issued.key_path)
        })
        .collect();
    let journal = pb::journal_service_client::JournalServiceClient::new(admin.clone())
        .get_journal_info(pb::GetJournalInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    println!(
        "rennes2's journal: {} entries ({batches} usage batches of 1,000 records); {readers} foreign readers; {calls} admin calls per round",
        journal.last_revision
    );
    // Warm-up.
    admin_latencies(&admin, 20).await;

    let mut alone = Vec::new();
    let mut loaded = Vec::new();
    let mut pages = 0u64;
    let mut page_time = Duration::ZERO;
    let mut refused = 0u64;
    for _ in 0..rounds {
        alone.extend(admin_latencies(&admin, calls).await);
        let stop = Arc::new(AtomicBool::new(false));
        let (count, nanos, errors) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let tasks: Vec<_> = nodes
            .iter()
            .map(|channel| {
                let mut client =
                    pb::journal_service_client::JournalServiceClient::new(channel.clone());
                let (stop, count, nanos, errors) =
                    (stop.clone(), count.clone(), nanos.clone(), errors.clone());
                tokio::spawn(async move {
                    let mut token = String::new();
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        match client
                            .list_entries(pb::ListEntriesRequest {
                                page_token: token.clone(),
                                page_size: 100,
                                ..Default::default()
                            })
                            .await
                        {
                            Ok(page) => {
                                nanos.fetch_add(
                                    started.elapsed().as_nanos() as u64,
                                    Ordering::Relaxed,
                                );
                                count.fetch_add(1, Ordering::Relaxed);
                                token = page.into_inner().next_page_token;
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                token.clear();
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        loaded.extend(admin_latencies(&admin, calls).await);
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.unwrap();
        }
        pages += count.load(Ordering::Relaxed);
        page_time += Duration::from_nanos(nanos.load(Ordering::Relaxed));
        refused += errors.load(Ordering::Relaxed);
    }
    alone.sort();
    loaded.sort();
    println!();
    println!("| provider's admin `ListOffers` | calls | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (what, l) in [("alone", &alone), ("under the foreign readers", &loaded)] {
        println!(
            "| {what} | {} | {:.2} | {:.2} | {:.2} |",
            l.len(),
            percentile(l, 0.5),
            percentile(l, 0.99),
            l.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        );
    }
    println!();
    println!(
        "foreign `ListEntries` pages: {pages}, mean {:.2} ms each; refused (rate limits): {refused}",
        if pages == 0 {
            0.0
        } else {
            page_time.as_secs_f64() * 1000.0 / pages as f64
        }
    );
    fed.running.shutdown().await.unwrap();
}
