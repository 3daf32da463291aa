//! The files in `deploy/` parse and say what a deployment relies on: the monitoring files
//! query metrics that exist; the container build file, compose file, Kubernetes manifests and
//! systemd units pass their structural checks (`tests/python/deploy_check.py`), which are shown
//! to fail on a broken copy; the configurations they ship load with fedmesh's own loaders; and
//! where the tools are installed, `kubectl kustomize` builds the overlays and
//! `systemd-analyze verify` accepts the units. None of it needs a cluster or a container engine.

use std::collections::BTreeSet;
use std::path::Path;

use fedmesh_grpc::metrics::{Metrics, Snapshot};

fn deploy(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Every series name the metrics endpoint can produce.
fn known_series() -> BTreeSet<String> {
    let one = || vec![("x".to_owned(), 1.0)];
    let metrics = Metrics::new(move || Snapshot {
        journal_revision: Some(1),
        outbox_depth: Some(1),
        outbox_oldest_age_seconds: Some(1.0),
        replication_lag: one(),
        nodes: one(),
        open_incidents: one(),
        tenants: one(),
        active_users: one(),
        certificate_expiry: Some(1.0),
        store_writable: Some(1.0),
        heartbeat_allowance_seconds: Some(1.0),
    });
    metrics.observe("/s/m", tonic::Code::Ok, 0.1);
    metrics.rejections().refuse(
        "x",
        1,
        &fedmesh_core::trust::Rejected {
            reason: fedmesh_core::trust::Reason::Invalid,
            detail: "x".into(),
        },
    );
    let mut names = BTreeSet::new();
    for line in metrics.render().lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            match kind {
                "counter" => {
                    names.insert(format!("{name}_total"));
                }
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
                _ => {
                    names.insert(name.to_owned());
                }
            }
        }
    }
    names
}

/// The `fedmesh_*` names a PromQL expression uses.
fn used(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("fedmesh_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_grafana_dashboard_queries_existing_metrics() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&deploy("grafana/fedmesh-dashboard.json")).unwrap();
    let known = known_series();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    let mut queried = BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            for name in used(target["expr"].as_str().unwrap()) {
                assert!(known.contains(&name), "{name} is not exported ({known:?})");
                queried.insert(name);
            }
        }
    }
    for must in [
        "fedmesh_rpc_requests_total",
        "fedmesh_rpc_duration_seconds_bucket",
        "fedmesh_outbox_depth",
        "fedmesh_replication_lag_revisions",
        "fedmesh_incidents_open",
        "fedmesh_certificate_expiry_timestamp_seconds",
    ] {
        assert!(queried.contains(must), "the dashboard does not show {must}");
    }
}

#[test]
fn the_prometheus_files_parse_and_alert_on_existing_metrics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus");
    for file in ["prometheus.yml", "alerts.yml"] {
        let path = dir.join(file);
        let status = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, yaml; yaml.safe_load(open(sys.argv[1]))",
                path.to_str().unwrap(),
            ])
            .status()
            .expect("python3 runs");
        assert!(status.success(), "{} is not valid YAML", path.display());
    }
    let config = deploy("prometheus/prometheus.yml");
    assert!(
        config.contains("job_name: fedmesh-node")
            && config.contains("job_name: fedmesh-coordinator")
    );
    let known = known_series();
    let alerts = deploy("prometheus/alerts.yml");
    let exprs: Vec<&str> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
        .collect();
    assert!(exprs.len() >= 5);
    for expr in exprs {
        for name in used(expr) {
            assert!(known.contains(&name), "alert on unknown metric {name}");
        }
    }
}

/// A missing tool skips its test on a developer's machine, and fails it where
/// `FEDMESH_REQUIRE_DEPLOY_TOOLS` is set (CI), so that CI never passes without the check.
fn skip_or_fail(tool: &str) {
    assert!(
        std::env::var_os("FEDMESH_REQUIRE_DEPLOY_TOOLS").is_none(),
        "{tool} is not installed, and FEDMESH_REQUIRE_DEPLOY_TOOLS is set"
    );
    eprintln!("{tool} is not installed here: checked structurally only");
}

fn deploy_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Runs the structural check `what` over a deploy directory: (passed, output).
fn deploy_check(what: &str, dir: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/deploy_check.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(what)
        .arg(dir)
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A copy of `deploy/` with `file`'s `from` replaced by `to`.
fn broken_copy(file: &str, from: &str, to: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    fedmesh_tests::copy_tree(&deploy_dir(), copy.path());
    let path = copy.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} has no `{from}` to break");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    copy
}

/// Each check passes on `deploy/` and fails, naming the problem, on a copy with one mistake a
/// deployment could not afford.
#[test]
fn the_deployment_files_pass_their_checks_and_the_checks_catch_mistakes() {
    let cases = [
        (
            "dockerfile",
            "container/Dockerfile",
            "USER 65532:65532\n# The configuration",
            "# The configuration",
            "non-root",
        ),
        (
            "dockerfile",
            "container/Dockerfile",
            "distroless/cc-debian12:nonroot AS runtime",
            "distroless/cc-debian12:latest AS runtime",
            "must be pinned",
        ),
        (
            "dockerfile",
            "container/Dockerfile",
            "COPY examples examples\n",
            "",
            "does not COPY examples/",
        ),
        (
            "compose",
            "compose/compose.yaml",
            "read_only: true\n  cap_drop",
            "read_only: false\n  cap_drop",
            "read-only root",
        ),
        (
            "compose",
            "compose/compose.yaml",
            "volume: {subpath: rennes2}",
            "volume: {subpath: unistra}",
            "rennes2 must mount only its own PKI",
        ),
        (
            "kubernetes",
            "kubernetes/base/statefulset.yaml",
            "          livenessProbe:\n            exec:",
            "          livenessProbe:\n            tcpSocket:",
            "livenessProbe must run",
        ),
        (
            "kubernetes",
            "kubernetes/base/kustomization.yaml",
            "  - poddisruptionbudget.yaml\n",
            "",
            "base has no PodDisruptionBudget",
        ),
        (
            "systemd",
            "systemd/fedmesh-node.service",
            "ProtectSystem=strict",
            "ProtectSystem=full",
            "ProtectSystem=strict",
        ),
        (
            "systemd",
            "systemd/fedmesh-coordinator.service",
            "ExecReload=/bin/kill -HUP $MAINPID\n",
            "",
            "reloads certificates with SIGHUP",
        ),
    ];
    for what in ["dockerfile", "compose", "kubernetes", "systemd"] {
        let (passed, output) = deploy_check(what, &deploy_dir());
        assert!(passed, "{what}: {output}");
    }
    for (what, file, from, to, complaint) in cases {
        let copy = broken_copy(file, from, to);
        let (passed, output) = deploy_check(what, copy.path());
        assert!(
            !passed,
            "{what} passed with {file} broken ({from:?} → {to:?})"
        );
        assert!(output.contains(complaint), "{what}: {output}");
    }
}

/// What `fedmesh node` / `fedmesh coordinator` would make of a shipped configuration, with
/// the environment its deployment gives it.
fn load<T: serde::de::DeserializeOwned>(file: &str, prefix: &str, env: &[(&str, &str)]) -> T {
    let path = deploy_dir().join(file);
    fedmesh_core::config::Layers::new()
        .file(
            path.display().to_string(),
            std::fs::read_to_string(&path).unwrap(),
        )
        .env(
            prefix,
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .load()
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn the_shipped_configurations_load_and_validate() {
    let node = fedmesh_node::config::ENV_PREFIX;
    let coordinator = fedmesh_coordinator::config::ENV_PREFIX;
    // compose: one file for every member, the member's values from the environment.
    let config: fedmesh_node::NodeConfig = load(
        "compose/node.toml",
        node,
        &[
            ("FEDMESH_NODE_MEMBER_ID", "rennes2"),
            ("FEDMESH_NODE_ADVERTISE", "https://rennes2:7443"),
            (
                "FEDMESH_NODE_TLS__CERT",
                "/etc/fedmesh/tls/rennes2-node.pem",
            ),
            ("FEDMESH_NODE_TLS__KEY", "/etc/fedmesh/tls/rennes2-node.key"),
        ],
    );
    config.validate().unwrap();
    assert_eq!(config.member_id, "rennes2");
    assert_eq!(config.metrics.listen.port(), 9464);
    let config: fedmesh_coordinator::CoordinatorConfig =
        load("compose/coordinator.toml", coordinator, &[]);
    config.validate().unwrap();
    assert_eq!(config.listen.port(), 7400);
    // Kubernetes: both roles listen on the container's grpc port (7443), metrics on 9464.
    let config: fedmesh_node::NodeConfig = load("kubernetes/overlays/member/node.toml", node, &[]);
    config.validate().unwrap();
    assert_eq!(
        (config.listen.port(), config.metrics.listen.port()),
        (7443, 9464)
    );
    assert_eq!(config.data_dir, Path::new("/var/lib/fedmesh/node"));
    let config: fedmesh_coordinator::CoordinatorConfig = load(
        "kubernetes/overlays/coordinator/coordinator.toml",
        coordinator,
        &[],
    );
    config.validate().unwrap();
    assert_eq!(
        (config.listen.port(), config.metrics.listen.port()),
        (7443, 9464)
    );
    // systemd: the example configurations, at the paths the units give.
    let config: fedmesh_node::NodeConfig = load("examples/node.toml", node, &[]);
    assert_eq!(config.data_dir, Path::new("/var/lib/fedmesh/node"));
    let config: fedmesh_coordinator::CoordinatorConfig =
        load("examples/coordinator.toml", coordinator, &[]);
    assert_eq!(config.data_dir, Path::new("/var/lib/fedmesh/coordinator"));
}

/// `kubectl kustomize` builds both overlays (with stand-in certificate files): every object is
/// in the overlay's namespace and carries its labels, the probes and the Secret are wired.
#[test]
fn the_kustomize_overlays_build_where_kubectl_is_installed() {
    if std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        skip_or_fail("kubectl (scripts/test.sh installs it)");
        return;
    }
    let copy = tempfile::tempdir().unwrap();
    fedmesh_tests::copy_tree(&deploy_dir().join("kubernetes"), copy.path());
    for (overlay, namespace) in [
        ("member", "fedmesh"),
        ("coordinator", "fedmesh-coordinator"),
    ] {
        let pki = copy.path().join("overlays").join(overlay).join("pki");
        std::fs::create_dir_all(&pki).unwrap();
        for file in ["ca.pem", "crl.pem", "node.pem", "node.key"] {
            std::fs::write(pki.join(file), "stand-in\n").unwrap();
        }
        let output = std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(copy.path().join("overlays").join(overlay))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{overlay}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        for kind in [
            "kind: StatefulSet",
            "kind: Service",
            "kind: Secret",
            "kind: ConfigMap",
            "kind: PodDisruptionBudget",
            "kind: NetworkPolicy",
        ] {
            assert!(text.contains(kind), "{overlay}: no {kind}");
        }
        let objects = text.matches("\nkind: ").count() + usize::from(text.starts_with("kind: "));
        assert_eq!(
            text.matches(&format!("namespace: {namespace}\n")).count(),
            objects,
            "{overlay}: every object in {namespace}"
        );
        assert!(text.contains(&format!(
            "app.kubernetes.io/component: {}",
            if overlay == "member" {
                "node"
            } else {
                "coordinator"
            }
        )));
        assert!(text.contains("secretName: fedmesh-tls"));
    }
    // The coordinator runs `fedmesh coordinator` and publishes 7400 and its dashboard.
    let output = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(copy.path().join("overlays/coordinator"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("- coordinator\n        - --config"), "{text}");
    assert!(text.contains("port: 7400") && text.contains("containerPort: 9443"));
}

/// `systemd-analyze verify` accepts both units, where systemd is installed. The binary path is
/// pointed at an existing executable: verify checks that ExecStart can run.
#[test]
fn the_systemd_units_verify_where_systemd_is_installed() {
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .map_or(true, |o| !o.status.success())
    {
        skip_or_fail("systemd-analyze (Debian's systemd package; .ci/run installs it)");
        return;
    }
    let copy = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for unit in ["fedmesh-node.service", "fedmesh-coordinator.service"] {
        let text = std::fs::read_to_string(deploy_dir().join("systemd").join(unit)).unwrap();
        let path = copy.path().join(unit);
        std::fs::write(&path, text.replace("/usr/local/bin/fedmesh", "/bin/true")).unwrap();
        units.push(path);
    }
    let output = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success() && text.trim().is_empty(), "{text}");
}
