//! The cost of fedmesh's call path against bare tonic, unary and streaming.
//!
//! 1. **Unary.** `grpc.health.v1.Health/Check` and `fedmesh.v1.NodeService/WhoAmI` against (a) a
//!    bare tonic server (tonic's health service and a `NodeService` answering `WhoAmI` with a
//!    reply of the same shape) behind the same mutual-TLS listener, TLS files and rustls
//!    configuration, and (b) a fedmesh node, whose calls also go through connection tracking,
//!    the metrics layer, the malformed-request layer, authentication and the role table, the
//!    per-peer rate limiter (set high: it is a policy, not an overhead), the deadline layer and
//!    one span per call, under the subscriber the node's binary installs (default filter `info`,
//!    lines on stderr). The same tonic client, `--in-flight` calls over `--connections`
//!    connections, bare and fedmesh alternating `--rounds` times in one run. Servers and
//!    client run on runtimes of their own in this process; a server's CPU is what its threads
//!    spent (`/proc/self/task/*/schedstat`), the client's threads left out.
//! 2. **Streaming.** `--followers` journal `Watch` streams of a node, each receiving the same
//!    `--entries` entries already written (offers published), against a bare tonic server streaming the same
//!    encoded entries to as many followers: entries delivered per second and server CPU per
//!    entry.
//!
//! ```sh
//! cargo bench -p fedmesh-tests --bench call_path
//! cargo bench -p fedmesh-tests --bench call_path -- --seconds 10 --rounds 4 --in-flight 64 --connections 4 --followers 100 --entries 2000
//! ```
//!
//! `FEDMESH_BENCH_ONLY=unary|stream` runs one part; `--fedmesh-only 1` hammers only the node
//! (for a profiler attached to this process).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fedmesh_proto::pb;
use fedmesh_tests::TestFederation;
use fedmesh_tests::bench::{arg, percentile, plain_channels as channels};
use prost::Message as _;
use tonic::transport::{Channel, Server};

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// CPU time spent so far by this process's threads, apart from the client's (`client-*`) and
/// the main thread (which only waits).
fn server_cpu() -> Duration {
    let pid = std::process::id().to_string();
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if name.starts_with("client") || task.file_name().to_string_lossy() == pid {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Duration::from_nanos(total)
}

// ---------------------------------------------------------------------------------------------
// The bare server.

/// `NodeService` with nothing but `WhoAmI`, answering what a node would answer an admin.
struct BareNode;

#[tonic::async_trait]
impl pb::node_service_server::NodeService for BareNode {
    async fn who_am_i(
        &self,
        _request: tonic::Request<pb::WhoAmIRequest>,
    ) -> Result<tonic::Response<pb::WhoAmIResponse>, tonic::Status> {
        Ok(tonic::Response::new(pb::WhoAmIResponse {
            identity: "spiffe://esup.example/member/unistra/admin/alice".into(),
            federation: "esup.example".into(),
            role: pb::Role::Admin.into(),
            member_id: "unistra".into(),
            name: "alice".into(),
            server_member_id: "unistra".into(),
        }))
    }

    async fn get_node_info(
        &self,
        _request: tonic::Request<pb::GetNodeInfoRequest>,
    ) -> Result<tonic::Response<pb::GetNodeInfoResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("bare server"))
    }

    async fn get_node_status(
        &self,
        _request: tonic::Request<pb::GetNodeStatusRequest>,
    ) -> Result<tonic::Response<pb::GetNodeStatusResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("bare server"))
    }
}

type Stream<T> = fedmesh_grpc::stream::ResponseStream<T>;

/// `JournalService` with nothing but `Watch`, streaming the same entries to every caller.
struct BareJournal {
    entries: Arc<Vec<pb::JournalEntry>>,
}

#[tonic::async_trait]
impl pb::journal_service_server::JournalService for BareJournal {
    async fn watch(
        &self,
        _request: tonic::Request<pb::WatchRequest>,
    ) -> Result<tonic::Response<Stream<pb::WatchResponse>>, tonic::Status> {
        let entries = self.entries.clone();
        let stream = tokio_stream::iter((0..entries.len()).map(move |i| {
            Ok(pb::WatchResponse {
                event: Some(pb::watch_response::Event::Entry(entries[i].clone())),
            })
        }));
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    async fn list_entries(
        &self,
        _request: tonic::Request<pb::ListEntriesRequest>,
    ) -> Result<tonic::Response<pb::ListEntriesResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("bare server"))
    }

    async fn get_journal_info(
        &self,
        _request: tonic::Request<pb::GetJournalInfoRequest>,
    ) -> Result<tonic::Response<pb::GetJournalInfoResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("bare server"))
    }

    async fn get_snapshot(
        &self,
        _request: tonic::Request<pb::GetSnapshotRequest>,
    ) -> Result<tonic::Response<Stream<pb::GetSnapshotResponse>>, tonic::Status> {
        Err(tonic::Status::unimplemented("bare server"))
    }
}

/// Serves health, `WhoAmI` and `Watch` of `entries` behind fedmesh's own TLS listener with the
/// node's TLS files; its port.
async fn bare_server(files: fedmesh_tls::TlsFiles, entries: Arc<Vec<pb::JournalEntry>>) -> u16 {
    let (port, incoming) = fedmesh_tests::bench::bare_tls_listener(files).await;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    tokio::spawn(
        Server::builder()
            .add_service(health_service)
            .add_service(pb::node_service_server::NodeServiceServer::new(BareNode))
            .add_service(pb::journal_service_server::JournalServiceServer::new(
                BareJournal { entries },
            ))
            .serve_with_incoming(incoming),
    );
    port
}

// ---------------------------------------------------------------------------------------------
// The client.

#[derive(Clone, Copy, PartialEq)]
enum Rpc {
    Health,
    WhoAmI,
}

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::Health => "Health/Check",
            Rpc::WhoAmI => "WhoAmI",
        }
    }
}

struct Measure {
    rate: f64,
    latencies: Vec<Duration>,
    cpu_per_call: Duration,
}

/// `in_flight` tasks call `rpc` over `channels` for `length`.
async fn hammer(rpc: Rpc, channels: &[Channel], in_flight: usize, length: Duration) -> Measure {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..in_flight {
        let channel = channels[i % channels.len()].clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            let mut node = pb::node_service_client::NodeServiceClient::new(channel);
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match rpc {
                    Rpc::Health => {
                        health
                            .check(tonic_health::pb::HealthCheckRequest::default())
                            .await
                            .expect("health check");
                    }
                    Rpc::WhoAmI => {
                        let me = node.who_am_i(pb::WhoAmIRequest {}).await.expect("WhoAmI");
                        assert!(!me.get_ref().identity.is_empty());
                    }
                }
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let cpu = server_cpu();
    let started = Instant::now();
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    let cpu = server_cpu() - cpu;
    latencies.sort();
    let calls = latencies.len().max(1) as u32;
    Measure {
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies,
        cpu_per_call: cpu / calls,
    }
}

/// `followers` Watch streams over `channels`, each read from the start until it holds `entries`
/// entries; entries delivered per second, when the last follower was done, and server CPU per
/// entry.
async fn fan_out(
    channels: &[Channel],
    followers: usize,
    entries: usize,
) -> (f64, Duration, Duration) {
    let cpu = server_cpu();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..followers {
        let channel = channels[i % channels.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut client = pb::journal_service_client::JournalServiceClient::new(channel)
                .max_decoding_message_size(64 * 1024 * 1024);
            let mut stream = client
                .watch(pb::WatchRequest::default())
                .await
                .expect("watch")
                .into_inner();
            let mut seen = 0usize;
            while seen < entries {
                let message = stream.message().await.expect("watch message");
                let Some(message) = message else {
                    panic!("the stream ended after {seen} entries")
                };
                if let Some(pb::watch_response::Event::Entry(_)) = message.event {
                    seen += 1;
                }
            }
            started.elapsed()
        }));
    }
    let mut slowest = Duration::ZERO;
    for task in tasks {
        slowest = slowest.max(task.await.unwrap());
    }
    let cpu = server_cpu() - cpu;
    let delivered = (followers * entries) as f64;
    (
        delivered / slowest.as_secs_f64(),
        slowest,
        cpu.div_f64(delivered),
    )
}

fn main() {
    let seconds: u64 = arg("--seconds", 5);
    let rounds: usize = arg("--rounds", 4);
    let in_flight: usize = arg("--in-flight", 64);
    let connections: usize = arg("--connections", 4);
    let followers: usize = arg("--followers", 100);
    let entries: usize = arg("--entries", 2000);
    let fedmesh_only = arg("--fedmesh-only", 0u8) == 1;
    let only = std::env::var("FEDMESH_BENCH_ONLY").unwrap_or_default();
    // The subscriber a node's binary installs, at its default level: spans and the events that
    // pass the filter cost what they cost in production (lines go to stderr).
    let log_filter: String = arg("--log-filter", "info".to_owned());
    let log = fedmesh_core::config::LogConfig {
        filter: log_filter,
        ..Default::default()
    };
    let _telemetry = fedmesh::telemetry::init(
        &log,
        &fedmesh_core::config::TelemetryConfig::default(),
        "fedmesh-node",
        Some("unistra"),
        None,
    )
    .unwrap();

    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()
        .unwrap();
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client")
        .enable_all()
        .build()
        .unwrap();

    // The node, its journal holding `entries` entries, and the bare server streaming the same.
    let (fed, bare_port, total) = servers.block_on(async {
        let fed = TestFederation::start_with(
            1,
            &[],
            &[
                "limits.max_calls_per_second_per_peer=10000000",
                "limits.max_call_burst_per_peer=10000000",
                "limits.max_streams_per_identity=1000",
            ],
        )
        .await;
        let node = fed.member(0).clone();
        let mut written = Vec::new();
        if only != "unary" {
            let admin = fed.as_admin(&node);
            let mut offers = pb::offer_service_client::OfferServiceClient::new(admin.clone());
            let template = fedmesh_tests::example_offer("otp");
            for i in 0..entries {
                let mut offer = template.clone();
                offer.offer_id = String::new();
                offer.service_id = format!("streamed-{i}");
                offers
                    .publish_offer(pb::PublishOfferRequest {
                        offer: Some(offer),
                        ..Default::default()
                    })
                    .await
                    .expect("publish");
            }
            // What a follower that sees everything (the coordinator) reads from the start.
            let mut journal = pb::journal_service_client::JournalServiceClient::new(fed.channel(
                &node.endpoint,
                &fed.coordinator().node_cert,
                &fed.coordinator().node_key,
            ));
            let mut page_token = String::new();
            loop {
                let page = journal
                    .list_entries(pb::ListEntriesRequest {
                        page_size: 1000,
                        page_token,
                        ..Default::default()
                    })
                    .await
                    .expect("list entries")
                    .into_inner();
                written.extend(page.entries);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            let bytes: usize = written.iter().map(|e| e.encoded_len()).sum();
            println!(
                "journal: {} entries, {} bytes each on average",
                written.len(),
                bytes / written.len().max(1)
            );
        }
        let files = fedmesh_tls::TlsFiles {
            ca: node.ca.clone(),
            cert: node.node_cert.clone(),
            key: node.node_key.clone(),
            crl: Some(fed.running.manifest.crl.clone()),
        };
        let total = written.len();
        let bare_port = bare_server(files, Arc::new(written)).await;
        (fed, bare_port, total)
    });
    let node = fed.member(0).clone();
    let ca = std::fs::read(&node.ca).unwrap();
    let fedmesh_port = fedmesh_tests::port_of(&node.endpoint);

    client.block_on(async {
        let bare = channels(
            bare_port,
            &ca,
            &node.admin_cert,
            &node.admin_key,
            connections,
        );
        let full = channels(
            fedmesh_port,
            &ca,
            &node.admin_cert,
            &node.admin_key,
            connections,
        );
        if only != "stream" {
            unary(&bare, &full, seconds, rounds, in_flight, fedmesh_only).await;
        }
        if only != "unary" {
            let coordinator = fed.coordinator().clone();
            // Followers as the coordinator sees the journal (every entry).
            let bare = channels(
                bare_port,
                &ca,
                &coordinator.node_cert,
                &coordinator.node_key,
                connections,
            );
            let full = channels(
                fedmesh_port,
                &ca,
                &coordinator.node_cert,
                &coordinator.node_key,
                connections,
            );
            stream(&bare, &full, rounds, followers, total).await;
        }
    });
    drop(fed);
    // The node's tasks end with their runtime.
    servers.shutdown_timeout(Duration::from_secs(5));
}

async fn unary(
    bare: &[Channel],
    full: &[Channel],
    seconds: u64,
    rounds: usize,
    in_flight: usize,
    fedmesh_only: bool,
) {
    let length = Duration::from_secs(seconds);
    for rpc in [Rpc::Health, Rpc::WhoAmI] {
        hammer(rpc, bare, in_flight, Duration::from_secs(1)).await;
        hammer(rpc, full, in_flight, Duration::from_secs(1)).await;
    }
    if fedmesh_only {
        let m = hammer(Rpc::WhoAmI, full, in_flight, length).await;
        println!(
            "fedmesh WhoAmI: {:.0} calls/s, {:.1} µs server CPU per call",
            m.rate,
            m.cpu_per_call.as_secs_f64() * 1e6
        );
        return;
    }
    println!(
        "\n## Unary: {in_flight} calls in flight over {} connections, {seconds} s per measure\n",
        bare.len()
    );
    println!("| round | RPC | server | calls/s | p50 | p99 | server CPU per call |");
    println!("|---|---|---|---|---|---|---|");
    let mut sums = Vec::new();
    for rpc in [Rpc::Health, Rpc::WhoAmI] {
        let (mut bare_calls, mut full_calls, mut bare_cpu, mut full_cpu) = (0.0, 0.0, 0.0, 0.0);
        for round in 1..=rounds {
            // Alternate which goes first, so that neither always follows the other.
            let order = if round % 2 == 1 {
                [(bare, true), (full, false)]
            } else {
                [(full, false), (bare, true)]
            };
            for (channels, is_bare) in order {
                let m = hammer(rpc, channels, in_flight, length).await;
                let cpu = m.cpu_per_call.as_secs_f64() * 1e6;
                println!(
                    "| {round} | {} | {} | {:.0} | {} | {} | {cpu:.1} µs |",
                    rpc.name(),
                    if is_bare {
                        "bare tonic, same TLS"
                    } else {
                        "fedmesh node"
                    },
                    m.rate,
                    ms(percentile(&m.latencies, 0.5)),
                    ms(percentile(&m.latencies, 0.99)),
                );
                let calls = m.rate * seconds as f64;
                if is_bare {
                    bare_calls += m.rate;
                    bare_cpu += cpu * calls;
                } else {
                    full_calls += m.rate;
                    full_cpu += cpu * calls;
                }
            }
        }
        sums.push((rpc, bare_calls, full_calls, bare_cpu, full_cpu));
    }
    println!();
    for (rpc, bare_calls, full_calls, bare_cpu, full_cpu) in sums {
        let bare_per_call = bare_cpu / (bare_calls * seconds as f64);
        let full_per_call = full_cpu / (full_calls * seconds as f64);
        println!(
            "{}: fedmesh / bare calls/s {:.2} (goal ≥ 0.9); server CPU per call {full_per_call:.1} µs / {bare_per_call:.1} µs = {:.2} (goal ≤ 1.2)",
            rpc.name(),
            full_calls / bare_calls,
            full_per_call / bare_per_call
        );
    }
}

async fn stream(
    bare: &[Channel],
    full: &[Channel],
    rounds: usize,
    followers: usize,
    entries: usize,
) {
    println!("\n## Journal Watch: {followers} followers, {entries} entries each\n");
    println!(
        "| round | server | entries/s delivered | last follower done | server CPU per entry |"
    );
    println!("|---|---|---|---|---|");
    let (mut bare_rate, mut full_rate, mut bare_cpu, mut full_cpu) = (0.0, 0.0, 0.0, 0.0);
    for round in 1..=rounds {
        for (channels, is_bare) in [(bare, true), (full, false)] {
            let (rate, slowest, cpu) = fan_out(channels, followers, entries).await;
            let cpu = cpu.as_secs_f64() * 1e6;
            println!(
                "| {round} | {} | {rate:.0} | {} | {cpu:.1} µs |",
                if is_bare {
                    "bare tonic stream"
                } else {
                    "fedmesh node"
                },
                ms(slowest)
            );
            if is_bare {
                bare_rate += rate;
                bare_cpu += cpu;
            } else {
                full_rate += rate;
                full_cpu += cpu;
            }
        }
    }
    println!(
        "\nWatch: fedmesh / bare entries/s {:.2}; server CPU per entry {:.1} µs / {:.1} µs",
        full_rate / bare_rate,
        full_cpu / rounds as f64,
        bare_cpu / rounds as f64
    );
}
