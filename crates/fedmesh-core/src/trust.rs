//! What a follower may apply from another member's journal (design section 2, "every member is
//! a trust boundary, on every path").
//!
//! A member's changes reach others indirectly: the coordinator replicates every node's journal,
//! a subscriber's node mirrors its tenancies, incidents and maintenance windows from each
//! provider, and every node caches the coordinator's catalogue. Each follower checks every
//! entity before applying it, with the same rules as a direct write:
//!
//! - **namespace**: the entity's id is in the source member's namespace (`<member>.<service>`,
//!   `<member>.s<n>`, `INC-…-<member>-<n>`, `MW-…-<member>-<n>`), so it can never name
//!   another member's entity;
//! - **owner**: its owner field (`provider_member_id`) is the source member, and the offer it
//!   refers to is one of the source's offers;
//! - **party**: on a subscriber's node, a tenancy or incident names that node's member as the
//!   subscriber;
//! - **content**: it passes the core validation of a direct write (offers through
//!   [`offer::validate`], incident texts through [`incident::check_open`], records through
//!   [`usage::check_replicated`]).
//!
//! An entry that fails is refused as a whole ([`Rejected`]); the follower logs and counts it
//! (`fedmesh_replication_rejected_total{member,reason}`) and goes on with the next entry.

use fedmesh_proto::pb;
use pb::journal_entry::Payload;

use crate::identity::MemberId;
use crate::{incident, offer, usage};

/// Why an entry from a member was refused; its [`Reason::label`] is the metric's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// An id outside the source member's namespace.
    ForeignId,
    /// An owner field (provider) that is not the source member, or a reference to another
    /// member's offer.
    NotOwner,
    /// On a subscriber's node: a tenancy or incident of another subscriber.
    NotParty,
    /// The entity fails the validation of a direct write.
    Invalid,
    /// A revision at or below one already applied from the same stream.
    Backward,
}

impl Reason {
    /// The label of the reason in metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Reason::ForeignId => "foreign_id",
            Reason::NotOwner => "not_owner",
            Reason::NotParty => "not_party",
            Reason::Invalid => "invalid",
            Reason::Backward => "backward",
        }
    }

    /// Every reason, for tests and documentation.
    pub const ALL: [Reason; 5] = [
        Reason::ForeignId,
        Reason::NotOwner,
        Reason::NotParty,
        Reason::Invalid,
        Reason::Backward,
    ];
}

/// A refused entry: why, and what exactly (for the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Rejected {
    /// The kind of refusal.
    pub reason: Reason,
    /// What was wrong, naming the entity and the field.
    pub detail: String,
}

fn rejected(reason: Reason, detail: impl Into<String>) -> Rejected {
    Rejected {
        reason,
        detail: detail.into(),
    }
}

/// Who applies the entry, which decides what a source may say to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follower<'a> {
    /// The coordinator: any of the source's own entities.
    Coordinator,
    /// A subscriber member's node: only the tenancies and incidents where it is the
    /// subscriber, and maintenance windows of the source's offers.
    Subscriber(&'a MemberId),
}

/// The member whose namespace an offer id (`<member>.<service_id>`) is in.
pub fn offer_owner(offer_id: &str) -> Option<MemberId> {
    offer::provider_of(offer_id)
}

/// The member whose namespace a subscription id (`<member>.s<revision>`) is in.
pub fn subscription_owner(subscription_id: &str) -> Option<MemberId> {
    let (member, rest) = subscription_id.split_once('.')?;
    let digits = rest.strip_prefix('s')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    member.parse().ok()
}

/// The member of an id of the shape `<PREFIX>-<date parts>-<member>-<revision>`, where
/// `parts` counts the date parts (8 digits, then 6 digits for an incident's time).
fn dated_owner(id: &str, prefix: &str, parts: &[usize]) -> Option<MemberId> {
    let mut rest = id.strip_prefix(prefix)?;
    for &len in parts {
        let (digits, tail) = rest.split_at_checked(len)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        rest = tail.strip_prefix('-')?;
    }
    let (member, revision) = rest.rsplit_once('-')?;
    if revision.is_empty() || !revision.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    member.parse().ok()
}

/// The member whose namespace an incident id (`INC-20261128-153001-<member>-42`) is in.
pub fn incident_owner(incident_id: &str) -> Option<MemberId> {
    dated_owner(incident_id, "INC-", &[8, 6])
}

/// The member whose namespace a maintenance window id (`MW-20261128-<member>-42`) is in.
pub fn maintenance_owner(maintenance_id: &str) -> Option<MemberId> {
    dated_owner(maintenance_id, "MW-", &[8])
}

fn in_namespace(
    what: &str,
    id: &str,
    owner: Option<MemberId>,
    source: &MemberId,
) -> Result<(), Rejected> {
    match owner {
        Some(owner) if &owner == source => Ok(()),
        Some(owner) => Err(rejected(
            Reason::ForeignId,
            format!("{what} {id} is in {owner}'s namespace, not {source}'s"),
        )),
        None => Err(rejected(
            Reason::ForeignId,
            format!("{what} id `{id}` is not an id {source} can make"),
        )),
    }
}

fn owned_by(
    what: &str,
    id: &str,
    field: &str,
    value: &str,
    source: &MemberId,
) -> Result<(), Rejected> {
    if value == source.as_str() {
        return Ok(());
    }
    Err(rejected(
        Reason::NotOwner,
        format!("{what} {id}: {field} is `{value}`, not {source}"),
    ))
}

fn own_offer(what: &str, id: &str, offer_id: &str, source: &MemberId) -> Result<(), Rejected> {
    if offer_owner(offer_id).as_ref() == Some(source) {
        return Ok(());
    }
    Err(rejected(
        Reason::NotOwner,
        format!("{what} {id}: offer `{offer_id}` is not an offer of {source}"),
    ))
}

fn invalid(what: &str, id: &str, error: impl std::fmt::Display) -> Rejected {
    rejected(Reason::Invalid, format!("{what} {id}: {error}"))
}

/// Checks an offer `source` published: its id and provider are `source`'s, and it passes the
/// validation of a publish (a withdrawn offer, as it was when last published).
pub fn check_offer(source: &MemberId, offer: &pb::Offer) -> Result<(), Rejected> {
    let id = &offer.offer_id;
    in_namespace("offer", id, offer_owner(id), source)?;
    owned_by(
        "offer",
        id,
        "provider_member_id",
        &offer.provider_member_id,
        source,
    )?;
    let mut published = offer.clone();
    if published.status == pb::OfferStatus::Withdrawn as i32 {
        published.status = pb::OfferStatus::Available as i32;
    }
    let valid = offer::validate(published, source).map_err(|e| invalid("offer", id, e))?;
    if valid.get().offer_id != *id {
        return Err(invalid("offer", id, "offer_id does not match service_id"));
    }
    Ok(())
}

/// Checks a tenancy `source` journaled, as `follower` would apply it.
pub fn check_subscription(
    source: &MemberId,
    subscription: &pb::Subscription,
    follower: Follower<'_>,
) -> Result<(), Rejected> {
    let id = &subscription.subscription_id;
    in_namespace("tenancy", id, subscription_owner(id), source)?;
    owned_by(
        "tenancy",
        id,
        "provider_member_id",
        &subscription.provider_member_id,
        source,
    )?;
    own_offer("tenancy", id, &subscription.offer_id, source)?;
    party(
        "tenancy",
        id,
        &subscription.subscriber_member_id,
        source,
        follower,
    )?;
    if matches!(
        pb::SubscriptionState::try_from(subscription.state),
        Ok(pb::SubscriptionState::Unspecified) | Err(_)
    ) {
        return Err(invalid("tenancy", id, "state: unknown"));
    }
    if subscription.user_count < 0 {
        return Err(invalid("tenancy", id, "user_count: must not be negative"));
    }
    Ok(())
}

/// The subscriber of a tenancy or incident: another member than the provider, and on a
/// subscriber's node that node's member.
fn party(
    what: &str,
    id: &str,
    subscriber: &str,
    source: &MemberId,
    follower: Follower<'_>,
) -> Result<(), Rejected> {
    let parsed: MemberId = subscriber
        .parse()
        .map_err(|e| invalid(what, id, format_args!("subscriber_member_id: {e}")))?;
    if &parsed == source {
        return Err(invalid(
            what,
            id,
            "subscriber_member_id: a provider is not a tenant of its own offer",
        ));
    }
    match follower {
        Follower::Subscriber(me) if &parsed != me => Err(rejected(
            Reason::NotParty,
            format!("{what} {id} is {parsed}'s, not this member's"),
        )),
        _ => Ok(()),
    }
}

/// Checks an incident `source` journaled (the provider's copy), as `follower` would apply it.
/// Texts are checked when present (the coordinator receives incidents without them).
pub fn check_incident(
    source: &MemberId,
    incident: &pb::Incident,
    follower: Follower<'_>,
) -> Result<(), Rejected> {
    let id = &incident.incident_id;
    in_namespace("incident", id, incident_owner(id), source)?;
    owned_by(
        "incident",
        id,
        "provider_member_id",
        &incident.provider_member_id,
        source,
    )?;
    own_offer("incident", id, &incident.offer_id, source)?;
    if subscription_owner(&incident.subscription_id).as_ref() != Some(source) {
        return Err(rejected(
            Reason::NotOwner,
            format!(
                "incident {id}: tenancy `{}` is not a tenancy of {source}",
                incident.subscription_id
            ),
        ));
    }
    party(
        "incident",
        id,
        &incident.subscriber_member_id,
        source,
        follower,
    )?;
    if !incident.maintenance_id.is_empty()
        && maintenance_owner(&incident.maintenance_id).as_ref() != Some(source)
    {
        return Err(rejected(
            Reason::NotOwner,
            format!(
                "incident {id}: maintenance window `{}` is not one of {source}",
                incident.maintenance_id
            ),
        ));
    }
    if matches!(
        pb::IncidentStatus::try_from(incident.status),
        Ok(pb::IncidentStatus::Unspecified) | Err(_)
    ) {
        return Err(invalid("incident", id, "status: unknown"));
    }
    if incident.escalation_level < 0 {
        return Err(invalid(
            "incident",
            id,
            "escalation_level: must not be negative",
        ));
    }
    // The texts, priority and type of an opening, as the provider's node checked them.
    let opening = pb::OpenIncidentRequest {
        summary: if incident.summary.is_empty() {
            "-".to_owned()
        } else {
            incident.summary.clone()
        },
        description: incident.description.clone(),
        priority: incident.priority,
        r#type: incident.r#type,
        ..Default::default()
    };
    incident::check_open(&opening).map_err(|e| invalid("incident", id, e))
}

/// Checks a maintenance window `source` announced: its id, provider and offer are `source`'s
/// and it passes the checks of an announcement ([`crate::maintenance::check`]).
pub fn check_maintenance(
    source: &MemberId,
    window: &pb::MaintenanceWindow,
) -> Result<(), Rejected> {
    let id = &window.maintenance_id;
    in_namespace("maintenance window", id, maintenance_owner(id), source)?;
    owned_by(
        "maintenance window",
        id,
        "provider_member_id",
        &window.provider_member_id,
        source,
    )?;
    own_offer("maintenance window", id, &window.offer_id, source)?;
    crate::maintenance::check_window(window)
        .map(|_| ())
        .map_err(|e| invalid("maintenance window", id, e))
}

/// Checks every record of a usage batch `source` journaled: each is on one of `source`'s
/// offers and tenancies, and valid as a report would be (`now` bounds future periods).
pub fn check_usage(
    source: &MemberId,
    batch: &pb::UsageRecordBatch,
    now: crate::span::Secs,
) -> Result<(), Rejected> {
    for (index, record) in batch.records.iter().enumerate() {
        let id = &record.record_id;
        own_offer("usage record", id, &record.offer_id, source)?;
        if subscription_owner(&record.subscription_id).as_ref() != Some(source) {
            return Err(rejected(
                Reason::NotOwner,
                format!(
                    "usage record {id}: tenancy `{}` is not a tenancy of {source}",
                    record.subscription_id
                ),
            ));
        }
        usage::check_replicated(index, record, now).map_err(|e| invalid("usage record", id, e))?;
    }
    Ok(())
}

/// Checks every record of an availability batch `source` journaled.
pub fn check_availability(
    source: &MemberId,
    batch: &pb::AvailabilityRecordBatch,
    now: crate::span::Secs,
) -> Result<(), Rejected> {
    for (index, record) in batch.records.iter().enumerate() {
        let id = &record.record_id;
        own_offer("availability record", id, &record.offer_id, source)?;
        usage::check_availability(index, record, now)
            .map_err(|e| invalid("availability record", id, e))?;
    }
    Ok(())
}

/// Checks a monthly report `source` journaled, as `follower` would apply it: its id, offer and
/// provider are `source`'s; an offer report names no tenancy, subscriber, tenant usage or
/// statement (aggregates without people), and only a subscriber's own tenancy reports reach
/// its node; its figures are percentages and counts, its texts inert.
pub fn check_report(
    source: &MemberId,
    report: &pb::MonthlyReport,
    follower: Follower<'_>,
) -> Result<(), Rejected> {
    let id = &report.report_id;
    let what = "monthly report";
    owned_by(
        what,
        id,
        "provider_member_id",
        &report.provider_member_id,
        source,
    )?;
    own_offer(what, id, &report.offer_id, source)?;
    let month = usage::Month::from_proto("month", report.month.as_ref())
        .map_err(|e| invalid(what, id, e))?;
    let expected = |of: &str| {
        if id == &format!("{of}/{month}") {
            Ok(())
        } else {
            Err(invalid(
                what,
                id,
                format_args!("report_id: must be `{of}/{month}`"),
            ))
        }
    };
    match pb::ReportScope::try_from(report.scope) {
        Ok(pb::ReportScope::Offer) => {
            if let Follower::Subscriber(me) = follower {
                return Err(rejected(
                    Reason::NotParty,
                    format!("{what} {id} is an offer report, not a tenancy report of {me}"),
                ));
            }
            expected(&report.offer_id)?;
            if !report.subscription_id.is_empty()
                || !report.subscriber_member_id.is_empty()
                || !report.tenant_usage.is_empty()
                || report.statement.is_some()
            {
                return Err(invalid(
                    what,
                    id,
                    "an offer report names no tenancy, subscriber, tenant usage or statement",
                ));
            }
        }
        Ok(pb::ReportScope::Tenancy) => {
            if follower == Follower::Coordinator {
                return Err(rejected(
                    Reason::NotParty,
                    format!("{what} {id}: the coordinator takes offer reports only"),
                ));
            }
            let sub = &report.subscription_id;
            in_namespace("tenancy", sub, subscription_owner(sub), source)?;
            expected(sub)?;
            party(what, id, &report.subscriber_member_id, source, follower)?;
            if let Some(statement) = &report.statement
                && (statement.subscription_id != *sub || statement.offer_id != report.offer_id)
            {
                return Err(invalid(what, id, "statement: of another tenancy"));
            }
            if report
                .tenant_usage
                .iter()
                .any(|a| a.subscription_id != *sub)
            {
                return Err(invalid(what, id, "tenant_usage: of another tenancy"));
            }
        }
        _ => return Err(invalid(what, id, "scope: unknown")),
    }
    let percent = |v: f64| (0.0..=100.0).contains(&v);
    if let Some(c) = &report.compliance {
        let a = c.availability.clone().unwrap_or_default();
        if !(percent(a.in_window_availability_percent)
            && percent(a.out_of_window_availability_percent)
            && percent(c.requests_in_time_percent)
            && c.request_count >= 0
            && (0..=c.request_count).contains(&c.requests_in_time))
        {
            return Err(invalid(what, id, "compliance: not percentages and counts"));
        }
    }
    let mut texts: Vec<(&str, &str)> = report
        .outages
        .iter()
        .map(|o| ("outages.description", o.description.as_str()))
        .collect();
    texts.extend(
        report
            .history
            .iter()
            .map(|e| ("history.reason", e.reason.as_str())),
    );
    if let Some(statement) = &report.statement {
        texts.extend(
            statement
                .lines
                .iter()
                .map(|l| ("statement.lines.description", l.description.as_str())),
        );
    }
    for (field, text) in texts {
        crate::text::check(field, text, crate::text::Lines::Many)
            .map_err(|e| invalid(what, id, e))?;
    }
    Ok(())
}

/// Whether an entry of `source`'s journal is its copy of another member's entity: a tenancy
/// or incident where `source` is the subscriber (mirrored from the provider), or a maintenance
/// window another provider announced. Such copies are the provider's word, which a follower
/// takes from the provider's own journal: the coordinator passes over them (neither applied
/// nor counted as refused).
pub fn is_copy_of_others(source: &MemberId, entry: &pb::JournalEntry) -> bool {
    let subscriber_copy = |provider: &str, subscriber: &str| {
        provider != source.as_str() && subscriber == source.as_str()
    };
    match &entry.payload {
        Some(Payload::Subscription(s)) => {
            subscriber_copy(&s.provider_member_id, &s.subscriber_member_id)
        }
        Some(Payload::Incident(i)) => {
            subscriber_copy(&i.provider_member_id, &i.subscriber_member_id)
        }
        Some(Payload::MaintenanceWindow(m)) => m.provider_member_id != source.as_str(),
        Some(Payload::MonthlyReport(r)) => {
            subscriber_copy(&r.provider_member_id, &r.subscriber_member_id)
        }
        _ => false,
    }
}

/// Checks a journal entry of `source`'s node as `follower` would apply it: its kind matches
/// its payload, and the payload passes the check of its kind. Entries of kinds the follower
/// does not apply pass.
pub fn check_entry(
    source: &MemberId,
    entry: &pb::JournalEntry,
    follower: Follower<'_>,
    now: crate::span::Secs,
) -> Result<(), Rejected> {
    let kind = match &entry.payload {
        None => return Ok(()),
        Some(Payload::Offer(_)) => pb::EntityKind::Offer,
        Some(Payload::Subscription(_)) => pb::EntityKind::Subscription,
        Some(Payload::Incident(_)) => pb::EntityKind::Incident,
        Some(Payload::MaintenanceWindow(_)) => pb::EntityKind::MaintenanceWindow,
        Some(Payload::UsageRecords(_)) => pb::EntityKind::UsageRecord,
        Some(Payload::AvailabilityRecords(_)) => pb::EntityKind::AvailabilityRecord,
        Some(Payload::MonthlyReport(_)) => pb::EntityKind::MonthlyReport,
    };
    if entry.entity_kind != kind as i32 {
        return Err(rejected(
            Reason::Invalid,
            format!(
                "entry {}: entity_kind {} does not match its payload ({})",
                entry.revision,
                entry.entity_kind,
                kind.as_str_name()
            ),
        ));
    }
    if !entry.member_id.is_empty() && entry.member_id != source.as_str() {
        return Err(rejected(
            Reason::NotOwner,
            format!(
                "entry {}: member_id is `{}`, not {source}",
                entry.revision, entry.member_id
            ),
        ));
    }
    match (&entry.payload, follower) {
        (Some(Payload::Offer(offer)), _) => check_offer(source, offer),
        (Some(Payload::Subscription(s)), _) => check_subscription(source, s, follower),
        (Some(Payload::Incident(i)), _) => check_incident(source, i, follower),
        (Some(Payload::MaintenanceWindow(m)), _) => check_maintenance(source, m),
        (Some(Payload::MonthlyReport(r)), _) => check_report(source, r, follower),
        (Some(Payload::UsageRecords(batch)), Follower::Coordinator) => {
            check_usage(source, batch, now)
        }
        (Some(Payload::AvailabilityRecords(batch)), Follower::Coordinator) => {
            check_availability(source, batch, now)
        }
        _ => Ok(()),
    }
}

/// Checks an offer of the coordinator's catalogue before a node caches it: its id is in its
/// provider's namespace and it passes the validation of a publish.
pub fn check_catalogue_offer(entry: &pb::CatalogueOffer) -> Result<(), Rejected> {
    let offer = entry
        .offer
        .as_ref()
        .ok_or_else(|| rejected(Reason::Invalid, "a catalogue change without its offer"))?;
    let owner = offer_owner(&offer.offer_id).ok_or_else(|| {
        rejected(
            Reason::ForeignId,
            format!("offer id `{}` names no member", offer.offer_id),
        )
    })?;
    check_offer(&owner, offer)
}

#[cfg(test)]
mod tests;
