//! Crash runs with real processes: a coordinator, a provider node (rennes2) and a subscriber
//! node (unistra) run as separate `fedmesh` processes under a sustained workload — rennes2's
//! agent reports usage, unistra's desk opens incidents through its own node — while a seeded
//! schedule kills one of the three with `SIGKILL` at least 20 times and starts it again.
//! Afterwards every acknowledged write is there exactly once: the provider's and the
//! coordinator's usage totals equal the records acknowledged, and each acknowledged incident
//! request made exactly one incident at the provider.
//!
//! The schedule (victims and delays) comes from `FEDMESH_CRASH_SEED` when set, else from the
//! clock; the seed is printed so that a failing run can be replayed.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{channel, fedmesh, free_port, signal, start_demo, wait_exit};
use fedmesh_proto::pb;

const OFFER: &str = "rennes2.collab";
const KILLS: usize = 20;

/// SplitMix64: the kill schedule from one seed.
struct Schedule(u64);

impl Schedule {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// One party: how to start it, and its process.
struct Party {
    name: &'static str,
    command: Box<dyn Fn() -> Command + Send>,
    child: Child,
    /// What its current process prints on stderr.
    log: tempfile::NamedTempFile,
    port: u16,
}

impl Party {
    fn start(name: &'static str, port: u16, command: Box<dyn Fn() -> Command + Send>) -> Self {
        let (child, log) = spawn(&command);
        let mut party = Self {
            name,
            command,
            child,
            log,
            port,
        };
        party.wait_listening();
        party
    }

    /// Waits until it listens: its log says so and its port answers (another socket that
    /// happens to listen on the port would answer too). A process that exits first because its
    /// port was held a moment by another socket while it was down is started again, as its
    /// supervisor would; any other exit fails the test with what the process printed.
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "{} never listened", self.name);
            let printed = std::fs::read_to_string(self.log.path()).unwrap();
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    printed.contains("cannot listen on"),
                    "{} exited before listening ({status}): {printed}",
                    self.name
                );
                (self.child, self.log) = spawn(&self.command);
            } else if printed.contains(" listening")
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `kill -9`, then start again on the same port and data.
    fn crash_and_restart(&mut self, down_for: Duration) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(down_for);
        (self.child, self.log) = spawn(&self.command);
        self.wait_listening();
    }
}

/// Starts a party's process, what it prints on stderr kept in a temporary file.
fn spawn(command: &dyn Fn() -> Command) -> (Child, tempfile::NamedTempFile) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = command()
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    (child, log)
}

impl Drop for Party {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn june() -> pb::YearMonth {
    pb::YearMonth {
        year: 2026,
        month: 6,
    }
}

#[test]
fn every_acknowledged_write_survives_twenty_kill_9s_exactly_once() {
    let seed = std::env::var("FEDMESH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash schedule seed: FEDMESH_CRASH_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // A demo writes the PKI and configurations, seeds rennes2's offer and unistra's tenancy.
    let (mut demo, manifest) = start_demo(dir.path(), 2);
    let (unistra, rennes2) = (manifest.members[0].clone(), manifest.members[1].clone());
    {
        let _guard = rt.enter();
        let admin = channel(
            &rennes2.endpoint,
            &manifest.ca,
            &rennes2.admin_cert,
            &rennes2.admin_key,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seeded = rt.block_on(async {
                pb::subscription_service_client::SubscriptionServiceClient::new(admin.clone())
                    .list_subscriptions(pb::ListSubscriptionsRequest {
                        offer_id: OFFER.into(),
                        ..Default::default()
                    })
                    .await
                    .ok()
                    .filter(|r| !r.get_ref().subscriptions.is_empty())
            });
            if seeded.is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the demo never seeded its tenancy"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    signal(&demo, "INT");
    assert!(wait_exit(&mut demo, Duration::from_secs(30)).success());

    // The three parties as separate processes on fixed ports.
    let ports = (free_port(), free_port(), free_port());
    let coordinator_endpoint = format!("https://localhost:{}", ports.0);
    let coordinator_config = manifest.coordinator.config.clone();
    let coordinator_port = ports.0;
    let coordinator = Party::start(
        "coordinator",
        ports.0,
        Box::new(move || {
            let mut command = fedmesh();
            command
                .args(["coordinator", "--config"])
                .arg(&coordinator_config)
                .args(["--set", &format!("listen=127.0.0.1:{coordinator_port}")])
                .args(["--set", "registry.heartbeat_interval_ms=200"])
                .args(["--set", "registry.stale_after_ms=2000"])
                .args(["--set", "replication.retry_initial_ms=50"])
                .args(["--set", "replication.retry_max_ms=500"])
                .args(["--set", "metrics.enabled=false"])
                .args(["--set", "dashboard.enabled=false"]);
            command
        }),
    );
    let node = |config: std::path::PathBuf, port: u16, coordinator: String| {
        Box::new(move || {
            let mut command = fedmesh();
            command
                .args(["node", "--config"])
                .arg(&config)
                .args(["--set", &format!("listen=127.0.0.1:{port}")])
                .args(["--set", &format!("coordinator.endpoint={coordinator}")])
                .args(["--set", "coordinator.retry_initial_ms=50"])
                .args(["--set", "coordinator.retry_max_ms=500"])
                .args(["--set", "metrics.enabled=false"]);
            command
        }) as Box<dyn Fn() -> Command + Send>
    };
    let provider = Party::start(
        "provider",
        ports.1,
        node(
            rennes2.config.clone(),
            ports.1,
            coordinator_endpoint.clone(),
        ),
    );
    let subscriber = Party::start(
        "subscriber",
        ports.2,
        node(
            unistra.config.clone(),
            ports.2,
            coordinator_endpoint.clone(),
        ),
    );
    let provider_endpoint = format!("https://localhost:{}", ports.1);
    let subscriber_endpoint = format!("https://localhost:{}", ports.2);
    let pki = dir.path().join("pki");

    let _guard = rt.enter();
    let agent = channel(
        &provider_endpoint,
        &manifest.ca,
        &pki.join("rennes2-agent-meter.pem"),
        &pki.join("rennes2-agent-meter.key"),
    );
    let provider_admin = channel(
        &provider_endpoint,
        &manifest.ca,
        &rennes2.admin_cert,
        &rennes2.admin_key,
    );
    let desk = channel(
        &subscriber_endpoint,
        &manifest.ca,
        &unistra.admin_cert,
        &unistra.admin_key,
    );
    let coordinator_reader = channel(
        &coordinator_endpoint,
        &manifest.ca,
        &rennes2.admin_cert,
        &rennes2.admin_key,
    );
    let tenancy = rt.block_on(async {
        pb::subscription_service_client::SubscriptionServiceClient::new(provider_admin.clone())
            .list_subscriptions(pb::ListSubscriptionsRequest {
                offer_id: OFFER.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .subscriptions
            .remove(0)
    });

    // The workload: what was acknowledged, by id.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged_records = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let acknowledged_incidents = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let usage = {
        let (stop, acked, agent, tenancy) = (
            stop.clone(),
            acknowledged_records.clone(),
            agent.clone(),
            tenancy.clone(),
        );
        rt.spawn(async move {
            let mut client = pb::usage_service_client::UsageServiceClient::new(agent);
            let mut batch = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let ids: Vec<String> = (0..10).map(|i| format!("crash-{batch}-{i}")).collect();
                let records = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| pb::UsageRecord {
                        record_id: id.clone(),
                        offer_id: OFFER.into(),
                        subscription_id: tenancy.subscription_id.clone(),
                        metric: "requests".into(),
                        value: 1.0,
                        period: Some(pb::Period {
                            // June 2026, one minute per record.
                            start_time: Some(prost_types::Timestamp {
                                seconds: 1_780_272_000 + (batch * 10 + i as u64) as i64 * 60,
                                nanos: 0,
                            }),
                            end_time: Some(prost_types::Timestamp {
                                seconds: 1_780_272_060 + (batch * 10 + i as u64) as i64 * 60,
                                nanos: 0,
                            }),
                        }),
                        ..Default::default()
                    })
                    .collect::<Vec<_>>();
                // An agent retries a batch until it is acknowledged (ids make retries safe).
                loop {
                    match client
                        .report_usage(pb::ReportUsageRequest {
                            records: records.clone(),
                        })
                        .await
                    {
                        Ok(response) => {
                            let response = response.into_inner();
                            assert!(response.rejections.is_empty(), "{response:?}");
                            acked.lock().unwrap().extend(ids.iter().cloned());
                            break;
                        }
                        Err(_) if stop.load(Ordering::SeqCst) => return,
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                batch += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let incidents = {
        let (stop, acked, desk) = (stop.clone(), acknowledged_incidents.clone(), desk.clone());
        rt.spawn(async move {
            let mut client = pb::incident_service_client::IncidentServiceClient::new(desk);
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let request_id = format!("crash-incident-{n}");
                loop {
                    let answer = client
                        .open_incident(pb::OpenIncidentRequest {
                            request_id: request_id.clone(),
                            offer_id: OFFER.into(),
                            priority: pb::Priority::P4 as i32,
                            summary: format!("crash run {n}"),
                            description: "opened during a crash run".into(),
                            ..Default::default()
                        })
                        .await;
                    match answer {
                        // Acknowledged: made at the provider, or queued durably.
                        Ok(_) => {
                            acked.lock().unwrap().insert(request_id.clone());
                            break;
                        }
                        Err(_) if stop.load(Ordering::SeqCst) => return,
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    // The schedule: at least KILLS kills of a random party at random moments.
    let mut schedule = Schedule(seed);
    let mut parties = [coordinator, provider, subscriber];
    let mut killed: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(150 + schedule.below(450)));
        let victim = &mut parties[schedule.below(3) as usize];
        *killed.entry(victim.name).or_default() += 1;
        victim.crash_and_restart(Duration::from_millis(schedule.below(300)));
    }
    // A last stretch without faults, then the workload stops.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    rt.block_on(async {
        let _ = usage.await;
        let _ = incidents.await;
    });
    eprintln!("kills: {killed:?}");
    assert_eq!(killed.values().sum::<usize>(), KILLS);
    let records = acknowledged_records.lock().unwrap().clone();
    let incident_requests = acknowledged_incidents.lock().unwrap().clone();
    assert!(records.len() >= 200, "the workload ran: {}", records.len());
    assert!(!incident_requests.is_empty());
    let expected = records.len() as i64;
    eprintln!(
        "acknowledged: {} usage records, {} incident requests",
        records.len(),
        incident_requests.len()
    );

    // Convergence: the provider's and the coordinator's June totals, and the incidents.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (at_provider, at_coordinator, incident_counts) = loop {
        let (at_provider, at_coordinator, incident_counts) = rt.block_on(async {
            let provider_total =
                pb::usage_service_client::UsageServiceClient::new(provider_admin.clone())
                    .get_usage(pb::GetUsageRequest {
                        offer_id: OFFER.into(),
                        month: Some(june()),
                        metrics: vec!["requests".into()],
                        ..Default::default()
                    })
                    .await
                    .map(|r| {
                        r.into_inner()
                            .aggregates
                            .iter()
                            .map(|a| a.record_count)
                            .sum::<i64>()
                    })
                    .unwrap_or(-1);
            let coordinator_total =
                pb::metrics_service_client::MetricsServiceClient::new(coordinator_reader.clone())
                    .get_offer_metrics(pb::GetOfferMetricsRequest {
                        offer_id: OFFER.into(),
                        from_month: Some(june()),
                        to_month: Some(june()),
                    })
                    .await
                    .ok()
                    .and_then(|r| r.into_inner().months.into_iter().next())
                    .map_or(-1, |m| m.request_count);
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            let mut page_token = String::new();
            loop {
                let Ok(page) =
                    pb::incident_service_client::IncidentServiceClient::new(provider_admin.clone())
                        .list_incidents(pb::ListIncidentsRequest {
                            page_size: 500,
                            page_token: page_token.clone(),
                            ..Default::default()
                        })
                        .await
                else {
                    break;
                };
                let page = page.into_inner();
                for incident in page.incidents {
                    if incident.request_id.starts_with("crash-incident-") {
                        *counts.entry(incident.request_id).or_default() += 1;
                    }
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            (provider_total, coordinator_total, counts)
        });
        let incidents_done = incident_requests
            .iter()
            .all(|id| incident_counts.contains_key(id));
        let converged = at_provider == expected && at_coordinator == expected && incidents_done;
        if converged || Instant::now() > deadline {
            break (at_provider, at_coordinator, incident_counts);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        at_provider, expected,
        "the provider's stored records (seed {seed})"
    );
    assert_eq!(
        at_coordinator, expected,
        "the coordinator's replicated total (seed {seed})"
    );
    for id in &incident_requests {
        assert_eq!(
            incident_counts.get(id),
            Some(&1),
            "incident request {id} at the provider (seed {seed})"
        );
    }
    assert!(
        incident_counts.values().all(|n| *n == 1),
        "an incident request made two incidents: {incident_counts:?} (seed {seed})"
    );
}
