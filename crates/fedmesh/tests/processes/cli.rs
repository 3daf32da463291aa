//! The `fedmesh` binary as an operator uses it: real processes, real files, real signals.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{
    assert_fails, assert_ok, fedmesh, run, signal, spawn_demo, wait_exit, wait_file,
};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn certs_init_issue_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let pki_arg = pki.to_str().unwrap();
    assert_ok(&run(fedmesh().args([
        "certs",
        "init",
        "--federation",
        "esup.example",
        "--dir",
        pki_arg,
    ])));
    assert_eq!(mode(&pki.join("ca.key")), 0o600);
    let again = assert_fails(&run(fedmesh().args([
        "certs",
        "init",
        "--federation",
        "esup.example",
        "--dir",
        pki_arg,
    ])));
    assert!(again.contains("already holds a federation CA"), "{again}");

    let out = assert_ok(&run(fedmesh().args([
        "certs",
        "issue",
        "--dir",
        pki_arg,
        "--member",
        "unistra",
        "--role",
        "node",
        "--dns",
        "node.unistra.example",
        "--dns",
        "127.0.0.1",
    ])));
    assert!(
        out.contains("issued spiffe://esup.example/member/unistra/node"),
        "{out}"
    );
    assert_eq!(mode(&pki.join("unistra-node.key")), 0o600);
    let out = assert_ok(&run(fedmesh().args([
        "certs", "issue", "--dir", pki_arg, "--member", "unistra", "--role", "admin", "--name",
        "alice",
    ])));
    assert!(
        out.contains("spiffe://esup.example/member/unistra/admin/alice"),
        "{out}"
    );
    assert_ok(&run(fedmesh().args([
        "certs",
        "issue",
        "--dir",
        pki_arg,
        "--coordinator",
        "--dns",
        "localhost",
    ])));
    assert!(pki.join("coordinator.pem").exists());

    for (args, expected) in [
        (
            vec!["--member", "unistra", "--role", "admin"],
            "--name is required",
        ),
        (
            vec!["--member", "unistra", "--role", "node", "--name", "x"],
            "--name is only for admins and agents",
        ),
        (
            vec!["--member", "Unistra", "--role", "node"],
            "member id `Unistra`",
        ),
        (
            vec![
                "--member", "unistra", "--role", "agent", "--name", "Bad_Name",
            ],
            "name `Bad_Name`",
        ),
        (vec!["--member", "unistra", "--role", "root"], "root"),
    ] {
        let mut command = fedmesh();
        command
            .args(["certs", "issue", "--dir", pki_arg])
            .args(&args);
        let err = assert_fails(&run(&mut command));
        assert!(err.contains(expected), "{args:?}: {err}");
    }

    let cert = pki.join("unistra-admin-alice.pem");
    let out = assert_ok(&run(fedmesh().args([
        "certs",
        "revoke",
        "--dir",
        pki_arg,
        cert.to_str().unwrap(),
    ])));
    assert!(
        out.contains("revoked spiffe://esup.example/member/unistra/admin/alice"),
        "{out}"
    );
    let ledger = std::fs::read_to_string(pki.join("revoked.json")).unwrap();
    assert!(ledger.contains("member/unistra/admin/alice"), "{ledger}");
    let before = std::fs::read_to_string(pki.join("crl.pem")).unwrap();
    assert_ok(&run(fedmesh().args([
        "certs",
        "renew-crl",
        "--dir",
        pki_arg,
    ])));
    let after = std::fs::read_to_string(pki.join("crl.pem")).unwrap();
    assert_ne!(before, after, "a renewed CRL is a new CRL");
    let ledger_after = std::fs::read_to_string(pki.join("revoked.json")).unwrap();
    assert!(
        ledger_after.contains("member/unistra/admin/alice"),
        "renewal keeps the entries"
    );
}

/// A node configuration that would start, in `dir`, with PKI from `fedmesh certs`.
fn node_config(dir: &Path) -> PathBuf {
    let pki = dir.join("pki");
    let pki_arg = pki.to_str().unwrap();
    assert_ok(&run(fedmesh().args([
        "certs",
        "init",
        "--federation",
        "esup.example",
        "--dir",
        pki_arg,
    ])));
    assert_ok(&run(fedmesh().args([
        "certs",
        "issue",
        "--dir",
        pki_arg,
        "--member",
        "unistra",
        "--role",
        "node",
        "--dns",
        "localhost",
    ])));
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "member_id = \"unistra\"\nfederation = \"esup.example\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{data}\"\n\n[tls]\nca = \"{pki}/ca.pem\"\ncert = \"{pki}/unistra-node.pem\"\nkey = \"{pki}/unistra-node.key\"\ncrl = \"{pki}/crl.pem\"\n",
            data = dir.join("data").display(),
            pki = pki.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn configuration_errors_name_the_key_and_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(dir.path());
    let config_arg = config.to_str().unwrap();

    let typo = dir.path().join("typo.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&typo, original.replace("listen =", "lisen =")).unwrap();
    let err = assert_fails(&run(fedmesh().args([
        "node",
        "--config",
        typo.to_str().unwrap(),
    ])));
    assert!(
        err.contains(typo.to_str().unwrap()),
        "names the file: {err}"
    );
    assert!(err.contains("line 3"), "names the line: {err}");
    assert!(
        err.contains("unknown field `lisen`"),
        "names the key: {err}"
    );

    let nested = dir.path().join("nested.toml");
    std::fs::write(
        &nested,
        format!("{original}\n[limits]\nmax_decoding_message_byte = 10\n"),
    )
    .unwrap();
    let err = assert_fails(&run(fedmesh().args([
        "node",
        "--config",
        nested.to_str().unwrap(),
    ])));
    assert!(err.contains("max_decoding_message_byte"), "{err}");

    let err = assert_fails(&run(fedmesh()
        .args(["node", "--config", config_arg])
        .env("FEDMESH_NODE_LIMITS__REQUEST_TIMEOUT", "5")));
    assert!(
        err.contains("environment variable FEDMESH_NODE_LIMITS__REQUEST_TIMEOUT"),
        "{err}"
    );
    assert!(err.contains("request_timeout"), "{err}");

    let err = assert_fails(&run(fedmesh().args([
        "node",
        "--config",
        config_arg,
        "--set",
        "member_id=Not-Valid",
    ])));
    assert!(err.contains("config key `member_id`"), "{err}");

    let err = assert_fails(&run(fedmesh().args([
        "node",
        "--config",
        "/nonexistent/node.toml",
    ])));
    assert!(err.contains("/nonexistent/node.toml"), "{err}");

    // A port already taken: the address named (what a supervisor's log shows, and what the
    // crash runs recognize to start a party again).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = assert_fails(&run(fedmesh().args([
        "node",
        "--config",
        config_arg,
        "--set",
        &format!("listen={addr}"),
    ])));
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[test]
fn a_database_from_a_newer_fedmesh_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(dir.path());
    {
        let store = fedmesh_store::Store::open(&dir.path().join("data")).unwrap();
        store
            .set_schema_version(fedmesh_store::SCHEMA_VERSION + 98)
            .unwrap();
    }
    let err = assert_fails(&run(fedmesh().args([
        "node",
        "--config",
        config.to_str().unwrap(),
    ])));
    assert!(
        err.contains(&format!(
            "schema version {}",
            fedmesh_store::SCHEMA_VERSION + 98
        )),
        "{err}"
    );
    assert!(err.contains("upgrade fedmesh"), "{err}");
}

#[test]
fn the_demo_federation_serves_the_cli_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = spawn_demo(dir.path(), 2, Stdio::piped());
    let manifest_path = dir.path().join("federation.json");
    wait_file(&manifest_path, &mut demo);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let members = manifest["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    let unistra = &members[0];
    assert_eq!(unistra["member_id"], "unistra");
    for party in members.iter().chain([&manifest["coordinator"]]) {
        for key in [
            "ca",
            "node_cert",
            "node_key",
            "admin_cert",
            "admin_key",
            "config",
        ] {
            let path = party[key].as_str().unwrap();
            assert!(Path::new(path).exists(), "{key}: {path}");
        }
    }

    let as_unistra_admin = |endpoint: &str| {
        let mut command = fedmesh();
        command
            .env("FEDMESH_ENDPOINT", endpoint)
            .env("FEDMESH_CA", unistra["ca"].as_str().unwrap())
            .env("FEDMESH_CERT", unistra["admin_cert"].as_str().unwrap())
            .env("FEDMESH_KEY", unistra["admin_key"].as_str().unwrap());
        command
    };
    let out = assert_ok(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .args(["whoami", "--json"])));
    let me: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        me["identity"],
        "spiffe://demo.fedmesh/member/unistra/admin/ops"
    );
    assert_eq!(me["role"], "admin");
    assert_eq!(me["server_member_id"], "unistra");
    let human = assert_ok(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .arg("whoami")));
    assert!(human.contains("role:       admin"), "{human}");

    // The one-glance status of unistra's node, once the demo has opened its incidents.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let output = run(as_unistra_admin(unistra["endpoint"].as_str().unwrap()).arg("status"));
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() && text.contains("open incidents 2") {
            break text;
        }
        assert!(Instant::now() < deadline, "status never healthy: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.contains("unistra's node at https://localhost:"),
        "{status}"
    );
    assert!(status.contains("coordinator    reachable"), "{status}");
    assert!(status.contains("subscriptions  1 active"), "{status}");
    assert!(status.contains("open incidents 2 on time"), "{status}");
    let json = assert_ok(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .args(["status", "--json"])));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["coordinator_reachable"], true);
    assert!(json["certificate_expire_time"].is_string());

    // The demo seeded the example offers; unistra's node has its own, and its cached catalogue
    // soon holds everyone's.
    let mine = assert_ok(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .args(["offer", "list"])));
    assert!(mine.contains("unistra.otp"), "{mine}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let out = assert_ok(&run(as_unistra_admin(
            unistra["endpoint"].as_str().unwrap(),
        )
        .args(["catalogue", "search", "--json"])));
        let found: serde_json::Value = serde_json::from_str(&out).unwrap();
        if found["offers"].as_array().unwrap().len() == 2 {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "the catalogue never held both members' offers: {out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let ids: Vec<&str> = found["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["offer"]["offer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["rennes2.collab", "unistra.otp"]);
    let text = assert_ok(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .args(["catalogue", "search", "collaboratif"])));
    assert!(
        text.contains("rennes2.collab") && !text.contains("unistra.otp"),
        "{text}"
    );
    // Publishing an existing offer without its etag explains how to update it.
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/offers/otp.toml"
    );
    let err = assert_fails(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .args(["offer", "publish", "--file", example])));
    assert!(err.contains("pass the etag"), "{err}");
    let shown = assert_ok(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .args(["offer", "show", "unistra.otp", "--json"])));
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let etag = shown["etag"].as_str().unwrap().to_owned();
    let out = assert_ok(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .args(["offer", "publish", "--file", example, "--etag", &etag])));
    assert!(out.starts_with("updated unistra.otp"), "{out}");

    // The demo made unistra a tenant of rennes2's collaboration platform (automatic approval
    // within capacity), through unistra's own node.
    let listed = assert_ok(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .args(["subscription", "list", "--json"])));
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["subscriptions"][0]["offer_id"], "rennes2.collab");
    assert_eq!(
        listed["subscriptions"][0]["state"],
        "SUBSCRIPTION_STATE_ACTIVE"
    );
    // A second tenancy on the same offer is refused.
    let err = assert_fails(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .args([
        "subscription",
        "request",
        "--offer",
        "rennes2.collab",
        "--users",
        "100",
        "--contact",
        "dsi@unistra.example",
        "--accept-terms",
        found["offers"][0]["offer"]["terms_version"]
            .as_str()
            .unwrap(),
    ])));
    assert!(err.contains("FailedPrecondition"), "{err}");

    // rennes2's metering agent sends the example usage file: stored once, even sent twice.
    let pki = dir.path().join("pki");
    let as_agent = || {
        let mut command = fedmesh();
        command
            .env("FEDMESH_ENDPOINT", members[1]["endpoint"].as_str().unwrap())
            .env("FEDMESH_CA", pki.join("ca.pem"))
            .env("FEDMESH_CERT", pki.join("rennes2-agent-meter.pem"))
            .env("FEDMESH_KEY", pki.join("rennes2-agent-meter.key"));
        command
    };
    let usage_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/usage/usage.csv"
    );
    let out = assert_ok(&run(
        as_agent().args(["usage", "report", "--file", usage_file])
    ));
    assert!(
        out.contains("5 records: 5 stored, 0 already stored, 0 refused"),
        "{out}"
    );
    let out = assert_ok(&run(
        as_agent().args(["usage", "report", "--file", usage_file])
    ));
    assert!(
        out.contains("5 records: 0 stored, 5 already stored"),
        "{out}"
    );
    let availability_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/usage/availability.csv"
    );
    let out = assert_ok(&run(as_agent().args([
        "availability",
        "report",
        "--file",
        availability_file,
    ])));
    assert!(out.contains("5 records: 5 stored"), "{out}");
    // rouen is no member of this demo: its records are refused and named by line.
    let jsonl = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/usage/usage.jsonl"
    );
    let err = assert_fails(&run(as_agent().args(["usage", "report", "--file", jsonl])));
    assert!(
        err.contains("line 1: record meter-2026-09-rouen-users refused: records[0].tenant_id"),
        "{err}"
    );

    // Records of a closed month (June 2025: the demo keeps months open for a year) are
    // listed as refused, naming the month; the rest of the file is stored.
    let late = dir.path().join("late.csv");
    std::fs::write(
        &late,
        "record_id,offer_id,tenant_id,metric,value,period_start,period_end\n\
         late-1,rennes2.collab,unistra,requests,5,2025-06-02T00:00:00+02:00,2025-06-03T00:00:00+02:00\n\
         late-2,rennes2.collab,unistra,requests,5,2025-06-03T00:00:00+02:00,2025-06-04T00:00:00+02:00\n\
         on-time,rennes2.collab,unistra,requests,5,2026-09-03T00:00:00+02:00,2026-09-04T00:00:00+02:00\n",
    )
    .unwrap();
    let late = late.to_str().unwrap();
    // One record per call: the calls of closed-month records answer FAILED_PRECONDITION.
    let output = run(as_agent().args(["usage", "report", "--file", late, "--batch-size", "1"]));
    let err = assert_fails(&output);
    assert!(
        err.contains("line 2: refused: every record falls in a closed month (2025-06 of offer rennes2.collab)")
            && err.contains("line 3: refused:"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("3 records: 1 stored, 0 already stored, 2 refused"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    // In one call, each is refused alone.
    let err = assert_fails(&run(as_agent().args(["usage", "report", "--file", late])));
    assert!(
        err.contains("line 2: record late-1 refused: records[0].period.start_time: month 2025-06 of offer rennes2.collab is closed"),
        "{err}"
    );

    // unistra's admin reads its figures through its own node.
    let shown = assert_ok(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .args([
        "usage",
        "show",
        "--offer",
        "rennes2.collab",
        "--period",
        "2026-09",
        "--json",
    ])));
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let groups = shown["usage"]["aggregates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["metric"] == "groups")
        .unwrap_or_else(|| panic!("{shown}"));
    assert_eq!(groups["sum_value"], 412.0);
    // 17:40–18:25 on Thursday 24 September: 20 minutes in the window; the failed probes of
    // Tuesday 22 September from 09:00 to 09:10: 10 more.
    assert_eq!(
        shown["availability"]["availability"]["in_window_downtime"],
        "1800s"
    );
    let csv = assert_ok(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .args([
        "statement",
        "--member",
        "unistra",
        "--period",
        "2026-01-01..2028-12-31",
        "--format",
        "csv",
    ])));
    assert!(csv.starts_with("subscription_id,offer_id,"), "{csv}");
    assert!(csv.contains(",setup_fee,"), "{csv}");
    assert!(csv.contains(",1500.000000,1500.000000,EUR"), "{csv}");

    let err = assert_fails(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .args([
        "subscription",
        "request",
        "--offer",
        "rennes2.collab",
        "--users",
        "100",
        "--contact",
        "dsi@unistra.example",
        "--accept-terms",
        "1999",
    ])));
    assert!(err.contains("accepted_terms_version"), "{err}");

    // An incident from unistra's desk to rennes2, worked on both sides with the CLI.
    let as_rennes2_admin = || {
        let mut command = fedmesh();
        command
            .env("FEDMESH_ENDPOINT", members[1]["endpoint"].as_str().unwrap())
            .env("FEDMESH_CA", members[1]["ca"].as_str().unwrap())
            .env("FEDMESH_CERT", members[1]["admin_cert"].as_str().unwrap())
            .env("FEDMESH_KEY", members[1]["admin_key"].as_str().unwrap());
        command
    };
    let opened = assert_ok(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .args([
        "incident",
        "open",
        "--offer",
        "rennes2.collab",
        "--priority",
        "p3",
        "--summary",
        "Slow uploads",
        "--json",
    ])));
    let opened: serde_json::Value = serde_json::from_str(&opened).unwrap();
    let incident_id = opened["incident_id"].as_str().unwrap().to_owned();
    assert_eq!(opened["status"], "INCIDENT_STATUS_NEW");
    let listed = assert_ok(&run(as_rennes2_admin().args(["incident", "list", "--open"])));
    assert!(listed.contains(&incident_id), "{listed}");
    assert_ok(&run(as_rennes2_admin().args([
        "incident",
        "ack",
        &incident_id,
    ])));
    let waiting = assert_ok(&run(as_rennes2_admin().args([
        "incident",
        "status",
        &incident_id,
        "waiting",
        "--comment",
        "Which files?",
    ])));
    assert!(waiting.contains("waiting_on_subscriber"), "{waiting}");
    let answered = assert_ok(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .args(["incident", "answer", &incident_id, "--body", "Large PDFs"])));
    assert!(answered.contains("in_progress"), "{answered}");
    let shown = assert_ok(&run(as_rennes2_admin().args([
        "incident",
        "show",
        &incident_id,
    ])));
    assert!(
        shown.contains("acknowledge") && shown.contains("deadline"),
        "{shown}"
    );
    assert!(shown.contains("Large PDFs"), "{shown}");
    // A provider-only action from the desk is refused with an explanation.
    let err = assert_fails(&run(as_unistra_admin(
        unistra["endpoint"].as_str().unwrap(),
    )
    .args(["incident", "ack", &incident_id])));
    assert!(err.contains("PermissionDenied"), "{err}");

    // rennes2 announces maintenance; unistra's admin sees it on its own node.
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let at = |offset: i64| {
        jiff::Timestamp::from_second(soon + offset)
            .unwrap()
            .to_string()
    };
    let announced = assert_ok(&run(as_rennes2_admin().args([
        "maintenance",
        "announce",
        "--offer",
        "rennes2.collab",
        "--start",
        &at(3600),
        "--end",
        &at(7200),
        "--summary",
        "Upgrade to 31",
        "--impact",
        "read-only for an hour",
    ])));
    assert!(announced.starts_with("announced MW-"), "{announced}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = assert_ok(&run(as_unistra_admin(
            unistra["endpoint"].as_str().unwrap(),
        )
        .args(["maintenance", "list"])));
        if listed.contains("Upgrade to 31") {
            break;
        }
        assert!(Instant::now() < deadline, "never received: {listed}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // rennes2 moves it a day later (its start kept unless given), then cancels it; unistra's
    // admin sees why.
    let id = announced
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_owned();
    let moved = assert_ok(&run(as_rennes2_admin().args([
        "maintenance",
        "reschedule",
        &id,
        "--start",
        &at(86_400),
        "--end",
        &at(86_400 + 3600),
        "--reason",
        "patch late",
    ])));
    assert!(
        moved.starts_with(&format!("rescheduled {id} to ")),
        "{moved}"
    );
    let cancelled = assert_ok(&run(as_rennes2_admin().args([
        "maintenance",
        "cancel",
        &id,
        "--reason",
        "not needed",
    ])));
    assert!(
        cancelled.starts_with(&format!("cancelled {id}")),
        "{cancelled}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = assert_ok(&run(as_unistra_admin(
            unistra["endpoint"].as_str().unwrap(),
        )
        .args(["maintenance", "list"])));
        if listed.contains("cancelled") {
            assert!(listed.contains(": patch late"), "{listed}");
            assert!(listed.contains(": not needed"), "{listed}");
            break;
        }
        assert!(Instant::now() < deadline, "never cancelled: {listed}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The other member's node lets unistra's admin diagnose it, refuses anything more, and
    // the CLI says why.
    let diagnosed = assert_ok(&run(as_unistra_admin(
        members[1]["endpoint"].as_str().unwrap(),
    )
    .arg("whoami")));
    assert!(
        diagnosed.contains("answered by rennes2's node"),
        "{diagnosed}"
    );
    let refused =
        run(as_unistra_admin(members[1]["endpoint"].as_str().unwrap()).args(["offer", "list"]));
    let err = assert_fails(&refused);
    assert!(err.contains("PermissionDenied"), "{err}");
    assert!(err.contains("only their own member's node"), "{err}");

    // Nothing listens there: UNAVAILABLE with an explanation.
    let err = assert_fails(&run(as_unistra_admin("https://localhost:1").arg("whoami")));
    assert!(err.contains("Unavailable"), "{err}");
    assert!(err.contains("could not reach https://localhost:1"), "{err}");

    signal(&demo, "INT");
    let status = wait_exit(&mut demo, Duration::from_secs(30));
    assert!(status.success(), "demo exited with {status}");
    let mut stdout = String::new();
    std::io::Read::read_to_string(demo.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(stdout.contains("grpcurl -cacert"), "{stdout}");
    assert!(stdout.contains("export FEDMESH_ENDPOINT="), "{stdout}");
    assert!(stdout.contains("stopping the demo federation"), "{stdout}");
}

/// The demo's secrets are the owner's alone, also when it reuses a directory whose files an
/// older demo left world-readable.
#[test]
fn the_demo_writes_its_token_and_the_files_that_hold_it_0600() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = dir.path().join("coordinator");
    std::fs::create_dir_all(&coordinator).unwrap();
    let token = coordinator.join("dashboard-token");
    let config = coordinator.join("coordinator.toml");
    std::fs::write(&token, "a-token-kept-from-an-older-demo-0123").unwrap();
    std::fs::write(&config, "# an older configuration\n").unwrap();
    for file in [&token, &config] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    let mut demo = spawn_demo(dir.path(), 1, Stdio::null());
    let manifest = dir.path().join("federation.json");
    wait_file(&manifest, &mut demo);
    signal(&demo, "INT");
    assert!(wait_exit(&mut demo, Duration::from_secs(30)).success());

    // The token was kept (printed links stay valid), and it is in the two files below.
    assert_eq!(
        std::fs::read_to_string(&token).unwrap(),
        "a-token-kept-from-an-older-demo-0123"
    );
    for file in [&token, &config, &manifest] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.contains("a-token-kept-from-an-older-demo-0123"),
            "{}: {text}",
            file.display()
        );
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    for key in [
        "coordinator.key",
        "unistra-node.key",
        "unistra-admin-ops.key",
    ] {
        assert_eq!(mode(&dir.path().join("pki").join(key)), 0o600, "{key}");
    }
    for data in ["coordinator/data", "unistra/data"] {
        assert_eq!(mode(&dir.path().join(data)), 0o700, "{data}");
    }
}

#[test]
fn a_coordinator_drains_and_flushes_on_sigterm_with_json_logs() {
    let dir = tempfile::tempdir().unwrap();
    // Let the demo write a coordinator configuration and PKI, then stop it.
    let mut demo = spawn_demo(dir.path(), 1, Stdio::null());
    wait_file(&dir.path().join("federation.json"), &mut demo);
    signal(&demo, "INT");
    assert!(wait_exit(&mut demo, Duration::from_secs(30)).success());

    let config = dir.path().join("coordinator/coordinator.toml");
    let mut coordinator = fedmesh()
        .args([
            "coordinator",
            "--config",
            config.to_str().unwrap(),
            "--set",
            "listen=127.0.0.1:0",
            "--set",
            "log.format=json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(coordinator.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    let line: serde_json::Value =
        serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(
        line["fields"]["message"], "coordinator listening",
        "{first}"
    );

    signal(&coordinator, "TERM");
    let status = wait_exit(&mut coordinator, Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(rest.contains("database flushed"), "{rest}");
}
