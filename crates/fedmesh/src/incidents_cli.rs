//! `fedmesh incident ...` and `fedmesh maintenance ...`: a member's admin on its own node —
//! the subscriber's level-1 desk opening and following incidents (its node talks to the
//! provider's), the provider's admins working them and announcing maintenance.
//!
//! Every write carries a request id (a fresh random one unless `--request-id` is given), so a
//! command retried with the same id is applied once.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Subcommand, ValueEnum};
use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_proto::pb;
use fedmesh_proto::pb::incident_service_client::IncidentServiceClient;
use fedmesh_proto::pb::offer_service_client::OfferServiceClient;

use crate::admin::new_request_id;
use crate::cli::{CallFailed, Connection, call};
use crate::inert::{Lines, inert};
use crate::json;
use crate::say;

/// An incident priority on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PriorityArg {
    /// Critical: the service is unavailable for a whole tenant.
    P1,
    /// Major: a main function is degraded with no workaround.
    P2,
    /// Minor: a function is degraded and a workaround exists.
    P3,
    /// Low: question, cosmetic issue or planned request.
    P4,
}

impl PriorityArg {
    fn proto(self) -> pb::Priority {
        match self {
            Self::P1 => pb::Priority::P1,
            Self::P2 => pb::Priority::P2,
            Self::P3 => pb::Priority::P3,
            Self::P4 => pb::Priority::P4,
        }
    }
}

/// What is asked.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TypeArg {
    /// Something is broken.
    Incident,
    /// A request for something the service offers.
    ServiceRequest,
    /// A request to change the tenant's set-up.
    ChangeRequest,
}

/// The statuses the provider sets.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    /// Being worked on.
    InProgress,
    /// Waiting for the subscriber's answer (the resolve clock pauses).
    Waiting,
    /// Resolved (give --resolution).
    Resolved,
}

/// `fedmesh incident ...`.
#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Open an incident on an offer your member is a tenant of (subscriber's desk).
    Open {
        /// The offer.
        #[arg(long)]
        offer: String,
        /// The priority, which sets the deadlines.
        #[arg(long, value_enum)]
        priority: PriorityArg,
        /// One line.
        #[arg(long)]
        summary: String,
        /// A file with the full description.
        #[arg(long)]
        description_file: Option<PathBuf>,
        /// Fault, service request or change request.
        #[arg(long = "type", value_enum, default_value = "incident")]
        kind: TypeArg,
        /// Reuse this request id (to retry a command whose answer was lost).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// List incidents (the provider's on its offers, the subscriber's own).
    List {
        /// Only this offer.
        #[arg(long)]
        offer: Option<String>,
        /// Only open ones (not resolved or closed).
        #[arg(long)]
        open: bool,
    },
    /// Show an incident: status, SLA clocks, comments and history.
    Show {
        /// The incident.
        incident_id: String,
    },
    /// Acknowledge (provider).
    Ack {
        /// The incident.
        incident_id: String,
        /// A first comment.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Assign to a person or team (provider).
    Assign {
        /// The incident.
        incident_id: String,
        /// Who handles it.
        #[arg(long)]
        to: String,
    },
    /// Set the status (provider): in-progress, waiting (on the subscriber), resolved.
    Status {
        /// The incident.
        incident_id: String,
        /// The new status.
        #[arg(value_enum)]
        status: StatusArg,
        /// A comment (the question, when waiting).
        #[arg(long, default_value = "")]
        comment: String,
        /// What was done (required to resolve).
        #[arg(long, default_value = "")]
        resolution: String,
    },
    /// Resolve (provider): the same as `status resolved`.
    Resolve {
        /// The incident.
        incident_id: String,
        /// What was done.
        #[arg(long)]
        resolution: String,
    },
    /// Comment (either side; --internal: the provider's note, hidden from the subscriber).
    Comment {
        /// The incident.
        incident_id: String,
        /// The text.
        #[arg(long)]
        body: String,
        /// Hidden from the subscriber (provider only).
        #[arg(long)]
        internal: bool,
    },
    /// Answer the provider's question (subscriber): back to in-progress.
    Answer {
        /// The incident.
        incident_id: String,
        /// The answer.
        #[arg(long)]
        body: String,
    },
    /// Confirm the resolution, or withdraw the incident (subscriber).
    Close {
        /// The incident.
        incident_id: String,
        /// A comment.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Reopen a resolved or closed incident within the provider's delay (subscriber).
    Reopen {
        /// The incident.
        incident_id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Change the priority (either side).
    Priority {
        /// The incident.
        incident_id: String,
        /// The new priority.
        #[arg(value_enum)]
        priority: PriorityArg,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Print the incident's events as they happen, until Ctrl-C.
    Watch {
        /// The incident.
        incident_id: String,
    },
}

/// `fedmesh maintenance ...`.
#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// Announce a maintenance window on one of your offers (provider): every tenant's node
    /// receives it, and availability excludes it.
    Announce {
        /// The offer.
        #[arg(long)]
        offer: String,
        /// Start, RFC 3339 (2026-12-05T07:00:00+01:00).
        #[arg(long)]
        start: String,
        /// End, RFC 3339.
        #[arg(long)]
        end: String,
        /// One line shown to tenants.
        #[arg(long)]
        summary: String,
        /// The expected impact (what tenants will notice).
        #[arg(long, default_value = "")]
        impact: String,
        /// Reuse this request id.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Move a window of one of your offers (provider). A window to come may move to any
    /// future period; one in progress keeps its start and ends from now on. Every tenant's
    /// node receives the change.
    Reschedule {
        /// The window (MW-...).
        maintenance_id: String,
        /// New start, RFC 3339; by default the current one (a window in progress keeps it).
        #[arg(long)]
        start: Option<String>,
        /// New end, RFC 3339, or `now` to end a window in progress now.
        #[arg(long)]
        end: String,
        /// Why, for the tenants (one line).
        #[arg(long, default_value = "")]
        reason: String,
        /// Reuse this request id.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Cancel a window of one of your offers that has not started (provider); it then
    /// excludes nothing from availability.
    Cancel {
        /// The window (MW-...).
        maintenance_id: String,
        /// Why, for the tenants (one line).
        #[arg(long, default_value = "")]
        reason: String,
        /// Reuse this request id.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// List the maintenance windows this node knows: of your offers, and announced on offers
    /// your member is a tenant of.
    List {
        /// Only this offer.
        #[arg(long)]
        offer: Option<String>,
    },
}

fn word(name: Option<&'static str>, prefix: &str) -> String {
    name.map(|n| n.trim_start_matches(prefix).to_lowercase())
        .unwrap_or_default()
}

fn status_word(status: i32) -> String {
    word(
        pb::IncidentStatus::try_from(status)
            .ok()
            .map(|s| s.as_str_name()),
        "INCIDENT_STATUS_",
    )
}

fn priority_word(priority: i32) -> String {
    word(
        pb::Priority::try_from(priority)
            .ok()
            .map(|p| p.as_str_name()),
        "PRIORITY_",
    )
    .to_uppercase()
}

fn time(t: Option<&prost_types::Timestamp>) -> String {
    crate::times::local(t)
}

fn duration(d: Option<&prost_types::Duration>) -> String {
    let s = d.map_or(0, |d| d.seconds);
    format!("{}h{:02}", s / 3600, s % 3600 / 60)
}

/// One line per clock: target, state, deadline, time left.
fn clock_line(c: &pb::SlaClock) -> String {
    let target = word(
        pb::SlaTarget::try_from(c.target)
            .ok()
            .map(|t| t.as_str_name()),
        "SLA_TARGET_",
    );
    let state = word(
        pb::SlaClockState::try_from(c.state)
            .ok()
            .map(|s| s.as_str_name()),
        "SLA_CLOCK_STATE_",
    )
    .replace('_', " ");
    let how = if c.stop_time.is_some() {
        format!("stopped {}", time(c.stop_time.as_ref()))
    } else if c.paused {
        "paused (waiting on the subscriber)".to_owned()
    } else {
        format!("{} left", duration(c.remaining.as_ref()))
    };
    // Time to the deadline only while the clock runs.
    let due = match &c.deadline {
        Some(d) if c.stop_time.is_none() && !c.paused => {
            format!(
                " ({})",
                crate::times::from_now(d, fedmesh_grpc::figures::now())
            )
        }
        _ => String::new(),
    };
    format!(
        "{target:<12} {state:<9} deadline {}{due}  used {} of {}  {how}",
        time(c.deadline.as_ref()),
        duration(c.elapsed.as_ref()),
        duration(c.allowed.as_ref()),
    )
}

/// The side `own` (this node's member) is on: the provider, or the subscriber of whom.
fn side(i: &pb::Incident, own: &str) -> String {
    if i.provider_member_id == own {
        format!("provider (for {})", i.subscriber_member_id)
    } else {
        format!("subscriber (of {})", i.provider_member_id)
    }
}

/// One line of an incident; with `own` (this node's member), the side it is on.
fn summary_line(i: &pb::Incident, own: Option<&str>) -> String {
    if i.queued {
        let side = own.map_or(String::new(), |own| format!("{:<26} ", side(i, own)));
        return format!(
            "{:<36} {:<3} {:<22} {:<18} {side}opened {}, waiting for {}'s node  {}",
            "(queued)",
            priority_word(i.priority),
            "queued",
            i.offer_id,
            time(i.create_time.as_ref()),
            i.provider_member_id,
            inert(&i.summary, Lines::One)
        );
    }
    let sla = i
        .sla_clocks
        .iter()
        .map(|c| {
            word(
                pb::SlaClockState::try_from(c.state)
                    .ok()
                    .map(|s| s.as_str_name()),
                "SLA_CLOCK_STATE_",
            )
        })
        .collect::<Vec<_>>()
        .join("/");
    let escalated = if i.escalation_level > 0 {
        format!(" escalated×{}", i.escalation_level)
    } else {
        String::new()
    };
    let side = own.map_or(String::new(), |own| format!("{:<26} ", side(i, own)));
    format!(
        "{:<36} {:<3} {:<22} {:<18} {side}sla {sla}{escalated}  {}",
        i.incident_id,
        priority_word(i.priority),
        status_word(i.status),
        i.offer_id,
        inert(&i.summary, Lines::One)
    )
}

fn print_incident(i: &pb::Incident) {
    // One line each: a line break kept in a stored summary or reason could fake another line.
    say!("{}  {}", i.incident_id, inert(&i.summary, Lines::One));
    say!(
        "  offer         {} (provider {}, subscriber {})",
        i.offer_id,
        i.provider_member_id,
        i.subscriber_member_id
    );
    say!(
        "  status        {}  priority {}  escalation level {}",
        status_word(i.status),
        priority_word(i.priority),
        i.escalation_level
    );
    if !i.assignee.is_empty() {
        say!("  assignee      {}", inert(&i.assignee, Lines::One));
    }
    if !i.maintenance_id.is_empty() {
        say!(
            "  opened during maintenance {} of the offer",
            i.maintenance_id
        );
    }
    for c in &i.sla_clocks {
        say!("  {}", clock_line(c));
    }
    if !i.description.is_empty() {
        say!("  description   {}", i.description);
    }
    if !i.resolution.is_empty() {
        say!("  resolution    {}", i.resolution);
    }
    for e in &i.events {
        let kind = word(
            pb::IncidentEventKind::try_from(e.kind)
                .ok()
                .map(|k| k.as_str_name()),
            "INCIDENT_EVENT_KIND_",
        );
        let comment = e
            .comment
            .as_ref()
            .map(|c| {
                let internal = if c.internal { " (internal)" } else { "" };
                format!(": {}{internal}", c.body)
            })
            .unwrap_or_default();
        let reason = if e.reason.is_empty() {
            String::new()
        } else {
            format!(" — {}", inert(&e.reason, Lines::One))
        };
        say!(
            "  {:>3} {} {:<16} {}{reason}{comment}",
            e.sequence,
            time(e.event_time.as_ref()),
            kind,
            e.actor
        );
    }
}

/// Prints what a write returned, and says when it waits in the outbox.
fn print_written(incident: Option<pb::Incident>, queued: bool, json_out: bool) -> Result<()> {
    let incident = incident.unwrap_or_default();
    if json_out {
        return json::print("fedmesh.v1.Incident", &incident);
    }
    if queued {
        say!(
            "queued: {}'s node is unreachable; your node delivers the request when it is back",
            incident.provider_member_id
        );
        return Ok(());
    }
    say!("{}", summary_line(&incident, None));
    Ok(())
}

/// Runs an incident command.
pub async fn incident(
    connect: &Connection,
    command: IncidentCommand,
    json_out: bool,
) -> Result<()> {
    let mut client: IncidentServiceClient<Channel> = IncidentServiceClient::new(connect.channel()?);
    let endpoint = &connect.endpoint;
    match command {
        IncidentCommand::Open {
            offer,
            priority,
            summary,
            description_file,
            kind,
            request_id,
        } => {
            let description = match description_file {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => String::new(),
            };
            let request_id = match request_id {
                Some(id) => id,
                None => new_request_id()?,
            };
            let r#type = match kind {
                TypeArg::Incident => pb::IncidentType::Incident,
                TypeArg::ServiceRequest => pb::IncidentType::ServiceRequest,
                TypeArg::ChangeRequest => pb::IncidentType::ChangeRequest,
            };
            let response = call(
                endpoint,
                client.open_incident(pb::OpenIncidentRequest {
                    request_id: request_id.clone(),
                    offer_id: offer,
                    priority: priority.proto() as i32,
                    summary,
                    description,
                    r#type: r#type as i32,
                    ..Default::default()
                }),
            )
            .await?;
            if !json_out {
                say!("request id {request_id} (retry with --request-id {request_id})");
            }
            print_written(response.incident, response.queued, json_out)?;
        }
        IncidentCommand::List { offer, open } => {
            let mut request = pb::ListIncidentsRequest {
                page_size: 500,
                offer_id: offer.unwrap_or_default(),
                ..Default::default()
            };
            if open {
                request.statuses = [
                    pb::IncidentStatus::New,
                    pb::IncidentStatus::Acknowledged,
                    pb::IncidentStatus::InProgress,
                    pb::IncidentStatus::WaitingOnSubscriber,
                ]
                .iter()
                .map(|s| *s as i32)
                .collect();
            }
            let mut incidents = Vec::new();
            loop {
                let page = call(endpoint, client.list_incidents(request.clone())).await?;
                incidents.extend(page.incidents);
                if page.next_page_token.is_empty() {
                    break;
                }
                request.page_token = page.next_page_token;
            }
            if json_out {
                return json::print(
                    "fedmesh.v1.ListIncidentsResponse",
                    &pb::ListIncidentsResponse {
                        incidents,
                        next_page_token: String::new(),
                    },
                );
            }
            if incidents.is_empty() {
                say!("no incidents");
                return Ok(());
            }
            // Which side this node's member is on, for each incident.
            let own = call(
                endpoint,
                pb::node_service_client::NodeServiceClient::new(connect.channel()?)
                    .who_am_i(pb::WhoAmIRequest {}),
            )
            .await?
            .server_member_id;
            say!(
                "{:<36} {:<3} {:<22} {:<18} {:<26} SLA / SUMMARY",
                "INCIDENT",
                "PRI",
                "STATUS",
                "OFFER",
                "YOUR SIDE"
            );
            for i in &incidents {
                say!("{}", summary_line(i, Some(&own)));
            }
        }
        IncidentCommand::Show { incident_id } => {
            let incident = call(
                endpoint,
                client.get_incident(pb::GetIncidentRequest { incident_id }),
            )
            .await?
            .incident
            .unwrap_or_default();
            if json_out {
                return json::print("fedmesh.v1.Incident", &incident);
            }
            print_incident(&incident);
        }
        IncidentCommand::Ack {
            incident_id,
            comment,
        } => {
            let r = call(
                endpoint,
                client.acknowledge_incident(pb::AcknowledgeIncidentRequest {
                    request_id: new_request_id()?,
                    incident_id,
                    comment,
                }),
            )
            .await?;
            print_written(r.incident, false, json_out)?;
        }
        IncidentCommand::Assign { incident_id, to } => {
            let r = call(
                endpoint,
                client.assign_incident(pb::AssignIncidentRequest {
                    request_id: new_request_id()?,
                    incident_id,
                    assignee: to,
                }),
            )
            .await?;
            print_written(r.incident, false, json_out)?;
        }
        IncidentCommand::Status {
            incident_id,
            status,
            comment,
            resolution,
        } => {
            let status = match status {
                StatusArg::InProgress => pb::IncidentStatus::InProgress,
                StatusArg::Waiting => pb::IncidentStatus::WaitingOnSubscriber,
                StatusArg::Resolved => pb::IncidentStatus::Resolved,
            };
            let r = call(
                endpoint,
                client.set_incident_status(pb::SetIncidentStatusRequest {
                    request_id: new_request_id()?,
                    incident_id,
                    status: status as i32,
                    comment,
                    resolution,
                }),
            )
            .await?;
            print_written(r.incident, false, json_out)?;
        }
        IncidentCommand::Resolve {
            incident_id,
            resolution,
        } => {
            let r = call(
                endpoint,
                client.set_incident_status(pb::SetIncidentStatusRequest {
                    request_id: new_request_id()?,
                    incident_id,
                    status: pb::IncidentStatus::Resolved as i32,
                    comment: String::new(),
                    resolution,
                }),
            )
            .await?;
            print_written(r.incident, false, json_out)?;
        }
        IncidentCommand::Comment {
            incident_id,
            body,
            internal,
        } => {
            let r = call(
                endpoint,
                client.comment_incident(pb::CommentIncidentRequest {
                    request_id: new_request_id()?,
                    incident_id,
                    body,
                    internal,
                }),
            )
            .await?;
            print_written(r.incident, r.queued, json_out)?;
        }
        IncidentCommand::Answer { incident_id, body } => {
            let r = call(
                endpoint,
                client.answer_incident(pb::AnswerIncidentRequest {
                    request_id: new_request_id()?,
                    incident_id,
                    body,
                }),
            )
            .await?;
            print_written(r.incident, r.queued, json_out)?;
        }
        IncidentCommand::Close {
            incident_id,
            comment,
        } => {
            let r = call(
                endpoint,
                client.close_incident(pb::CloseIncidentRequest {
                    request_id: new_request_id()?,
                    incident_id,
                    comment,
                }),
            )
            .await?;
            print_written(r.incident, r.queued, json_out)?;
        }
        IncidentCommand::Reopen {
            incident_id,
            reason,
        } => {
            let r = call(
                endpoint,
                client.reopen_incident(pb::ReopenIncidentRequest {
                    request_id: new_request_id()?,
                    incident_id,
                    reason,
                }),
            )
            .await?;
            print_written(r.incident, r.queued, json_out)?;
        }
        IncidentCommand::Priority {
            incident_id,
            priority,
            reason,
        } => {
            let r = call(
                endpoint,
                client.change_priority(pb::ChangePriorityRequest {
                    request_id: new_request_id()?,
                    incident_id,
                    priority: priority.proto() as i32,
                    reason,
                }),
            )
            .await?;
            print_written(r.incident, r.queued, json_out)?;
        }
        IncidentCommand::Watch { incident_id } => {
            let mut stream = call(
                endpoint,
                client.watch_incident(pb::WatchIncidentRequest {
                    incident_id,
                    since_sequence: 0,
                }),
            )
            .await?;
            loop {
                match stream.message().await {
                    Ok(Some(message)) => {
                        let Some(e) = message.event else { continue };
                        if json_out {
                            say!(
                                "{}",
                                crate::json::line(&json::to_json("fedmesh.v1.IncidentEvent", &e)?)?
                            );
                            continue;
                        }
                        let kind = word(
                            pb::IncidentEventKind::try_from(e.kind)
                                .ok()
                                .map(|k| k.as_str_name()),
                            "INCIDENT_EVENT_KIND_",
                        );
                        say!(
                            "{:>3} {} {:<16} {:<22} {}",
                            e.sequence,
                            time(e.event_time.as_ref()),
                            kind,
                            status_word(e.status),
                            e.comment.map(|c| c.body).unwrap_or_default()
                        );
                    }
                    Ok(None) => anyhow::bail!("the node ended the watch"),
                    Err(status) => {
                        return Err(CallFailed {
                            endpoint: endpoint.clone(),
                            status,
                        }
                        .into());
                    }
                }
            }
        }
    }
    Ok(())
}

fn timestamp(flag: &str, text: &str) -> Result<prost_types::Timestamp> {
    let at: jiff::Timestamp = text.parse().with_context(|| {
        format!("--{flag}: `{text}` is not an RFC 3339 time such as 2026-12-05T07:00:00+01:00")
    })?;
    Ok(prost_types::Timestamp {
        seconds: at.as_second(),
        nanos: 0,
    })
}

/// The start of maintenance window `id` as this node has it.
async fn current_start(
    client: &mut OfferServiceClient<Channel>,
    endpoint: &str,
    id: &str,
) -> Result<prost_types::Timestamp> {
    let mut request = pb::ListMaintenanceRequest {
        page_size: 500,
        ..Default::default()
    };
    loop {
        let page = call(endpoint, client.list_maintenance(request.clone())).await?;
        if let Some(window) = page
            .maintenance_windows
            .iter()
            .find(|w| w.maintenance_id == id)
        {
            return window
                .period
                .as_ref()
                .and_then(|p| p.start_time)
                .ok_or_else(|| anyhow::anyhow!("maintenance {id} has no start"));
        }
        if page.next_page_token.is_empty() {
            anyhow::bail!("maintenance {id} not found on this node");
        }
        request.page_token = page.next_page_token;
    }
}

/// Runs a maintenance command.
pub async fn maintenance(
    connect: &Connection,
    command: MaintenanceCommand,
    json_out: bool,
) -> Result<()> {
    let mut client = OfferServiceClient::new(connect.channel()?);
    let endpoint = &connect.endpoint;
    match command {
        MaintenanceCommand::Announce {
            offer,
            start,
            end,
            summary,
            impact,
            request_id,
        } => {
            let request_id = match request_id {
                Some(id) => id,
                None => new_request_id()?,
            };
            let window = call(
                endpoint,
                client.announce_maintenance(pb::AnnounceMaintenanceRequest {
                    request_id,
                    offer_id: offer,
                    period: Some(pb::Period {
                        start_time: Some(timestamp("start", &start)?),
                        end_time: Some(timestamp("end", &end)?),
                    }),
                    summary,
                    description: impact,
                }),
            )
            .await?
            .maintenance_window
            .unwrap_or_default();
            if json_out {
                return json::print("fedmesh.v1.MaintenanceWindow", &window);
            }
            say!(
                "announced {} on {}: every tenant's node receives it",
                window.maintenance_id,
                window.offer_id
            );
        }
        MaintenanceCommand::Reschedule {
            maintenance_id,
            start,
            end,
            reason,
            request_id,
        } => {
            let start = match start {
                Some(start) => timestamp("start", &start)?,
                None => current_start(&mut client, endpoint, &maintenance_id).await?,
            };
            let end = if end.eq_ignore_ascii_case("now") {
                prost_types::Timestamp {
                    seconds: jiff::Timestamp::now().as_second(),
                    nanos: 0,
                }
            } else {
                timestamp("end", &end)?
            };
            let window = call(
                endpoint,
                client.reschedule_maintenance(pb::RescheduleMaintenanceRequest {
                    request_id: request_id.map_or_else(new_request_id, Ok)?,
                    maintenance_id,
                    period: Some(pb::Period {
                        start_time: Some(start),
                        end_time: Some(end),
                    }),
                    reason,
                }),
            )
            .await?
            .maintenance_window
            .unwrap_or_default();
            if json_out {
                return json::print("fedmesh.v1.MaintenanceWindow", &window);
            }
            let period = window.period.as_ref();
            say!(
                "rescheduled {} to {} → {}: every tenant's node receives it",
                window.maintenance_id,
                time(period.and_then(|p| p.start_time.as_ref())),
                time(period.and_then(|p| p.end_time.as_ref())),
            );
        }
        MaintenanceCommand::Cancel {
            maintenance_id,
            reason,
            request_id,
        } => {
            let window = call(
                endpoint,
                client.cancel_maintenance(pb::CancelMaintenanceRequest {
                    request_id: request_id.map_or_else(new_request_id, Ok)?,
                    maintenance_id,
                    reason,
                }),
            )
            .await?
            .maintenance_window
            .unwrap_or_default();
            if json_out {
                return json::print("fedmesh.v1.MaintenanceWindow", &window);
            }
            say!(
                "cancelled {}: it excludes nothing, and every tenant's node receives it",
                window.maintenance_id
            );
        }
        MaintenanceCommand::List { offer } => {
            let mut request = pb::ListMaintenanceRequest {
                page_size: 500,
                offer_id: offer.unwrap_or_default(),
                ..Default::default()
            };
            let mut windows = Vec::new();
            loop {
                let page = call(endpoint, client.list_maintenance(request.clone())).await?;
                windows.extend(page.maintenance_windows);
                if page.next_page_token.is_empty() {
                    break;
                }
                request.page_token = page.next_page_token;
            }
            if json_out {
                return json::print(
                    "fedmesh.v1.ListMaintenanceResponse",
                    &pb::ListMaintenanceResponse {
                        maintenance_windows: windows,
                        next_page_token: String::new(),
                    },
                );
            }
            if windows.is_empty() {
                say!("no maintenance announced");
            }
            for w in &windows {
                let period = w.period.as_ref();
                let status = match (fedmesh_core::maintenance::cancelled(w), w.changes.len()) {
                    (true, _) => "cancelled",
                    (false, 0) => "scheduled",
                    (false, _) => "rescheduled",
                };
                say!(
                    "{:<32} {:<18} {:<11} {} → {}  {}",
                    w.maintenance_id,
                    w.offer_id,
                    status,
                    time(period.and_then(|p| p.start_time.as_ref())),
                    time(period.and_then(|p| p.end_time.as_ref())),
                    inert(&w.summary, Lines::One)
                );
                for change in &w.changes {
                    let previous = change.previous_period.as_ref();
                    say!(
                        "{:<32} {} {} (was {} → {}){}",
                        "",
                        time(change.change_time.as_ref()),
                        if change.period.is_some() {
                            "moved"
                        } else {
                            "cancelled"
                        },
                        time(previous.and_then(|p| p.start_time.as_ref())),
                        time(previous.and_then(|p| p.end_time.as_ref())),
                        if change.reason.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", inert(&change.reason, Lines::One))
                        }
                    );
                }
            }
        }
    }
    Ok(())
}
