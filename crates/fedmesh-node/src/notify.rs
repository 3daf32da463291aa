//! Notifications to the institution's own helpdesk tool: every incident event, tenancy change
//! (a new request, a decision, a suspension...) and maintenance announcement that reaches this
//! node's journal (its own, or mirrored from a provider) is `POST`ed as JSON to a configured
//! webhook (GLPI, iTop, ...), so that a provider need not poll for requests to decide.
//!
//! Delivery follows the journal from a persisted cursor: an event is posted until the
//! helpdesk answers 2xx (with backoff), in order, across restarts; nothing is skipped and the
//! cursor moves only after a success. A webhook configured on a node with a history starts
//! with the events that happen from then on.

use std::sync::Arc;
use std::time::Duration;

use fedmesh_core::MemberId;
use fedmesh_proto::pb;
use fedmesh_store::{Cursor, Store};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::watch;

use crate::config::Notifications;
use crate::registration::Backoff;

const CURSOR: &str = "notifier";

/// Where events are posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    https: bool,
    host: String,
    port: u16,
    path: String,
}

impl Target {
    /// Reads an `http://host[:port]/path` or `https://...` URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("`{url}` is not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| format!("`{url}`: `{port}` is not a port"))?,
            ),
            None => (authority, if https { 443 } else { 80 }),
        };
        if host.is_empty() || host.contains(['@', ' ']) || path.contains([' ', '\r', '\n']) {
            return Err(format!("`{url}` is not a usable URL"));
        }
        Ok(Self {
            https,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

/// Posts this member's incident and maintenance events to its helpdesk.
#[derive(Debug, Clone)]
pub struct Notifier {
    store: Store,
    member: MemberId,
    target: Target,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
    retry_initial: Duration,
    retry_max: Duration,
}

impl Notifier {
    /// The notifier of `member`'s node, or `None` when no webhook is configured.
    pub fn new(
        store: Store,
        member: MemberId,
        config: &Notifications,
    ) -> Result<Option<Self>, String> {
        let Some(url) = &config.webhook_url else {
            return Ok(None);
        };
        let target = Target::parse(url)?;
        let tls = if target.https {
            Some(Arc::new(
                fedmesh_tls::config::public_client_config(&config.ca_file)
                    .map_err(|e| format!("notifications.ca_file: {e}"))?,
            ))
        } else {
            None
        };
        Ok(Some(Self {
            store,
            member,
            target,
            tls,
            timeout: Duration::from_millis(config.timeout_ms),
            retry_initial: Duration::from_millis(config.retry_initial_ms),
            retry_max: Duration::from_millis(config.retry_max_ms),
        }))
    }

    /// Posts events until `stop`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut journal = self.store.watch_journal();
        let journal_id = self.store.journal_id().unwrap_or_default();
        let mut cursor = match self.store.cursor(CURSOR) {
            Ok(Some(c)) if c.journal_id == journal_id => c.revision,
            // First run (or a new database): from now on.
            _ => *journal.borrow(),
        };
        let mut backoff = Backoff::new(self.retry_initial, self.retry_max);
        loop {
            let entries = self.store.journal_entries(cursor, 100).unwrap_or_default();
            for entry in entries {
                let revision = entry.revision;
                if let Some(body) = event_json(&self.member, &entry) {
                    loop {
                        match self.post(body.to_string().as_bytes()).await {
                            Ok(()) => {
                                backoff.reset();
                                break;
                            }
                            Err(error) => {
                                tracing::warn!(%error, revision, "helpdesk notification failed; retrying");
                                tokio::select! {
                                    () = tokio::time::sleep(backoff.next()) => {}
                                    _ = stop.wait_for(|s| *s) => return,
                                }
                            }
                        }
                    }
                }
                cursor = revision;
                let position = Cursor {
                    journal_id: journal_id.clone(),
                    revision,
                };
                if let Err(error) = self.store.set_cursor(CURSOR, &position) {
                    tracing::error!(%error, "cannot record the notification cursor");
                }
            }
            if *journal.borrow() > cursor {
                continue;
            }
            tokio::select! {
                changed = journal.changed() => if changed.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    async fn post(&self, body: &[u8]) -> Result<(), String> {
        let attempt = async {
            let tcp = tokio::net::TcpStream::connect((self.target.host.as_str(), self.target.port))
                .await
                .map_err(|e| {
                    format!(
                        "connecting to {}:{}: {e}",
                        self.target.host, self.target.port
                    )
                })?;
            let status = match &self.tls {
                None => exchange(tcp, &self.target, body).await?,
                Some(config) => {
                    let name = rustls::pki_types::ServerName::try_from(self.target.host.clone())
                        .map_err(|e| format!("{}: {e}", self.target.host))?;
                    let stream = tokio_rustls::TlsConnector::from(config.clone())
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS with {}: {e}", self.target.host))?;
                    exchange(stream, &self.target, body).await?
                }
            };
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(format!("the helpdesk answered HTTP {status}"))
            }
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }
}

/// Sends one HTTP/1.1 `POST` and returns the response's status code.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    target: &Target,
    body: &[u8],
) -> Result<u16, String> {
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: fedmesh/{}\r\nConnection: close\r\n\r\n",
        target.path,
        target.host,
        body.len(),
        fedmesh_grpc::SOFTWARE_VERSION
    );
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(body).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    while !response.windows(2).any(|w| w == b"\r\n") && response.len() < 8192 {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&response);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP response: {}",
                line.lines().next().unwrap_or("")
            )
        })
}

/// An enum value's name without its prefix (`OPENED` for `INCIDENT_EVENT_KIND_OPENED`).
fn word(name: Option<&'static str>, prefix: &str) -> String {
    name.map(|n| n.trim_start_matches(prefix).to_owned())
        .unwrap_or_default()
}

fn time(t: Option<&prost_types::Timestamp>) -> Option<String> {
    t.map(ToString::to_string)
}

/// The JSON posted for a journal entry, if it is an incident, a tenancy or a maintenance
/// window.
pub fn event_json(member: &MemberId, entry: &pb::JournalEntry) -> Option<serde_json::Value> {
    match &entry.payload {
        Some(pb::journal_entry::Payload::Incident(incident)) => {
            let event = incident.events.last()?;
            let status = |s: i32| {
                word(
                    pb::IncidentStatus::try_from(s)
                        .ok()
                        .map(|v| v.as_str_name()),
                    "INCIDENT_STATUS_",
                )
            };
            let priority = word(
                pb::Priority::try_from(incident.priority)
                    .ok()
                    .map(|v| v.as_str_name()),
                "PRIORITY_",
            );
            let clocks: Vec<serde_json::Value> = incident
                .sla_clocks
                .iter()
                .map(|c| {
                    json!({
                        "target": word(pb::SlaTarget::try_from(c.target).ok().map(|v| v.as_str_name()), "SLA_TARGET_"),
                        "deadline": time(c.deadline.as_ref()),
                        "state": word(pb::SlaClockState::try_from(c.state).ok().map(|v| v.as_str_name()), "SLA_CLOCK_STATE_"),
                        "paused": c.paused,
                    })
                })
                .collect();
            let role = if incident.provider_member_id == member.as_str() {
                "provider"
            } else {
                "subscriber"
            };
            Some(json!({
                "type": "fedmesh.incident",
                "member": member.as_str(),
                "role": role,
                "incident_id": incident.incident_id,
                "offer_id": incident.offer_id,
                "provider_member_id": incident.provider_member_id,
                "subscriber_member_id": incident.subscriber_member_id,
                "summary": incident.summary,
                "status": status(incident.status),
                "priority": priority,
                "assignee": incident.assignee,
                "escalation_level": incident.escalation_level,
                "maintenance_id": incident.maintenance_id,
                "sla": clocks,
                "event": {
                    "sequence": event.sequence,
                    "kind": word(pb::IncidentEventKind::try_from(event.kind).ok().map(|v| v.as_str_name()), "INCIDENT_EVENT_KIND_"),
                    "time": time(event.event_time.as_ref()),
                    "actor": event.actor,
                    "from_status": status(event.from_status),
                    "status": status(event.status),
                    "reason": event.reason,
                    "comment": event.comment.as_ref().map(|c| &c.body),
                },
            }))
        }
        Some(pb::journal_entry::Payload::Subscription(tenancy)) => {
            let state = |s: i32| {
                word(
                    pb::SubscriptionState::try_from(s)
                        .ok()
                        .map(|v| v.as_str_name()),
                    "SUBSCRIPTION_STATE_",
                )
            };
            let role = if tenancy.provider_member_id == member.as_str() {
                "provider"
            } else {
                "subscriber"
            };
            let change = tenancy.history.last().map(|c| {
                json!({
                    "from_state": state(c.from_state),
                    "to_state": state(c.to_state),
                    "time": time(c.change_time.as_ref()),
                    "actor": c.actor,
                    "actor_member_id": c.actor_member_id,
                    "reason": c.reason,
                })
            });
            Some(json!({
                "type": "fedmesh.subscription",
                "member": member.as_str(),
                "role": role,
                "subscription_id": tenancy.subscription_id,
                "offer_id": tenancy.offer_id,
                "provider_member_id": tenancy.provider_member_id,
                "subscriber_member_id": tenancy.subscriber_member_id,
                "state": state(tenancy.state),
                "user_count": tenancy.user_count,
                "contact_email": tenancy.contact_email,
                "pilot": tenancy.pilot,
                "tenant_url": tenancy.tenant_url,
                "change": change,
            }))
        }
        Some(pb::journal_entry::Payload::MaintenanceWindow(window)) => {
            let period = window.period.as_ref();
            let last = window.changes.last();
            let change = match last {
                None => "announced",
                Some(_) if fedmesh_core::maintenance::cancelled(window) => "cancelled",
                Some(_) => "rescheduled",
            };
            Some(json!({
                "type": "fedmesh.maintenance",
                "member": member.as_str(),
                "maintenance_id": window.maintenance_id,
                "offer_id": window.offer_id,
                "provider_member_id": window.provider_member_id,
                "start": time(period.and_then(|p| p.start_time.as_ref())),
                "end": time(period.and_then(|p| p.end_time.as_ref())),
                "summary": window.summary,
                "description": window.description,
                "announced_by": window.announced_by,
                "change": change,
                "reason": last.map(|c| c.reason.as_str()).unwrap_or_default(),
                "changed_by": last.map(|c| c.changed_by.as_str()).unwrap_or_default(),
                "previous_start": time(last.and_then(|c| c.previous_period.as_ref()).and_then(|p| p.start_time.as_ref())),
                "previous_end": time(last.and_then(|c| c.previous_period.as_ref()).and_then(|p| p.end_time.as_ref())),
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_parsed_or_refused() {
        assert_eq!(
            Target::parse("https://glpi.unistra.example/front/webhook.php?x=1"),
            Ok(Target {
                https: true,
                host: "glpi.unistra.example".into(),
                port: 443,
                path: "/front/webhook.php?x=1".into(),
            })
        );
        assert_eq!(
            Target::parse("http://127.0.0.1:8080").map(|t| (t.port, t.path)),
            Ok((8080, "/".into()))
        );
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("http://x:port/").is_err());
        assert!(Target::parse("http:///path").is_err());
    }
}
