//! Ingestion of usage records, in durable records per second for batches of 1,000:
//!
//! - baseline: raw sled, one `apply_batch` of the encoded records then `flush` per batch;
//! - provider store: `Store::store_records` (dedup lookups, journal entries, one transaction)
//!   then the durable flush, per batch; and the same with sled's background thread every
//!   500 ms (its default) instead of `storage.clean_interval_ms`'s 100;
//! - coordinator store: `Store::apply_records` of each replicated batch entry (dedup, cursor
//!   in the same transaction), then a flush;
//! - provider over the wire: `ReportUsage` by an agent over mTLS to a node of an in-process
//!   federation (checks, authorization, the store, the acknowledgement);
//! - coordinator over the wire: the coordinator down while the records are reported, then
//!   started: the time until its figures show every record (journal watch, apply).
//!
//! Peak memory (VmHWM, reset before each phase) is reported per phase.
//!
//! ```sh
//! cargo bench -p fedmesh-tests --bench ingestion -- --batches 50
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use fedmesh_proto::pb;
use fedmesh_store::usage::Filed;
use fedmesh_store::{Cursor, Store};
use fedmesh_tests::bench::arg;
use fedmesh_tests::{TestFederation, example_offer};
use prost::Message as _;

const BATCH: usize = 1000;
const OCT_5: i64 = 1_791_151_200;

/// Resets the process's peak resident memory (Linux `clear_refs`), so that the next reading
/// covers one phase.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident memory since the last reset, in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn record(i: usize, subscription: &str, tenant: &str, offer: &str) -> pb::UsageRecord {
    let start = OCT_5 + (i as i64 % (20 * 86_400));
    pb::UsageRecord {
        record_id: format!("bench-{i:08}"),
        offer_id: offer.into(),
        subscription_id: subscription.into(),
        tenant_id: tenant.into(),
        metric: "requests".into(),
        value: (i % 97) as f64,
        period: Some(pb::Period {
            start_time: Some(prost_types::Timestamp {
                seconds: start,
                nanos: 0,
            }),
            end_time: Some(prost_types::Timestamp {
                seconds: start + 60,
                nanos: 0,
            }),
        }),
        ..Default::default()
    }
}

struct Row {
    name: &'static str,
    records: usize,
    elapsed: Duration,
    peak: f64,
}

impl Row {
    fn rate(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
}

fn raw_sled(batches: usize) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let tree = db.open_tree("usage").unwrap();
    reset_peak();
    let started = Instant::now();
    for b in 0..batches {
        let mut batch = sled::Batch::default();
        for i in b * BATCH..(b + 1) * BATCH {
            let r = record(i, "s", "t", "unistra.collab");
            batch.insert(r.record_id.as_bytes(), r.encode_to_vec());
        }
        tree.apply_batch(batch).unwrap();
        db.flush().unwrap();
    }
    Row {
        name: "baseline: raw sled batch + flush",
        records: batches * BATCH,
        elapsed: started.elapsed(),
        peak: peak_mib(),
    }
}

/// The provider's store path, sled's background thread running every `clean_interval_ms`.
async fn provider_store(batches: usize, clean_interval_ms: u64, name: &'static str) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let options = fedmesh_store::StoreOptions {
        clean_interval_ms,
        ..fedmesh_store::StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), options).unwrap();
    reset_peak();
    let started = Instant::now();
    for b in 0..batches {
        let filed = (b * BATCH..(b + 1) * BATCH)
            .map(|i| Filed::Usage(record(i, "s", "t", "unistra.collab"), 202_610))
            .collect();
        let stored = store.store_records("unistra", filed).unwrap();
        store
            .journal_durable(stored.revision.unwrap())
            .await
            .unwrap();
    }
    Row {
        name,
        records: batches * BATCH,
        elapsed: started.elapsed(),
        peak: peak_mib(),
    }
}

async fn coordinator_store(batches: usize) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    reset_peak();
    let started = Instant::now();
    for b in 0..batches {
        // One replicated journal entry per reported batch.
        let position = Cursor {
            journal_id: "bench".into(),
            revision: b as u64 + 1,
        };
        let filed = (b * BATCH..(b + 1) * BATCH)
            .map(|i| Filed::Usage(record(i, "s", "t", "unistra.collab"), 202_610))
            .collect();
        store.apply_records("unistra", &position, filed).unwrap();
        store.flush().await.unwrap();
    }
    Row {
        name: "coordinator store: apply_records + flush",
        records: batches * BATCH,
        elapsed: started.elapsed(),
        peak: peak_mib(),
    }
}

async fn over_the_wire(batches: usize) -> (Row, Row) {
    use fedmesh_proto::pb::metrics_service_client::MetricsServiceClient;
    use fedmesh_proto::pb::subscription_service_client::SubscriptionServiceClient;
    use fedmesh_proto::pb::usage_service_client::UsageServiceClient;

    let mut fed = TestFederation::start(2).await;
    let admin = fed.as_admin(fed.member(0));
    pb::offer_service_client::OfferServiceClient::new(admin)
        .publish_offer(pb::PublishOfferRequest {
            offer: Some(example_offer("collaboration")),
            etag: String::new(),
        })
        .await
        .unwrap();
    let offer = "unistra.collab";
    let subscriber = fed.channel(
        &fed.member(0).endpoint,
        &fed.member(1).node_cert,
        &fed.member(1).node_key,
    );
    let tenancy = SubscriptionServiceClient::new(subscriber)
        .request_subscription(pb::RequestSubscriptionRequest {
            request_id: "bench".into(),
            offer_id: offer.into(),
            user_count: 10,
            contact_email: "dsi@example.org".into(),
            accepted_terms_version: example_offer("collaboration").terms_version,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    // Let the coordinator replicate the offer and tenancy, then stop it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    fed.running.stop_coordinator().await.unwrap();
    let agent = fed.issue(&fed.uri("member/unistra/agent/bench"));
    let mut client = UsageServiceClient::new(fed.channel(
        &fed.member(0).endpoint,
        &agent.cert_path,
        &agent.key_path,
    ));
    reset_peak();
    let started = Instant::now();
    for b in 0..batches {
        let records = (b * BATCH..(b + 1) * BATCH)
            .map(|i| record(i, &tenancy.subscription_id, &tenancy.tenant_id, offer))
            .collect();
        let answer = client
            .report_usage(pb::ReportUsageRequest { records })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            answer.accepted_count as usize, BATCH,
            "{:?}",
            answer.rejections
        );
    }
    let provider = Row {
        name: "provider: ReportUsage over mTLS (in-process federation)",
        records: batches * BATCH,
        elapsed: started.elapsed(),
        peak: peak_mib(),
    };
    let expected: i64 = (0..batches * BATCH).map(|i| (i % 97) as i64).sum();
    reset_peak();
    let started = Instant::now();
    fed.running.restart_coordinator().await.unwrap();
    let mut metrics = MetricsServiceClient::new(fed.as_admin(fed.coordinator()));
    loop {
        let total = metrics
            .get_offer_metrics(pb::GetOfferMetricsRequest {
                offer_id: offer.into(),
                from_month: Some(pb::YearMonth {
                    year: 2026,
                    month: 10,
                }),
                to_month: Some(pb::YearMonth {
                    year: 2026,
                    month: 10,
                }),
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().months.first().map(|m| m.request_count));
        if total == Some(expected) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the coordinator did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let coordinator = Row {
        name: "coordinator: catch-up from the provider's journal (restart → figures complete)",
        records: batches * BATCH,
        elapsed: started.elapsed(),
        peak: peak_mib(),
    };
    fed.running.shutdown().await.unwrap();
    (provider, coordinator)
}

#[tokio::main]
async fn main() {
    let batches = arg("--batches", 50);
    let baseline = raw_sled(batches);
    let mut rows = vec![
        provider_store(
            batches,
            fedmesh_store::CLEAN_INTERVAL_MS,
            "provider store: store_records + durable",
        )
        .await,
        provider_store(
            batches,
            500,
            "the same, sled's cleaner every 500 ms (its default)",
        )
        .await,
        coordinator_store(batches).await,
    ];
    let (provider, coordinator) = over_the_wire(batches).await;
    rows.push(provider);
    rows.push(coordinator);
    println!(
        "{} records in batches of {BATCH}; ratio = records/s against the raw sled baseline\n",
        batches * BATCH
    );
    println!("| path | records/s | ratio | elapsed | peak RSS |");
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {:.0} | 1.00 | {:.2} s | {:.0} MiB |",
        baseline.name,
        baseline.rate(),
        baseline.elapsed.as_secs_f64(),
        baseline.peak
    );
    for row in &rows {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} s | {:.0} MiB |",
            row.name,
            row.rate(),
            row.rate() / baseline.rate(),
            row.elapsed.as_secs_f64(),
            row.peak
        );
    }
}
