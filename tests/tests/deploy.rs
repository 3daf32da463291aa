//! The monitoring files in `deploy/` parse, and every fedmesh metric they query exists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

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
    });
    metrics.observe("s", "m", "OK", 0.1);
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
