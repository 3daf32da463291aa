//! Soak and overhead benchmark.
//!
//! 1. **Unary overhead.** The same unary RPC (`grpc.health.v1.Health/Check`) against (a) a bare
//!    tonic server behind the same mutual-TLS listener and rustls configuration and (b) a
//!    fedmesh node, whose calls also go through connection tracking, the metrics layer, the
//!    malformed-request layer, authentication and the role table, the per-peer rate limiter
//!    (set high here: it is a policy, not an overhead) and the deadline layer, with one span per
//!    call and W3C trace context injected by the client. Same client, same concurrency, in
//!    alternation in the same run; the ratio of calls per second is the figure.
//! 2. **Soak.** A federation of `--nodes` members (the demo's, seeded) runs in a child process;
//!    this process drives a paced mixed load for `--minutes`: catalogue reads on every member's
//!    node, usage reports by rennes2's agent, incidents opened and commented by unistra's desk
//!    through its node. Every `--sample-seconds`: throughput, p50/p99 latency, errors, and the
//!    federation process's resident memory and open file descriptors, and the size of its
//!    files on disk (its databases, and apart the archives beside them). `--cache-mb` sets
//!    `storage.cache_mb` for every party (64 by default); `FEDMESH_SOAK_WRAP` runs the
//!    federation process under a profiler (`heaptrack -o /tmp/soak`).
//! 3. **Years.** `--clock-speed 17520` runs the federation's clock (`clock.speed`) that much
//!    faster: a year of business time in 30 minutes. Usage is then reported for the business
//!    hour just ended (so months fill, close and leave the hot state), and each incident is
//!    resolved by the provider and closed by the desk after its comments (so incidents end
//!    and retire). Each window also shows the business date. The summary compares the growth
//!    of memory and of the databases over the last third with their level in the first.
//!    Once the federation has stopped, each database's files are set against the live bytes
//!    of its trees, and those sled keeps much larger than live are defragmented
//!    (`fedmesh admin defrag`) to show what that gives back.
//!
//! ```sh
//! cargo bench -p fedmesh-tests --bench soak -- --minutes 10 --nodes 20
//! cargo bench -p fedmesh-tests --bench soak -- --minutes 30 --nodes 20 --clock-speed 17520 --overhead-seconds 0
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fedmesh::federation::{FederationSpec, Manifest, RunningFederation};
use fedmesh_grpc::GrpcChannel;
use fedmesh_proto::pb;
use fedmesh_tests::bench::{arg, channel, percentile, plain_channels};
use fedmesh_tests::{SplitMix64, TestFederation, dir_bytes};

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------------------------
// 1. Unary overhead.

/// Calls `Health/Check` on `channels` from `concurrency` tasks for `length`; calls per second
/// and sorted latencies.
async fn hammer(
    channels: &[tonic::transport::Channel],
    concurrency: usize,
    length: Duration,
) -> (f64, Vec<Duration>) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let channel = channels[i % channels.len()].clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                client
                    .check(tonic_health::pb::HealthCheckRequest::default())
                    .await
                    .expect("health check");
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    (all.len() as f64 / elapsed.as_secs_f64(), all)
}

async fn overhead(seconds: u64, concurrency: usize) {
    let fed = TestFederation::start_with(
        1,
        &[],
        &[
            "limits.max_calls_per_second_per_peer=10000000",
            "limits.max_call_burst_per_peer=10000000",
        ],
    )
    .await;
    let node = fed.member(0).clone();
    let files = fedmesh_tls::TlsFiles {
        ca: node.ca.clone(),
        cert: node.node_cert.clone(),
        key: node.node_key.clone(),
        crl: Some(fed.running.manifest.crl.clone()),
    };
    // The bare server: tonic's health service behind the same TLS listener and configuration.
    let (bare_port, incoming) = fedmesh_tests::bench::bare_tls_listener(files).await;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .serve_with_incoming(incoming),
    );
    let ca = std::fs::read(&node.ca).unwrap();
    let fedmesh_port = fedmesh_tests::port_of(&node.endpoint);
    let connections = 4;
    let bare = plain_channels(
        bare_port,
        &ca,
        &node.admin_cert,
        &node.admin_key,
        connections,
    );
    let full = plain_channels(
        fedmesh_port,
        &ca,
        &node.admin_cert,
        &node.admin_key,
        connections,
    );
    // Warm-up, then bare, fedmesh, bare, fedmesh.
    hammer(&bare, concurrency, Duration::from_secs(1)).await;
    hammer(&full, concurrency, Duration::from_secs(1)).await;
    let length = Duration::from_secs(seconds);
    let mut rows = Vec::new();
    for round in 1..=3 {
        let (bare_rate, bare_lat) = hammer(&bare, concurrency, length).await;
        let (full_rate, full_lat) = hammer(&full, concurrency, length).await;
        rows.push((round, bare_rate, bare_lat, full_rate, full_lat));
    }
    println!(
        "\n## Unary overhead ({concurrency} concurrent calls over {connections} connections, {seconds} s per measure)\n"
    );
    println!("| round | server | calls/s | p50 | p99 |");
    println!("|---|---|---|---|---|");
    let (mut bare_total, mut full_total) = (0.0, 0.0);
    for (round, bare_rate, bare_lat, full_rate, full_lat) in &rows {
        println!(
            "| {round} | bare tonic, same TLS | {bare_rate:.0} | {} | {} |",
            ms(percentile(bare_lat, 0.5)),
            ms(percentile(bare_lat, 0.99))
        );
        println!(
            "| {round} | fedmesh node (auth, rate, deadline, metrics, spans) | {full_rate:.0} | {} | {} |",
            ms(percentile(full_lat, 0.5)),
            ms(percentile(full_lat, 0.99))
        );
        bare_total += bare_rate;
        full_total += full_rate;
    }
    println!(
        "\nratio fedmesh / bare: {:.2} (target ≥ 0.8)",
        full_total / bare_total
    );
    drop(fed);
}

// ---------------------------------------------------------------------------------------------
// 2. Soak: the federation in a child process (this binary with `--host`).

fn host(dir: PathBuf, members: usize, cache_mb: u64, clock: Clock) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut spec = FederationSpec::new(&dir, members);
        let mut settings = vec![format!("storage.cache_mb={cache_mb}")];
        let (mut coordinator, mut nodes) = (Vec::new(), Vec::new());
        if clock.speed > 1.0 {
            settings.push(format!("clock.speed={}", clock.speed));
            settings.push(format!("clock.anchor_unix_ms={}", clock.anchor_ms));
            // The periodic passes run every second of the system's (about 5 hours of business
            // time at a year in 30 minutes) instead of every hour (2 years of it); months close
            // after the production default (the demo keeps them open a year); ended things
            // retire after 30 days instead of 400, so that a year shows them leave.
            settings.extend(
                ["retention.interval_ms=1000", "retention.ended_days=30"].map(str::to_owned),
            );
            // A database is checked for bloat every 10 s (two business days) instead of every
            // hour, by the production rule (files over 8 times the live data and 256 MiB).
            settings.push("storage.defrag_check_ms=10000".to_owned());
            coordinator.extend(["catalogue.compact_interval_ms=1000"].map(str::to_owned));
            nodes.extend(
                [
                    "usage.close_after_days=5",
                    "usage.close_check_interval_ms=1000",
                    "journal.compact_interval_ms=1000",
                    // Expired idempotency records leave every 10 s (two business days)
                    // instead of every hour of the system's, which at this speed is two
                    // business years: they would never have left.
                    "idempotency.sweep_interval_ms=10000",
                ]
                .map(str::to_owned),
            );
        }
        spec.coordinator_settings.extend(settings.iter().cloned());
        spec.coordinator_settings.extend(coordinator);
        spec.node_settings.extend(settings);
        spec.node_settings.extend(nodes);
        let federation = RunningFederation::start(spec).await.unwrap();
        federation.seed_example_offers().await.unwrap();
        federation.seed_example_usage().await.unwrap();
        federation.seed_example_incidents().await.unwrap();
        // The pid is the one to sample, even when a profiler wraps this process.
        std::fs::write(dir.join("ready.tmp"), std::process::id().to_string()).unwrap();
        std::fs::rename(dir.join("ready.tmp"), dir.join("ready")).unwrap();
        // Until the parent asks it to stop (a clean exit lets a wrapping profiler write its
        // report) or kills it.
        while !dir.join("stop").exists() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        drop(federation);
    });
}

/// The federation's clock in a soak: its speed, and the system instant (Unix ms) it runs faster
/// from, the same in this process and the federation's.
#[derive(Debug, Clone, Copy)]
struct Clock {
    speed: f64,
    anchor_ms: u64,
}

impl Clock {
    fn apply(self) {
        if self.speed > 1.0 {
            fedmesh_core::clock::accelerate(fedmesh_core::clock::Acceleration {
                anchor: std::time::UNIX_EPOCH + Duration::from_millis(self.anchor_ms),
                speed: self.speed,
            })
            .unwrap();
        }
    }
}

/// The size of the federation's databases, and of the archives beside them (MiB).
fn disk_sample(dir: &Path) -> (f64, f64) {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let archives: u64 = std::fs::read_dir(dir)
        .map(|parties| {
            parties
                .flatten()
                .map(|party| dir_bytes(&party.path().join("data").join("archive")))
                .sum()
        })
        .unwrap_or(0);
    (mib(dir_bytes(dir).saturating_sub(archives)), mib(archives))
}

/// The two largest databases of the federation, e.g. `rennes2 150, coordinator 49` (MiB).
fn largest_databases(dir: &Path) -> String {
    let mut sizes: Vec<(u64, String)> = std::fs::read_dir(dir)
        .map(|parties| {
            parties
                .flatten()
                .filter(|party| party.path().join("data").join("conf").exists())
                .map(|party| {
                    let data = party.path().join("data");
                    let bytes = dir_bytes(&data).saturating_sub(dir_bytes(&data.join("archive")));
                    (bytes, party.file_name().to_string_lossy().into_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort_by(|a, b| b.cmp(a));
    sizes
        .iter()
        .take(2)
        .map(|(bytes, name)| format!("{name} {:.0}", *bytes as f64 / (1024.0 * 1024.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Growth over the last third of `samples` as a share of the level in the first third.
fn growth_share(samples: &[f64]) -> Option<f64> {
    let third = samples.len() / 3;
    if third == 0 {
        return None;
    }
    let first = samples[..third].iter().sum::<f64>() / third as f64;
    let last = &samples[samples.len() - third..];
    let growth = last[last.len() - 1] - last[0];
    Some(growth / first)
}

/// Resident memory (MiB) and open file descriptors of process `pid`.
fn process_sample(pid: u32) -> (f64, usize) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (rss, fds)
}

#[derive(Default)]
struct Window {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    errors: BTreeMap<String, u64>,
}

/// The soak's settings (its command-line options).
#[derive(Debug, Clone, Copy)]
struct Soak {
    minutes: f64,
    members: usize,
    rate: f64,
    concurrency: usize,
    sample: u64,
    distinct: u64,
    read_only: bool,
    cache_mb: u64,
    clock: Clock,
}

async fn soak(settings: Soak) {
    let Soak {
        minutes,
        members,
        rate,
        concurrency,
        sample,
        distinct,
        read_only,
        cache_mb,
        clock,
    } = settings;
    clock.apply();
    let years = clock.speed > 1.0;
    let dir = tempfile::tempdir().unwrap();
    // FEDMESH_SOAK_WRAP runs the federation under a profiler, e.g. "heaptrack -o /tmp/soak".
    let wrap = std::env::var("FEDMESH_SOAK_WRAP").unwrap_or_default();
    let mut command = wrap.split_whitespace();
    let mut child = match command.next() {
        Some(program) => {
            let mut c = std::process::Command::new(program);
            c.args(command).arg(std::env::current_exe().unwrap());
            c
        }
        None => std::process::Command::new(std::env::current_exe().unwrap()),
    };
    fedmesh_tests::bench::as_deployed(&mut child);
    let mut child = child
        .arg("--host")
        .arg(dir.path())
        .arg(members.to_string())
        .arg(cache_mb.to_string())
        .arg(clock.speed.to_string())
        .arg(clock.anchor_ms.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !dir.path().join("ready").exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the federation process died"
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the federation never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(dir.path().join("federation.json")).unwrap())
            .unwrap();
    let (unistra, rennes2) = (manifest.members[0].clone(), manifest.members[1].clone());
    let pki = dir.path().join("pki");
    let agent = channel(
        &manifest,
        &rennes2.endpoint,
        &pki.join("rennes2-agent-meter.pem"),
        &pki.join("rennes2-agent-meter.key"),
    );
    let desk = channel(
        &manifest,
        &unistra.endpoint,
        &unistra.admin_cert,
        &unistra.admin_key,
    );
    let provider = channel(
        &manifest,
        &rennes2.endpoint,
        &rennes2.admin_cert,
        &rennes2.admin_key,
    );
    let readers: Vec<GrpcChannel> = manifest
        .members
        .iter()
        .map(|m| channel(&manifest, &m.endpoint, &m.admin_cert, &m.admin_key))
        .collect();
    let tenancy = pb::subscription_service_client::SubscriptionServiceClient::new(channel(
        &manifest,
        &rennes2.endpoint,
        &rennes2.admin_cert,
        &rennes2.admin_key,
    ))
    .list_subscriptions(pb::ListSubscriptionsRequest {
        offer_id: "rennes2.collab".into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .subscriptions
    .into_iter()
    .find(|s| s.subscriber_member_id == "unistra")
    .expect("the demo's tenancy");

    let window = Arc::new(Mutex::new(Window::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let per_worker = Duration::from_secs_f64(concurrency as f64 / rate);
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (window, stop, counter) = (window.clone(), stop.clone(), counter.clone());
        let (agent, desk, provider, readers, subscription) = (
            agent.clone(),
            desk.clone(),
            provider.clone(),
            readers.clone(),
            tenancy.subscription_id.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut rng = SplitMix64::new(w as u64 + 1);
            // The incident being worked, and its comments so far: a desk comments a few times,
            // then opens the next one.
            let mut incident: Option<(String, u32)> = None;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                // With --read-only, catalogue reads only (tells write-driven growth apart).
                let pick = if read_only { 0 } else { rng.below(10) };
                let started = Instant::now();
                let (kind, outcome): (&'static str, Result<(), tonic::Status>) = if pick < 5 {
                    let reader = &readers[rng.below(readers.len() as u64) as usize];
                    let r =
                        pb::catalogue_service_client::CatalogueServiceClient::new(reader.clone())
                            .search_offers(pb::SearchOffersRequest {
                                text: "collaboration".into(),
                                ..Default::default()
                            })
                            .await
                            .map(|_| ());
                    ("catalogue search", r)
                } else if pick < 8 {
                    // 10 records, one hour each.
                    // With --distinct-batches, ids repeat after that many batches: the reports
                    // then store nothing new (duplicates), which tells data growth from leaks.
                    // Over years, the business hour just ended; otherwise spread over the
                    // 120 hours before it (months still open however the month falls).
                    let batch = if distinct > 0 { n % distinct } else { n };
                    let hour_ended = fedmesh_core::clock::now_secs().div_euclid(3600) * 3600;
                    let records = (0..10)
                        .map(|i| {
                            let slot = (batch * 10 + i) % 120;
                            let start = if years {
                                hour_ended - 3600
                            } else {
                                hour_ended - (slot as i64 + 1) * 3600
                            };
                            pb::UsageRecord {
                                record_id: format!("soak-{batch}-{i}"),
                                offer_id: "rennes2.collab".into(),
                                subscription_id: subscription.clone(),
                                metric: "requests".into(),
                                value: 1.0,
                                period: Some(pb::Period {
                                    start_time: Some(prost_types::Timestamp {
                                        seconds: start,
                                        nanos: 0,
                                    }),
                                    end_time: Some(prost_types::Timestamp {
                                        seconds: start + 3600,
                                        nanos: 0,
                                    }),
                                }),
                                ..Default::default()
                            }
                        })
                        .collect();
                    let r = pb::usage_service_client::UsageServiceClient::new(agent.clone())
                        .report_usage(pb::ReportUsageRequest { records })
                        .await
                        .and_then(|r| {
                            let r = r.into_inner();
                            if r.rejections.is_empty() {
                                Ok(())
                            } else {
                                Err(tonic::Status::invalid_argument(format!(
                                    "{:?}",
                                    r.rejections
                                )))
                            }
                        });
                    ("usage report (10 records)", r)
                } else {
                    let mut client =
                        pb::incident_service_client::IncidentServiceClient::new(desk.clone());
                    match incident.take() {
                        // Over years, incidents end: resolved by the provider, closed by the
                        // desk.
                        Some((id, 5)) if years => {
                            let r = pb::incident_service_client::IncidentServiceClient::new(
                                provider.clone(),
                            )
                            .set_incident_status(pb::SetIncidentStatusRequest {
                                request_id: format!("soak-resolve-{w}-{n}"),
                                incident_id: id.clone(),
                                status: pb::IncidentStatus::Resolved as i32,
                                resolution: "fixed by the soak".into(),
                                ..Default::default()
                            })
                            .await
                            .map(|_| ());
                            incident = Some((id, 6));
                            ("incident resolve", r)
                        }
                        Some((id, 6)) if years => {
                            let r = client
                                .close_incident(pb::CloseIncidentRequest {
                                    request_id: format!("soak-close-{w}-{n}"),
                                    incident_id: id,
                                    ..Default::default()
                                })
                                .await
                                .map(|_| ());
                            ("incident close", r)
                        }
                        Some((id, comments)) if comments < 5 => {
                            let r = client
                                .comment_incident(pb::CommentIncidentRequest {
                                    request_id: format!("soak-comment-{w}-{n}"),
                                    incident_id: id.clone(),
                                    body: "still slow for some users".into(),
                                    ..Default::default()
                                })
                                .await
                                .map(|_| ());
                            incident = Some((id, comments + 1));
                            ("incident comment", r)
                        }
                        _ => {
                            let r = client
                                .open_incident(pb::OpenIncidentRequest {
                                    request_id: format!("soak-incident-{w}-{n}"),
                                    offer_id: "rennes2.collab".into(),
                                    priority: pb::Priority::P4 as i32,
                                    summary: format!("soak {w}-{n}"),
                                    description: "opened by the soak benchmark".into(),
                                    ..Default::default()
                                })
                                .await
                                .map(|r| {
                                    incident = r
                                        .into_inner()
                                        .incident
                                        .map(|i| (i.incident_id, 0))
                                        .filter(|(id, _)| !id.is_empty());
                                });
                            ("incident open", r)
                        }
                    }
                };
                let elapsed = started.elapsed();
                {
                    let mut window = window.lock().unwrap();
                    match outcome {
                        Ok(()) => window.latencies.entry(kind).or_default().push(elapsed),
                        Err(status) => {
                            *window
                                .errors
                                .entry(format!("{kind}: {:?} {}", status.code(), status.message()))
                                .or_default() += 1;
                        }
                    }
                }
                next += per_worker;
                let now = Instant::now();
                if next > now {
                    tokio::time::sleep(next - now).await;
                } else {
                    next = now;
                }
            }
        }));
    }

    println!(
        "\n## Soak: {members} members, {rate:.0} calls/s paced over {concurrency} workers, {minutes} min, sled cache {cache_mb} MiB per database\n"
    );
    println!(
        "| t | business day | calls/s | catalogue p50/p99 | usage p50/p99 | incident p50/p99 | errors | federation RSS | open fds | databases (largest) | archives |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let pid: u32 = std::fs::read_to_string(dir.path().join("ready"))
        .unwrap()
        .parse()
        .unwrap();
    let soak_started = Instant::now();
    let length = Duration::from_secs_f64(minutes * 60.0);
    let mut total_errors = 0u64;
    let mut first_sample: Option<(f64, usize)> = None;
    let mut last_sample = (0.0, 0);
    let (mut rss_samples, mut disk_samples) = (Vec::new(), Vec::new());
    while soak_started.elapsed() < length {
        tokio::time::sleep(Duration::from_secs(sample)).await;
        let taken = std::mem::take(&mut *window.lock().unwrap());
        let count: usize = taken.latencies.values().map(Vec::len).sum();
        let cell = |kinds: &[&str]| {
            let mut all: Vec<Duration> = kinds
                .iter()
                .filter_map(|k| taken.latencies.get(k))
                .flatten()
                .copied()
                .collect();
            all.sort();
            format!(
                "{} / {}",
                ms(percentile(&all, 0.5)),
                ms(percentile(&all, 0.99))
            )
        };
        let errors: u64 = taken.errors.values().sum();
        total_errors += errors;
        for (what, n) in &taken.errors {
            eprintln!("error ×{n}: {what}");
        }
        let (rss, fds) = process_sample(pid);
        first_sample.get_or_insert((rss, fds));
        last_sample = (rss, fds);
        let (disk, archives) = disk_sample(dir.path());
        rss_samples.push(rss);
        disk_samples.push(disk);
        let day = jiff::Timestamp::from_second(fedmesh_core::clock::now_secs())
            .map(|t| t.strftime("%Y-%m-%d").to_string())
            .unwrap_or_default();
        println!(
            "| {:.0} s | {day} | {:.0} | {} | {} | {} | {errors} | {rss:.0} MiB | {fds} | {disk:.0} MiB ({}) | {archives:.0} MiB |",
            soak_started.elapsed().as_secs_f64(),
            count as f64 / sample as f64,
            cell(&["catalogue search"]),
            cell(&["usage report (10 records)"]),
            cell(&[
                "incident open",
                "incident comment",
                "incident resolve",
                "incident close"
            ]),
            largest_databases(dir.path()),
        );
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }
    let (first_rss, first_fds) = first_sample.unwrap_or_default();
    println!(
        "\n{} calls, {total_errors} errors; federation RSS {first_rss:.0} → {:.0} MiB, open fds {first_fds} → {}",
        counter.load(Ordering::Relaxed),
        last_sample.0,
        last_sample.1
    );
    let share = |samples: &[f64]| {
        growth_share(samples).map_or("n/a".to_owned(), |g| format!("{:+.1} %", g * 100.0))
    };
    println!(
        "growth over the last third, as a share of the first third's level: memory {}, databases {}",
        share(&rss_samples),
        share(&disk_samples)
    );
    std::fs::write(dir.path().join("stop"), b"").unwrap();
    let stopping = Instant::now();
    while child.try_wait().unwrap().is_none() && stopping.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    footprints(dir.path());
}

/// Every file under `dir`, with its size.
fn walk_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        match entry.metadata() {
            Ok(m) if m.is_dir() => files.extend(walk_files(&path)),
            Ok(m) => files.push((path, m.len())),
            Err(_) => {}
        }
    }
    files
}

/// Where the databases' bytes are, once the federation has stopped: per database its files'
/// size against the live bytes of its trees (sled's space amplification), and the trees that
/// hold the most.
fn footprints(dir: &Path) {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "\n| database | files | live | after `fedmesh admin defrag` | largest trees (keys, live MiB) |\n|---|---|---|---|---|"
    );
    let mut parties: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path().join("data")).collect())
        .unwrap_or_default();
    parties.sort();
    for data in parties.iter().filter(|d| d.join("conf").exists()) {
        let files = dir_bytes(data).saturating_sub(dir_bytes(&data.join("archive")));
        let Ok(store) = fedmesh_store::Store::open(data) else {
            continue;
        };
        let Ok(trees) = store.footprint() else {
            continue;
        };
        let live: u64 = trees.iter().map(|t| t.bytes).sum();
        let largest: Vec<String> = trees
            .iter()
            .take(4)
            .map(|t| format!("{} ({}, {:.1})", t.name, t.keys, mib(t.bytes)))
            .collect();
        let name = data
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut on_disk: Vec<(u64, String)> = walk_files(data)
            .into_iter()
            .filter(|(path, _)| !path.starts_with(data.join("archive")))
            .map(|(path, bytes)| {
                let rel = path.strip_prefix(data).unwrap_or(&path);
                (bytes, rel.display().to_string())
            })
            .collect();
        on_disk.sort_by(|a, b| b.cmp(a));
        let files_listed: Vec<String> = on_disk
            .iter()
            .take(3)
            .map(|(bytes, name)| format!("{name} {:.1}", mib(*bytes)))
            .collect();
        drop(store);
        // What `fedmesh admin defrag` gives back, where sled keeps much more than is live.
        let defrag = if files > 2 * live && files > 8 << 20 {
            match fedmesh_store::defrag::defrag(data) {
                Ok(done) => format!("{:.1} MiB", mib(done.after)),
                Err(e) => format!("failed: {e}"),
            }
        } else {
            "-".to_owned()
        };
        println!(
            "| {name} | {:.1} MiB ({}) | {:.1} MiB | {defrag} | {} |",
            mib(files),
            files_listed.join(", "),
            mib(live),
            largest.join(", ")
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--host") {
        let dir = PathBuf::from(&args[i + 1]);
        let members = args[i + 2].parse().unwrap();
        let cache_mb = args[i + 3].parse().unwrap();
        let clock = Clock {
            speed: args[i + 4].parse().unwrap(),
            anchor_ms: args[i + 5].parse().unwrap(),
        };
        host(dir, members, cache_mb, clock);
        return;
    }
    // As in the binary: a subscriber at INFO, so that each call's span is really built (its
    // output goes nowhere here).
    tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_max_level(tracing::Level::INFO)
        .init();
    let minutes: f64 = arg("--minutes", 10.0);
    let members: usize = arg("--nodes", 20);
    let rate: f64 = arg("--rate", 200.0);
    let concurrency: usize = arg("--concurrency", 16);
    let sample: u64 = arg("--sample-seconds", 30);
    let overhead_seconds: u64 = arg("--overhead-seconds", 10);
    let distinct: u64 = arg("--distinct-batches", 0);
    let read_only = arg("--read-only", 0u8) == 1;
    let cache_mb: u64 = arg("--cache-mb", 64);
    let clock = Clock {
        speed: arg("--clock-speed", 1.0),
        anchor_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        if overhead_seconds > 0 {
            overhead(overhead_seconds, 32).await;
        }
        if minutes > 0.0 {
            soak(Soak {
                minutes,
                members,
                rate,
                concurrency,
                sample,
                distinct,
                read_only,
                cache_mb,
                clock,
            })
            .await;
        }
    });
}
