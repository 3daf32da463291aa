//! Usage reporting with real processes: an agent sends a CSV file through `fedmesh usage
//! report` while the coordinator is killed (`SIGKILL`) and restarted twice; afterwards the
//! coordinator's totals equal exactly what the file holds, and sending the file again stores
//! nothing new.

use std::io::Write as _;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::{
    assert_ok, channel, eventually, fedmesh, free_port, run, signal, start_demo, wait_exit,
};
use fedmesh::federation::Manifest;
use fedmesh_proto::pb;

const RECORDS: usize = 6000;
const OFFER: &str = "rennes2.collab";

fn spawn_coordinator(manifest: &Manifest, port: u16) -> Child {
    fedmesh()
        .args(["coordinator", "--config"])
        .arg(&manifest.coordinator.config)
        .args([
            "--set",
            &format!("listen=127.0.0.1:{port}"),
            "--set",
            "registry.heartbeat_interval_ms=200",
            "--set",
            "registry.stale_after_ms=5000",
            "--set",
            "replication.retry_initial_ms=50",
            "--set",
            "replication.retry_max_ms=500",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn coordinator_totals_are_exact_after_kill_9_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Channels are created lazily on this runtime.
    let _runtime = rt.enter();

    // A demo writes the PKI, the configurations and seeds rennes2's collaboration offer.
    let (mut demo, manifest) = start_demo(dir.path(), 2);
    let rennes2 = manifest.members[1].clone();
    let admin = channel(
        &rennes2.endpoint,
        &manifest.ca,
        &rennes2.admin_cert,
        &rennes2.admin_key,
    );
    eventually(
        &rt,
        "the seeded offer",
        Duration::from_secs(30),
        async || {
            pb::offer_service_client::OfferServiceClient::new(admin.clone())
                .get_offer(pb::GetOfferRequest {
                    offer_id: OFFER.into(),
                })
                .await
                .ok()
        },
    );
    signal(&demo, "INT");
    assert!(wait_exit(&mut demo, Duration::from_secs(30)).success());

    // The coordinator and rennes2's node as separate processes, on fixed ports.
    let (coordinator_port, node_port) = (free_port(), free_port());
    let mut coordinator = spawn_coordinator(&manifest, coordinator_port);
    let mut node = fedmesh()
        .args(["node", "--config"])
        .arg(&rennes2.config)
        .args([
            "--set",
            &format!("listen=127.0.0.1:{node_port}"),
            "--set",
            &format!("coordinator.endpoint=https://localhost:{coordinator_port}"),
            "--set",
            "coordinator.retry_initial_ms=50",
            "--set",
            "coordinator.retry_max_ms=500",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let node_endpoint = format!("https://localhost:{node_port}");
    let coordinator_endpoint = format!("https://localhost:{coordinator_port}");

    // The demo made unistra a tenant (automatic approval); its node reads its tenancy.
    let unistra = &manifest.members[0];
    let as_unistra = channel(
        &node_endpoint,
        &manifest.ca,
        &unistra.node_cert,
        &unistra.node_key,
    );
    let tenancy = eventually(&rt, "the tenancy", Duration::from_secs(30), async || {
        pb::subscription_service_client::SubscriptionServiceClient::new(as_unistra.clone())
            .list_subscriptions(pb::ListSubscriptionsRequest {
                offer_id: OFFER.into(),
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner()
            .subscriptions
            .pop()
    });
    assert_eq!(tenancy.state(), pb::SubscriptionState::Active);

    // The file: RECORDS request counts in September 2026 (a month the demo seeds nothing in).
    let pki = dir.path().join("pki");
    // The demo issued rennes2's metering agent its certificate (`meter`).
    let csv = dir.path().join("september.csv");
    let mut file = std::fs::File::create(&csv).unwrap();
    writeln!(
        file,
        "record_id,tenant_id,metric,value,period_start,period_end"
    )
    .unwrap();
    for i in 1..=RECORDS {
        let (day, hour) = (1 + i / 24 % 28, i % 24);
        writeln!(
            file,
            "sep-{i},{},requests,{i},2026-09-{day:02}T{hour:02}:00:00Z,2026-09-{day:02}T{hour:02}:59:59Z",
            tenancy.tenant_id
        )
        .unwrap();
    }
    drop(file);
    let expected: i64 = (1..=RECORDS as i64).sum();
    let report = || {
        let mut command = fedmesh();
        command
            .args([
                "usage",
                "report",
                "--offer",
                OFFER,
                "--batch-size",
                "50",
                "--file",
            ])
            .arg(&csv)
            .env("FEDMESH_ENDPOINT", &node_endpoint)
            .env("FEDMESH_CA", &manifest.ca)
            .env("FEDMESH_CERT", pki.join("rennes2-agent-meter.pem"))
            .env("FEDMESH_KEY", pki.join("rennes2-agent-meter.key"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };

    // Send the file; when a third and then two thirds of it have been stored, kill the
    // coordinator (SIGKILL) and start it again, while the agent goes on sending.
    let mut sender = report().spawn().unwrap();
    let progress = std::io::BufReader::new(sender.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in std::io::BufRead::lines(progress) {
            let line = line.unwrap();
            // "sent 1234/6000 records"
            if let Some(done) = line
                .strip_prefix("sent ")
                .and_then(|rest| rest.split('/').next())
                .and_then(|n| n.parse::<usize>().ok())
            {
                let _ = tx.send(done);
            }
            lines.push(line);
        }
        lines
    });
    for threshold in [RECORDS / 3, 2 * RECORDS / 3] {
        while rx.recv_timeout(Duration::from_secs(60)).unwrap() < threshold {}
        coordinator.kill().unwrap();
        coordinator.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        coordinator = spawn_coordinator(&manifest, coordinator_port);
    }
    let status = sender.wait().unwrap();
    let stderr = reader.join().unwrap().join("\n");
    let mut stdout = String::new();
    std::io::Read::read_to_string(sender.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "{RECORDS} records: {RECORDS} stored, 0 already stored, 0 refused"
        )),
        "{stdout}"
    );

    // The coordinator converges on exactly the file's total.
    let as_admin = channel(
        &coordinator_endpoint,
        &manifest.ca,
        &rennes2.admin_cert,
        &rennes2.admin_key,
    );
    let september = || pb::GetOfferMetricsRequest {
        offer_id: OFFER.into(),
        from_month: Some(pb::YearMonth {
            year: 2026,
            month: 9,
        }),
        to_month: Some(pb::YearMonth {
            year: 2026,
            month: 9,
        }),
    };
    let total = eventually(
        &rt,
        "the coordinator's total",
        Duration::from_secs(60),
        async || {
            let months = pb::metrics_service_client::MetricsServiceClient::new(as_admin.clone())
                .get_offer_metrics(september())
                .await
                .ok()?
                .into_inner()
                .months;
            let count = months.first()?.request_count;
            (count >= expected).then_some(count)
        },
    );
    assert_eq!(total, expected, "records lost or counted twice");

    // Sending the same file again stores nothing new, at the provider and the coordinator.
    let again = assert_ok(&run(&mut report()));
    assert!(
        again.contains(&format!(
            "{RECORDS} records: 0 stored, {RECORDS} already stored"
        )),
        "{again}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let after = rt
        .block_on(
            pb::metrics_service_client::MetricsServiceClient::new(as_admin.clone())
                .get_offer_metrics(september()),
        )
        .unwrap()
        .into_inner();
    assert_eq!(after.months[0].request_count, expected);

    for child in [&mut node, &mut coordinator] {
        signal(child, "TERM");
        assert!(wait_exit(child, Duration::from_secs(30)).success());
    }
}
