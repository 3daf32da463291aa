//! Operating a running federation with the `fedmesh` binary: the health probe of containers
//! and Kubernetes, and online backup then restore into a fresh node.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::common;
use crate::common::{assert_fails, assert_ok, fedmesh, run};
use fedmesh::federation::{FederationSpec, PartyManifest, RunningFederation};
use fedmesh_proto::pb;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `fedmesh ...` on a blocking thread, so that the in-process federation keeps serving.
async fn fedmesh_run(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || run(fedmesh().args(&args)))
        .await
        .unwrap()
}

fn connect(party: &PartyManifest, cert: &Path, key: &Path) -> Vec<String> {
    [
        "--endpoint",
        &party.endpoint,
        "--ca",
        arg(&party.ca),
        "--cert",
        arg(cert),
        "--key",
        arg(key),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_probe_asks_the_server_itself_over_mtls() {
    let dir = tempfile::tempdir().unwrap();
    let mut federation = RunningFederation::start(FederationSpec::new(dir.path(), 2))
        .await
        .unwrap();
    let manifest = federation.manifest.clone();
    let node_config = manifest.members[0].config.clone();
    // The test kit's configurations listen on port 0: the probe is told the port taken, as a
    // real configuration names it.
    let node_addr = federation.member_addr(0).unwrap();
    let node_listen = format!("listen={node_addr}");
    let coordinator_listen = format!("listen={}", federation.coordinator_addr());
    let health = |config: &Path, extra: &[&str]| {
        let mut args = vec![
            "health".to_owned(),
            "--config".to_owned(),
            arg(config).to_owned(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        fedmesh_run(args)
    };

    let out = assert_ok(&health(&node_config, &["--set", &node_listen]).await);
    assert_eq!(out.trim(), format!("SERVING (node at {node_addr})"));
    let out = assert_ok(
        &health(
            &manifest.coordinator.config,
            &["--set", &coordinator_listen],
        )
        .await,
    );
    assert!(
        out.starts_with("SERVING (coordinator at 127.0.0.1:"),
        "{out}"
    );

    // A process answering on the port must be the identity of the configuration's certificate:
    // probing unistra's port with rennes2's certificate fails.
    let other = &manifest.members[1];
    let cert = format!("tls.cert={}", arg(&other.node_cert));
    let key = format!("tls.key={}", arg(&other.node_key));
    let set = ["--set", &node_listen, "--set", &cert, "--set", &key];
    let err = assert_fails(&health(&node_config, &set).await);
    assert!(
        err.contains("the server is spiffe://demo.fedmesh/member/unistra/node, not"),
        "{err}"
    );

    // Not a configuration of either kind: both reasons are given.
    let junk = dir.path().join("junk.toml");
    std::fs::write(&junk, "colour = \"blue\"\n").unwrap();
    let err = assert_fails(&health(&junk, &[]).await);
    assert!(
        err.contains("neither a node's configuration") && err.contains("colour"),
        "{err}"
    );

    // Stopped: the probe fails, quickly, and says where it asked.
    federation.stop_member(0).await.unwrap();
    let started = std::time::Instant::now();
    let err = assert_fails(&health(&node_config, &["--set", &node_listen]).await);
    assert!(err.contains(&node_addr.to_string()), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    federation.shutdown().await.unwrap();
}

/// Last month and this one, where the demo's usage lies.
fn months() -> [pb::YearMonth; 2] {
    let (year, month, _) =
        fedmesh_core::calendar::civil_from_days(fedmesh_grpc::figures::now() / 86_400);
    let month = month as i32;
    let previous = if month == 1 {
        pb::YearMonth {
            year: year - 1,
            month: 12,
        }
    } else {
        pb::YearMonth {
            year,
            month: month - 1,
        }
    };
    [previous, pb::YearMonth { year, month }]
}

/// The requests rennes2's node counts for its collaboration offer, last month and this one.
async fn node_requests(rennes2: &PartyManifest) -> i64 {
    let mut client = pb::usage_service_client::UsageServiceClient::new(common::channel(
        &rennes2.endpoint,
        &rennes2.ca,
        &rennes2.admin_cert,
        &rennes2.admin_key,
    ));
    let mut total = 0.0;
    for month in months() {
        let usage = client
            .get_usage(pb::GetUsageRequest {
                offer_id: "rennes2.collab".into(),
                month: Some(month),
                metrics: vec!["requests".into()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        total += usage.aggregates.iter().map(|a| a.sum_value).sum::<f64>();
    }
    total as i64
}

/// The requests the coordinator counts for rennes2's collaboration offer, last month and this
/// one.
async fn coordinator_requests(coordinator: &PartyManifest) -> i64 {
    let channel = common::channel(
        &coordinator.endpoint,
        &coordinator.ca,
        &coordinator.admin_cert,
        &coordinator.admin_key,
    );
    let [previous, _] = months();
    pb::metrics_service_client::MetricsServiceClient::new(channel)
        .get_offer_metrics(pb::GetOfferMetricsRequest {
            offer_id: "rennes2.collab".into(),
            from_month: Some(previous),
            to_month: None,
        })
        .await
        .map_or(-1, |m| {
            m.into_inner().months.iter().map(|m| m.request_count).sum()
        })
}

/// A client of rennes2's node as its metering agent (the demo's `meter`).
fn rennes2_agent(
    federation: &RunningFederation,
    rennes2: &PartyManifest,
) -> pb::usage_service_client::UsageServiceClient<fedmesh_grpc::GrpcChannel> {
    let agent = fedmesh_core::Identity {
        federation: federation.pki.federation().clone(),
        principal: fedmesh_core::identity::Principal::Agent {
            member: "rennes2".parse().unwrap(),
            name: "meter".to_owned(),
        },
    };
    let stem = fedmesh_tls::pki::file_stem(&agent);
    pb::usage_service_client::UsageServiceClient::new(common::channel(
        &rennes2.endpoint,
        &rennes2.ca,
        &federation.pki.dir().join(format!("{stem}.pem")),
        &federation.pki.dir().join(format!("{stem}.key")),
    ))
}

/// A count of requests of `tenancy` yesterday.
fn requests(id: String, tenancy: &pb::Subscription, value: f64) -> pb::UsageRecord {
    let yesterday = fedmesh_grpc::figures::now() / 86_400 - 1;
    pb::UsageRecord {
        record_id: id,
        offer_id: tenancy.offer_id.clone(),
        subscription_id: tenancy.subscription_id.clone(),
        tenant_id: tenancy.tenant_id.clone(),
        metric: "requests".into(),
        value,
        period: Some(pb::Period {
            start_time: Some(prost_types::Timestamp {
                seconds: yesterday * 86_400,
                nanos: 0,
            }),
            end_time: Some(prost_types::Timestamp {
                seconds: (yesterday + 1) * 86_400,
                nanos: 0,
            }),
        }),
        ..Default::default()
    }
}

/// Waits until the coordinator counts `expected` requests for rennes2's offer.
async fn wait_coordinator_requests(coordinator: &PartyManifest, expected: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let counted = coordinator_requests(coordinator).await;
        if counted == expected {
            // Still so a moment later: not a count passing by on its way elsewhere.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            assert_eq!(coordinator_requests(coordinator).await, expected);
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the coordinator counts {counted} requests, not {expected}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// What a member's node shows of its state, through its API.
async fn state(
    party: &PartyManifest,
) -> (
    Vec<pb::Offer>,
    Vec<pb::Subscription>,
    Vec<pb::Incident>,
    u64,
) {
    let channel = common::channel(
        &party.endpoint,
        &party.ca,
        &party.admin_cert,
        &party.admin_key,
    );
    let offers = pb::offer_service_client::OfferServiceClient::new(channel.clone())
        .list_offers(pb::ListOffersRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .offers;
    let subscriptions =
        pb::subscription_service_client::SubscriptionServiceClient::new(channel.clone())
            .list_subscriptions(pb::ListSubscriptionsRequest {
                page_size: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .subscriptions;
    let incidents = pb::incident_service_client::IncidentServiceClient::new(channel.clone())
        .list_incidents(pb::ListIncidentsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .incidents
        .into_iter()
        .map(without_live_clocks)
        .collect();
    let journal = pb::journal_service_client::JournalServiceClient::new(channel)
        .get_journal_info(pb::GetJournalInfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    (offers, subscriptions, incidents, journal.last_revision)
}

/// An incident without what its SLA clocks compute at the time of the read (elapsed,
/// remaining, state): two reads seconds apart of the same stored incident differ there.
fn without_live_clocks(mut incident: pb::Incident) -> pb::Incident {
    for clock in &mut incident.sla_clocks {
        clock.elapsed = None;
        clock.remaining = None;
        clock.state = 0;
    }
    incident
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_online_restores_into_a_fresh_node_with_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = FederationSpec::new(dir.path(), 3);
    // Messages of at most 128 KiB (enough for the demo's largest journal entry): the backup
    // streams in several chunks.
    const LIMIT: u64 = 128 * 1024;
    spec.node_settings
        .push(format!("limits.max_encoding_message_bytes={LIMIT}"));
    let mut federation = RunningFederation::start(spec).await.unwrap();
    federation.seed_example_offers().await.unwrap();
    federation.seed_example_usage().await.unwrap();
    federation.seed_example_incidents().await.unwrap();
    let manifest = federation.manifest.clone();
    // rennes2 provides the collaboration offer: offers, tenancies and incidents live there.
    let rennes2 = manifest.members[1].clone();
    let mut agent = rennes2_agent(&federation, &rennes2);
    let tenancy = state(&rennes2)
        .await
        .1
        .into_iter()
        .find(|s| s.offer_id == "rennes2.collab")
        .unwrap();
    // More usage, so that the database outgrows two messages.
    for batch in 0..4 {
        let records = (0..500)
            .map(|i| requests(format!("extra-{batch}-{i}"), &tenancy, 1.0))
            .collect();
        agent
            .report_usage(pb::ReportUsageRequest { records })
            .await
            .unwrap();
    }
    let before = state(&rennes2).await;
    assert!(
        !before.0.is_empty() && before.1.len() >= 2 && !before.2.is_empty() && before.3 >= 5,
        "offers, tenancies, incidents, revision: {before:?}"
    );

    let file = dir.path().join("rennes2.fmbak");
    let mut args = vec!["admin".to_owned(), "backup".to_owned()];
    args.extend(connect(&rennes2, &rennes2.admin_cert, &rennes2.admin_key));
    args.extend(["--out".to_owned(), arg(&file).to_owned()]);
    let out = assert_ok(&fedmesh_run(args.clone()).await);
    assert!(
        out.contains("backup written to") && out.contains("entries"),
        "{out}"
    );
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(
        size > 2 * LIMIT,
        "{size} bytes: the stream had several chunks"
    );
    let out =
        assert_ok(&fedmesh_run(vec!["admin".into(), "inspect".into(), arg(&file).into()]).await);
    assert!(
        out.contains(&format!("schema version {}", fedmesh_store::SCHEMA_VERSION)),
        "{out}"
    );
    // Contacts and incident texts: readable by the operator alone.
    assert_eq!(mode(&file), 0o600);
    // An existing file is not overwritten unless asked.
    let err = assert_fails(&fedmesh_run(args.clone()).await);
    assert!(err.contains("exists"), "{err}");
    // Overwritten on demand, an older world-readable file and a stale `.partial` left by an
    // interrupted run end up 0600 too.
    let partial = dir.path().join("rennes2.fmbak.partial");
    std::fs::write(&partial, b"stale").unwrap();
    for stale in [&file, &partial] {
        std::fs::set_permissions(stale, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut forced = args.clone();
    forced.push("--force".to_owned());
    assert_ok(&fedmesh_run(forced).await);
    assert_eq!(mode(&file), 0o600);
    assert!(!partial.exists(), "the partial file was renamed");
    // A whole backup again (not the same bytes: the node notes when its followers last read
    // its journal, and they read it meanwhile).
    let out =
        assert_ok(&fedmesh_run(vec!["admin".into(), "inspect".into(), arg(&file).into()]).await);
    assert!(out.contains("schema version"), "{out}");
    assert!(std::fs::metadata(&file).unwrap().len() > 2 * LIMIT);

    // Usage reported after the backup reaches the coordinator; the restore will lose it.
    let counted_at_backup = node_requests(&rennes2).await;
    assert!(counted_at_backup > 0, "{counted_at_backup}");
    wait_coordinator_requests(&manifest.coordinator, counted_at_backup).await;
    let report = agent
        .report_usage(pb::ReportUsageRequest {
            records: vec![requests("after-the-backup".into(), &tenancy, 12_345.0)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.accepted_count, 1, "{report:?}");
    assert_eq!(node_requests(&rennes2).await, counted_at_backup + 12_345);
    wait_coordinator_requests(&manifest.coordinator, counted_at_backup + 12_345).await;

    // Another member's admin may not take it; nor may a member's admin back up the
    // coordinator.
    let unistra = &manifest.members[0];
    let mut foreign = vec!["admin".to_owned(), "backup".to_owned()];
    foreign.extend(connect(&rennes2, &unistra.admin_cert, &unistra.admin_key));
    foreign.extend([
        "--out".to_owned(),
        arg(&dir.path().join("stolen")).to_owned(),
    ]);
    let err = assert_fails(&fedmesh_run(foreign).await);
    assert!(err.contains("PermissionDenied"), "{err}");
    assert!(!dir.path().join("stolen").exists());
    let coordinator = &manifest.coordinator;
    let mut as_admin = vec!["admin".to_owned(), "backup".to_owned()];
    as_admin.extend(connect(
        coordinator,
        &unistra.admin_cert,
        &unistra.admin_key,
    ));
    as_admin.extend(["--out".to_owned(), arg(&dir.path().join("c1")).to_owned()]);
    let err = assert_fails(&fedmesh_run(as_admin).await);
    assert!(err.contains("only the coordinator's own identity"), "{err}");
    let mut as_itself = vec!["admin".to_owned(), "backup".to_owned()];
    as_itself.extend(connect(
        coordinator,
        &coordinator.node_cert,
        &coordinator.node_key,
    ));
    as_itself.extend(["--out".to_owned(), arg(&dir.path().join("c2")).to_owned()]);
    assert_ok(&fedmesh_run(as_itself).await);

    // The node goes; its data directory is moved aside; the backup is restored into a new
    // one, and the node starts on it.
    federation.stop_member(1).await.unwrap();
    let data: PathBuf = rennes2.config.parent().unwrap().join("data");
    std::fs::rename(&data, data.with_file_name("data.lost")).unwrap();
    let restore = |target: &Path| {
        vec![
            "admin".to_owned(),
            "restore".to_owned(),
            "--from".to_owned(),
            arg(&file).to_owned(),
            "--data-dir".to_owned(),
            arg(target).to_owned(),
        ]
    };
    let out = assert_ok(&fedmesh_run(restore(&data)).await);
    assert!(out.contains("restored"), "{out}");
    assert_eq!(mode(&data), 0o700, "the restored data directory");
    // Not over a database.
    let err = assert_fails(&fedmesh_run(restore(&data)).await);
    assert!(err.contains("is not empty"), "{err}");
    federation.restart_member(1).await.unwrap();
    let after = state(&rennes2).await;
    assert_eq!(after.0, before.0, "offers");
    assert_eq!(after.1, before.1, "tenancies");
    assert_eq!(after.2, before.2, "incidents");
    assert_eq!(after.3, before.3, "journal revision");
    // The coordinator sees the node's journal start over and counts again from it: the
    // records reported after the backup are gone there too.
    assert_eq!(node_requests(&rennes2).await, counted_at_backup);
    wait_coordinator_requests(&manifest.coordinator, counted_at_backup).await;
    federation.shutdown().await.unwrap();
}

/// Kills the processes it holds when the test ends, passed or not.
struct Processes(Vec<std::process::Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The compose federation rehearsed without a container engine: `pki-init.sh` makes the PKI
/// (twice: the second run keeps it), then the coordinator and three members start from
/// `deploy/compose/*.toml` with the environment `compose.yaml` gives them. Only what names a
/// container (host names, `/etc/fedmesh`, `/var/lib/fedmesh`) is pointed at this machine.
/// Every party answers its health probe, and every member registers with the coordinator
/// over mutual TLS with the script's certificates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_federation_starts_from_its_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let compose = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/compose");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_fedmesh"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let init = || {
        let output = std::process::Command::new("sh")
            .arg(compose.join("pki-init.sh"))
            .env("PKI", &pki)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pki-init.sh: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let out = init();
    assert!(out.contains("PKI ready for esup.example"), "{out}");
    let cert = pki.join("unistra/unistra-node.pem");
    let issued = std::fs::read(&cert).unwrap();
    init();
    assert_eq!(
        std::fs::read(&cert).unwrap(),
        issued,
        "a second run re-issued"
    );
    // Each party's directory holds its certificate and key only; the CA key stays in ca/.
    for party in ["coordinator", "unistra", "rennes2", "ulille"] {
        let mut files: Vec<String> = std::fs::read_dir(pki.join(party))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let stem = if party == "coordinator" {
            party.to_owned()
        } else {
            format!("{party}-node")
        };
        assert_eq!(files, [format!("{stem}.key"), format!("{stem}.pem")]);
    }

    let coordinator_port = common::free_port();
    let mut processes = Processes(Vec::new());
    let start = |role: &str, config: &str, env: Vec<(String, String)>, set: Vec<String>| {
        let mut command = fedmesh();
        command
            .args([role, "--config", arg(&compose.join(config))])
            .envs(env)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for s in set {
            command.args(["--set", &s]);
        }
        command.spawn().unwrap()
    };
    let public = pki.join("public");
    let coordinator_settings = vec![
        format!("listen=127.0.0.1:{coordinator_port}"),
        format!("data_dir={}", arg(&dir.path().join("coordinator-data"))),
        format!("tls.ca={}", arg(&public.join("ca.pem"))),
        format!("tls.crl={}", arg(&public.join("crl.pem"))),
        format!("tls.cert={}", arg(&pki.join("coordinator/coordinator.pem"))),
        format!("tls.key={}", arg(&pki.join("coordinator/coordinator.key"))),
        format!("metrics.listen=127.0.0.1:{}", common::free_port()),
        format!("dashboard.listen=127.0.0.1:{}", common::free_port()),
    ];
    processes.0.push(start(
        "coordinator",
        "coordinator.toml",
        Vec::new(),
        coordinator_settings.clone(),
    ));
    let mut members = Vec::new();
    for member in ["unistra", "rennes2", "ulille"] {
        let port = common::free_port();
        // As compose.yaml sets them, with the container's paths moved here.
        let env = vec![
            ("FEDMESH_NODE_MEMBER_ID".to_owned(), member.to_owned()),
            (
                "FEDMESH_NODE_ADVERTISE".to_owned(),
                format!("https://localhost:{port}"),
            ),
            (
                "FEDMESH_NODE_TLS__CERT".to_owned(),
                arg(&pki.join(member).join(format!("{member}-node.pem"))).to_owned(),
            ),
            (
                "FEDMESH_NODE_TLS__KEY".to_owned(),
                arg(&pki.join(member).join(format!("{member}-node.key"))).to_owned(),
            ),
        ];
        let settings = vec![
            format!("listen=127.0.0.1:{port}"),
            format!("data_dir={}", arg(&dir.path().join(member))),
            format!("tls.ca={}", arg(&public.join("ca.pem"))),
            format!("tls.crl={}", arg(&public.join("crl.pem"))),
            format!("coordinator.endpoint=https://localhost:{coordinator_port}"),
            format!("metrics.listen=127.0.0.1:{}", common::free_port()),
        ];
        processes
            .0
            .push(start("node", "node.toml", env.clone(), settings.clone()));
        members.push((member, env, settings));
    }

    // Every party's probe, as the compose health checks run it.
    let probe = |config: &str, env: Vec<(String, String)>, set: Vec<String>| {
        let mut args = vec![
            "health".to_owned(),
            "--config".to_owned(),
            arg(&compose.join(config)).to_owned(),
        ];
        for s in set {
            args.extend(["--set".to_owned(), s]);
        }
        tokio::task::spawn_blocking(move || run(fedmesh().args(&args).envs(env)))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let healthy = |output: &std::process::Output| output.status.success();
    loop {
        let mut all = healthy(
            &probe("coordinator.toml", Vec::new(), coordinator_settings.clone())
                .await
                .unwrap(),
        );
        for (_, env, settings) in &members {
            all &= healthy(
                &probe("node.toml", env.clone(), settings.clone())
                    .await
                    .unwrap(),
            );
        }
        if all {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the compose federation never became healthy"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // The members registered with the coordinator, over mTLS with the script's certificates.
    let registry = pb::registry_service_client::RegistryServiceClient::new(common::channel(
        &format!("https://localhost:{coordinator_port}"),
        &public.join("ca.pem"),
        &pki.join("unistra-admin/unistra-admin-ops.pem"),
        &pki.join("unistra-admin/unistra-admin-ops.key"),
    ));
    loop {
        let nodes = registry
            .clone()
            .list_nodes(pb::ListNodesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .nodes;
        let mut ids: Vec<_> = nodes.iter().map(|n| n.member_id.clone()).collect();
        ids.sort();
        if ids == ["rennes2", "ulille", "unistra"] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "registered: {ids:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A node removes the idempotency records older than `idempotency.retention_days` (at start,
/// then every `sweep_interval_ms`) and keeps the younger ones, on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_records_older_than_the_retention_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = FederationSpec::new(dir.path(), 1);
    spec.node_settings
        .push("idempotency.retention_days=30".to_owned());
    let mut federation = RunningFederation::start(spec).await.unwrap();
    let member = federation.manifest.members[0].clone();
    federation.stop_member(0).await.unwrap();
    let data = member.config.parent().unwrap().join("data");
    let day = 86_400;
    let now = fedmesh_grpc::figures::now();
    {
        let store = fedmesh_store::Store::open(&data).unwrap();
        store
            .set_request_record_dated(b"thirty-one-days", "unistra.a", now - 31 * day)
            .unwrap();
        store
            .set_request_record_dated(b"twenty-nine-days", "unistra.b", now - 29 * day)
            .unwrap();
        store.flush().await.unwrap();
    }
    // The first sweep runs when the node starts; stopping waits for it.
    federation.restart_member(0).await.unwrap();
    federation.stop_member(0).await.unwrap();
    {
        let store = fedmesh_store::Store::open(&data).unwrap();
        assert_eq!(store.request_record(b"thirty-one-days").unwrap(), None);
        assert_eq!(
            store
                .request_record(b"twenty-nine-days")
                .unwrap()
                .as_deref(),
            Some("unistra.b")
        );
    }
    federation.restart_member(0).await.unwrap();
    federation.shutdown().await.unwrap();
}
