//! The offer file: the TOML a provider's admin writes and publishes with
//! `fedmesh offer publish --file offer.toml`, and its conversion to the wire type [`pb::Offer`].
//!
//! The wire type is made for machines (minutes after midnight, micros, seconds, enum numbers);
//! the file is made for the people who negotiate offers inside the consortium: times as `"08:00"`,
//! days as `"mon"`, money as `"1500.00"`, deadlines in service hours. The full reference, with
//! every key, is `docs/offers.md`; annotated examples are in `examples/offers/`.
//!
//! ```toml
//! service_id = "collab"                  # → service_id
//! service_name = "Espace collaboratif"
//! version = "30.0"
//! category = "collaboration"
//! status = "available"                   # "pilot" | "available" | "deprecated"
//! terms_version = "2026-01"
//! pilot_tenants_accepted = false
//! custom_metrics = ["documents", "groups"]
//! # policy: "manual" | "auto-listed-members" (then members) | "auto-within-capacity"
//! approval = { policy = "auto-listed-members", members = ["rouen"] }
//! [description]
//! fr = "…"
//! en = "…"
//!
//! [engagement]
//! time_zone = "Europe/Paris"             # the default
//! holidays = "fr"                        # "fr" | "fr-alsace-moselle" | "none"
//! windows = [{ days = ["mon", "tue", "wed", "thu", "fri"], from = "08:00", to = "18:00" }]
//! closures = [{ from = "2026-12-24", to = "2027-01-01" }, { from = "2027-05-07" }]
//! availability_sla_percent = 99.0
//! availability_slo_percent = 95.0
//! request_handling_target_percent = 95.0
//! p1_round_the_clock = false
//! [[engagement.priorities]]
//! priority = "P1"                        # "P1" … "P4"
//! acknowledge_hours = 1.0                # service hours, fractions allowed
//! resolve_hours = 8.0
//!
//! [capacity]
//! max_tenants = 18                       # 0: no declared limit
//! max_users_per_tenant = 5000
//!
//! [pricing]
//! currency = "EUR"
//! setup_fee = "1500.00"                  # decimal strings, at most 6 decimals, exact
//! per_tenant_per_year = "4800.00"
//! per_user_per_year = "0.50"
//! notes = "…"
//!
//! [gdpr]
//! hosting_country = "FR"
//! datacentre = "…"
//! purposes = ["…"]
//! retention_days = 90
//! dpo = { name = "…", email = "dpo@example.example" }
//! [[gdpr.sub_processors]]
//! name = "…"
//! country = "FR"
//! purpose = "…"
//!
//! [support]
//! contact = { name = "…", email = "…", phone = "+33 …" }
//! level1 = { fr = "…", en = "…" }
//! documentation_url = "https://…"
//! ```
//!
//! Each day of a window becomes one `WeeklyWindow`; `"24:00"` is allowed as the end of a
//! window. A closure without `to` is a single day. Amounts may also be TOML integers
//! (`setup_fee = 1500`) but not floats, which are not exact. Times and dates may also be TOML
//! local times and dates (`from = 08:00`, `from = 2026-12-24`).
//!
//! What the node sets (`offer_id`, `provider_member_id`, create and update times, `etag`) and
//! what it fills itself (the calendar's maintenance windows) is not in the file.
//!
//! This module only converts shapes. Unknown keys and wrong types are errors (every table is
//! `deny_unknown_fields`), and so is any value the conversion cannot carry over (a bad time,
//! date or amount, an unknown word). Everything else, ranges, required fields, e-mail syntax,
//! is checked by the node on publish, in one place, for every client: a missing key here
//! becomes an empty or zero field there, which the node reports with its path.

mod export;
pub use export::to_toml;

use fedmesh_proto::pb;
use prost_types::Duration;
use serde::Deserialize;
use toml::{Spanned, Value};

/// Why an offer file could not be turned into an offer.
#[derive(Debug, thiserror::Error)]
pub enum OfferFileError {
    /// The text is not TOML, or does not fit the file's shape: unknown key, wrong type, missing
    /// key of a table, unknown word for an enumerated key (`status`, `holidays`, days…).
    #[error("{message}")]
    Toml {
        /// toml's error text, which shows the line, the column and the offending snippet.
        message: String,
    },
    /// A value has an acceptable TOML type but cannot be converted to the offer's field.
    #[error("{path}: {reason} (line {line}, column {column})")]
    Value {
        /// Dotted key path of the value, e.g. `engagement.windows[1].from`.
        path: String,
        /// What is wrong with it, e.g. `"8h" is not a HH:MM time`.
        reason: String,
        /// Line of the value in the file, from 1.
        line: usize,
        /// Column of the value in its line, from 1, in characters.
        column: usize,
    },
}

impl OfferFileError {
    /// The key path of the bad value, when the error is about one value.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Toml { .. } => None,
            Self::Value { path, .. } => Some(path.as_str()),
        }
    }
}

/// Parses an offer file and converts it to the offer to publish.
///
/// The node-set fields of the result are empty; see the module documentation.
pub fn parse_offer_file(text: &str) -> Result<pb::Offer, OfferFileError> {
    let file: OfferFile = toml::from_str(text).map_err(|e| OfferFileError::Toml {
        message: e.to_string().trim_end().to_owned(),
    })?;
    file.into_pb(Source { text })
}

/// The file's text, kept so that a bad value's byte offset can be reported as line and column.
#[derive(Clone, Copy)]
struct Source<'a> {
    text: &'a str,
}

impl Source<'_> {
    /// Converts one value with `f`; a failure becomes an error naming `path` and the value's
    /// position.
    fn convert<T, U>(
        self,
        path: &str,
        value: &Spanned<T>,
        f: impl FnOnce(&T) -> Result<U, String>,
    ) -> Result<U, OfferFileError> {
        f(value.get_ref()).map_err(|reason| {
            let before = self.text.get(..value.span().start).unwrap_or(self.text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            OfferFileError::Value {
                path: path.to_owned(),
                reason,
                line,
                column,
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The file's shape. Missing scalars default to empty or zero, missing tables to "not set", so
// that the node, not this parser, decides what is required.
// ---------------------------------------------------------------------------------------------

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct OfferFile {
    service_id: String,
    service_name: String,
    version: String,
    category: String,
    status: Option<StatusWord>,
    terms_version: String,
    tenant_url_template: String,
    pilot_tenants_accepted: bool,
    custom_metrics: Vec<String>,
    approval: Option<ApprovalFile>,
    description: Option<TextFile>,
    engagement: Option<EngagementFile>,
    capacity: Option<CapacityFile>,
    pricing: Option<PricingFile>,
    gdpr: Option<GdprFile>,
    support: Option<SupportFile>,
}

/// `approval`: a policy is what the table is for, so it is required in it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalFile {
    policy: PolicyWord,
    /// Members approved at once under `auto-listed-members`.
    #[serde(default)]
    members: Vec<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TextFile {
    fr: String,
    en: String,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct EngagementFile {
    time_zone: String,
    /// Unset lets the node apply its default set (`fr`).
    holidays: Option<HolidayWord>,
    /// None at all lets the node apply its default window (Mon–Fri 08:00–18:00).
    windows: Vec<WindowFile>,
    closures: Vec<ClosureFile>,
    availability_sla_percent: f64,
    availability_slo_percent: f64,
    request_handling_target_percent: f64,
    p1_round_the_clock: bool,
    priorities: Vec<PriorityFile>,
}

impl Default for EngagementFile {
    fn default() -> Self {
        Self {
            // The consortium's members are French institutions.
            time_zone: "Europe/Paris".to_owned(),
            holidays: None,
            windows: Vec::new(),
            closures: Vec::new(),
            availability_sla_percent: 0.0,
            availability_slo_percent: 0.0,
            request_handling_target_percent: 0.0,
            p1_round_the_clock: false,
            priorities: Vec::new(),
        }
    }
}

/// One line of the weekly schedule, shared by several days: people write "Mon–Fri 8–18", not
/// five windows.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowFile {
    days: Spanned<Vec<Day>>,
    /// A string "HH:MM" or a TOML local time.
    from: Spanned<Value>,
    /// A string "HH:MM" (or "24:00") or a TOML local time.
    to: Spanned<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClosureFile {
    /// A string "YYYY-MM-DD" or a TOML local date.
    from: Spanned<Value>,
    /// Same as `from` when absent: a one-day closure.
    to: Option<Spanned<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriorityFile {
    priority: PriorityWord,
    acknowledge_hours: Option<Spanned<f64>>,
    resolve_hours: Option<Spanned<f64>>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CapacityFile {
    max_tenants: i32,
    max_users_per_tenant: i32,
}

/// Amounts are strings (or integers) because TOML floats cannot hold 0.10 exactly.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PricingFile {
    currency: String,
    setup_fee: Option<Spanned<Value>>,
    per_tenant_per_year: Option<Spanned<Value>>,
    per_user_per_year: Option<Spanned<Value>>,
    notes: String,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct GdprFile {
    hosting_country: String,
    datacentre: String,
    purposes: Vec<String>,
    retention_days: Option<Spanned<i64>>,
    dpo: Option<ContactFile>,
    sub_processors: Vec<SubProcessorFile>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SubProcessorFile {
    name: String,
    country: String,
    purpose: String,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ContactFile {
    name: String,
    email: String,
    phone: String,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SupportFile {
    contact: Option<ContactFile>,
    level1: Option<TextFile>,
    documentation_url: String,
}

/// Statuses an admin may publish; withdrawal has its own RPC, so "withdrawn" is not one.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum StatusWord {
    Pilot,
    Available,
    Deprecated,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum PolicyWord {
    Manual,
    AutoListedMembers,
    AutoWithinCapacity,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum HolidayWord {
    Fr,
    FrAlsaceMoselle,
    #[serde(rename = "none")]
    NoHolidays,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

#[derive(Clone, Copy, Deserialize)]
enum PriorityWord {
    P1,
    P2,
    P3,
    P4,
}

// ---------------------------------------------------------------------------------------------
// Conversion to the wire type.
// ---------------------------------------------------------------------------------------------

impl OfferFile {
    fn into_pb(self, src: Source<'_>) -> Result<pb::Offer, OfferFileError> {
        let (approval_policy, auto_approved_member_ids) = match self.approval {
            Some(approval) => (approval.policy.to_pb(), approval.members),
            // Without an approval table, every request waits for a provider admin.
            None => (pb::SubscriptionApprovalPolicy::Manual, Vec::new()),
        };
        let status = self
            .status
            .map_or(pb::OfferStatus::Unspecified, StatusWord::to_pb);
        let engagement = match self.engagement {
            Some(engagement) => Some(engagement.into_pb(src)?),
            None => None,
        };
        let pricing = match self.pricing {
            Some(pricing) => Some(pricing.into_pb(src)?),
            None => None,
        };
        let gdpr = match self.gdpr {
            Some(gdpr) => Some(gdpr.into_pb(src)?),
            None => None,
        };
        Ok(pb::Offer {
            service_id: self.service_id,
            service_name: self.service_name,
            description: self.description.map(TextFile::into_pb),
            version: self.version,
            category: self.category,
            status: status as i32,
            engagement,
            capacity: self.capacity.map(|c| pb::Capacity {
                max_tenants: c.max_tenants,
                max_users_per_tenant: c.max_users_per_tenant,
            }),
            pricing,
            gdpr,
            support: self.support.map(SupportFile::into_pb),
            pilot_tenants_accepted: self.pilot_tenants_accepted,
            approval_policy: approval_policy as i32,
            auto_approved_member_ids,
            custom_metrics: self.custom_metrics,
            terms_version: self.terms_version,
            tenant_url_template: self.tenant_url_template,
            ..pb::Offer::default()
        })
    }
}

impl TextFile {
    fn into_pb(self) -> pb::LocalizedText {
        pb::LocalizedText {
            fr: self.fr,
            en: self.en,
        }
    }
}

impl ContactFile {
    fn into_pb(self) -> pb::Contact {
        pb::Contact {
            name: self.name,
            email: self.email,
            phone: self.phone,
        }
    }
}

impl SupportFile {
    fn into_pb(self) -> pb::SupportInfo {
        pb::SupportInfo {
            single_point_of_contact: self.contact.map(ContactFile::into_pb),
            level1_responsibility: self.level1.map(TextFile::into_pb),
            documentation_url: self.documentation_url,
        }
    }
}

impl EngagementFile {
    fn into_pb(self, src: Source<'_>) -> Result<pb::ServiceEngagement, OfferFileError> {
        let mut weekly_windows = Vec::new();
        for (i, window) in self.windows.iter().enumerate() {
            let path = format!("engagement.windows[{i}]");
            // A window without days would vanish in the conversion, and with it maybe the
            // whole schedule, silently replaced by the node's default.
            src.convert(&format!("{path}.days"), &window.days, |days| {
                if days.is_empty() {
                    Err("a window needs at least one day".to_owned())
                } else {
                    Ok(())
                }
            })?;
            let start_minute = src.convert(&format!("{path}.from"), &window.from, |v| {
                parse_minute(v, false)
            })?;
            let end_minute =
                src.convert(&format!("{path}.to"), &window.to, |v| parse_minute(v, true))?;
            weekly_windows.extend(window.days.get_ref().iter().map(|day| pb::WeeklyWindow {
                day_of_week: day.to_pb() as i32,
                start_minute,
                end_minute,
            }));
        }

        let mut annual_closures = Vec::new();
        for (i, closure) in self.closures.iter().enumerate() {
            let path = format!("engagement.closures[{i}]");
            let start = src.convert(&format!("{path}.from"), &closure.from, parse_date)?;
            let end = match &closure.to {
                Some(to) => src.convert(&format!("{path}.to"), to, parse_date)?,
                None => start,
            };
            annual_closures.push(pb::DateRange {
                start_date: Some(start),
                end_date: Some(end),
            });
        }

        let mut priority_targets = Vec::new();
        for (i, target) in self.priorities.iter().enumerate() {
            let path = format!("engagement.priorities[{i}]");
            priority_targets.push(pb::PriorityTarget {
                priority: target.priority.to_pb() as i32,
                acknowledge_within: optional_hours(
                    src,
                    &format!("{path}.acknowledge_hours"),
                    target.acknowledge_hours.as_ref(),
                )?,
                resolve_within: optional_hours(
                    src,
                    &format!("{path}.resolve_hours"),
                    target.resolve_hours.as_ref(),
                )?,
            });
        }

        // The seed's service window: French public holidays, Monday to Friday 08:00-18:00.
        let holiday_set = self.holidays.map_or(pb::HolidaySet::Fr, HolidayWord::to_pb);
        if weekly_windows.is_empty() {
            weekly_windows = (1..=5)
                .map(|day| pb::WeeklyWindow {
                    day_of_week: day,
                    start_minute: 8 * 60,
                    end_minute: 18 * 60,
                })
                .collect();
        }
        Ok(pb::ServiceEngagement {
            calendar: Some(pb::ServiceCalendar {
                time_zone: self.time_zone,
                weekly_windows,
                holiday_set: holiday_set as i32,
                annual_closures,
                maintenance_windows: Vec::new(),
            }),
            availability_sla_percent: self.availability_sla_percent,
            availability_slo_percent: self.availability_slo_percent,
            request_handling_target_percent: self.request_handling_target_percent,
            priority_targets,
            p1_round_the_clock: self.p1_round_the_clock,
        })
    }
}

fn optional_hours(
    src: Source<'_>,
    path: &str,
    value: Option<&Spanned<f64>>,
) -> Result<Option<Duration>, OfferFileError> {
    match value {
        Some(hours) => src
            .convert(path, hours, |h| hours_to_duration(*h))
            .map(Some),
        None => Ok(None),
    }
}

impl PricingFile {
    fn into_pb(self, src: Source<'_>) -> Result<pb::PricingGrid, OfferFileError> {
        let amount = |key: &str, value: &Option<Spanned<Value>>| match value {
            Some(value) => src.convert(&format!("pricing.{key}"), value, parse_amount),
            // No fee of that kind.
            None => Ok(0),
        };
        Ok(pb::PricingGrid {
            setup_fee_micros: amount("setup_fee", &self.setup_fee)?,
            per_tenant_per_year_micros: amount("per_tenant_per_year", &self.per_tenant_per_year)?,
            per_user_per_year_micros: amount("per_user_per_year", &self.per_user_per_year)?,
            currency_code: self.currency,
            notes: self.notes,
        })
    }
}

impl GdprFile {
    fn into_pb(self, src: Source<'_>) -> Result<pb::GdprFacts, OfferFileError> {
        let retention_period = match &self.retention_days {
            Some(days) => Some(src.convert("gdpr.retention_days", days, |d| days_to_duration(*d))?),
            None => None,
        };
        Ok(pb::GdprFacts {
            hosting_country_code: self.hosting_country,
            datacentre: self.datacentre,
            processing_purposes: self.purposes,
            retention_period,
            dpo_contact: self.dpo.map(ContactFile::into_pb),
            sub_processors: self
                .sub_processors
                .into_iter()
                .map(|s| pb::SubProcessor {
                    name: s.name,
                    country_code: s.country,
                    purpose: s.purpose,
                })
                .collect(),
        })
    }
}

impl StatusWord {
    fn to_pb(self) -> pb::OfferStatus {
        match self {
            Self::Pilot => pb::OfferStatus::Pilot,
            Self::Available => pb::OfferStatus::Available,
            Self::Deprecated => pb::OfferStatus::Deprecated,
        }
    }
}

impl PolicyWord {
    fn to_pb(self) -> pb::SubscriptionApprovalPolicy {
        match self {
            Self::Manual => pb::SubscriptionApprovalPolicy::Manual,
            Self::AutoListedMembers => pb::SubscriptionApprovalPolicy::AutoListedMembers,
            Self::AutoWithinCapacity => pb::SubscriptionApprovalPolicy::AutoWithinCapacity,
        }
    }
}

impl HolidayWord {
    fn to_pb(self) -> pb::HolidaySet {
        match self {
            Self::Fr => pb::HolidaySet::Fr,
            Self::FrAlsaceMoselle => pb::HolidaySet::FrAlsaceMoselle,
            Self::NoHolidays => pb::HolidaySet::None,
        }
    }
}

impl Day {
    fn to_pb(self) -> pb::DayOfWeek {
        match self {
            Self::Mon => pb::DayOfWeek::Monday,
            Self::Tue => pb::DayOfWeek::Tuesday,
            Self::Wed => pb::DayOfWeek::Wednesday,
            Self::Thu => pb::DayOfWeek::Thursday,
            Self::Fri => pb::DayOfWeek::Friday,
            Self::Sat => pb::DayOfWeek::Saturday,
            Self::Sun => pb::DayOfWeek::Sunday,
        }
    }
}

impl PriorityWord {
    fn to_pb(self) -> pb::Priority {
        match self {
            Self::P1 => pb::Priority::P1,
            Self::P2 => pb::Priority::P2,
            Self::P3 => pb::Priority::P3,
            Self::P4 => pb::Priority::P4,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar conversions. Each returns the reason of a failure; the caller adds path and position.
// ---------------------------------------------------------------------------------------------

/// The text of a time or date given either as a string or as a TOML local time or date, so
/// that `"08:00"` and `08:00` mean the same.
fn time_or_date_text(value: &Value, expected: &str) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Datetime(datetime) => Ok(datetime.to_string()),
        other => Err(format!("expected {expected}, found {}", other.type_str())),
    }
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Minutes after local midnight of "HH:MM" (the hour may have one digit). "24:00", the end of
/// the day, is accepted only when `end_of_window` is true.
fn parse_minute(value: &Value, end_of_window: bool) -> Result<i32, String> {
    let text = time_or_date_text(value, "a HH:MM time")?;
    let not_a_time = || format!("{text:?} is not a HH:MM time");
    let Some((hours, minutes)) = text.split_once(':') else {
        return Err(not_a_time());
    };
    if !all_digits(hours) || hours.len() > 2 || !all_digits(minutes) || minutes.len() != 2 {
        return Err(not_a_time());
    }
    let hours: i32 = hours.parse().map_err(|_| not_a_time())?;
    let minutes: i32 = minutes.parse().map_err(|_| not_a_time())?;
    if hours == 24 && minutes == 0 {
        return if end_of_window {
            Ok(24 * 60)
        } else {
            Err(format!("{text:?} is only valid as the end of a window"))
        };
    }
    if hours > 23 || minutes > 59 {
        return Err(not_a_time());
    }
    Ok(hours * 60 + minutes)
}

/// A calendar date "YYYY-MM-DD" that exists (no 30 February).
fn parse_date(value: &Value) -> Result<pb::LocalDate, String> {
    let text = time_or_date_text(value, "a YYYY-MM-DD date")?;
    let not_a_date = || format!("{text:?} is not a YYYY-MM-DD date");
    let mut parts = text.split('-');
    let (Some(year), Some(month), Some(day), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(not_a_date());
    };
    let shape_ok = year.len() == 4 && month.len() == 2 && day.len() == 2;
    if !shape_ok || !all_digits(year) || !all_digits(month) || !all_digits(day) {
        return Err(not_a_date());
    }
    let year: i32 = year.parse().map_err(|_| not_a_date())?;
    let month: i32 = month.parse().map_err(|_| not_a_date())?;
    let day: i32 = day.parse().map_err(|_| not_a_date())?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(format!("{text:?} is not a date of the calendar"));
    }
    Ok(pb::LocalDate { year, month, day })
}

fn days_in_month(year: i32, month: i32) -> i32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

const MICROS_PER_UNIT: i64 = 1_000_000;

/// An amount in millionths of the currency unit, from a decimal string or an integer.
fn parse_amount(value: &Value) -> Result<i64, String> {
    match value {
        Value::String(text) => parse_decimal_micros(text),
        Value::Integer(units) if *units < 0 => Err(format!("{units} is negative")),
        Value::Integer(units) => units
            .checked_mul(MICROS_PER_UNIT)
            .ok_or_else(|| format!("{units} is too large")),
        Value::Float(_) => Err(
            "write amounts as strings such as \"1500.00\": a TOML float is not exact".to_owned(),
        ),
        other => Err(format!(
            "expected a decimal amount such as \"1500.00\", found {}",
            other.type_str()
        )),
    }
}

/// Exact decimal to micros: "1500" and "0.50" and "0.000001", nothing else (no sign, no
/// exponent, no separators, at most 6 decimals), so that a price never changes by rounding.
fn parse_decimal_micros(text: &str) -> Result<i64, String> {
    if text.starts_with('-') {
        return Err(format!("{text:?} is negative"));
    }
    let (units, fraction) = text.split_once('.').unwrap_or((text, ""));
    let fraction_ok = !text.contains('.') || all_digits(fraction);
    if !all_digits(units) || !fraction_ok {
        return Err(format!(
            "{text:?} is not a decimal amount such as \"1500.00\""
        ));
    }
    if fraction.len() > 6 {
        return Err(format!("{text:?} has more than 6 decimals"));
    }
    let too_large = || format!("{text:?} is too large");
    let mut micros: i64 = 0;
    for digit in units.bytes() {
        micros = micros
            .checked_mul(10)
            .and_then(|m| m.checked_add(i64::from(digit - b'0')))
            .ok_or_else(too_large)?;
    }
    micros = micros.checked_mul(MICROS_PER_UNIT).ok_or_else(too_large)?;
    let mut fraction_micros: i64 = 0;
    for position in 0..6 {
        let digit = fraction
            .as_bytes()
            .get(position)
            .map_or(0, |d| i64::from(d - b'0'));
        fraction_micros = fraction_micros * 10 + digit;
    }
    micros.checked_add(fraction_micros).ok_or_else(too_large)
}

/// Service hours to a duration, rounded to the second (1/3600 h is finer than any deadline).
fn hours_to_duration(hours: f64) -> Result<Duration, String> {
    // Far beyond any deadline, and small enough for the cast below to be exact.
    const MAX_HOURS: f64 = 1.0e9;
    if !hours.is_finite() || hours.abs() > MAX_HOURS {
        return Err(format!("{hours} is not a usable number of hours"));
    }
    Ok(Duration {
        seconds: (hours * 3600.0).round() as i64,
        nanos: 0,
    })
}

fn days_to_duration(days: i64) -> Result<Duration, String> {
    let seconds = days
        .checked_mul(86_400)
        .ok_or_else(|| format!("{days} days is too large"))?;
    Ok(Duration { seconds, nanos: 0 })
}

#[cfg(test)]
mod tests;
