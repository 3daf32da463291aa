//! With `telemetry.otlp_endpoint` set, a server exports one span per call to an OTLP collector.
//! The collector here is a real OTLP/gRPC receiver in the test process; the coordinator is a
//! real `fedmesh coordinator` process.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::fedmesh;
use fedmesh_proto::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_exported_as_a_span_over_otlp() {
    // The collector.
    let (collector_addr, spans) = common::otlp::start().await;

    // A PKI and a coordinator configuration.
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let pki_arg = pki.to_str().unwrap().to_owned();
    for args in [
        vec![
            "certs",
            "init",
            "--federation",
            "esup.example",
            "--dir",
            &pki_arg,
        ],
        vec![
            "certs",
            "issue",
            "--dir",
            &pki_arg,
            "--coordinator",
            "--dns",
            "localhost",
        ],
        vec![
            "certs", "issue", "--dir", &pki_arg, "--member", "unistra", "--role", "admin",
            "--name", "ops",
        ],
    ] {
        assert!(
            fedmesh().args(&args).output().unwrap().status.success(),
            "{args:?}"
        );
    }
    let config = dir.path().join("coordinator.toml");
    std::fs::write(
        &config,
        format!(
            "federation = \"esup.example\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{data}\"\n\n[tls]\nca = \"{pki}/ca.pem\"\ncert = \"{pki}/coordinator.pem\"\nkey = \"{pki}/coordinator.key\"\n\n[log]\nformat = \"json\"\n\n[telemetry]\notlp_endpoint = \"http://{collector_addr}\"\n",
            data = dir.path().join("data").display(),
            pki = pki.display(),
        ),
    )
    .unwrap();
    let mut coordinator = fedmesh()
        .args(["coordinator", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(coordinator.stderr.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the coordinator exited before listening"
        );
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if event["fields"]["message"] == "coordinator listening" {
            break event["fields"]["addr"].as_str().unwrap().to_owned();
        }
    };
    let port = addr.rsplit(':').next().unwrap();

    // One call.
    let files = fedmesh_tls::TlsFiles {
        ca: pki.join("ca.pem"),
        cert: pki.join("unistra-admin-ops.pem"),
        key: pki.join("unistra-admin-ops.key"),
        crl: None,
    };
    let channel = fedmesh_grpc::connect(
        &format!("https://localhost:{port}"),
        &files,
        fedmesh_grpc::ClientOptions::default(),
    )
    .unwrap();
    pb::node_service_client::NodeServiceClient::new(channel)
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap();

    // Stopping flushes the exporter.
    assert!(
        Command::new("kill")
            .args(["-TERM", &coordinator.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while coordinator.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the coordinator did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = spans.lock().unwrap().iter().any(|span| {
            span.name == "fedmesh.v1.NodeService/WhoAmI" && span.service == "fedmesh-coordinator"
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no WhoAmI span from fedmesh-coordinator; got {:?}",
            spans.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
