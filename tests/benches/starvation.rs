//! No one starves the others: two measurements, each with its baseline in the same run.
//!
//! 1. **Idle-connection flood** (`--flood-calls N`, 0 to skip). A node of an in-process
//!    federation with the default limits. `WhoAmI` on a fresh connection each time (a new TCP
//!    connection and mutual-TLS handshake: what a flood of idle connections can delay), N
//!    times with no flood, then N times while this process holds `--flood-idle` idle TCP
//!    connections to the node (never a byte sent) and opens 100 more a second.
//! 2. **Memory per watch stream** (`--watchers N`, 0 to skip). A federation of `--members`
//!    members (2 by default) with the example offers runs in a child process (this binary with `--host`); this
//!    process opens N `CatalogueService.WatchCatalogue` streams on the coordinator as one
//!    member's admin (100 per connection), reads each up to its caught-up marker and holds
//!    them. The federation process's resident memory before and after, per stream. The
//!    coordinator's stream and rate limits are raised for the measurement.
//!
//! ```sh
//! cargo bench -p fedmesh-tests --bench starvation -- --flood-calls 20 --watchers 500
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fedmesh::federation::{FederationSpec, Manifest, RunningFederation};
use fedmesh_grpc::GrpcChannel;
use fedmesh_proto::pb;
use fedmesh_tests::bench::{arg, channel};
use fedmesh_tests::{TestFederation, port_of};

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn summary(mut latencies: Vec<Duration>) -> String {
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    format!(
        "p50 {}  p90 {}  max {}",
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(1.0))
    )
}

// ---------------------------------------------------------------------------------------------
// 1. Idle-connection flood.

async fn who_am_i_fresh(fed: &TestFederation, calls: usize) -> Vec<Duration> {
    let node = fed.member(0);
    let mut latencies = Vec::new();
    for _ in 0..calls {
        // A new channel: a new connection and handshake.
        let channel = fed.as_admin(node);
        let started = Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(30),
            pb::node_service_client::NodeServiceClient::new(channel).who_am_i(pb::WhoAmIRequest {}),
        )
        .await;
        match answer {
            Ok(Ok(_)) => latencies.push(started.elapsed()),
            Ok(Err(status)) => println!("  call failed after {}: {status}", ms(started.elapsed())),
            Err(_) => println!("  call timed out after 30 s"),
        }
    }
    latencies
}

async fn flood(calls: usize, idle: usize) {
    let fed = TestFederation::start(1).await;
    let port = port_of(&fed.member(0).endpoint);
    let _ = who_am_i_fresh(&fed, 2).await;
    let baseline = who_am_i_fresh(&fed, calls).await;
    println!(
        "no flood:   {} calls, {}",
        baseline.len(),
        summary(baseline)
    );

    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let flooder = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..idle {
            if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                held.push(s);
            }
        }
        let _ = ready_tx.send(());
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                held.push(s);
            }
        }
    });
    ready_rx.await.unwrap();
    let flooded = who_am_i_fresh(&fed, calls).await;
    flooder.abort();
    println!(
        "flood of {idle} idle connections + 100/s: {} calls, {}",
        flooded.len(),
        summary(flooded)
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Memory per watch stream: the federation in a child process.

fn host(dir: PathBuf, members: usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut spec = FederationSpec::new(&dir, members);
        spec.coordinator_settings = vec![
            "limits.max_streams_per_identity=100000".to_owned(),
            "limits.max_calls_per_second_per_peer=100000".to_owned(),
            "limits.max_call_burst_per_peer=100000".to_owned(),
        ];
        let federation = RunningFederation::start(spec).await.unwrap();
        federation.seed_example_offers().await.unwrap();
        std::fs::write(dir.join("ready.tmp"), std::process::id().to_string()).unwrap();
        std::fs::rename(dir.join("ready.tmp"), dir.join("ready")).unwrap();
        while !dir.join("stop").exists() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        drop(federation);
    });
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Opens `count` watches on `channels` (round robin), each read to its caught-up marker.
async fn open_watches(
    channels: &[GrpcChannel],
    count: usize,
) -> Vec<tonic::Streaming<pb::WatchCatalogueResponse>> {
    let mut streams = Vec::new();
    for i in 0..count {
        let mut stream = pb::catalogue_service_client::CatalogueServiceClient::new(
            channels[i % channels.len()].clone(),
        )
        .watch_catalogue(pb::WatchCatalogueRequest::default())
        .await
        .unwrap()
        .into_inner();
        let mut offers = 0;
        loop {
            let message = stream.message().await.unwrap().unwrap();
            if message.caught_up {
                break;
            }
            offers += usize::from(message.change.is_some());
        }
        assert!(offers > 0, "the catalogue is empty");
        if i == 0 {
            println!("  the catalogue holds {offers} offers");
        }
        streams.push(stream);
    }
    streams
}

async fn watchers(count: usize, members: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--host")
        .arg(dir.path())
        .arg(members.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !dir.path().join("ready").exists() {
        assert!(child.try_wait().unwrap().is_none(), "the federation died");
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no federation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = child.id();
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(dir.path().join("federation.json")).unwrap())
            .unwrap();
    let member = &manifest.members[0];
    let channels: Vec<GrpcChannel> = (0..count.div_ceil(100).max(1))
        .map(|_| {
            channel(
                &manifest,
                &manifest.coordinator.endpoint,
                &member.admin_cert,
                &member.admin_key,
            )
        })
        .collect();
    // Warm up: every connection established, one watch opened and closed on each.
    drop(open_watches(&channels, channels.len()).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_kib(pid);
    let streams = open_watches(&channels, count).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    println!(
        "{count} WatchCatalogue streams on {} connections: federation RSS {:.1} -> {:.1} MiB, {:.1} KiB per stream",
        channels.len(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / count as f64
    );
    drop(streams);
    std::fs::write(dir.path().join("stop"), b"").unwrap();
    let stopping = Instant::now();
    while child.try_wait().unwrap().is_none() && stopping.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--host") {
        host(
            PathBuf::from(&args[i + 1]),
            args.get(i + 2).and_then(|m| m.parse().ok()).unwrap_or(2),
        );
        return;
    }
    let calls: usize = arg("--flood-calls", 20);
    let idle: usize = arg("--flood-idle", 384);
    let count: usize = arg("--watchers", 500);
    let members: usize = arg("--members", 2);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        if calls > 0 {
            flood(calls, idle).await;
        }
        if count > 0 {
            watchers(count, members).await;
        }
    });
}
