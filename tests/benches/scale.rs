//! A federation of many members on one coordinator: what each member costs it, how fast a
//! change spreads, how search holds with thousands of offers, and how the federation comes
//! back after the coordinator is killed.
//!
//! The members' nodes run in this process (each with its own sled database of a 1 MiB cache,
//! its own TLS listener and tasks; the tokio runtime, sled's I/O threads, its transactions'
//! lock and the allocator are shared), or with `--member-processes K` in K child processes
//! that share them between fewer nodes (this binary with `--serve-members`, the nodes on the
//! addresses and data they had here); the coordinator runs in a child process (this binary
//! with `--serve-coordinator`), so that its memory and CPU are its own and it can be killed
//! with SIGKILL. Every party runs the production defaults (heartbeats every 10 s, registration
//! retried after 0.5 s doubling to 30 s with jitter, two malloc arenas in the child
//! processes), except the members' small databases: a 1 MiB cache and sled's background
//! thread every 500 ms (`--member-clean-interval-ms`), on disk or, with `--member-dir
//! /dev/shm`, in memory as if each member had a disk of its own.
//!
//! 1. Every member publishes offers (`--offers` in all, spread over the members, an offer
//!    approved within capacity; `--setup-parallel` at once, in waves of `--setup-wave` each
//!    in the last member's cache before the next) and asks for a tenancy on the next
//!    member's first offer (the first `--tenancies` members, all by default); a trickle of
//!    usage (one record every `--usage-ms` for a random tenancy) runs from then on. Sampled
//!    every second meanwhile: the allowance the coordinator's staleness rule takes for its own
//!    delays, and how many nodes it calls stale.
//! 2. `--publishes` sequential updates of one offer: the time to the coordinator's catalogue
//!    and to another member's catalogue watch; with `--extra-watchers W`, W more catalogue
//!    watches on the coordinator (100 per connection, read here), and the time until the
//!    last of all the coordinator's watches has the change: its fan-out to as many members
//!    without the cost of hosting as many nodes on this machine.
//! 3. `--searches` catalogue searches on the coordinator and on a member's cached catalogue.
//! 4. At rest (heartbeats and the trickle only) for `--rest-seconds`: the coordinator's
//!    resident memory and CPU, the nodes' CPU, and what the changes of step 2 cost the nodes
//!    beyond it.
//! 5. The coordinator is killed (SIGKILL), an offer changes while it is down for
//!    `--down-seconds`, and it is started again on its data: the time until every node has
//!    heartbeated to it again, until its catalogue holds the change (it follows the provider's
//!    journal again), and until every node's cached catalogue holds it; the registrations and
//!    heartbeats it answered per second on the way.
//!
//! ```sh
//! cargo bench -p fedmesh-tests --bench scale -- --members 76
//! cargo bench -p fedmesh-tests --bench scale -- --members 250
//! cargo bench -p fedmesh-tests --bench scale -- --members 760
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedmesh::federation::{FederationSpec, Manifest, RunningFederation};
use fedmesh_proto::pb;
use fedmesh_proto::pb::catalogue_service_client::CatalogueServiceClient;
use fedmesh_proto::pb::offer_service_client::OfferServiceClient;
use fedmesh_tests::bench::{arg, catalogue_watch, channel, percentile, until_version};
use tokio::task::JoinSet;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------------------------
// The coordinator's process.

fn serve_coordinator(config: &Path, settings: Vec<String>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config: fedmesh_coordinator::CoordinatorConfig =
            fedmesh::federation::load_config(config, &settings).unwrap();
        let server = fedmesh_coordinator::Coordinator::bind(config)
            .await
            .unwrap();
        server.serve(std::future::pending()).await.unwrap();
    });
}

/// Members' nodes in a process of their own: `(configuration, address)` each, with the same
/// settings; each node listens on the address it had in the benchmark's process.
fn serve_members(nodes: Vec<(PathBuf, String)>, settings: Vec<String>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut served = JoinSet::new();
        for (config, listen) in nodes {
            let mut settings = settings.clone();
            settings.push(format!("listen={listen}"));
            let config: fedmesh_node::NodeConfig =
                fedmesh::federation::load_config(&config, &settings).unwrap();
            let server = fedmesh_node::Node::bind(config).await.unwrap();
            served.spawn(async move { server.serve(std::future::pending()).await.unwrap() });
        }
        served.join_all().await;
    });
}

/// A party of the federation in a child process (this binary with `args`): the coordinator,
/// or a share of the members' nodes.
struct ChildProcess {
    args: Vec<String>,
    child: Child,
}

impl ChildProcess {
    /// This binary with `args`, then `--set` for each of `settings`.
    fn spawn(mut args: Vec<String>, settings: &[String]) -> Self {
        for setting in settings {
            args.extend(["--set".to_owned(), setting.clone()]);
        }
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        fedmesh_tests::bench::as_deployed(&mut command);
        let child = command.spawn().unwrap();
        Self { args, child }
    }

    /// The coordinator, on the addresses it had in this process.
    fn coordinator(config: &Path, settings: &[String]) -> Self {
        let args = vec![
            "--serve-coordinator".to_owned(),
            config.display().to_string(),
        ];
        Self::spawn(args, settings)
    }

    /// Members' nodes: `(configuration, listen address)` each.
    fn members(nodes: &[(PathBuf, String)], settings: &[String]) -> Self {
        let mut args = vec!["--serve-members".to_owned()];
        for (config, listen) in nodes {
            args.extend([
                "--node".to_owned(),
                config.display().to_string(),
                listen.clone(),
            ]);
        }
        Self::spawn(args, settings)
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn restart(&mut self) {
        *self = Self::spawn(self.args.clone(), &[]);
    }

    /// Resident memory (MiB) and CPU time so far.
    fn usage(&self) -> (f64, Duration) {
        process_usage(&self.child.id().to_string())
    }
}

/// Resident memory (MiB) and CPU time so far of process `pid` (or `self`).
fn process_usage(pid: &str) -> (f64, Duration) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    (rss, Duration::from_millis(ticks * 10))
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory (MiB) and CPU time so far of the members' nodes and the load: this
/// process and the members' child processes.
fn nodes_usage(children: &[ChildProcess]) -> (f64, Duration) {
    children
        .iter()
        .map(ChildProcess::usage)
        .fold(process_usage("self"), |(rss, cpu), (r, c)| {
            (rss + r, cpu + c)
        })
}

// ---------------------------------------------------------------------------------------------
// Reading the federation.

/// Every node in the coordinator's registry: member id → last heartbeat (Unix seconds).
async fn heartbeats(operator: &fedmesh_grpc::GrpcChannel) -> BTreeMap<String, i64> {
    let mut client = pb::registry_service_client::RegistryServiceClient::new(operator.clone());
    let mut seen = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let Ok(page) = client
            .list_nodes(pb::ListNodesRequest {
                page_size: 1000,
                page_token: page_token.clone(),
            })
            .await
        else {
            return seen;
        };
        let page = page.into_inner();
        for node in page.nodes {
            let beat = node
                .last_heartbeat_at
                .or(node.registered_at)
                .map_or(0, |t| t.seconds);
            seen.insert(node.member_id, beat);
        }
        if page.next_page_token.is_empty() {
            return seen;
        }
        page_token = page.next_page_token;
    }
}

/// The coordinator's metrics: the sum of a series' samples whose line starts with `prefix`,
/// and how many there are.
async fn scrape(metrics_url: &str, prefix: &str) -> Option<(f64, usize)> {
    let (status, body) = fedmesh_tests::http_get(metrics_url).await;
    if status != 200 {
        return None;
    }
    let values: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    Some((values.iter().sum(), values.len()))
}

/// How many offers a catalogue (the coordinator's or a node's cache) holds.
async fn catalogue_size(channel: &fedmesh_grpc::GrpcChannel) -> usize {
    let mut client = CatalogueServiceClient::new(channel.clone());
    let mut count = 0;
    let mut page_token = String::new();
    loop {
        let Ok(page) = client
            .search_offers(pb::SearchOffersRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
        else {
            return count;
        };
        let page = page.into_inner();
        count += page.offers.len();
        if page.next_page_token.is_empty() {
            return count;
        }
        page_token = page.next_page_token;
    }
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "| {name} | {} | {} | {} | {} |",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(samples.last().copied().unwrap_or_default()),
        samples.len()
    );
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Runs `jobs` with at most `parallel` at once; their results in order.
async fn bounded<T, F>(parallel: usize, jobs: Vec<F>) -> Vec<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    let gate = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut set = JoinSet::new();
    for (i, job) in jobs.into_iter().enumerate() {
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            (i, job.await)
        });
    }
    let mut out: Vec<(usize, T)> = set.join_all().await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, t)| t).collect()
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // A child process's `--set` settings (see `ChildProcess`).
    let settings = || {
        args.windows(2)
            .filter(|w| w[0] == "--set")
            .map(|w| w[1].clone())
            .collect()
    };
    if let Some(i) = args.iter().position(|a| a == "--serve-coordinator") {
        serve_coordinator(&PathBuf::from(&args[i + 1]), settings());
        return;
    }
    if args.iter().any(|a| a == "--serve-members") {
        let nodes = args
            .windows(3)
            .filter(|w| w[0] == "--node")
            .map(|w| (PathBuf::from(&w[1]), w[2].clone()))
            .collect();
        serve_members(nodes, settings());
        return;
    }
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

async fn run() {
    let members: usize = arg("--members", 76).max(2);
    let total_offers: usize = arg("--offers", 2000).max(members);
    let publishes: usize = arg("--publishes", 100);
    let searches: usize = arg("--searches", 300);
    let rest_seconds: u64 = arg("--rest-seconds", 30);
    let down_seconds: u64 = arg("--down-seconds", 5);
    let usage_ms: u64 = arg("--usage-ms", 200);
    // Catalogue watches on the coordinator besides the members' nodes' (its fan-out without
    // the cost of hosting more nodes here).
    let extra_watchers: usize = arg("--extra-watchers", 0);
    // How many members take a tenancy (on the next member's first offer).
    let tenants: usize = arg("--tenancies", members).min(members);
    // 1: every member's node in this process; K > 1: the nodes move to K child processes
    // (sled's transactions take a lock shared by every database of a process, and a process
    // has one allocator and one scheduler: in production each node has its own).
    let member_processes: usize = arg("--member-processes", 1).clamp(1, members);
    // Publications and tenancy requests in flight at once while setting up.
    let setup_parallel: usize = arg("--setup-parallel", 16).max(1);
    // Offers published in waves of this many, each in the last member's cache before the next.
    let setup_wave: usize = arg("--setup-wave", 32).max(1);
    println!("# {members} members, {total_offers} offers\n");

    // Where the federation's files live. This machine has one disk for every party, where each
    // member has its own: `--member-dir /dev/shm` keeps the members' databases in memory (their
    // durable writes then wait for no shared disk and cost only their CPU), and the
    // coordinator's database goes back to disk once it runs in its own process.
    let member_dir: String = arg("--member-dir", String::new());
    let dir = if member_dir.is_empty() {
        tempfile::tempdir()
    } else {
        tempfile::tempdir_in(&member_dir)
    }
    .unwrap();
    let coordinator_disk = tempfile::tempdir().unwrap();
    let mut spec = FederationSpec::new(dir.path(), members);
    // sled's background thread in each member's database (`storage.clean_interval_ms`).
    let member_clean_ms: u64 = arg("--member-clean-interval-ms", 500);
    let node_settings: Vec<String> = vec![
        "storage.cache_mb=1".into(),
        // Each database's background thread `fsync`s its files every run: every 100 ms for
        // hundreds of nodes on this machine would cost a fair share of a core (BENCHMARKS.md,
        // "A year of a 20-member federation"); a member's small database lets sled's default
        // do (`--member-clean-interval-ms`). The coordinator keeps the production default.
        format!("storage.clean_interval_ms={member_clean_ms}"),
        "metrics.enabled=false".into(),
        // Room for this benchmark's own calls as each member's admin.
        "limits.max_calls_per_second_per_peer=100000".into(),
        "limits.max_call_burst_per_peer=100000".into(),
    ];
    spec.node_settings = node_settings.clone();
    spec.coordinator_settings = vec![
        "limits.max_calls_per_second_per_peer=100000".into(),
        "limits.max_call_burst_per_peer=100000".into(),
        "limits.max_streams_per_identity=100000".into(),
    ];
    let started = Instant::now();
    let mut running = RunningFederation::start(spec).await.unwrap();
    let manifest: Manifest = running.manifest.clone();
    let coordinator_addr = running.coordinator_addr();
    // The coordinator moves to a process of its own, on the same addresses and data.
    running.stop_coordinator().await.unwrap();
    let metrics_url = manifest.coordinator.metrics.clone().unwrap();
    let metrics_listen = metrics_url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();
    let dashboard_port = manifest
        .coordinator
        .dashboard
        .as_deref()
        .and_then(|d| d.split(':').nth(2))
        .and_then(|p| p.split('/').next())
        .unwrap()
        .to_owned();
    let mut coordinator_settings = vec![
        format!("listen={coordinator_addr}"),
        format!("metrics.listen={metrics_listen}"),
        format!("dashboard.listen=127.0.0.1:{dashboard_port}"),
        "limits.max_calls_per_second_per_peer=100000".into(),
        "limits.max_call_burst_per_peer=100000".into(),
        "limits.max_streams_per_identity=100000".into(),
    ];
    if !member_dir.is_empty() {
        let on_disk = coordinator_disk.path().join("data");
        fedmesh_tests::copy_tree(
            &manifest.coordinator.config.parent().unwrap().join("data"),
            &on_disk,
        );
        coordinator_settings.push(format!("data_dir={}", on_disk.display()));
    }
    let mut coordinator =
        ChildProcess::coordinator(&manifest.coordinator.config, &coordinator_settings);
    // The members' nodes move to processes of their own too, if asked, on the same addresses
    // and data.
    let mut member_children = Vec::new();
    if member_processes > 1 {
        let nodes: Vec<(PathBuf, String)> = (0..members)
            .map(|i| {
                let listen = running.member_addr(i).unwrap().to_string();
                (manifest.members[i].config.clone(), listen)
            })
            .collect();
        for i in 0..members {
            running.stop_member(i).await.unwrap();
        }
        for share in nodes.chunks(members.div_ceil(member_processes)) {
            member_children.push(ChildProcess::members(share, &node_settings));
        }
    }
    let operator = channel(
        &manifest,
        &manifest.coordinator.endpoint,
        &manifest.coordinator.admin_cert,
        &manifest.coordinator.admin_key,
    );
    let admins: Vec<fedmesh_grpc::GrpcChannel> = manifest
        .members
        .iter()
        .map(|m| channel(&manifest, &m.endpoint, &m.admin_cert, &m.admin_key))
        .collect();
    loop {
        if heartbeats(&operator).await.len() == members {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nodes moved to child processes registered from here before: each must answer again.
    let answers = admins.iter().map(|admin| {
        let admin = admin.clone();
        async move {
            let mut node = pb::node_service_client::NodeServiceClient::new(admin);
            while node.who_am_i(pb::WhoAmIRequest {}).await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    bounded(32, answers.collect()).await;
    println!(
        "federation started and every node registered in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // What setup's bursts do to the coordinator: the allowance its staleness rule takes for its
    // own delays, and how many nodes it calls stale, sampled every second (highest kept).
    let peaks = Arc::new(std::sync::Mutex::new((0.0f64, 0.0f64)));
    let sampler = {
        let (peaks, metrics_url) = (peaks.clone(), metrics_url.clone());
        tokio::spawn(async move {
            loop {
                let allowance = scrape(&metrics_url, "fedmesh_heartbeat_allowance_seconds").await;
                let stale = scrape(&metrics_url, "fedmesh_nodes{state=\"stale\"}").await;
                if let (Some((allowance, _)), Some((stale, _))) = (allowance, stale) {
                    let mut peaks = peaks.lock().unwrap();
                    *peaks = (peaks.0.max(allowance), peaks.1.max(stale));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    // 1. Offers, tenancies, then a trickle of usage.
    let per_member = total_offers.div_ceil(members);
    let template = fedmesh_tests::example_offer("otp");
    let mut jobs = Vec::new();
    for (m, admin) in admins.iter().enumerate() {
        for k in 0..per_member {
            if m * per_member + k >= total_offers {
                break;
            }
            let mut offer = template.clone();
            offer.service_id = format!("svc-{k}");
            offer.service_name = format!("Service {k} of member {m}");
            offer.status = pb::OfferStatus::Available.into();
            offer.approval_policy = pb::SubscriptionApprovalPolicy::AutoWithinCapacity.into();
            offer.auto_approved_member_ids.clear();
            let admin = admin.clone();
            jobs.push(async move {
                OfferServiceClient::new(admin)
                    .publish_offer(pb::PublishOfferRequest {
                        offer: Some(offer),
                        etag: String::new(),
                    })
                    .await
                    .expect("publish")
                    .into_inner()
                    .offer
                    .unwrap()
            });
        }
    }
    let setup = Instant::now();
    // In waves, each absorbed (in the last member's cache) before the next: this machine hosts
    // every member's cache, which a real federation spreads over as many machines, and a burst
    // of hundreds of publications would starve the nodes of the next ones.
    let mut offers = Vec::new();
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        let wave: Vec<_> = jobs.by_ref().take(setup_wave).collect();
        offers.extend(bounded(setup_parallel, wave).await);
        while catalogue_size(&admins[members - 1]).await < offers.len() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!(
            "{} offers published and in the last member's cache after {:.1} s",
            offers.len(),
            setup.elapsed().as_secs_f64()
        );
    }
    println!(
        "{} offers published in {:.1} s",
        offers.len(),
        setup.elapsed().as_secs_f64()
    );
    let first_offers: Vec<pb::Offer> = offers
        .iter()
        .filter(|o| o.service_id == "svc-0")
        .cloned()
        .collect();
    loop {
        if catalogue_size(&admins[members - 1]).await >= offers.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut jobs = Vec::new();
    for (m, admin) in admins.iter().enumerate().take(tenants) {
        let offer = first_offers[(m + 1) % first_offers.len()].clone();
        let admin = admin.clone();
        jobs.push(async move {
            let mut client = pb::subscription_service_client::SubscriptionServiceClient::new(admin);
            // The same request id makes a retry after a timeout the same request.
            for attempt in 1.. {
                let answer = client
                    .request_subscription(pb::RequestSubscriptionRequest {
                        request_id: "scale-1".into(),
                        offer_id: offer.offer_id.clone(),
                        user_count: 100,
                        contact_email: "dsi@example.org".into(),
                        accepted_terms_version: offer.terms_version.clone(),
                        ..Default::default()
                    })
                    .await;
                match answer {
                    Ok(a) => return a.into_inner().subscription,
                    Err(status) if attempt < 5 => {
                        eprintln!(
                            "tenancy on {} (attempt {attempt}): {status:?}",
                            offer.offer_id
                        );
                    }
                    Err(status) => {
                        eprintln!("tenancy on {}: {status:?}", offer.offer_id);
                        return None;
                    }
                }
            }
            None
        });
    }
    let tenancies: Vec<pb::Subscription> = bounded(setup_parallel, jobs)
        .await
        .into_iter()
        .flatten()
        .filter(|s| !s.tenant_id.is_empty())
        .collect();
    println!(
        "{} tenancies active after {:.1} s of setup",
        tenancies.len(),
        setup.elapsed().as_secs_f64()
    );
    sampler.abort();
    let (allowance, stale) = *peaks.lock().unwrap();
    println!(
        "during setup the coordinator allowed heartbeats up to {allowance:.1} s more for its own delays, and called at most {stale:.0} nodes stale at once"
    );
    let provider_of: BTreeMap<String, usize> = manifest
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.member_id.clone().unwrap(), i))
        .collect();
    let trickle = {
        let admins = admins.clone();
        let tenancies = tenancies.clone();
        tokio::spawn(async move {
            let mut rng = fedmesh_tests::SplitMix64::new(7);
            let mut n = 0u64;
            loop {
                tokio::time::sleep(Duration::from_millis(usage_ms)).await;
                if tenancies.is_empty() {
                    continue;
                }
                let tenancy = &tenancies[rng.below(tenancies.len() as u64) as usize];
                let provider = tenancy.offer_id.split('.').next().unwrap_or_default();
                let Some(&p) = provider_of.get(provider) else {
                    continue;
                };
                n += 1;
                let hour = unix_now() / 3600 * 3600 - 3600;
                let _ = pb::usage_service_client::UsageServiceClient::new(admins[p].clone())
                    .report_usage(pb::ReportUsageRequest {
                        records: vec![pb::UsageRecord {
                            record_id: format!("trickle-{n}"),
                            offer_id: tenancy.offer_id.clone(),
                            subscription_id: tenancy.subscription_id.clone(),
                            tenant_id: tenancy.tenant_id.clone(),
                            metric: "active_users".into(),
                            value: 10.0,
                            period: Some(pb::Period {
                                start_time: Some(prost_types::Timestamp {
                                    seconds: hour,
                                    nanos: 0,
                                }),
                                end_time: Some(prost_types::Timestamp {
                                    seconds: hour + 3600,
                                    nanos: 0,
                                }),
                            }),
                            ..Default::default()
                        }],
                    })
                    .await;
            }
        })
    };

    // 2. A change's way to the coordinator and to another member.
    let mut at_coordinator = catalogue_watch(operator.clone()).await;
    let mut at_member = catalogue_watch(admins[members - 1].clone()).await;
    let mut etag = first_offers[0].etag.clone();
    let provider = OfferServiceClient::new(admins[0].clone());
    let mut to_coordinator = Vec::new();
    let mut to_member = Vec::new();
    let mut to_every_watcher = Vec::new();
    let mut acks = Vec::new();
    // The extra watchers, 100 streams per connection, say when each version reached them.
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let mut watchers = JoinSet::new();
    let connections: Vec<fedmesh_grpc::GrpcChannel> = (0..extra_watchers.div_ceil(100))
        .map(|_| {
            channel(
                &manifest,
                &manifest.coordinator.endpoint,
                &manifest.coordinator.admin_cert,
                &manifest.coordinator.admin_key,
            )
        })
        .collect();
    for w in 0..extra_watchers {
        let mut stream = catalogue_watch(connections[w / 100].clone()).await;
        let arrived_tx = arrived_tx.clone();
        watchers.spawn(async move {
            while let Ok(Some(message)) = stream.message().await {
                if let Some(offer) = message.change.and_then(|c| c.offer).and_then(|o| o.offer)
                    && arrived_tx.send((offer.version, Instant::now())).is_err()
                {
                    return;
                }
            }
        });
    }
    let (_, nodes_cpu_before) = nodes_usage(&member_children);
    let changes_started = Instant::now();
    for i in 0..publishes {
        let mut offer = first_offers[0].clone();
        offer.version = format!("2.{i}");
        let sent = Instant::now();
        etag = provider
            .clone()
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
        let version = format!("2.{i}");
        let (c, m) = tokio::join!(
            until_version(&mut at_coordinator, &version),
            until_version(&mut at_member, &version)
        );
        to_coordinator.push(c - acked);
        to_member.push(m - acked);
        if extra_watchers > 0 {
            let mut last = c;
            let mut reached = 0;
            while reached < extra_watchers {
                let (seen, at) = tokio::time::timeout(Duration::from_secs(60), arrived.recv())
                    .await
                    .expect("a watcher went 60 s without the change")
                    .unwrap();
                if seen == version {
                    reached += 1;
                    last = last.max(at);
                }
            }
            to_every_watcher.push(last - acked);
        }
    }
    let (_, nodes_cpu_after) = nodes_usage(&member_children);
    let nodes_cpu = nodes_cpu_after - nodes_cpu_before;
    let changes_took = changes_started.elapsed();
    drop((at_coordinator, at_member));
    watchers.abort_all();

    // 3. Searches.
    let search = |channel: fedmesh_grpc::GrpcChannel| async move {
        let mut client = CatalogueServiceClient::new(channel);
        let mut samples = Vec::new();
        let words = ["authentification", "member", "webauthn", "identity"];
        for i in 0..searches {
            let sent = Instant::now();
            let page = client
                .search_offers(pb::SearchOffersRequest {
                    text: words[i % words.len()].into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            samples.push(sent.elapsed());
            assert!(!page.offers.is_empty() || i % words.len() == 1);
        }
        samples
    };
    let search_coordinator = search(operator.clone()).await;
    let search_node = search(admins[members - 1].clone()).await;

    println!("\n| measure | p50 | p99 | max | n |");
    println!("|---|---|---|---|---|");
    report("baseline: publish acknowledged", acks);
    report("publish → coordinator catalogue", to_coordinator);
    report("publish → another member's watch", to_member);
    if extra_watchers > 0 {
        report(
            &format!(
                "publish → the last of {extra_watchers} more watches on the coordinator ({} streams in all)",
                extra_watchers + members + 1
            ),
            to_every_watcher,
        );
    }
    report(
        &format!("search, coordinator ({total_offers} offers)"),
        search_coordinator,
    );
    report("search, a node's cached catalogue", search_node);
    println!(
        "\nthe {publishes} changes: the nodes and the load used {:.2} cores over {:.1} s, {:.0} µs of CPU per change and member (each member's cache applying it durably, the provider publishing it, the heartbeats and trickle of the time)",
        nodes_cpu.as_secs_f64() / changes_took.as_secs_f64(),
        changes_took.as_secs_f64(),
        nodes_cpu.as_secs_f64() * 1e6 / (publishes * members) as f64,
    );

    // 4. At rest.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, cpu_before) = coordinator.usage();
    let (_, nodes_rest_before) = nodes_usage(&member_children);
    let rest = Instant::now();
    tokio::time::sleep(Duration::from_secs(rest_seconds)).await;
    let (rss, cpu_after) = coordinator.usage();
    let cpu_share = (cpu_after - cpu_before).as_secs_f64() / rest.elapsed().as_secs_f64();
    let (nodes_rss, nodes_rest_after) = nodes_usage(&member_children);
    let nodes_rest_share =
        (nodes_rest_after - nodes_rest_before).as_secs_f64() / rest.elapsed().as_secs_f64();
    println!(
        "at rest the nodes and the load used {:.2} cores: the changes above cost them {:.0} µs of CPU per change and member beyond it",
        nodes_rest_share,
        (nodes_cpu.as_secs_f64() - nodes_rest_share * changes_took.as_secs_f64()).max(0.0) * 1e6
            / (publishes * members) as f64,
    );
    println!(
        "\nat rest ({rest_seconds} s, heartbeats and one usage record every {usage_ms} ms): coordinator {rss:.0} MiB resident ({:.0} KiB per member), CPU {:.2} % of a core ({:.1} ms/s per 100 members); the {members} nodes and the load ({} process{}) {nodes_rss:.0} MiB",
        rss * 1024.0 / members as f64,
        cpu_share * 100.0,
        cpu_share * 1000.0 * 100.0 / members as f64,
        member_processes,
        if member_processes == 1 { "" } else { "es" },
    );

    // 5. Killed, changed while down, started again.
    let killed_at = unix_now();
    coordinator.kill();
    let killed = Instant::now();
    let mut offer = first_offers[0].clone();
    offer.version = "during-outage".into();
    provider
        .clone()
        .publish_offer(pb::PublishOfferRequest {
            offer: Some(offer),
            etag,
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(down_seconds)).await;
    coordinator.restart();
    let restarted = Instant::now();
    let mut beats_back = None;
    let mut coordinator_back = None;
    let mut caches_back = None;
    let mut registrations: Vec<(f64, f64)> = Vec::new();
    let register =
        "fedmesh_rpc_requests_total{service=\"fedmesh.v1.RegistryService\",method=\"RegisterNode\"";
    let heartbeat =
        "fedmesh_rpc_requests_total{service=\"fedmesh.v1.RegistryService\",method=\"Heartbeat\"";
    let mut last_calls = 0.0;
    let mut last_at = 0.0;
    let mut cache_checked = Instant::now() - Duration::from_secs(10);
    while caches_back.is_none() || beats_back.is_none() || coordinator_back.is_none() {
        assert!(
            restarted.elapsed() < Duration::from_secs(300),
            "not back within 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let t = restarted.elapsed().as_secs_f64();
        if let (Some((r, _)), Some((h, _))) = (
            scrape(&metrics_url, register).await,
            scrape(&metrics_url, heartbeat).await,
        ) {
            let calls = r + h;
            if t > last_at {
                registrations.push((t, (calls - last_calls) / (t - last_at)));
            }
            last_calls = calls;
            last_at = t;
        }
        if beats_back.is_none() {
            let beats = heartbeats(&operator).await;
            let back = beats.values().filter(|&&b| b >= killed_at).count();
            if back == members {
                beats_back = Some(restarted.elapsed());
            }
        }
        if coordinator_back.is_none()
            && CatalogueServiceClient::new(operator.clone())
                .get_catalogue_offer(pb::GetCatalogueOfferRequest {
                    offer_id: first_offers[0].offer_id.clone(),
                })
                .await
                .ok()
                .and_then(|o| o.into_inner().offer)
                .and_then(|o| o.offer)
                .is_some_and(|o| o.version == "during-outage")
        {
            coordinator_back = Some(restarted.elapsed());
        }
        if caches_back.is_none() && cache_checked.elapsed() >= Duration::from_secs(1) {
            cache_checked = Instant::now();
            let offer_id = first_offers[0].offer_id.clone();
            let jobs: Vec<_> = admins
                .iter()
                .map(|admin| {
                    let (admin, offer_id) = (admin.clone(), offer_id.clone());
                    async move {
                        CatalogueServiceClient::new(admin)
                            .get_catalogue_offer(pb::GetCatalogueOfferRequest { offer_id })
                            .await
                            .ok()
                            .and_then(|o| o.into_inner().offer)
                            .and_then(|o| o.offer)
                            .is_some_and(|o| o.version == "during-outage")
                    }
                })
                .collect();
            if bounded(32, jobs).await.into_iter().all(|seen| seen) {
                caches_back = Some(restarted.elapsed());
            }
        }
    }
    trickle.abort();
    let peak = registrations
        .iter()
        .map(|(_, rate)| *rate)
        .fold(0.0, f64::max);
    let busy: Vec<&(f64, f64)> = registrations.iter().filter(|(_, r)| *r > 0.0).collect();
    println!(
        "\nkilled (SIGKILL) and started again after {down_seconds} s (down {:.1} s):",
        (restarted - killed).as_secs_f64()
    );
    println!(
        "- every node heartbeated to it again after {:.1} s",
        beats_back.unwrap().as_secs_f64()
    );
    println!(
        "- its catalogue held the change made while it was down (it follows the provider's journal again) after {:.1} s",
        coordinator_back.unwrap().as_secs_f64()
    );
    println!(
        "- every node's cached catalogue held the change made while it was down after {:.1} s",
        caches_back.unwrap().as_secs_f64()
    );
    println!(
        "- registrations and heartbeats it answered: at most {peak:.0} per second (in 250 ms windows), spread over {:.1} s to {:.1} s after the restart",
        busy.first().map_or(0.0, |(t, _)| *t),
        busy.last().map_or(0.0, |(t, _)| *t)
    );
    let histogram: Vec<String> = registrations
        .chunks(4)
        .map(|c| {
            format!(
                "{:.0}",
                c.iter().map(|(_, r)| r).sum::<f64>() / c.len() as f64
            )
        })
        .collect();
    println!("  per second: {}", histogram.join(" "));
    drop(coordinator);
    drop(member_children);
    if member_processes == 1 {
        running.shutdown().await.unwrap();
    }
}
