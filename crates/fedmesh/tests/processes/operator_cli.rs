//! The admin CLI as an operator meets it day to day: connection options in any position or
//! from a profile, the TLS server name, plain answers when a certificate is refused, values
//! in any case, a closed pipe, and `status` naming what needs attention — with the real binary
//! against a running federation.

use std::io::Read as _;
use std::path::Path;
use std::process::Stdio;

use fedmesh::federation::{FederationSpec, PartyManifest, RunningFederation};
use fedmesh_tls::pki::Validity;

use crate::common::{assert_fails, assert_ok, fedmesh, run};

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The four connection options of `party`'s admin on `party`'s node.
fn options(party: &PartyManifest) -> [String; 8] {
    [
        "--endpoint".into(),
        party.endpoint.clone(),
        "--ca".into(),
        arg(&party.ca).into(),
        "--cert".into(),
        arg(&party.admin_cert).into(),
        "--key".into(),
        arg(&party.admin_key).into(),
    ]
}

/// Unistra and rennes2, whose nodes notice a coordinator gone within a second.
fn start(dir: &Path, rt: &tokio::runtime::Runtime) -> RunningFederation {
    let mut spec = FederationSpec::new(dir, 2);
    spec.coordinator_settings = vec![
        "registry.heartbeat_interval_ms=100".into(),
        "registry.stale_after_ms=800".into(),
    ];
    spec.node_settings = vec![
        "coordinator.retry_initial_ms=50".into(),
        "coordinator.retry_max_ms=200".into(),
    ];
    rt.block_on(RunningFederation::start(spec)).unwrap()
}

#[test]
fn connection_options_work_in_every_position_and_from_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _runtime = rt.enter();
    let running = start(dir.path(), &rt);
    let unistra = running.manifest.members[0].clone();
    let options = options(&unistra);

    // Before the command group, between it and its subcommand, and after the subcommand.
    let before = assert_ok(&run(fedmesh().args(&options).args(["offer", "list"])));
    let between = assert_ok(&run(fedmesh().arg("offer").args(&options).arg("list")));
    let after = assert_ok(&run(fedmesh().args(["offer", "list"]).args(&options)));
    assert_eq!(before, between);
    assert_eq!(before, after);
    for command in [["whoami"], ["status"]] {
        assert_ok(&run(fedmesh().args(&options).args(command)));
    }
    // Instants in the reader's time zone, with the offset.
    let status = assert_ok(&run(fedmesh().args(&options).args([
        "status",
        "--tz",
        "Asia/Kolkata",
    ])));
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("certificate") && l.contains("+05:30")),
        "{status}"
    );
    let err = assert_fails(&run(fedmesh().args(&options).args([
        "status",
        "--tz",
        "Mars/Olympus",
    ])));
    assert!(
        err.contains("--tz: `Mars/Olympus` is not a time zone"),
        "{err}"
    );
    let backup = dir.path().join("unistra.backup");
    assert_ok(&run(fedmesh().args(&options).args([
        "admin",
        "backup",
        "--out",
        arg(&backup),
    ])));
    assert!(backup.exists());

    // A profile with paths relative to its file; an option given wins over it.
    let profiles = dir.path().join("profiles.toml");
    let relative = |path: &Path| {
        path.strip_prefix(dir.path())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    std::fs::write(
        &profiles,
        format!(
            "[unistra]\nendpoint = \"{}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\n[rennes2]\nendpoint = \"{}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            unistra.endpoint,
            relative(&unistra.ca),
            relative(&unistra.admin_cert),
            relative(&unistra.admin_key),
            running.manifest.members[1].endpoint,
            relative(&running.manifest.members[1].ca),
            relative(&running.manifest.members[1].admin_cert),
            relative(&running.manifest.members[1].admin_key),
        ),
    )
    .unwrap();
    let me = assert_ok(&run(fedmesh().args([
        "whoami",
        "--profiles",
        arg(&profiles),
        "--profile",
        "rennes2",
    ])));
    assert!(me.contains("member:     rennes2"), "{me}");
    let me = assert_ok(&run(fedmesh()
        .env("FEDMESH_PROFILES", &profiles)
        .env("FEDMESH_PROFILE", "rennes2")
        .args(["whoami", "--endpoint", &unistra.endpoint])));
    assert!(me.contains("answered by unistra's node"), "{me}");

    // The profiles file in the configuration directory, its `default` profile.
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("fedmesh")).unwrap();
    std::fs::write(
        config.join("fedmesh").join("profiles.toml"),
        std::fs::read_to_string(&profiles)
            .unwrap()
            .replace("[unistra]", "[default]")
            .replace("\"pki/", &format!("\"{}/pki/", dir.path().display())),
    )
    .unwrap();
    let me = assert_ok(&run(fedmesh()
        .env("XDG_CONFIG_HOME", &config)
        .arg("whoami")));
    assert!(me.contains("member:     unistra"), "{me}");

    // Options given whole need no profile: a broken profiles file does not stand in the way.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(broken.join("fedmesh")).unwrap();
    std::fs::write(broken.join("fedmesh").join("profiles.toml"), "[unistra\n").unwrap();
    assert_ok(&run(fedmesh()
        .env("XDG_CONFIG_HOME", &broken)
        .args(&options)
        .arg("whoami")));
    let err = assert_fails(&run(fedmesh()
        .env("XDG_CONFIG_HOME", &broken)
        .arg("whoami")));
    assert!(err.contains("profiles file"), "{err}");

    // What is missing, or unknown, is named.
    let err = assert_fails(&run(fedmesh().args(["offer", "list"])));
    assert!(
        err.contains("no endpoint: give --endpoint (or FEDMESH_ENDPOINT)"),
        "{err}"
    );
    let err = assert_fails(&run(fedmesh().args([
        "whoami",
        "--profiles",
        arg(&profiles),
        "--profile",
        "lille",
    ])));
    assert!(
        err.contains("profile `lille` is not in") && err.contains("rennes2, unistra"),
        "{err}"
    );
}

#[test]
fn tls_failures_are_explained_and_the_server_name_can_be_set() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _runtime = rt.enter();
    let running = start(dir.path(), &rt);
    let unistra = running.manifest.members[0].clone();
    let by_ip = unistra.endpoint.replace("localhost", "127.0.0.1");
    let connect = |endpoint: &str, cert: &Path, key: &Path| {
        let mut command = fedmesh();
        command.args([
            "--endpoint",
            endpoint,
            "--ca",
            arg(&unistra.ca),
            "--cert",
            arg(cert),
            "--key",
            arg(key),
        ]);
        command
    };

    // The name the server's certificate must carry, as grpcurl's -servername.
    let me = assert_ok(&run(connect(
        &by_ip,
        &unistra.admin_cert,
        &unistra.admin_key,
    )
    .args(["whoami", "--servername", "localhost"])));
    assert!(me.contains("member:     unistra"), "{me}");
    let err = assert_fails(&run(connect(
        &by_ip,
        &unistra.admin_cert,
        &unistra.admin_key,
    )
    .args(["whoami", "--servername", "elsewhere.example"])));
    assert!(
        err.contains("this client refused the server's certificate"),
        "{err}"
    );

    // An expired certificate is caught before dialling.
    let now = time::OffsetDateTime::now_utc();
    let late = running
        .pki
        .issue(
            &format!(
                "spiffe://{}/member/unistra/admin/late",
                running.manifest.federation
            )
            .parse()
            .unwrap(),
            &[],
            Validity {
                not_before: now - time::Duration::days(10),
                not_after: now - time::Duration::days(1),
            },
        )
        .unwrap();
    let err = assert_fails(&run(connect(
        &unistra.endpoint,
        &late.cert_path,
        &late.key_path,
    )
    .arg("whoami")));
    assert!(err.contains("expired on"), "{err}");
    assert!(err.contains(arg(&late.cert_path)), "{err}");

    // A revoked one is refused by the server, and the CLI says what that likely means.
    let leaver = running
        .pki
        .issue(
            &format!(
                "spiffe://{}/member/unistra/admin/leaver",
                running.manifest.federation
            )
            .parse()
            .unwrap(),
            &[],
            Validity::days_from_now(30),
        )
        .unwrap();
    assert_ok(&run(connect(
        &unistra.endpoint,
        &leaver.cert_path,
        &leaver.key_path,
    )
    .arg("whoami")));
    running
        .pki
        .revoke(&std::fs::read_to_string(&leaver.cert_path).unwrap())
        .unwrap();
    running.reload_tls().unwrap();
    let err = assert_fails(&run(connect(
        &unistra.endpoint,
        &leaver.cert_path,
        &leaver.key_path,
    )
    .arg("whoami")));
    assert!(
        err.contains("the server refused the TLS handshake") && err.contains("revoked"),
        "{err}"
    );
}

#[test]
fn everyday_output_is_forgiving_and_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _runtime = rt.enter();
    let mut running = start(dir.path(), &rt);
    // Rennes2's offers, and unistra a tenant of its collaboration platform.
    rt.block_on(running.seed_example_offers()).unwrap();
    rt.block_on(running.seed_example_usage()).unwrap();
    let unistra = running.manifest.members[0].clone();
    let rennes2 = running.manifest.members[1].clone();
    let rennes2_options = options(&rennes2);
    let options = options(&unistra);

    // Enumerated values in any case: outputs write P3, so P3 is accepted as p3 is.
    let opened = assert_ok(&run(fedmesh().args(&options).args([
        "incident",
        "open",
        "--offer",
        "rennes2.collab",
        "--priority",
        "P3",
        "--type",
        "Incident",
        "--summary",
        "Uploads are slow",
        "--json",
    ])));
    assert!(opened.contains("\"PRIORITY_P3\""), "{opened}");
    // Each side's list says which side it is on.
    let listed = assert_ok(&run(fedmesh().args(&options).args(["incident", "list"])));
    assert!(
        listed.starts_with("INCIDENT") && listed.contains("YOUR SIDE"),
        "{listed}"
    );
    assert!(listed.contains("subscriber (of rennes2)"), "{listed}");
    let listed = (0..100)
        .find_map(|_| {
            let out = assert_ok(&run(fedmesh()
                .args(&rennes2_options)
                .args(["incident", "list"])));
            if out.contains("provider (for unistra)") {
                return Some(out);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            None
        })
        .expect("the incident never showed on rennes2's side");
    assert!(listed.contains("Uploads are slow"), "{listed}");

    // A subscriber reads another member's offer in full before subscribing.
    let shown = (0..100)
        .find_map(|_| {
            let output =
                run(fedmesh()
                    .args(&options)
                    .args(["catalogue", "show", "rennes2.collab"]));
            if output.status.success() {
                return Some(String::from_utf8_lossy(&output.stdout).into_owned());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            None
        })
        .expect("rennes2.collab never reached unistra's catalogue");
    for part in [
        "window        Mon–Fri",
        "holidays      French public holidays",
        "P1            acknowledge within",
        "left)",
        "per user",
        "GDPR",
        "DPO",
        "terms         version",
        "approval",
    ] {
        assert!(shown.contains(part), "{part}:\n{shown}");
    }

    // Lists an operator can act on: by side and state, with a header.
    let provider_side = assert_ok(&run(fedmesh().args(&rennes2_options).args([
        "subscription",
        "list",
        "--role",
        "provider",
        "--state",
        "Active",
    ])));
    let lines: Vec<&str> = provider_side.lines().collect();
    assert!(
        lines[0].starts_with("ID ") && lines[0].contains("STATE"),
        "{provider_side}"
    );
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.contains(" active ") && l.contains("-> rennes2")),
        "{provider_side}"
    );
    assert!(provider_side.contains("rennes2.collab"), "{provider_side}");
    let subscriber_side = assert_ok(&run(fedmesh().args(&options).args([
        "subscription",
        "list",
        "--role",
        "subscriber",
    ])));
    assert!(
        subscriber_side.contains("rennes2.collab"),
        "{subscriber_side}"
    );
    let none = assert_ok(&run(fedmesh().args(&options).args([
        "subscription",
        "list",
        "--role",
        "provider",
        "--state",
        "requested",
    ])));
    assert_eq!(none.trim(), "no subscriptions");

    // The provider's statement per offer: what to invoice each tenant, "to date" while the
    // period runs.
    let statement = assert_ok(&run(fedmesh().args(&rennes2_options).args([
        "statement",
        "--offer",
        "rennes2.collab",
        "--period",
        "2026-01-01..2027-12-31",
    ])));
    assert!(
        statement.starts_with("to date: the period is not over"),
        "{statement}"
    );
    assert!(
        statement.contains("on rennes2.collab") && statement.contains("total"),
        "{statement}"
    );

    // A reader that goes away (`| head`) ends the command quietly.
    let mut child = fedmesh()
        .args(&options)
        .args(["catalogue", "search"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Another member's node lets any federation identity diagnose it, and nothing more.
    let mut on_rennes2 = options.clone();
    on_rennes2[1] = rennes2.endpoint.clone();
    let me = assert_ok(&run(fedmesh().args(&on_rennes2).arg("whoami")));
    assert!(me.contains("answered by rennes2's node"), "{me}");
    let err = assert_fails(&run(fedmesh().args(&on_rennes2).args(["offer", "list"])));
    assert!(err.contains("PermissionDenied"), "{err}");
    assert!(err.contains("only their own member's node"), "{err}");

    // The registry, from the coordinator, without grpcurl.
    let mut on_coordinator = options.clone();
    on_coordinator[1] = running.manifest.coordinator.endpoint.clone();
    let listed = assert_ok(&run(fedmesh()
        .args(&on_coordinator)
        .args(["nodes", "list"])));
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines[0].starts_with("MEMBER"), "{listed}");
    assert!(
        lines[1].starts_with("rennes2 ") && lines[1].contains("active"),
        "{listed}"
    );
    assert!(
        lines[2].starts_with("unistra ") && lines[2].contains(&unistra.endpoint),
        "{listed}"
    );
    let shown = assert_ok(&run(fedmesh()
        .args(&on_coordinator)
        .args(["nodes", "show", "rennes2", "--json"])));
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["endpoint"], rennes2.endpoint.as_str(), "{shown}");

    // An offer exported as it stands publishes again after an edit.
    let file = dir.path().join("collab.toml");
    let exported = assert_ok(&run(fedmesh().args(&rennes2_options).args([
        "offer",
        "export",
        "rennes2.collab",
        "--out",
        arg(&file),
    ])));
    let etag = exported
        .trim_end()
        .rsplit("(etag ")
        .next()
        .unwrap()
        .trim_end_matches(')');
    let edited = std::fs::read_to_string(&file)
        .unwrap()
        .replace("version = \"30.0.6\"", "version = \"30.0.7\"");
    std::fs::write(&file, edited).unwrap();
    let published = assert_ok(&run(fedmesh().args(&rennes2_options).args([
        "offer",
        "publish",
        "--file",
        arg(&file),
        "--etag",
        etag,
    ])));
    assert!(
        published.starts_with("updated rennes2.collab"),
        "{published}"
    );

    // Withdrawing an offer with tenancies says what happens to them and wants a yes.
    let refused = run(fedmesh()
        .args(&rennes2_options)
        .args(["offer", "withdraw", "rennes2.collab"])
        .stdin(Stdio::null()));
    let err = assert_fails(&refused);
    assert!(err.contains("run again with --yes"), "{err}");
    let said = String::from_utf8_lossy(&refused.stdout);
    assert!(
        said.contains("tenancies keep running until you terminate them")
            && said.contains("-> rennes2"),
        "{said}"
    );
    let withdrawn = assert_ok(&run(fedmesh().args(&rennes2_options).args([
        "offer",
        "withdraw",
        "rennes2.collab",
        "--yes",
    ])));
    assert!(
        withdrawn.starts_with("withdrew rennes2.collab"),
        "{withdrawn}"
    );
    assert!(withdrawn.contains("keep running"), "{withdrawn}");

    // `status` names what needs attention: here, a coordinator that is gone.
    rt.block_on(running.stop_coordinator()).unwrap();
    let output = (0..100)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            run(fedmesh().args(&options).arg("status"))
        })
        .find(|output| !output.status.success())
        .expect("status never saw the coordinator gone");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("needs attention: the coordinator is unreachable"),
        "{err}"
    );
}

#[test]
fn a_failed_first_start_leaves_no_data_directory_behind() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _runtime = rt.enter();
    let running = start(dir.path(), &rt);
    let unistra = &running.manifest.members[0];
    // unistra's own configuration on unistra's port, taken while unistra runs.
    let fresh = dir.path().join("fresh-data");
    let port = unistra.endpoint.rsplit(':').next().unwrap();
    let output = run(fedmesh().args([
        "node",
        "--config",
        arg(&unistra.config),
        "--set",
        &format!("data_dir={}", fresh.display()),
        "--set",
        &format!("listen=127.0.0.1:{port}"),
        "--set",
        "metrics.enabled=false",
    ]));
    let err = assert_fails(&output);
    assert!(err.contains("127.0.0.1"), "{err}");
    assert!(!fresh.exists(), "{} was left behind", fresh.display());
    // A free port, but the metrics port taken: the database was opened, then removed.
    let metrics = unistra.metrics.as_deref().unwrap();
    let metrics_addr = metrics
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    let output = run(fedmesh().args([
        "node",
        "--config",
        arg(&unistra.config),
        "--set",
        &format!("data_dir={}", fresh.display()),
        "--set",
        "listen=127.0.0.1:0",
        "--set",
        &format!("metrics.listen={metrics_addr}"),
    ]));
    let err = assert_fails(&output);
    assert!(err.contains(metrics_addr), "{err}");
    assert!(!fresh.exists(), "{} was left behind", fresh.display());
}
