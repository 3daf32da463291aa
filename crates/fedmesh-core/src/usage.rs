//! Usage and availability records: checking what a provider's agent reports, filing it by
//! month, and the figures computed from stored records — monthly aggregates per tenant,
//! availability inside and outside the service window, the capacity trend.
//!
//! Records are identified by the reporter's `record_id`, unique per offer. A record reported
//! again with the same content is a duplicate (acknowledged, not counted twice); with another
//! content it is a conflict (the store compares them).

use std::collections::{BTreeMap, HashMap};

use fedmesh_proto::pb;

use crate::calendar::{self, Calendar, closed_period, instant};
use crate::offer::WELL_KNOWN_METRICS;
use crate::span::{self, Secs, Span};

/// Most records accepted in one `ReportUsage` or `ReportAvailability` call.
pub const MAX_BATCH: usize = 1000;
/// Longest outage one record may describe; longer ones are reported in pieces, so that a
/// month's figures only need the records that start in it or in the month before.
pub const MAX_OUTAGE: Secs = 31 * 86_400;
/// How far in the future a reported period may end (clock skew between agent and node).
pub const FUTURE_SKEW: Secs = 300;
/// Longest record id.
pub const MAX_RECORD_ID: usize = 128;

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    /// The year.
    pub year: i32,
    /// 1 to 12.
    pub month: u32,
}

impl Month {
    /// The month, if `month` is 1 to 12 and the year between 1970 and 9998.
    pub fn new(year: i32, month: u32) -> Option<Self> {
        ((1970..=9998).contains(&year) && (1..=12).contains(&month)).then_some(Self { year, month })
    }

    /// From the protobuf form; errors name `field`.
    pub fn from_proto(field: &str, ym: Option<&pb::YearMonth>) -> Result<Self, String> {
        let ym = ym.ok_or_else(|| format!("{field}: required"))?;
        u32::try_from(ym.month)
            .ok()
            .and_then(|m| Self::new(ym.year, m))
            .ok_or_else(|| {
                format!(
                    "{field}: {}-{:02} is not a month between 1970 and 9998",
                    ym.year, ym.month
                )
            })
    }

    /// The protobuf form.
    pub fn to_proto(self) -> pb::YearMonth {
        pb::YearMonth {
            year: self.year,
            month: self.month as i32,
        }
    }

    /// The next month.
    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                month: self.month + 1,
                ..self
            }
        }
    }

    /// The previous month.
    pub fn previous(self) -> Self {
        if self.month == 1 {
            Self {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Self {
                month: self.month - 1,
                ..self
            }
        }
    }

    /// A sortable number, `yyyymm`.
    pub fn key(self) -> u32 {
        self.year as u32 * 100 + self.month
    }

    /// The day number of its first day.
    pub fn first_day(self) -> i64 {
        calendar::days_from_civil(self.year, self.month, 1)
    }

    /// Days in the month.
    pub fn days(self) -> i64 {
        i64::from(calendar::days_in_month(self.year, self.month))
    }

    /// The month of local day number `day`.
    pub fn of_day(day: i64) -> Self {
        let (year, month, _) = calendar::civil_from_days(day);
        Self { year, month }
    }

    /// The instants of the month on `cal`'s wall clock: from local midnight of the first day
    /// to local midnight of the first day of the next month.
    pub fn span(self, cal: &Calendar) -> Span {
        Span::new(
            cal.day_start(self.first_day()),
            cal.day_start(self.next().first_day()),
        )
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{:02}", self.year, self.month)
    }
}

impl std::str::FromStr for Month {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = s
            .split_once('-')
            .and_then(|(y, m)| Some((y.parse().ok()?, m.parse().ok()?)))
            .and_then(|(y, m)| Month::new(y, m));
        parsed.ok_or_else(|| format!("`{s}` is not a month such as 2026-11"))
    }
}

fn record_id(path: &str, id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_RECORD_ID || id.chars().any(|c| c.is_control()) {
        return Err(format!(
            "{path}.record_id: required, 1 to {MAX_RECORD_ID} bytes without control characters"
        ));
    }
    Ok(())
}

/// Whether a tenancy in `state` may have usage reported for it (it exists or existed on the
/// provider's service).
pub fn has_tenant(state: i32) -> bool {
    matches!(
        pb::SubscriptionState::try_from(state),
        Ok(pb::SubscriptionState::Active
            | pb::SubscriptionState::Suspended
            | pb::SubscriptionState::Terminating
            | pb::SubscriptionState::Terminated)
    )
}

/// Checks usage record `index` of a batch against its offer and the offer's tenancies, and
/// completes it: the subscription is found by id or by tenant id. The error is the reason the
/// record is refused, starting with the field path.
pub fn check_usage(
    index: usize,
    record: &mut pb::UsageRecord,
    offer: &pb::Offer,
    tenancies: &[pb::Subscription],
    now: Secs,
) -> Result<(), String> {
    let path = format!("records[{index}]");
    record_id(&path, &record.record_id)?;
    let tenancy = if !record.subscription_id.is_empty() {
        tenancies
            .iter()
            .find(|s| s.subscription_id == record.subscription_id)
            .ok_or_else(|| {
                format!(
                    "{path}.subscription_id: no tenancy {} on offer {}",
                    record.subscription_id, offer.offer_id
                )
            })?
    } else if !record.tenant_id.is_empty() {
        tenancies
            .iter()
            .find(|s| s.tenant_id == record.tenant_id)
            .ok_or_else(|| {
                format!(
                    "{path}.tenant_id: no tenant {} on offer {}",
                    record.tenant_id, offer.offer_id
                )
            })?
    } else {
        return Err(format!("{path}: subscription_id or tenant_id is required"));
    };
    if !has_tenant(tenancy.state) {
        return Err(format!(
            "{path}.subscription_id: tenancy {} has no tenant (it was never approved)",
            tenancy.subscription_id
        ));
    }
    if !record.tenant_id.is_empty() && record.tenant_id != tenancy.tenant_id {
        return Err(format!(
            "{path}.tenant_id: tenancy {} has tenant {}, not {}",
            tenancy.subscription_id, tenancy.tenant_id, record.tenant_id
        ));
    }
    record.subscription_id = tenancy.subscription_id.clone();
    record.tenant_id = tenancy.tenant_id.clone();
    if !WELL_KNOWN_METRICS.contains(&record.metric.as_str())
        && !offer.custom_metrics.contains(&record.metric)
    {
        return Err(format!(
            "{path}.metric: `{}` is neither a well-known metric ({}) nor declared in the custom_metrics of offer {}",
            record.metric,
            WELL_KNOWN_METRICS.join(", "),
            offer.offer_id
        ));
    }
    measure(&path, record, now)
}

/// The value and period of a usage record: a finite amount, 0 or more, over a closed period
/// that is not in the future.
fn measure(path: &str, record: &pb::UsageRecord, now: Secs) -> Result<(), String> {
    if !record.value.is_finite() || record.value < 0.0 {
        return Err(format!("{path}.value: must be a finite number, 0 or more"));
    }
    let period = closed_period(&format!("{path}.period"), record.period.as_ref())
        .map_err(|e| e.to_string())?;
    if period.end > now + FUTURE_SKEW {
        return Err(format!("{path}.period.end_time: is in the future"));
    }
    Ok(())
}

/// Checks usage record `index` of a batch a provider's node journaled, as far as a follower
/// can without the provider's tenancies: its id, the shape of its metric name, its value and
/// period (the provider checked the rest with [`check_usage`] when it was reported).
pub fn check_replicated(index: usize, record: &pb::UsageRecord, now: Secs) -> Result<(), String> {
    let path = format!("records[{index}]");
    record_id(&path, &record.record_id)?;
    let shaped = !record.metric.is_empty()
        && record.metric.len() <= 63
        && record
            .metric
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !shaped {
        return Err(format!(
            "{path}.metric: a lowercase name of a-z, 0-9 and '_'"
        ));
    }
    measure(&path, record, now)
}

/// Checks availability record `index` of a batch. The error is the reason it is refused,
/// starting with the field path.
pub fn check_availability(
    index: usize,
    record: &pb::AvailabilityRecord,
    now: Secs,
) -> Result<(), String> {
    let path = format!("records[{index}]");
    record_id(&path, &record.record_id)?;
    match &record.observation {
        None => return Err(format!("{path}: a probe or an outage is required")),
        Some(pb::availability_record::Observation::Probe(probe)) => {
            let at = instant(
                &format!("{path}.probe.probe_time"),
                probe.probe_time.as_ref(),
            )
            .map_err(|e| e.to_string())?;
            if at > now + FUTURE_SKEW {
                return Err(format!("{path}.probe.probe_time: is in the future"));
            }
        }
        Some(pb::availability_record::Observation::Outage(outage)) => {
            let period = closed_period(&format!("{path}.outage.period"), outage.period.as_ref())
                .map_err(|e| e.to_string())?;
            if period.end > now + FUTURE_SKEW {
                return Err(format!("{path}.outage.period.end_time: is in the future"));
            }
            if period.len() > MAX_OUTAGE {
                return Err(format!(
                    "{path}.outage.period: longer than 31 days; report it in pieces"
                ));
            }
        }
    }
    Ok(())
}

/// When an availability record's observation starts (its filing instant).
pub fn observed_at(record: &pb::AvailabilityRecord) -> Secs {
    match &record.observation {
        Some(pb::availability_record::Observation::Probe(p)) => {
            p.probe_time.as_ref().map_or(0, |t| t.seconds)
        }
        Some(pb::availability_record::Observation::Outage(o)) => o
            .period
            .as_ref()
            .and_then(|p| p.start_time.as_ref())
            .map_or(0, |t| t.seconds),
        None => 0,
    }
}

fn period_of(p: Option<&pb::Period>) -> Span {
    let at = |t: Option<&prost_types::Timestamp>| t.map_or(0, |t| t.seconds);
    p.map_or(Span::new(0, 0), |p| {
        Span::new(at(p.start_time.as_ref()), at(p.end_time.as_ref()))
    })
}

/// The month a usage record is filed under: the month of its period's start on the offer's
/// calendar.
pub fn usage_month(record: &pb::UsageRecord, cal: &Calendar) -> Month {
    Month::of_day(cal.local_day(period_of(record.period.as_ref()).start))
}

/// One aggregate per (subscription, metric) over `records`, sorted.
pub fn aggregate<'a>(
    records: impl IntoIterator<Item = &'a pb::UsageRecord>,
) -> Vec<pb::UsageAggregate> {
    let mut groups: BTreeMap<(String, String), (pb::UsageAggregate, Span)> = BTreeMap::new();
    for r in records {
        let period = period_of(r.period.as_ref());
        let (agg, latest) = groups
            .entry((r.subscription_id.clone(), r.metric.clone()))
            .or_insert_with(|| {
                (
                    pb::UsageAggregate {
                        subscription_id: r.subscription_id.clone(),
                        tenant_id: r.tenant_id.clone(),
                        metric: r.metric.clone(),
                        last_value: r.value,
                        max_value: r.value,
                        sum_value: 0.0,
                        record_count: 0,
                    },
                    period,
                )
            });
        agg.sum_value += r.value;
        agg.max_value = agg.max_value.max(r.value);
        agg.record_count += 1;
        if (period.end, period.start) >= (latest.end, latest.start) {
            agg.last_value = r.value;
            *latest = period;
        }
    }
    groups.into_values().map(|(agg, _)| agg).collect()
}

/// Month totals over all tenants: the largest total of the gauges (`active_users`,
/// `storage_bytes`: each tenant counts with its latest value, the total taken after each
/// record in period-end order) and the sum of `requests`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MonthTotals {
    /// Largest total of active users.
    pub active_users: f64,
    /// Largest total storage, in bytes.
    pub storage_bytes: f64,
    /// Total requests.
    pub requests: f64,
}

/// The totals of one month's records (see [`MonthTotals`]).
pub fn month_totals<'a>(records: impl IntoIterator<Item = &'a pb::UsageRecord>) -> MonthTotals {
    let mut sorted: Vec<&pb::UsageRecord> = records.into_iter().collect();
    sorted.sort_by_key(|r| {
        let p = period_of(r.period.as_ref());
        (p.end, p.start)
    });
    let mut latest: HashMap<(&str, &str), f64> = HashMap::new();
    let mut totals = MonthTotals::default();
    let mut running: HashMap<&str, f64> = HashMap::new();
    for r in sorted {
        match r.metric.as_str() {
            "requests" => totals.requests += r.value,
            metric @ ("active_users" | "storage_bytes") => {
                let previous = latest
                    .insert((r.subscription_id.as_str(), metric), r.value)
                    .unwrap_or(0.0);
                let total = running.entry(metric).or_insert(0.0);
                *total += r.value - previous;
                let max = if metric == "active_users" {
                    &mut totals.active_users
                } else {
                    &mut totals.storage_bytes
                };
                *max = max.max(*total);
            }
            _ => {}
        }
    }
    totals
}

/// Availability of an offer over `period` (the part before `now` only), inside and outside
/// the service window of `cal`, declared maintenance excluded: the calendar's maintenance
/// windows and the outages reported as planned maintenance. A failed probe starts downtime
/// that lasts until the next successful probe.
pub fn availability(
    cal: &Calendar,
    period: Span,
    now: Secs,
    records: &[pb::AvailabilityRecord],
) -> pb::AvailabilitySummary {
    use pb::availability_record::Observation;
    let measured = Span::new(period.start, period.end.min(now).max(period.start));
    let whole = vec![measured];
    let mut planned = cal.maintenance().to_vec();
    let mut outages = Vec::new();
    let mut probes: Vec<(Secs, bool)> = Vec::new();
    let (mut probe_count, mut outage_count) = (0, 0);
    for r in records {
        match &r.observation {
            Some(Observation::Outage(o)) => {
                let p = period_of(o.period.as_ref());
                if r.planned_maintenance {
                    planned.push(p);
                } else {
                    outages.push(p);
                }
                if p.start < measured.end && p.end > measured.start {
                    outage_count += 1;
                }
            }
            Some(Observation::Probe(p)) => {
                let at = p.probe_time.as_ref().map_or(0, |t| t.seconds);
                if !r.planned_maintenance {
                    probes.push((at, p.up));
                }
                if (measured.start..measured.end).contains(&at) {
                    probe_count += 1;
                }
            }
            None => {}
        }
    }
    probes.sort_unstable();
    let mut down_since: Option<Secs> = None;
    for &(at, up) in &probes {
        match (up, down_since) {
            (false, None) => down_since = Some(at),
            (true, Some(since)) => {
                outages.push(Span::new(since, at));
                down_since = None;
            }
            _ => {}
        }
    }
    if let Some(since) = down_since {
        outages.push(Span::new(since, measured.end));
    }
    let maintenance = span::intersect(&span::normalize(planned), &whole);
    let window = span::subtract(
        &cal.service_spans(measured.start, measured.end),
        &maintenance,
    );
    let outside = span::subtract(&span::subtract(&whole, &window), &maintenance);
    let down = span::subtract(
        &span::intersect(&span::normalize(outages), &whole),
        &maintenance,
    );
    let in_time = span::measure(&window);
    let in_down = span::measure(&span::intersect(&down, &window));
    let out_time = span::measure(&outside);
    let out_down = span::measure(&span::intersect(&down, &outside));
    let percent = |time: Secs, down: Secs| {
        if time == 0 {
            100.0
        } else {
            100.0 * (time - down) as f64 / time as f64
        }
    };
    let duration = |seconds: Secs| prost_types::Duration { seconds, nanos: 0 };
    let ts = |seconds: Secs| prost_types::Timestamp { seconds, nanos: 0 };
    pb::AvailabilitySummary {
        offer_id: String::new(),
        period: Some(pb::Period {
            start_time: Some(ts(period.start)),
            end_time: Some(ts(period.end)),
        }),
        in_window_time: Some(duration(in_time)),
        in_window_downtime: Some(duration(in_down)),
        in_window_availability_percent: percent(in_time, in_down),
        out_of_window_time: Some(duration(out_time)),
        out_of_window_downtime: Some(duration(out_down)),
        out_of_window_availability_percent: percent(out_time, out_down),
        maintenance_time: Some(duration(span::measure(&maintenance))),
        probe_count,
        outage_count,
    }
}

/// The state of a tenancy at instant `t`, from its history (unspecified before it existed).
pub fn state_at(subscription: &pb::Subscription, t: Secs) -> pb::SubscriptionState {
    let mut state = pb::SubscriptionState::Unspecified;
    for change in &subscription.history {
        let at = change.change_time.as_ref().map_or(0, |t| t.seconds);
        if at > t {
            break;
        }
        state = pb::SubscriptionState::try_from(change.to_state)
            .unwrap_or(pb::SubscriptionState::Unspecified);
    }
    state
}

/// Whether a tenancy in `state` is served (and billed): active or suspended.
pub fn is_served(state: pb::SubscriptionState) -> bool {
    matches!(
        state,
        pb::SubscriptionState::Active | pb::SubscriptionState::Suspended
    )
}

#[cfg(test)]
mod tests;
