//! `fedmesh report` as the operators of both parties run it: a provider whose month closed,
//! and its tenant, read the same monthly report, and correct and contest it, with the real
//! binary against a running federation.

use std::process::Command;
use std::time::{Duration, Instant};

use fedmesh::federation::{FederationSpec, PartyManifest, RunningFederation};

use crate::common::{assert_fails, assert_ok, fedmesh, run};

/// The demo's members: unistra is a tenant of rennes2's collaboration offer.
const UNISTRA: usize = 0;
const RENNES2: usize = 1;

/// `fedmesh` as `party`'s admin, on `party`'s node (or on `node`'s).
fn as_admin(ca: &std::path::Path, party: &PartyManifest, node: &PartyManifest) -> Command {
    let mut command = fedmesh();
    command
        .env("FEDMESH_ENDPOINT", &node.endpoint)
        .env("FEDMESH_CA", ca)
        .env("FEDMESH_CERT", &party.admin_cert)
        .env("FEDMESH_KEY", &party.admin_key);
    command
}

/// Runs `make()` every 100 ms until its output satisfies `done`, for at most 20 s.
fn until(what: &str, mut make: impl FnMut() -> Command, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let output = run(&mut make());
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() && done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last output:\n{text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

#[test]
fn report_commands_show_correct_and_contest_a_closed_month_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _runtime = rt.enter();
    let mut spec = FederationSpec::new(dir.path(), 2);
    spec.coordinator_settings = vec![
        "registry.heartbeat_interval_ms=100".into(),
        "registry.stale_after_ms=800".into(),
    ];
    spec.node_settings = vec![
        "coordinator.retry_initial_ms=50".into(),
        "coordinator.retry_max_ms=200".into(),
    ];
    let mut running = rt.block_on(RunningFederation::start(spec)).unwrap();
    // Unistra becomes a tenant of rennes2's collaboration offer, whose agent reports usage
    // since the start of last month; then rennes2's node closes every ended month at once.
    rt.block_on(running.seed_example_offers()).unwrap();
    rt.block_on(running.seed_example_usage()).unwrap();
    rt.block_on(running.restart_member_with(RENNES2, &["usage.close_after_days=0".to_owned()]))
        .unwrap();
    let manifest = running.manifest.clone();
    let ca = manifest.ca.as_path();
    let (unistra, rennes2) = (&manifest.members[UNISTRA], &manifest.members[RENNES2]);
    let provider = || as_admin(ca, rennes2, rennes2);
    let subscriber = || as_admin(ca, unistra, unistra);

    // The provider lists last month's reports: the offer's and its tenant's.
    let listed = until(
        "last month's reports on rennes2's node",
        || {
            let mut command = provider();
            command.args(["report", "list", "--json"]);
            command
        },
        |text| {
            json(text)["reports"]
                .as_array()
                .is_some_and(|r| r.len() >= 2)
        },
    );
    let listed = json(&listed);
    let tenancy_report = listed["reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["scope"] == "REPORT_SCOPE_TENANCY")
        .unwrap_or_else(|| panic!("no tenancy report: {listed}"))
        .clone();
    let id = tenancy_report["report_id"].as_str().unwrap().to_owned();
    let subscription = tenancy_report["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, month) = id.rsplit_once('/').unwrap();
    let month = month.to_owned();
    assert_eq!(tenancy_report["subscriber_member_id"], "unistra");
    let offer_report = format!("rennes2.collab/{month}");
    let human = assert_ok(&run(provider().args(["report", "list"])));
    assert!(
        human.contains(&id) && human.contains(&offer_report) && human.contains("tenancy unistra"),
        "{human}"
    );

    // The subscriber's node mirrored its tenancy's report, not the offer's.
    let human = until(
        "the tenancy report mirrored on unistra's node",
        || {
            let mut command = subscriber();
            command.args(["report", "list"]);
            command
        },
        |text| text.contains(&id),
    );
    assert!(!human.contains(&offer_report), "{human}");
    let mirrored = json(&assert_ok(&run(
        subscriber().args(["report", "list", "--json"])
    )));
    assert_eq!(
        mirrored["reports"].as_array().unwrap().len(),
        1,
        "{mirrored}"
    );

    // Both read the same report, in words and in JSON.
    let show = |command: &mut Command| {
        let human = assert_ok(&run(command.args(["report", "show", &id])));
        assert!(
            human.contains(&format!("report {id} (tenancy report)"))
                && human.contains(&format!("month {month} (Europe/Paris)"))
                && human.contains("offer rennes2.collab of rennes2")
                && human.contains(&format!("tenancy {subscription} of unistra"))
                && human.contains("availability in window"),
            "{human}"
        );
        human
    };
    show(&mut provider());
    show(&mut subscriber());
    let shown = |command: &mut Command| {
        json(&assert_ok(&run(
            command.args(["report", "show", &id, "--json"])
        )))
    };
    let held = shown(&mut provider());
    assert_eq!(held["report_id"], id.as_str());
    assert_eq!(
        shown(&mut subscriber()),
        held,
        "both parties see the same report"
    );

    // The provider's admin corrects the closed month; the subscriber reads it after mirroring.
    let out = assert_ok(&run(provider().args([
        "report",
        "adjust",
        "--subscription",
        &subscription,
        "--month",
        &month,
        "--amount",
        "-50",
        "--quantity",
        "-120",
        "--reason",
        "requests counted twice on the 5th",
    ])));
    assert!(
        out.contains(&format!(
            "adjustment {id}/a1 recorded on {id}: -50.000000 EUR"
        )),
        "{out}"
    );
    let adjusted = "#1 adjusted by spiffe://demo.fedmesh/member/rennes2/admin/";
    let human = until(
        "the adjustment in unistra's copy of the report",
        || {
            let mut command = subscriber();
            command.args(["report", "show", &id]);
            command
        },
        |text| text.contains(adjusted),
    );
    assert!(
        human.contains("requests counted twice on the 5th -50.000000 EUR"),
        "{human}"
    );

    // The subscriber contests through its own node; the provider answers.
    let out = assert_ok(&run(subscriber().args([
        "report",
        "contest",
        &id,
        "--reason",
        "our users were on holiday that week",
    ])));
    assert!(
        out.contains(&format!("{id} contested: recorded by the provider")),
        "{out}"
    );
    let contested = "#2 contested by spiffe://demo.fedmesh/member/unistra/";
    let human = show(&mut provider());
    assert!(
        human.contains(contested) && human.contains("our users were on holiday that week"),
        "{human}"
    );
    let out = assert_ok(&run(provider().args([
        "report",
        "answer",
        &id,
        "--contestation",
        "2",
        "--answer",
        "the adjustment of the 5th covers it",
    ])));
    assert!(
        out.contains(&format!("answered contestation #2 of {id}")),
        "{out}"
    );
    let answered = "#3 answered by spiffe://demo.fedmesh/member/rennes2/admin/";
    for (who, command) in [
        ("rennes2", &provider as &dyn Fn() -> Command),
        ("unistra", &subscriber),
    ] {
        let human = until(
            &format!("the whole history on {who}'s node"),
            || {
                let mut command = command();
                command.args(["report", "show", &id]);
                command
            },
            |text| text.contains(answered),
        );
        for line in [adjusted, contested, answered] {
            assert!(human.contains(line), "{who}: {line}\n{human}");
        }
        assert!(
            human.contains("the adjustment of the 5th covers it"),
            "{who}: {human}"
        );
        let history = json(&assert_ok(&run(
            command().args(["report", "show", &id, "--json"])
        )))["history"]
            .clone();
        assert_eq!(history.as_array().unwrap().len(), 3, "{who}: {history}");
    }

    // This month is open: an adjustment of it is refused, naming the month.
    let this_month = month
        .parse::<fedmesh_core::usage::Month>()
        .unwrap()
        .next()
        .to_string();
    let err = assert_fails(&run(provider().args([
        "report",
        "adjust",
        "--subscription",
        &subscription,
        "--month",
        &this_month,
        "--amount",
        "-10",
        "--reason",
        "too early",
    ])));
    assert!(
        err.contains(&format!(
            "month: {this_month} of tenancy {subscription} has no report"
        )),
        "{err}"
    );
    // The subscriber's admin cannot adjust, on its own node nor on the provider's.
    for (node, refusal) in [
        (
            unistra,
            "is provided by rennes2: only its admins adjust its reports",
        ),
        (rennes2, "PermissionDenied"),
    ] {
        let err = assert_fails(&run(as_admin(ca, unistra, node).args([
            "report",
            "adjust",
            "--subscription",
            &subscription,
            "--month",
            &month,
            "--amount",
            "-1000",
            "--reason",
            "we say so",
        ])));
        assert!(err.contains(refusal), "{err}");
    }
    let history = shown(&mut provider())["history"].clone();
    assert_eq!(history.as_array().unwrap().len(), 3, "{history}");
    rt.block_on(running.shutdown()).unwrap();
}
