//! Incidents between institutions: who may do what in which status, how an incident is folded
//! from its events, and its SLA clocks in the provider's service time.
//!
//! An incident is opened by a subscriber member against an offer it is a tenant of, and lives
//! on the provider's node; each change is an event appended to it. Its two clocks — time to
//! acknowledge and time to resolve — are recomputed from the whole event history every time
//! they are shown, never kept as running counters, which is what avoids the classic pitfalls:
//! - a priority change swaps the allowance, not the elapsed time (pauses are not lost);
//! - waiting on the subscriber is measured in the same service time as the deadline, so a
//!   pause over a weekend gives no credit, and the deadline after a pause is exactly the old
//!   one moved by the paused service time;
//! - breach and escalation are decided in service time, also outside 24/7 calendars.

use fedmesh_proto::pb;

use crate::calendar::Calendar;
use crate::offer::FieldError;
use crate::span::{Secs, Span};
use crate::text::Lines;

/// Longest summary.
pub const MAX_SUMMARY: usize = 200;
/// Longest description, comment or resolution.
pub const MAX_TEXT: usize = 16 * 1024;
/// Longest assignee name.
pub const MAX_ASSIGNEE: usize = 200;
/// The largest an incident's history may grow (encoded as a response carries it, with its
/// comment list, in bytes) by what only makes it longer:
/// comments, answers, assignments, status and priority changes, reopening. Past it the
/// incident is full ([`has_room`]). A node lowers it to its journal-entry limit less
/// [`ENDING_ROOM`] (every write journals the whole incident).
pub const MAX_HISTORY_BYTES: usize = 1024 * 1024;
/// The longest text (comment, resolution) of an action on a full incident.
pub const MAX_TEXT_WHEN_FULL: usize = 1024;
/// What a node keeps beyond the history limit for the actions a full incident still takes —
/// acknowledging, resolving and closing, each at most once from there and with short texts,
/// and the node's clock alerts — about a dozen events and 4 KiB of text, counted twice as a
/// response carries them (in the events and in the comment list): under 13 KiB.
pub const ENDING_ROOM: usize = 16 * 1024;

/// Which side of the incident acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The provider's admins (its level-2 support).
    Provider,
    /// The subscriber member (its level-1 desk), through its node.
    Subscriber,
    /// The provider's node itself (SLA clock alerts).
    System,
}

/// A change asked of an incident.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The provider takes the incident in.
    Acknowledge {
        /// An optional first comment.
        comment: String,
    },
    /// The provider names who handles it.
    Assign {
        /// The person or team.
        assignee: String,
    },
    /// The provider moves the status (IN_PROGRESS, WAITING_ON_SUBSCRIBER, RESOLVED).
    SetStatus {
        /// The new status.
        status: pb::IncidentStatus,
        /// An optional comment (the question, when waiting on the subscriber).
        comment: String,
        /// What was done; required to resolve.
        resolution: String,
    },
    /// Either party comments; only the provider's comments may be internal.
    Comment {
        /// The text.
        body: String,
        /// Hidden from the subscriber.
        internal: bool,
    },
    /// The subscriber answers a question: back to IN_PROGRESS.
    Answer {
        /// The answer.
        body: String,
    },
    /// The subscriber confirms the resolution (or withdraws the incident).
    Close {
        /// An optional comment.
        comment: String,
    },
    /// The subscriber reopens a resolved or closed incident, within the reopen delay.
    Reopen {
        /// Why.
        reason: String,
    },
    /// Either party changes the priority.
    ChangePriority {
        /// The new priority.
        priority: pb::Priority,
        /// Why.
        reason: String,
    },
    /// The provider's node records that a clock is at risk or breached; a breach raises the
    /// escalation level.
    ClockAlert {
        /// Which clock.
        target: pb::SlaTarget,
        /// Breached (else at risk).
        breached: bool,
    },
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A field is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field path.
        field: String,
        /// The rule broken.
        message: String,
    },
    /// The incident's status does not allow it.
    #[error("{0}")]
    Status(String),
    /// This party may not do it.
    #[error("{0}")]
    NotAllowed(String),
}

fn invalid(field: &str, message: impl Into<String>) -> Refused {
    Refused::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

impl From<FieldError> for Refused {
    fn from(error: FieldError) -> Self {
        Refused::Invalid {
            field: error.field,
            message: error.message,
        }
    }
}

/// A text of at most `max` bytes that the other party will read: inert on its screen.
fn text(field: &str, value: &str, max: usize, required: bool, lines: Lines) -> Result<(), Refused> {
    if required && value.trim().is_empty() {
        return Err(invalid(field, "required"));
    }
    if value.len() > max {
        return Err(invalid(field, format!("at most {max} bytes")));
    }
    Ok(crate::text::check(field, value, lines)?)
}

fn status_name(status: i32) -> &'static str {
    pb::IncidentStatus::try_from(status)
        .map(|s| s.as_str_name())
        .unwrap_or("INCIDENT_STATUS_UNSPECIFIED")
}

fn ts(seconds: Secs) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

fn secs(t: Option<&prost_types::Timestamp>) -> Secs {
    t.map_or(0, |t| t.seconds)
}

/// Checks what a subscriber sends to open an incident.
pub fn check_open(request: &pb::OpenIncidentRequest) -> Result<(), Refused> {
    text("summary", &request.summary, MAX_SUMMARY, true, Lines::One)?;
    text(
        "description",
        &request.description,
        MAX_TEXT,
        false,
        Lines::Many,
    )?;
    match pb::Priority::try_from(request.priority) {
        Ok(pb::Priority::Unspecified) | Err(_) => {
            return Err(invalid("priority", "required: P1 to P4"));
        }
        Ok(_) => {}
    }
    if pb::IncidentType::try_from(request.r#type).is_err() {
        return Err(invalid("type", "unknown type"));
    }
    Ok(())
}

/// An incident id: sortable by opening time across the federation, unique per provider by
/// its journal revision, e.g. `INC-20261128-153001-rennes2-42`.
pub fn incident_id(provider: &str, opened: Secs, revision: u64) -> String {
    let day = opened.div_euclid(86_400);
    let (y, m, d) = crate::calendar::civil_from_days(day);
    let s = opened.rem_euclid(86_400);
    format!(
        "INC-{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{provider}-{revision}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// The new incident of an open request, with its OPENED event. `maintenance_id` names a
/// maintenance window of the offer in progress, if any.
pub fn open(
    request: &pb::OpenIncidentRequest,
    subscription: &pb::Subscription,
    id: String,
    reporter: &str,
    now: Secs,
    maintenance_id: Option<String>,
) -> pb::Incident {
    let r#type = match pb::IncidentType::try_from(request.r#type) {
        Ok(pb::IncidentType::Unspecified) | Err(_) => pb::IncidentType::Incident as i32,
        Ok(t) => t as i32,
    };
    let incident = pb::Incident {
        incident_id: id,
        request_id: request.request_id.clone(),
        offer_id: subscription.offer_id.clone(),
        subscription_id: subscription.subscription_id.clone(),
        provider_member_id: subscription.provider_member_id.clone(),
        subscriber_member_id: subscription.subscriber_member_id.clone(),
        r#type,
        priority: request.priority,
        status: pb::IncidentStatus::New as i32,
        summary: request.summary.clone(),
        description: request.description.clone(),
        reporter: reporter.to_owned(),
        create_time: Some(ts(now)),
        update_time: Some(ts(now)),
        maintenance_id: maintenance_id.unwrap_or_default(),
        ..Default::default()
    };
    let event = event_of(
        &incident,
        pb::IncidentEventKind::Opened,
        now,
        reporter,
        &subscription.subscriber_member_id,
    );
    push(incident, event)
}

fn event_of(
    incident: &pb::Incident,
    kind: pb::IncidentEventKind,
    now: Secs,
    actor: &str,
    actor_member: &str,
) -> pb::IncidentEvent {
    let sequence = incident.events.len() as u64 + 1;
    pb::IncidentEvent {
        event_id: format!("{}/{sequence}", incident.incident_id),
        incident_id: incident.incident_id.clone(),
        sequence,
        kind: kind as i32,
        event_time: Some(ts(now)),
        actor: actor.to_owned(),
        actor_member_id: actor_member.to_owned(),
        offer_id: incident.offer_id.clone(),
        subscription_id: incident.subscription_id.clone(),
        provider_member_id: incident.provider_member_id.clone(),
        subscriber_member_id: incident.subscriber_member_id.clone(),
        r#type: incident.r#type,
        from_status: incident.status,
        status: incident.status,
        priority: incident.priority,
        assignee: incident.assignee.clone(),
        escalation_level: incident.escalation_level,
        ..Default::default()
    }
}

/// Appends `event` and updates what it changes.
fn push(mut incident: pb::Incident, event: pb::IncidentEvent) -> pb::Incident {
    let at = event.event_time;
    incident.status = event.status;
    incident.priority = event.priority;
    incident.assignee = event.assignee.clone();
    incident.escalation_level = event.escalation_level;
    if let Some(comment) = &event.comment {
        incident.comments.push(comment.clone());
    }
    let kind = pb::IncidentEventKind::try_from(event.kind).ok();
    let status = pb::IncidentStatus::try_from(event.status).ok();
    if incident.acknowledge_time.is_none() && event.status != pb::IncidentStatus::New as i32 {
        incident.acknowledge_time = at;
    }
    match (kind, status) {
        (_, Some(pb::IncidentStatus::Resolved)) if event.from_status != event.status => {
            incident.resolve_time = at;
            if !event.reason.is_empty() {
                incident.resolution = event.reason.clone();
            }
        }
        (_, Some(pb::IncidentStatus::Closed)) if event.from_status != event.status => {
            incident.close_time = at;
            if incident.resolve_time.is_none() {
                incident.resolve_time = at;
            }
        }
        (Some(pb::IncidentEventKind::Reopened), _) => {
            incident.resolve_time = None;
            incident.close_time = None;
        }
        _ => {}
    }
    incident.update_time = at;
    incident.events.push(event);
    incident
}

/// Whether the incident is still open (not resolved, not closed).
pub fn is_open(incident: &pb::Incident) -> bool {
    !matches!(
        pb::IncidentStatus::try_from(incident.status),
        Ok(pb::IncidentStatus::Resolved | pb::IncidentStatus::Closed)
    )
}

/// Whether `next`, the incident as `action` would leave it, fits a history of `limit` bytes
/// (encoded). One that does not is full: it takes only what brings it to its end, which can
/// happen once from there (acknowledging a new incident, resolving, closing; reopening and
/// other status changes are refused), with texts of at most [`MAX_TEXT_WHEN_FULL`]. The node's
/// clock alerts are not checked here: they are bounded (one per clock and kind).
pub fn has_room(next: &pb::Incident, action: &Action, limit: usize) -> Result<(), Refused> {
    // As a response carries it: with its comment list, each comment twice (a node stores
    // each once), and a response must fit `limits.max_encoding_message_bytes`.
    let size = prost::Message::encoded_len(next);
    if size <= limit {
        return Ok(());
    }
    let texts: Vec<(&str, &str)> = match action {
        Action::Acknowledge { comment } | Action::Close { comment } => {
            vec![("comment", comment.as_str())]
        }
        Action::SetStatus {
            status: pb::IncidentStatus::Resolved,
            comment,
            resolution,
        } => vec![
            ("comment", comment.as_str()),
            ("resolution", resolution.as_str()),
        ],
        Action::ClockAlert { .. } => Vec::new(),
        _ => {
            return Err(Refused::Status(format!(
                "incident {}'s history is full ({size} bytes with this change, at most \
                 {limit}): it takes no more comments, answers, assignments, status or priority \
                 changes, or reopening; it can still be acknowledged, resolved and closed, with \
                 texts of at most {MAX_TEXT_WHEN_FULL} bytes; open a new incident to go on",
                next.incident_id
            )));
        }
    };
    for (field, text) in texts {
        if text.len() > MAX_TEXT_WHEN_FULL {
            return Err(invalid(
                field,
                format!(
                    "at most {MAX_TEXT_WHEN_FULL} bytes: incident {}'s history is full",
                    next.incident_id
                ),
            ));
        }
    }
    Ok(())
}

/// Applies `action` by `party` (`actor` is the caller's identity, `actor_member` its member)
/// at `now`: the incident with the new event(s), or why not. `reopen_within` is how long after
/// resolution the subscriber may reopen.
pub fn act(
    incident: &pb::Incident,
    party: Party,
    actor: &str,
    actor_member: &str,
    action: Action,
    now: Secs,
    reopen_within: Secs,
) -> Result<pb::Incident, Refused> {
    use pb::IncidentEventKind as Kind;
    use pb::IncidentStatus as Status;
    let status = Status::try_from(incident.status).unwrap_or(Status::Unspecified);
    let closed = status == Status::Closed;
    let provider_only = |what: &str| {
        if party == Party::Provider {
            Ok(())
        } else {
            Err(Refused::NotAllowed(format!(
                "only the provider's admins may {what}"
            )))
        }
    };
    let subscriber_only = |what: &str| {
        if party == Party::Subscriber {
            Ok(())
        } else {
            Err(Refused::NotAllowed(format!(
                "only the subscriber may {what}"
            )))
        }
    };
    let not_closed = || {
        if closed {
            Err(Refused::Status(format!(
                "incident {} is closed; the subscriber may reopen it",
                incident.incident_id
            )))
        } else {
            Ok(())
        }
    };
    let comment_of = |body: &str, internal: bool, sequence: u64| {
        (!body.trim().is_empty()).then(|| pb::IncidentComment {
            comment_id: format!("{}/c{sequence}", incident.incident_id),
            author: actor.to_owned(),
            author_member_id: actor_member.to_owned(),
            body: body.to_owned(),
            internal,
            create_time: Some(ts(now)),
        })
    };
    let next = incident.events.len() as u64 + 1;
    let event = |kind: Kind| event_of(incident, kind, now, actor, actor_member);
    let mut events = Vec::new();
    match action {
        Action::Acknowledge { comment } => {
            provider_only("acknowledge")?;
            text("comment", &comment, MAX_TEXT, false, Lines::Many)?;
            if status != Status::New {
                return Err(Refused::Status(format!(
                    "incident {} is already acknowledged ({})",
                    incident.incident_id,
                    status_name(incident.status)
                )));
            }
            let mut e = event(Kind::Acknowledged);
            e.status = Status::Acknowledged as i32;
            e.comment = comment_of(&comment, false, next);
            events.push(e);
        }
        Action::Assign { assignee } => {
            provider_only("assign")?;
            text("assignee", &assignee, MAX_ASSIGNEE, true, Lines::One)?;
            not_closed()?;
            let mut e = event(Kind::Assigned);
            e.assignee = assignee;
            events.push(e);
        }
        Action::SetStatus {
            status: to,
            comment,
            resolution,
        } => {
            provider_only("set the status")?;
            not_closed()?;
            text("comment", &comment, MAX_TEXT, false, Lines::Many)?;
            text(
                "resolution",
                &resolution,
                MAX_TEXT,
                to == Status::Resolved,
                Lines::Many,
            )?;
            if !matches!(
                to,
                Status::InProgress | Status::WaitingOnSubscriber | Status::Resolved
            ) {
                return Err(invalid(
                    "status",
                    "IN_PROGRESS, WAITING_ON_SUBSCRIBER or RESOLVED",
                ));
            }
            if to == status {
                return Err(Refused::Status(format!(
                    "incident {} is already {}",
                    incident.incident_id,
                    status_name(incident.status)
                )));
            }
            if status == Status::New {
                // Working on it acknowledges it.
                let mut ack = event(Kind::Acknowledged);
                ack.status = Status::Acknowledged as i32;
                events.push(ack);
            }
            let mut e = event(Kind::StatusChanged);
            e.sequence = next + events.len() as u64;
            e.event_id = format!("{}/{}", incident.incident_id, e.sequence);
            e.from_status = events.last().map_or(incident.status, |a| a.status);
            e.status = to as i32;
            e.reason = if to == Status::Resolved {
                resolution
            } else {
                String::new()
            };
            e.comment = comment_of(&comment, false, e.sequence);
            events.push(e);
        }
        Action::Comment { body, internal } => {
            text("body", &body, MAX_TEXT, true, Lines::Many)?;
            if internal && party != Party::Provider {
                return Err(invalid(
                    "internal",
                    "only the provider's comments can be internal",
                ));
            }
            if party == Party::System {
                return Err(Refused::NotAllowed("the node does not comment".into()));
            }
            let mut e = event(Kind::Commented);
            e.comment = comment_of(&body, internal, next);
            events.push(e);
        }
        Action::Answer { body } => {
            subscriber_only("answer")?;
            text("body", &body, MAX_TEXT, true, Lines::Many)?;
            if status != Status::WaitingOnSubscriber {
                return Err(Refused::Status(format!(
                    "incident {} is not waiting on the subscriber ({}); comment instead",
                    incident.incident_id,
                    status_name(incident.status)
                )));
            }
            let mut e = event(Kind::Answered);
            e.status = Status::InProgress as i32;
            e.comment = comment_of(&body, false, next);
            events.push(e);
        }
        Action::Close { comment } => {
            subscriber_only("close")?;
            not_closed()?;
            text("comment", &comment, MAX_TEXT, false, Lines::Many)?;
            let mut e = event(Kind::Closed);
            e.status = Status::Closed as i32;
            e.comment = comment_of(&comment, false, next);
            events.push(e);
        }
        Action::Reopen { reason } => {
            subscriber_only("reopen")?;
            text("reason", &reason, MAX_TEXT, true, Lines::One)?;
            if !matches!(status, Status::Resolved | Status::Closed) {
                return Err(Refused::Status(format!(
                    "incident {} is not resolved ({})",
                    incident.incident_id,
                    status_name(incident.status)
                )));
            }
            let resolved = secs(
                incident
                    .resolve_time
                    .as_ref()
                    .or(incident.close_time.as_ref()),
            );
            if now - resolved > reopen_within {
                return Err(Refused::Status(format!(
                    "incident {} was resolved more than {} days ago: open a new one",
                    incident.incident_id,
                    reopen_within / 86_400
                )));
            }
            let mut e = event(Kind::Reopened);
            e.status = Status::InProgress as i32;
            e.reason = reason;
            events.push(e);
        }
        Action::ChangePriority { priority, reason } => {
            if party == Party::System {
                return Err(Refused::NotAllowed(
                    "the node does not change priorities".into(),
                ));
            }
            not_closed()?;
            text("reason", &reason, MAX_TEXT, true, Lines::One)?;
            if priority == pb::Priority::Unspecified {
                return Err(invalid("priority", "required: P1 to P4"));
            }
            if priority as i32 == incident.priority {
                return Err(Refused::Status(format!(
                    "incident {} is already {}",
                    incident.incident_id,
                    priority.as_str_name()
                )));
            }
            let mut e = event(Kind::PriorityChanged);
            e.priority = priority as i32;
            e.reason = reason;
            events.push(e);
        }
        Action::ClockAlert { target, breached } => {
            if party != Party::System {
                return Err(Refused::NotAllowed(
                    "clock alerts come from the node".into(),
                ));
            }
            let kind = if breached {
                Kind::SlaBreached
            } else {
                Kind::SlaAtRisk
            };
            let mut e = event(kind);
            e.reason = target.as_str_name().to_owned();
            events.push(e);
            if breached {
                let mut escalated = event(Kind::Escalated);
                escalated.sequence = next + 1;
                escalated.event_id = format!("{}/{}", incident.incident_id, next + 1);
                escalated.escalation_level = incident.escalation_level + 1;
                escalated.reason = format!(
                    "{} deadline missed: escalated to the coordinator",
                    target.as_str_name()
                );
                events.push(escalated);
            }
        }
    }
    let mut result = incident.clone();
    for e in events {
        result = push(result, e);
    }
    Ok(result)
}

/// Whether `incident` already carries an alert of `kind` for `target` since it was last
/// reopened (so the node raises each alert once).
pub fn alerted(
    incident: &pb::Incident,
    kind: pb::IncidentEventKind,
    target: pb::SlaTarget,
) -> bool {
    incident
        .events
        .iter()
        .rev()
        .take_while(|e| e.kind != pb::IncidentEventKind::Reopened as i32)
        .any(|e| e.kind == kind as i32 && e.reason == target.as_str_name())
}

/// The acknowledge and resolve allowances (service seconds) of `priority`.
pub fn allowances(engagement: &pb::ServiceEngagement, priority: i32) -> Option<(Secs, Secs)> {
    engagement
        .priority_targets
        .iter()
        .find(|t| t.priority == priority)
        .map(|t| {
            (
                t.acknowledge_within.as_ref().map_or(0, |d| d.seconds),
                t.resolve_within.as_ref().map_or(0, |d| d.seconds),
            )
        })
}

/// The intervals during which a clock ran: from opening, while `running(status)` held, until
/// `now` if it still runs. Returns the intervals and when the clock stopped for good.
fn running_spans(
    incident: &pb::Incident,
    runs: impl Fn(i32) -> bool,
    stops: impl Fn(i32) -> bool,
    now: Secs,
) -> (Vec<Span>, Option<Secs>) {
    let mut spans = Vec::new();
    let mut since: Option<Secs> = None;
    let mut stopped = None;
    for e in &incident.events {
        let at = secs(e.event_time.as_ref());
        if runs(e.status) {
            stopped = None;
            if since.is_none() {
                since = Some(at);
            }
        } else {
            if let Some(start) = since.take() {
                spans.push(Span::new(start, at));
            }
            if stops(e.status) && stopped.is_none() {
                stopped = Some(at);
            }
        }
    }
    if let Some(start) = since {
        spans.push(Span::new(start, now.max(start)));
    }
    (spans, stopped)
}

/// Where and when clocks are read.
struct Reading<'a> {
    calendar: &'a Calendar,
    now: Secs,
    at_risk_share: f64,
}

/// One clock from its running intervals: elapsed service time, deadline, state.
fn clock(
    target: pb::SlaTarget,
    allowed: Secs,
    spans: &[Span],
    stopped: Option<Secs>,
    paused: bool,
    reading: &Reading<'_>,
) -> pb::SlaClock {
    let Reading {
        calendar,
        now,
        at_risk_share,
    } = *reading;
    let mut elapsed = 0;
    let mut deadline = None;
    for s in spans {
        let here = calendar.service_time(s.start, s.end);
        if deadline.is_none() && elapsed + here >= allowed {
            deadline = calendar.add_service_time(s.start, allowed - elapsed);
        }
        elapsed += here;
    }
    let remaining = (allowed - elapsed).max(0);
    // Not reached yet: projected from now (or from the stop, for a stopped clock).
    let deadline =
        deadline.or_else(|| calendar.add_service_time(stopped.unwrap_or(now), remaining));
    let state = if elapsed > allowed || (elapsed == allowed && stopped.is_none()) {
        pb::SlaClockState::Breached
    } else if stopped.is_none() && (elapsed as f64) >= at_risk_share * allowed as f64 {
        pb::SlaClockState::AtRisk
    } else {
        pb::SlaClockState::OnTime
    };
    pb::SlaClock {
        target: target as i32,
        allowed: Some(prost_types::Duration {
            seconds: allowed,
            nanos: 0,
        }),
        deadline: deadline.map(ts),
        elapsed: Some(prost_types::Duration {
            seconds: elapsed,
            nanos: 0,
        }),
        remaining: Some(prost_types::Duration {
            seconds: remaining,
            nanos: 0,
        }),
        paused: paused && stopped.is_none(),
        state: state as i32,
        stop_time: stopped.map(ts),
    }
}

/// The incident's acknowledge and resolve clocks at `now`, in `calendar` (the offer's; a P1
/// of an engagement with `p1_round_the_clock` runs around the clock). `at_risk_share` is the
/// share of the allowance after which a running clock is at risk. Empty when the engagement
/// has no target for the incident's priority.
pub fn clocks(
    incident: &pb::Incident,
    engagement: &pb::ServiceEngagement,
    calendar: &Calendar,
    now: Secs,
    at_risk_share: f64,
) -> Vec<pb::SlaClock> {
    use pb::IncidentStatus as Status;
    let Some((ack_allowed, resolve_allowed)) = allowances(engagement, incident.priority) else {
        return Vec::new();
    };
    let around;
    let calendar = if engagement.p1_round_the_clock && incident.priority == pb::Priority::P1 as i32
    {
        around = Calendar::around_the_clock();
        &around
    } else {
        calendar
    };
    let is = |s: i32, set: &[Status]| set.iter().any(|x| *x as i32 == s);
    let (ack_spans, acked) = running_spans(
        incident,
        |s| s == Status::New as i32,
        |s| s != Status::New as i32,
        now,
    );
    let (resolve_spans, resolved) = running_spans(
        incident,
        |s| is(s, &[Status::New, Status::Acknowledged, Status::InProgress]),
        |s| is(s, &[Status::Resolved, Status::Closed]),
        now,
    );
    let waiting = incident.status == Status::WaitingOnSubscriber as i32;
    let reading = Reading {
        calendar,
        now,
        at_risk_share,
    };
    vec![
        clock(
            pb::SlaTarget::Acknowledge,
            ack_allowed,
            &ack_spans,
            acked,
            false,
            &reading,
        ),
        clock(
            pb::SlaTarget::Resolve,
            resolve_allowed,
            &resolve_spans,
            resolved,
            waiting,
            &reading,
        ),
    ]
}

/// The state of an incident's worst running clock, as a metric label: `on_time`, `at_risk`
/// or `breached`.
pub fn worst_clock_state(incident: &pb::Incident) -> &'static str {
    let worst = incident
        .sla_clocks
        .iter()
        .filter(|c| c.stop_time.is_none())
        .map(|c| c.state)
        .max()
        .unwrap_or(pb::SlaClockState::OnTime as i32);
    match pb::SlaClockState::try_from(worst) {
        Ok(pb::SlaClockState::Breached) => "breached",
        Ok(pb::SlaClockState::AtRisk) => "at_risk",
        _ => "on_time",
    }
}

/// Whether `a` and `b` are the same version of an incident, their comment lists aside: the
/// list is derived from the events, and copies that went through different nodes may hold it
/// or not.
pub fn same_version(a: &pb::Incident, b: &pb::Incident) -> bool {
    a.clone().without_comment_list() == b.clone().without_comment_list()
}

/// What the coordinator keeps of an incident: no texts, no people (GDPR minimisation); the
/// figures and the escalation level only.
pub fn redact_for_coordinator(mut incident: pb::Incident) -> pb::Incident {
    incident.summary.clear();
    incident.description.clear();
    incident.resolution.clear();
    incident.reporter.clear();
    incident.assignee.clear();
    incident.comments.clear();
    for e in &mut incident.events {
        e.actor.clear();
        e.assignee.clear();
        e.comment = None;
        if e.kind != pb::IncidentEventKind::SlaBreached as i32
            && e.kind != pb::IncidentEventKind::SlaAtRisk as i32
        {
            e.reason.clear();
        }
    }
    incident
}

/// What the subscriber's side sees: everything but the provider's internal comments.
pub fn redact_for_subscriber(mut incident: pb::Incident) -> pb::Incident {
    incident.comments.retain(|c| !c.internal);
    for e in &mut incident.events {
        if e.comment.as_ref().is_some_and(|c| c.internal) {
            e.comment = None;
        }
    }
    incident
}

#[cfg(test)]
mod tests;
