//! Offers: validation of what a provider publishes, and the lifecycle of a published offer
//! (create, update under optimistic concurrency, withdraw).
//!
//! Offers are stored and replicated as the protobuf message itself (design section 4); what
//! this module adds is that an offer reaching the store has passed [`validate`], which names
//! the first bad field by its path (`offer.engagement.availability_sla_percent`).

use std::collections::HashSet;

use fedmesh_proto::pb;

use crate::identity::MemberId;
use crate::text::Lines;

/// The first invalid field of a request, by path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field path, e.g. `offer.capacity.max_tenants`.
    pub field: String,
    /// The rule broken.
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Usage metrics every offer has; custom metrics may not reuse these names.
pub const WELL_KNOWN_METRICS: &[&str] = &["active_users", "storage_bytes", "requests"];

/// The tenant-facing URL of `tenant` on `offer`, from the offer's template; empty without one.
pub fn tenant_url(offer: &pb::Offer, tenant: &str) -> String {
    offer.tenant_url_template.replace("{tenant}", tenant)
}

/// The id of a provider's offer of a service: `<member>.<service_id>`. Unique in the
/// federation because member ids are, and unambiguous because neither part contains a dot.
pub fn offer_id(provider: &MemberId, service_id: &str) -> String {
    format!("{provider}.{service_id}")
}

/// The provider member of an offer id, if the id is well-formed.
pub fn provider_of(offer_id: &str) -> Option<MemberId> {
    let (member, service) = offer_id.split_once('.')?;
    if !is_label(service) {
        return None;
    }
    member.parse().ok()
}

/// An offer that passed validation for its provider; only [`validate`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidOffer(pb::Offer);

impl ValidOffer {
    /// The offer.
    pub fn get(&self) -> &pb::Offer {
        &self.0
    }
}

fn is_label(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// A required text of at most `max` characters, inert on another member's screen.
fn text(field: &str, value: &str, max: usize, lines: Lines) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(bad(field, "required"));
    }
    if value.chars().count() > max {
        return Err(bad(field, format!("at most {max} characters")));
    }
    crate::text::check(field, value, lines)
}

fn percent(field: &str, value: f64) -> Result<(), FieldError> {
    if !(value > 0.0 && value <= 100.0) {
        return Err(bad(field, format!("must be in (0, 100], got {value}")));
    }
    Ok(())
}

fn email(field: &str, value: &str) -> Result<(), FieldError> {
    text(field, value, 254, Lines::One)?;
    let valid = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !value.chars().any(char::is_whitespace)
    });
    if !valid {
        return Err(bad(field, format!("`{value}` is not an email address")));
    }
    Ok(())
}

fn contact(field: &str, value: Option<&pb::Contact>) -> Result<(), FieldError> {
    let contact = value.ok_or_else(|| bad(field, "required"))?;
    text(&format!("{field}.name"), &contact.name, 200, Lines::One)?;
    email(&format!("{field}.email"), &contact.email)?;
    if contact.phone.len() > 40 {
        return Err(bad(format!("{field}.phone"), "at most 40 characters"));
    }
    crate::text::check(&format!("{field}.phone"), &contact.phone, Lines::One)
}

fn localized(field: &str, value: Option<&pb::LocalizedText>, max: usize) -> Result<(), FieldError> {
    let value = value.ok_or_else(|| bad(field, "required, in French and English"))?;
    text(&format!("{field}.fr"), &value.fr, max, Lines::Many)?;
    text(&format!("{field}.en"), &value.en, max, Lines::Many)
}

fn country(field: &str, value: &str) -> Result<(), FieldError> {
    if value.len() != 2 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad(
            field,
            format!("`{value}` is not an ISO 3166-1 alpha-2 code such as FR"),
        ));
    }
    Ok(())
}

fn positive_duration(
    field: &str,
    value: Option<&prost_types::Duration>,
) -> Result<i64, FieldError> {
    let d = value.ok_or_else(|| bad(field, "required"))?;
    if d.seconds < 0 || d.nanos < 0 || (d.seconds == 0 && d.nanos == 0) {
        return Err(bad(field, "must be a positive duration"));
    }
    Ok(d.seconds)
}

fn date(field: &str, d: Option<&pb::LocalDate>) -> Result<(i32, i32, i32), FieldError> {
    let d = d.ok_or_else(|| bad(field, "required"))?;
    let days_in_month = match d.month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (d.year % 4 == 0 && d.year % 100 != 0) || d.year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    };
    if !(1970..=9999).contains(&d.year) || days_in_month == 0 || d.day < 1 || d.day > days_in_month
    {
        return Err(bad(
            field,
            format!("{}-{}-{} is not a date", d.year, d.month, d.day),
        ));
    }
    Ok((d.year, d.month, d.day))
}

fn calendar(field: &str, cal: Option<&pb::ServiceCalendar>) -> Result<(), FieldError> {
    let cal = cal.ok_or_else(|| bad(field, "required"))?;
    if cal.time_zone.is_empty() {
        return Err(bad(
            format!("{field}.time_zone"),
            "required, e.g. Europe/Paris",
        ));
    }
    // The time zone database, windows, closures and maintenance periods.
    crate::calendar::Calendar::from_proto(field, cal)?;
    if cal.weekly_windows.is_empty() {
        return Err(bad(
            format!("{field}.weekly_windows"),
            "at least one window is required",
        ));
    }
    for (i, w) in cal.weekly_windows.iter().enumerate() {
        let path = format!("{field}.weekly_windows[{i}]");
        if !matches!(pb::DayOfWeek::try_from(w.day_of_week), Ok(d) if d != pb::DayOfWeek::Unspecified)
        {
            return Err(bad(format!("{path}.day_of_week"), "required"));
        }
        if !(0..1440).contains(&w.start_minute)
            || !(1..=1440).contains(&w.end_minute)
            || w.start_minute >= w.end_minute
        {
            return Err(bad(
                path,
                "start_minute must precede end_minute, within 0..=1440",
            ));
        }
    }
    if !matches!(pb::HolidaySet::try_from(cal.holiday_set), Ok(h) if h != pb::HolidaySet::Unspecified)
    {
        return Err(bad(
            format!("{field}.holiday_set"),
            "required: NONE, FR or FR_ALSACE_MOSELLE",
        ));
    }
    for (i, closure) in cal.annual_closures.iter().enumerate() {
        let path = format!("{field}.annual_closures[{i}]");
        let start = date(&format!("{path}.start_date"), closure.start_date.as_ref())?;
        let end = date(&format!("{path}.end_date"), closure.end_date.as_ref())?;
        if start > end {
            return Err(bad(path, "start_date is after end_date"));
        }
    }
    Ok(())
}

fn engagement(e: Option<&pb::ServiceEngagement>) -> Result<(), FieldError> {
    let field = "offer.engagement";
    let e = e.ok_or_else(|| bad(field, "required"))?;
    calendar(&format!("{field}.calendar"), e.calendar.as_ref())?;
    percent(
        &format!("{field}.availability_sla_percent"),
        e.availability_sla_percent,
    )?;
    percent(
        &format!("{field}.availability_slo_percent"),
        e.availability_slo_percent,
    )?;
    percent(
        &format!("{field}.request_handling_target_percent"),
        e.request_handling_target_percent,
    )?;
    if e.priority_targets.is_empty() {
        return Err(bad(
            format!("{field}.priority_targets"),
            "targets for P1 to P4 are required",
        ));
    }
    let mut seen = HashSet::new();
    for (i, t) in e.priority_targets.iter().enumerate() {
        let path = format!("{field}.priority_targets[{i}]");
        let priority = pb::Priority::try_from(t.priority).unwrap_or(pb::Priority::Unspecified);
        if priority == pb::Priority::Unspecified {
            return Err(bad(format!("{path}.priority"), "required: P1 to P4"));
        }
        if !seen.insert(priority) {
            return Err(bad(
                format!("{path}.priority"),
                format!("{} is listed twice", priority.as_str_name()),
            ));
        }
        let ack = positive_duration(
            &format!("{path}.acknowledge_within"),
            t.acknowledge_within.as_ref(),
        )?;
        let resolve =
            positive_duration(&format!("{path}.resolve_within"), t.resolve_within.as_ref())?;
        if ack > resolve {
            return Err(bad(
                format!("{path}.acknowledge_within"),
                "must not exceed resolve_within",
            ));
        }
    }
    Ok(())
}

fn money(field: &str, micros: i64) -> Result<(), FieldError> {
    if micros < 0 {
        return Err(bad(field, "must not be negative"));
    }
    Ok(())
}

/// Checks an offer submitted by `provider`'s admin. Fields the node sets (id, provider,
/// times, etag) may be empty; when set they must agree with the provider.
pub fn validate(offer: pb::Offer, provider: &MemberId) -> Result<ValidOffer, FieldError> {
    if !is_label(&offer.service_id) {
        return Err(bad(
            "offer.service_id",
            "use 1 to 63 characters among a-z, 0-9 and '-', starting with a letter",
        ));
    }
    let expected_id = offer_id(provider, &offer.service_id);
    if !offer.offer_id.is_empty() && offer.offer_id != expected_id {
        return Err(bad(
            "offer.offer_id",
            format!("must be empty or {expected_id}"),
        ));
    }
    text("offer.service_name", &offer.service_name, 120, Lines::One)?;
    localized("offer.description", offer.description.as_ref(), 4000)?;
    text("offer.version", &offer.version, 32, Lines::One)?;
    if !is_label(&offer.category) {
        return Err(bad(
            "offer.category",
            "a lowercase label such as `collaboration` or `video`",
        ));
    }
    match pb::OfferStatus::try_from(offer.status) {
        Ok(pb::OfferStatus::Pilot | pb::OfferStatus::Available | pb::OfferStatus::Deprecated) => {}
        Ok(pb::OfferStatus::Withdrawn) => {
            return Err(bad("offer.status", "withdraw an offer with WithdrawOffer"));
        }
        _ => {
            return Err(bad(
                "offer.status",
                "required: PILOT, AVAILABLE or DEPRECATED",
            ));
        }
    }
    engagement(offer.engagement.as_ref())?;

    let capacity = offer
        .capacity
        .as_ref()
        .ok_or_else(|| bad("offer.capacity", "required"))?;
    if capacity.max_tenants < 1 {
        return Err(bad("offer.capacity.max_tenants", "must be at least 1"));
    }
    if capacity.max_users_per_tenant < 1 {
        return Err(bad(
            "offer.capacity.max_users_per_tenant",
            "must be at least 1",
        ));
    }

    let pricing = offer
        .pricing
        .as_ref()
        .ok_or_else(|| bad("offer.pricing", "required"))?;
    if pricing.currency_code.len() != 3
        || !pricing
            .currency_code
            .bytes()
            .all(|b| b.is_ascii_uppercase())
    {
        return Err(bad(
            "offer.pricing.currency_code",
            "an ISO 4217 code such as EUR",
        ));
    }
    money("offer.pricing.setup_fee_micros", pricing.setup_fee_micros)?;
    money(
        "offer.pricing.per_tenant_per_year_micros",
        pricing.per_tenant_per_year_micros,
    )?;
    money(
        "offer.pricing.per_user_per_year_micros",
        pricing.per_user_per_year_micros,
    )?;
    if pricing.notes.chars().count() > 2000 {
        return Err(bad("offer.pricing.notes", "at most 2000 characters"));
    }
    crate::text::check("offer.pricing.notes", &pricing.notes, Lines::Many)?;

    let gdpr = offer
        .gdpr
        .as_ref()
        .ok_or_else(|| bad("offer.gdpr", "required"))?;
    country(
        "offer.gdpr.hosting_country_code",
        &gdpr.hosting_country_code,
    )?;
    text("offer.gdpr.datacentre", &gdpr.datacentre, 200, Lines::One)?;
    if gdpr.processing_purposes.is_empty() {
        return Err(bad(
            "offer.gdpr.processing_purposes",
            "at least one purpose is required",
        ));
    }
    for (i, purpose) in gdpr.processing_purposes.iter().enumerate() {
        text(
            &format!("offer.gdpr.processing_purposes[{i}]"),
            purpose,
            500,
            Lines::One,
        )?;
    }
    positive_duration(
        "offer.gdpr.retention_period",
        gdpr.retention_period.as_ref(),
    )?;
    contact("offer.gdpr.dpo_contact", gdpr.dpo_contact.as_ref())?;
    for (i, sub) in gdpr.sub_processors.iter().enumerate() {
        let path = format!("offer.gdpr.sub_processors[{i}]");
        text(&format!("{path}.name"), &sub.name, 200, Lines::One)?;
        country(&format!("{path}.country_code"), &sub.country_code)?;
        text(&format!("{path}.purpose"), &sub.purpose, 500, Lines::One)?;
    }

    let support = offer
        .support
        .as_ref()
        .ok_or_else(|| bad("offer.support", "required"))?;
    contact(
        "offer.support.single_point_of_contact",
        support.single_point_of_contact.as_ref(),
    )?;
    localized(
        "offer.support.level1_responsibility",
        support.level1_responsibility.as_ref(),
        2000,
    )?;
    if !support.documentation_url.starts_with("https://") || support.documentation_url.len() > 2000
    {
        return Err(bad(
            "offer.support.documentation_url",
            "an https:// URL is required",
        ));
    }
    crate::text::check(
        "offer.support.documentation_url",
        &support.documentation_url,
        Lines::One,
    )?;

    match pb::SubscriptionApprovalPolicy::try_from(offer.approval_policy) {
        Ok(pb::SubscriptionApprovalPolicy::AutoListedMembers) => {
            if offer.auto_approved_member_ids.is_empty() {
                return Err(bad(
                    "offer.auto_approved_member_ids",
                    "required with AUTO_LISTED_MEMBERS",
                ));
            }
        }
        Ok(
            pb::SubscriptionApprovalPolicy::Manual
            | pb::SubscriptionApprovalPolicy::AutoWithinCapacity,
        ) => {}
        _ => {
            return Err(bad(
                "offer.approval_policy",
                "required: MANUAL, AUTO_LISTED_MEMBERS or AUTO_WITHIN_CAPACITY",
            ));
        }
    }
    for (i, member) in offer.auto_approved_member_ids.iter().enumerate() {
        member.parse::<MemberId>().map_err(|e| {
            bad(
                format!("offer.auto_approved_member_ids[{i}]"),
                e.to_string(),
            )
        })?;
    }
    let mut metrics = HashSet::new();
    for (i, metric) in offer.custom_metrics.iter().enumerate() {
        let path = format!("offer.custom_metrics[{i}]");
        let shaped = !metric.is_empty()
            && metric.len() <= 63
            && metric.starts_with(|c: char| c.is_ascii_lowercase())
            && metric
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !shaped {
            return Err(bad(path, "a lowercase name of a-z, 0-9 and '_'"));
        }
        if WELL_KNOWN_METRICS.contains(&metric.as_str()) {
            return Err(bad(path, format!("`{metric}` is a built-in metric")));
        }
        if !metrics.insert(metric) {
            return Err(bad(path, format!("`{metric}` is listed twice")));
        }
    }
    text("offer.terms_version", &offer.terms_version, 32, Lines::One)?;
    if !offer.tenant_url_template.is_empty()
        && (!offer.tenant_url_template.starts_with("https://")
            || !offer.tenant_url_template.contains("{tenant}")
            || offer.tenant_url_template.len() > 500)
    {
        return Err(bad(
            "offer.tenant_url_template",
            "an https:// URL containing {tenant}, such as https://pod.example/{tenant}",
        ));
    }
    crate::text::check(
        "offer.tenant_url_template",
        &offer.tenant_url_template,
        Lines::One,
    )?;
    if !offer.provider_member_id.is_empty() && offer.provider_member_id != provider.as_str() {
        // Checked last so that callers can tell impersonation from a malformed offer.
        return Err(bad(
            "offer.provider_member_id",
            "must be the publishing member",
        ));
    }
    Ok(ValidOffer(offer))
}

/// Why a change to an offer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// The caller's etag is not the current one.
    #[error("offer {offer_id} has changed (current etag {current}); read it again and retry")]
    Stale {
        /// The offer.
        offer_id: String,
        /// Its current etag.
        current: String,
    },
    /// An update names an offer that does not exist.
    #[error("offer {0} does not exist; publish it without an etag to create it")]
    Missing(String),
    /// A create names an offer that already exists.
    #[error("offer {offer_id} already exists; pass its etag {current} to update it")]
    Exists {
        /// The offer.
        offer_id: String,
        /// Its current etag.
        current: String,
    },
    /// The offer was withdrawn: it cannot change any more.
    #[error("offer {0} is withdrawn; publish the service under a new service_id")]
    Withdrawn(String),
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The offer as stored.
    pub offer: pb::Offer,
    /// Whether it was created (not updated).
    pub created: bool,
}

/// Applies a publish: create when `current` is `None` and no etag is given, update when the
/// etag matches. `etag` is what the new version will carry; `now` its time.
pub fn publish(
    current: Option<&pb::Offer>,
    incoming: ValidOffer,
    provider: &MemberId,
    expected_etag: &str,
    new_etag: String,
    now: prost_types::Timestamp,
) -> Result<Published, LifecycleError> {
    let mut offer = incoming.0;
    offer.offer_id = offer_id(provider, &offer.service_id);
    offer.provider_member_id = provider.to_string();
    offer.update_time = Some(now);
    offer.etag = new_etag;
    // Maintenance windows are announced with AnnounceMaintenance, not published.
    if let Some(calendar) = offer.engagement.as_mut().and_then(|e| e.calendar.as_mut()) {
        calendar.maintenance_windows = current
            .and_then(|c| c.engagement.as_ref())
            .and_then(|e| e.calendar.as_ref())
            .map(|c| c.maintenance_windows.clone())
            .unwrap_or_default();
    }
    match current {
        None if expected_etag.is_empty() => {
            offer.create_time = Some(now);
            Ok(Published {
                offer,
                created: true,
            })
        }
        None => Err(LifecycleError::Missing(offer.offer_id)),
        Some(existing) if existing.status == pb::OfferStatus::Withdrawn as i32 => {
            Err(LifecycleError::Withdrawn(offer.offer_id))
        }
        Some(existing) if expected_etag.is_empty() => Err(LifecycleError::Exists {
            offer_id: offer.offer_id,
            current: existing.etag.clone(),
        }),
        Some(existing) if existing.etag != expected_etag => Err(LifecycleError::Stale {
            offer_id: offer.offer_id,
            current: existing.etag.clone(),
        }),
        Some(existing) => {
            offer.create_time = existing.create_time;
            Ok(Published {
                offer,
                created: false,
            })
        }
    }
}

/// Applies a withdrawal; an empty `expected_etag` withdraws whatever the current version is.
pub fn withdraw(
    current: &pb::Offer,
    expected_etag: &str,
    new_etag: String,
    now: prost_types::Timestamp,
) -> Result<pb::Offer, LifecycleError> {
    if current.status == pb::OfferStatus::Withdrawn as i32 {
        return Err(LifecycleError::Withdrawn(current.offer_id.clone()));
    }
    if !expected_etag.is_empty() && current.etag != expected_etag {
        return Err(LifecycleError::Stale {
            offer_id: current.offer_id.clone(),
            current: current.etag.clone(),
        });
    }
    let mut offer = current.clone();
    offer.status = pb::OfferStatus::Withdrawn as i32;
    offer.update_time = Some(now);
    offer.etag = new_etag;
    Ok(offer)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn member() -> MemberId {
        "unistra".parse().unwrap()
    }

    fn duration_hours(h: i64) -> Option<prost_types::Duration> {
        Some(prost_types::Duration {
            seconds: h * 3600,
            nanos: 0,
        })
    }

    /// A complete, valid offer.
    pub(crate) fn sample() -> pb::Offer {
        let contact = |name: &str| pb::Contact {
            name: name.into(),
            email: "support@unistra.example".into(),
            phone: String::new(),
        };
        pb::Offer {
            service_id: "pod".into(),
            service_name: "Pod".into(),
            description: Some(pb::LocalizedText {
                fr: "Plateforme vidéo".into(),
                en: "Video platform".into(),
            }),
            version: "3.5".into(),
            category: "video".into(),
            status: pb::OfferStatus::Available as i32,
            engagement: Some(pb::ServiceEngagement {
                calendar: Some(pb::ServiceCalendar {
                    time_zone: "Europe/Paris".into(),
                    weekly_windows: (1..=5)
                        .map(|d| pb::WeeklyWindow {
                            day_of_week: d,
                            start_minute: 480,
                            end_minute: 1080,
                        })
                        .collect(),
                    holiday_set: pb::HolidaySet::Fr as i32,
                    annual_closures: vec![],
                    maintenance_windows: vec![],
                }),
                availability_sla_percent: 99.0,
                availability_slo_percent: 95.0,
                request_handling_target_percent: 95.0,
                priority_targets: (1..=4)
                    .map(|p| pb::PriorityTarget {
                        priority: p,
                        acknowledge_within: duration_hours(i64::from(p)),
                        resolve_within: duration_hours(8 * i64::from(p)),
                    })
                    .collect(),
                p1_round_the_clock: false,
            }),
            capacity: Some(pb::Capacity {
                max_tenants: 18,
                max_users_per_tenant: 5000,
            }),
            pricing: Some(pb::PricingGrid {
                currency_code: "EUR".into(),
                setup_fee_micros: 1_500_000_000,
                per_tenant_per_year_micros: 3_000_000_000,
                per_user_per_year_micros: 500_000,
                notes: String::new(),
            }),
            gdpr: Some(pb::GdprFacts {
                hosting_country_code: "FR".into(),
                datacentre: "Strasbourg".into(),
                processing_purposes: vec!["video hosting".into()],
                retention_period: duration_hours(24 * 365),
                dpo_contact: Some(contact("DPO")),
                sub_processors: vec![],
            }),
            support: Some(pb::SupportInfo {
                single_point_of_contact: Some(contact("Support")),
                level1_responsibility: Some(pb::LocalizedText {
                    fr: "Le niveau 1".into(),
                    en: "Level 1".into(),
                }),
                documentation_url: "https://doc.unistra.example/pod".into(),
            }),
            pilot_tenants_accepted: true,
            approval_policy: pb::SubscriptionApprovalPolicy::Manual as i32,
            terms_version: "2026-01".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_sample_is_valid() {
        validate(sample(), &member()).unwrap();
    }

    #[test]
    fn each_bad_field_is_named() {
        type Breaker = fn(&mut pb::Offer);
        let cases: Vec<(Breaker, &str)> = vec![
            (|o| o.service_id = "Pod".into(), "offer.service_id"),
            (|o| o.offer_id = "rennes2.pod".into(), "offer.offer_id"),
            (|o| o.service_name = " ".into(), "offer.service_name"),
            (
                |o| o.description.as_mut().unwrap().en.clear(),
                "offer.description.en",
            ),
            (|o| o.description = None, "offer.description"),
            (|o| o.category = "Vidéo".into(), "offer.category"),
            (|o| o.status = 0, "offer.status"),
            (
                |o| o.status = pb::OfferStatus::Withdrawn as i32,
                "offer.status",
            ),
            (
                |o| o.engagement.as_mut().unwrap().availability_sla_percent = 101.0,
                "offer.engagement.availability_sla_percent",
            ),
            (
                |o| o.engagement.as_mut().unwrap().availability_slo_percent = 0.0,
                "offer.engagement.availability_slo_percent",
            ),
            (
                |o| {
                    o.engagement
                        .as_mut()
                        .unwrap()
                        .request_handling_target_percent = f64::NAN
                },
                "offer.engagement.request_handling_target_percent",
            ),
            (
                |o| {
                    o.engagement
                        .as_mut()
                        .unwrap()
                        .calendar
                        .as_mut()
                        .unwrap()
                        .time_zone = "Paris".into()
                },
                "offer.engagement.calendar.time_zone",
            ),
            (
                |o| {
                    o.engagement
                        .as_mut()
                        .unwrap()
                        .calendar
                        .as_mut()
                        .unwrap()
                        .weekly_windows[2]
                        .end_minute = 100
                },
                "offer.engagement.calendar.weekly_windows[2]",
            ),
            (
                |o| {
                    o.engagement
                        .as_mut()
                        .unwrap()
                        .calendar
                        .as_mut()
                        .unwrap()
                        .holiday_set = 0
                },
                "offer.engagement.calendar.holiday_set",
            ),
            (
                |o| o.engagement.as_mut().unwrap().priority_targets[1].priority = 1,
                "offer.engagement.priority_targets[1].priority",
            ),
            (
                |o| o.engagement.as_mut().unwrap().priority_targets[0].resolve_within = None,
                "offer.engagement.priority_targets[0].resolve_within",
            ),
            (
                |o| o.capacity.as_mut().unwrap().max_tenants = 0,
                "offer.capacity.max_tenants",
            ),
            (
                |o| o.pricing.as_mut().unwrap().currency_code = "eur".into(),
                "offer.pricing.currency_code",
            ),
            (
                |o| o.pricing.as_mut().unwrap().setup_fee_micros = -1,
                "offer.pricing.setup_fee_micros",
            ),
            (
                |o| o.gdpr.as_mut().unwrap().hosting_country_code = "France".into(),
                "offer.gdpr.hosting_country_code",
            ),
            (
                |o| o.gdpr.as_mut().unwrap().processing_purposes.clear(),
                "offer.gdpr.processing_purposes",
            ),
            (
                |o| o.gdpr.as_mut().unwrap().dpo_contact.as_mut().unwrap().email = "dpo".into(),
                "offer.gdpr.dpo_contact.email",
            ),
            (
                |o| o.support.as_mut().unwrap().documentation_url = "http://x".into(),
                "offer.support.documentation_url",
            ),
            (
                |o| o.approval_policy = pb::SubscriptionApprovalPolicy::AutoListedMembers as i32,
                "offer.auto_approved_member_ids",
            ),
            (
                |o| o.custom_metrics = vec!["requests".into()],
                "offer.custom_metrics[0]",
            ),
            (|o| o.terms_version.clear(), "offer.terms_version"),
            (
                |o| o.tenant_url_template = "https://pod.example/".into(),
                "offer.tenant_url_template",
            ),
            (
                |o| o.provider_member_id = "rennes2".into(),
                "offer.provider_member_id",
            ),
        ];
        for (breaker, field) in cases {
            let mut offer = sample();
            breaker(&mut offer);
            let err = validate(offer, &member()).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn texts_other_members_read_refuse_control_characters_by_field() {
        const OSC: &str = "\u{1b}]0;pwned\u{7}";
        type Breaker = fn(&mut pb::Offer);
        let cases: Vec<(Breaker, &str)> = vec![
            (
                |o| o.service_name = format!("Pod{OSC}"),
                "offer.service_name",
            ),
            (|o| o.version = "1.0\n".into(), "offer.version"),
            (
                |o| o.description.as_mut().unwrap().fr = "rtl \u{202e}txt".into(),
                "offer.description.fr",
            ),
            (
                |o| o.pricing.as_mut().unwrap().notes = "\u{9b}2J".into(),
                "offer.pricing.notes",
            ),
            (
                |o| o.gdpr.as_mut().unwrap().datacentre = "Rennes\tB".into(),
                "offer.gdpr.datacentre",
            ),
            (
                |o| o.gdpr.as_mut().unwrap().processing_purposes[0] = format!("x{OSC}"),
                "offer.gdpr.processing_purposes[0]",
            ),
            (
                |o| o.gdpr.as_mut().unwrap().dpo_contact.as_mut().unwrap().name = "D\rPO".into(),
                "offer.gdpr.dpo_contact.name",
            ),
            (
                |o| {
                    o.support
                        .as_mut()
                        .unwrap()
                        .single_point_of_contact
                        .as_mut()
                        .unwrap()
                        .phone = "+33\u{7f}".into()
                },
                "offer.support.single_point_of_contact.phone",
            ),
            (
                |o| {
                    o.support
                        .as_mut()
                        .unwrap()
                        .level1_responsibility
                        .as_mut()
                        .unwrap()
                        .en = format!("the tenant{OSC}")
                },
                "offer.support.level1_responsibility.en",
            ),
            (
                |o| o.support.as_mut().unwrap().documentation_url = format!("https://x/{OSC}"),
                "offer.support.documentation_url",
            ),
            (
                |o| o.tenant_url_template = "https://pod.example/{tenant}\u{2066}".into(),
                "offer.tenant_url_template",
            ),
            (
                |o| o.terms_version = "v1\u{0}".into(),
                "offer.terms_version",
            ),
        ];
        for (breaker, field) in cases {
            let mut offer = sample();
            breaker(&mut offer);
            let err = validate(offer, &member()).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert_eq!(err.message, "must not contain control characters", "{err}");
        }
        // Descriptions keep their paragraphs.
        let mut offer = sample();
        offer.description.as_mut().unwrap().en = "A pod.\n\n\tWith tabs.".into();
        validate(offer, &member()).unwrap();
    }

    fn ts(seconds: i64) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos: 0 }
    }

    #[test]
    fn publish_creates_then_updates_under_the_etag() {
        let created = publish(
            None,
            validate(sample(), &member()).unwrap(),
            &member(),
            "",
            "1".into(),
            ts(10),
        )
        .unwrap();
        assert!(created.created);
        assert_eq!(created.offer.offer_id, "unistra.pod");
        assert_eq!(created.offer.provider_member_id, "unistra");
        assert_eq!(created.offer.create_time, Some(ts(10)));

        let again = validate(sample(), &member()).unwrap();
        let err = publish(
            Some(&created.offer),
            again.clone(),
            &member(),
            "",
            "2".into(),
            ts(20),
        )
        .unwrap_err();
        assert!(matches!(err, LifecycleError::Exists { .. }), "{err}");
        let err = publish(
            Some(&created.offer),
            again.clone(),
            &member(),
            "0",
            "2".into(),
            ts(20),
        )
        .unwrap_err();
        assert!(matches!(err, LifecycleError::Stale { .. }), "{err}");
        let updated = publish(
            Some(&created.offer),
            again,
            &member(),
            "1",
            "2".into(),
            ts(20),
        )
        .unwrap();
        assert!(!updated.created);
        assert_eq!(updated.offer.create_time, Some(ts(10)));
        assert_eq!(updated.offer.update_time, Some(ts(20)));
        assert_eq!(updated.offer.etag, "2");

        let err = publish(
            None,
            validate(sample(), &member()).unwrap(),
            &member(),
            "7",
            "3".into(),
            ts(30),
        )
        .unwrap_err();
        assert!(matches!(err, LifecycleError::Missing(_)), "{err}");
    }

    #[test]
    fn a_withdrawn_offer_is_final() {
        let created = publish(
            None,
            validate(sample(), &member()).unwrap(),
            &member(),
            "",
            "1".into(),
            ts(10),
        )
        .unwrap()
        .offer;
        assert!(matches!(
            withdraw(&created, "0", "2".into(), ts(11)),
            Err(LifecycleError::Stale { .. })
        ));
        let withdrawn = withdraw(&created, "", "2".into(), ts(11)).unwrap();
        assert_eq!(withdrawn.status, pb::OfferStatus::Withdrawn as i32);
        assert!(matches!(
            withdraw(&withdrawn, "", "3".into(), ts(12)),
            Err(LifecycleError::Withdrawn(_))
        ));
        let err = publish(
            Some(&withdrawn),
            validate(sample(), &member()).unwrap(),
            &member(),
            "2",
            "3".into(),
            ts(12),
        )
        .unwrap_err();
        assert!(matches!(err, LifecycleError::Withdrawn(_)), "{err}");
    }

    #[test]
    fn offer_ids_name_their_provider() {
        assert_eq!(
            provider_of("unistra.pod").map(|m| m.to_string()),
            Some("unistra".into())
        );
        assert_eq!(provider_of("unistra"), None);
        assert_eq!(provider_of("Unistra.pod"), None);
        assert_eq!(provider_of("unistra.Pod"), None);
    }
}
