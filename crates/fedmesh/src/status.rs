//! `fedmesh status`: a member admin's one-glance view of its node — serving or not, the
//! coordinator link, certificate expiry, outbox, tenancies and open incidents with their SLA
//! state. `--json` prints the node's `GetNodeStatusResponse`.

use anyhow::Result;
use fedmesh_proto::pb;
use fedmesh_proto::pb::node_service_client::NodeServiceClient;

use crate::cli::{Connection, call};
use crate::json;
use crate::say;

/// Days left before which `status` warns about the certificate.
pub const CERT_WARNING_DAYS: i64 = 30;

fn counts(list: &[pb::StateCount]) -> String {
    if list.is_empty() {
        return "none".to_owned();
    }
    list.iter()
        .map(|c| format!("{} {}", c.count, c.state.to_lowercase().replace('_', " ")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ago(t: &prost_types::Timestamp, now: i64) -> String {
    let s = (now - t.seconds).max(0);
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        _ => format!("{} h ago", s / 3600),
    }
}

/// The lines of the view, and what needs attention (empty when nothing does), each named.
pub fn render(
    endpoint: &str,
    serving: bool,
    s: &pb::GetNodeStatusResponse,
    now: i64,
) -> (Vec<String>, Vec<String>) {
    let mut attention = Vec::new();
    // Not serving because its database refuses writes: that is what to name.
    if !serving && s.storage_problem.is_empty() {
        attention.push("the node is not serving".to_owned());
    }
    let info = s.info.clone().unwrap_or_default();
    let who = if info.member_id.is_empty() {
        "the coordinator".to_owned()
    } else {
        format!("{}'s node", info.member_id)
    };
    let mut lines = vec![format!(
        "{who} at {endpoint}: {}, fedmesh {}, schema {}, up since {}",
        if serving { "serving" } else { "NOT SERVING" },
        info.software_version,
        info.schema_version,
        crate::times::local(info.started_at.as_ref())
    )];
    if !s.storage_problem.is_empty() {
        attention.push("the database refuses writes".to_owned());
        lines.push(format!(
            "storage        REFUSES WRITES since {} ({}): free space on the data volume or fix the disk; writes resume on their own within storage.probe_interval_ms",
            s.storage_problem_since
                .as_ref()
                .map_or("?".to_owned(), |t| ago(t, now)),
            crate::inert::inert(&s.storage_problem, crate::inert::Lines::One)
        ));
    } else {
        lines.push("storage        accepts writes".to_owned());
    }
    if s.coordinator_configured {
        let line = match (&s.coordinator_last_contact, s.coordinator_reachable) {
            (Some(t), true) => format!("reachable (last answer {})", ago(t, now)),
            (last, _) => {
                attention.push("the coordinator is unreachable".to_owned());
                format!(
                    "UNREACHABLE ({}; last answer {})",
                    if s.coordinator_error.is_empty() {
                        "not yet registered"
                    } else {
                        &s.coordinator_error
                    },
                    last.as_ref().map_or("never".to_owned(), |t| ago(t, now))
                )
            }
        };
        lines.push(format!("coordinator    {line}"));
    } else if !info.member_id.is_empty() {
        lines.push("coordinator    none configured (the node runs alone)".to_owned());
    }
    if let Some(expiry) = &s.certificate_expire_time {
        let days = (expiry.seconds - now).div_euclid(86_400);
        let warning = if days < CERT_WARNING_DAYS {
            attention.push(format!("the node's certificate expires in {days} days"));
            "  — RENEW IT: fedmesh certs issue --force, then SIGHUP"
        } else {
            ""
        };
        lines.push(format!(
            "certificate    expires {} ({days} days){warning}",
            crate::times::local(Some(expiry))
        ));
    }
    if !info.member_id.is_empty() {
        lines.push(format!("journal        revision {}", s.journal_revision));
        let oldest = s.outbox_oldest_age.as_ref().map_or(0, |d| d.seconds);
        if s.outbox_depth > 0 {
            if oldest > 3600 {
                attention.push(format!(
                    "the outbox has waited {} min for other members' nodes",
                    oldest / 60
                ));
            }
            lines.push(format!(
                "outbox         {} waiting for other members' nodes, oldest {} min",
                s.outbox_depth,
                oldest / 60
            ));
        } else {
            lines.push("outbox         empty".to_owned());
        }
        lines.push(format!("offers         {}", s.offer_count));
        lines.push(format!("subscriptions  {}", counts(&s.subscriptions)));
        lines.push(format!("tenancies      {}", counts(&s.tenancies)));
        let breached: i64 = s
            .open_incidents
            .iter()
            .filter(|c| c.state == "breached")
            .map(|c| i64::from(c.count))
            .sum();
        if breached > 0 {
            attention.push(format!("{breached} open incident(s) past an SLA deadline"));
        }
        lines.push(format!("open incidents {}", counts(&s.open_incidents)));
    }
    (lines, attention)
}

/// Runs `fedmesh status`. Exits with an error when something needs attention.
pub async fn status(connect: &Connection, json_out: bool) -> Result<()> {
    let channel = connect.channel()?;
    let endpoint = &connect.endpoint;
    let health = call(
        endpoint,
        tonic_health::pb::health_client::HealthClient::new(channel.clone()).check(
            tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            },
        ),
    )
    .await?;
    let serving =
        health.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    let status = call(
        endpoint,
        NodeServiceClient::new(channel).get_node_status(pb::GetNodeStatusRequest {}),
    )
    .await?;
    if json_out {
        return json::print("fedmesh.v1.GetNodeStatusResponse", &status);
    }
    let (lines, attention) = render(endpoint, serving, &status, fedmesh_grpc::figures::now());
    for line in lines {
        say!("{line}");
    }
    if !attention.is_empty() {
        anyhow::bail!("needs attention: {}", attention.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_pointed_out() {
        let now = 1_800_000_000;
        let healthy = pb::GetNodeStatusResponse {
            info: Some(pb::GetNodeInfoResponse {
                member_id: "unistra".into(),
                ..Default::default()
            }),
            coordinator_configured: true,
            coordinator_reachable: true,
            coordinator_last_contact: Some(prost_types::Timestamp {
                seconds: now - 5,
                nanos: 0,
            }),
            certificate_expire_time: Some(prost_types::Timestamp {
                seconds: now + 200 * 86_400,
                nanos: 0,
            }),
            open_incidents: vec![pb::StateCount {
                state: "on_time".into(),
                count: 2,
            }],
            ..Default::default()
        };
        let (lines, attention) = render("https://x:1", true, &healthy, now);
        assert!(attention.is_empty(), "{lines:?} {attention:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("reachable (last answer 5 s ago)"))
        );
        assert!(lines.iter().any(|l| l.contains("2 on time")));

        let expiring = pb::GetNodeStatusResponse {
            certificate_expire_time: Some(prost_types::Timestamp {
                seconds: now + 10 * 86_400,
                nanos: 0,
            }),
            coordinator_reachable: false,
            coordinator_error: "Unavailable: connection refused".into(),
            ..healthy.clone()
        };
        let (lines, attention) = render("https://x:1", true, &expiring, now);
        assert_eq!(
            attention,
            [
                "the coordinator is unreachable",
                "the node's certificate expires in 10 days"
            ]
        );
        assert!(lines.iter().any(|l| l.contains("RENEW IT")), "{lines:?}");
        assert!(
            lines.iter().any(|l| l.contains("UNREACHABLE (Unavailable")),
            "{lines:?}"
        );

        // A database that refuses writes: named, and not as a mere "not serving".
        let full = pb::GetNodeStatusResponse {
            storage_problem: "database error: No space left on device (os error 28)".into(),
            storage_problem_since: Some(prost_types::Timestamp {
                seconds: now - 120,
                nanos: 0,
            }),
            ..healthy.clone()
        };
        let (lines, attention) = render("https://x:1", false, &full, now);
        assert_eq!(attention, ["the database refuses writes"]);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("REFUSES WRITES since") && l.contains("No space left")),
            "{lines:?}"
        );
    }
}
