//! Cost statements: what one tenancy costs over a period under its offer's pricing grid.
//!
//! - The setup fee is charged in the period where the tenancy was first approved.
//! - The per-tenant yearly fee is prorated by the days the tenancy was served (active or
//!   suspended at any moment of the day, on the provider's calendar), each day counting
//!   1/365 of a year (1/366 in a leap year).
//! - The per-user yearly fee is charged month by month: the largest `active_users` reported
//!   for the tenant that month (the users declared on the subscription when nothing was
//!   reported), times the days served that month, as a fraction of the year.
//!
//! Amounts are in millionths of the currency unit, rounded half up per line.

use std::collections::BTreeMap;

use fedmesh_proto::pb;

use crate::calendar::{self, Calendar};
use crate::span::{Secs, Span};
use crate::usage::{Month, is_served};

/// An inclusive range of local day numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days {
    /// First day.
    pub first: i64,
    /// Last day (included).
    pub last: i64,
}

impl Days {
    /// From a protobuf date range; errors name `field`.
    pub fn from_proto(field: &str, range: Option<&pb::DateRange>) -> Result<Self, String> {
        let range = range.ok_or_else(|| format!("{field}: required"))?;
        let day = |name: &str, d: Option<&pb::LocalDate>| -> Result<i64, String> {
            let d = d.ok_or_else(|| format!("{field}.{name}: required"))?;
            let valid = (1970..=9999).contains(&d.year)
                && (1..=12).contains(&d.month)
                && d.day >= 1
                && d.day <= calendar::days_in_month(d.year, d.month as u32) as i32;
            if !valid {
                return Err(format!(
                    "{field}.{name}: {}-{:02}-{:02} is not a date",
                    d.year, d.month, d.day
                ));
            }
            Ok(calendar::days_from_civil(
                d.year,
                d.month as u32,
                d.day as u32,
            ))
        };
        let first = day("start_date", range.start_date.as_ref())?;
        let last = day("end_date", range.end_date.as_ref())?;
        if last < first {
            return Err(format!("{field}.end_date: is before start_date"));
        }
        if last - first > 3 * 366 {
            return Err(format!("{field}: longer than three years"));
        }
        Ok(Self { first, last })
    }

    /// The days of `month`.
    pub fn month(month: Month) -> Self {
        Self {
            first: month.first_day(),
            last: month.first_day() + month.days() - 1,
        }
    }

    /// The protobuf form.
    pub fn to_proto(self) -> pb::DateRange {
        pb::DateRange {
            start_date: Some(local_date(self.first)),
            end_date: Some(local_date(self.last)),
        }
    }
}

fn local_date(day: i64) -> pb::LocalDate {
    let (year, month, day) = calendar::civil_from_days(day);
    pb::LocalDate {
        year,
        month: month as i32,
        day: day as i32,
    }
}

fn date_text(day: i64) -> String {
    let (y, m, d) = calendar::civil_from_days(day);
    format!("{y}-{m:02}-{d:02}")
}

fn days_in_year(day: i64) -> i64 {
    if calendar::is_leap(calendar::civil_from_days(day).0) {
        366
    } else {
        365
    }
}

/// `unit × numerator / denominator`, rounded half up.
fn prorate(unit: i64, numerator: i64, denominator: i64) -> i64 {
    let (n, d) = (
        i128::from(unit) * i128::from(numerator),
        i128::from(denominator),
    );
    i64::try_from((2 * n + d) / (2 * d)).unwrap_or(i64::MAX)
}

/// The intervals during which `subscription` was served, from its history.
fn served_spans(subscription: &pb::Subscription, now: Secs) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut since: Option<Secs> = None;
    for change in &subscription.history {
        let at = change.change_time.as_ref().map_or(0, |t| t.seconds);
        let served = is_served(
            pb::SubscriptionState::try_from(change.to_state)
                .unwrap_or(pb::SubscriptionState::Unspecified),
        );
        match (served, since) {
            (true, None) => since = Some(at),
            (false, Some(start)) => {
                spans.push(Span::new(start, at));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(start) = since {
        spans.push(Span::new(start, now.max(start + 1)));
    }
    spans
}

/// The statement of `subscription` over `period` (days up to `now` only). `users_by_month`
/// holds the largest `active_users` reported for the tenant in each month.
pub fn statement(
    offer: &pb::Offer,
    subscription: &pb::Subscription,
    cal: &Calendar,
    period: Days,
    users_by_month: &BTreeMap<Month, f64>,
    now: Secs,
) -> pb::CostStatement {
    let grid = offer.pricing.clone().unwrap_or_default();
    let currency = if grid.currency_code.is_empty() {
        "EUR".to_owned()
    } else {
        grid.currency_code.clone()
    };
    let money = |amount_micros| pb::Money {
        currency_code: currency.clone(),
        amount_micros,
    };
    let served = served_spans(subscription, now);
    let last = period.last.min(cal.local_day(now));
    let billed: Vec<i64> = (period.first..=last)
        .filter(|&day| {
            let (start, end) = (cal.day_start(day), cal.day_start(day + 1));
            served.iter().any(|s| s.start < end && s.end > start)
        })
        .collect();
    let mut lines = Vec::new();
    let approved = subscription
        .history
        .iter()
        .find(|c| c.to_state == pb::SubscriptionState::Active as i32)
        .and_then(|c| c.change_time.as_ref())
        .map(|t| cal.local_day(t.seconds));
    if let Some(day) = approved.filter(|d| (period.first..=period.last).contains(d)) {
        lines.push(pb::CostLine {
            kind: pb::CostLineKind::SetupFee as i32,
            description: format!("setup fee: tenant approved on {}", date_text(day)),
            quantity: 1.0,
            unit_price: Some(money(grid.setup_fee_micros)),
            amount: Some(money(grid.setup_fee_micros)),
            ..Default::default()
        });
    }
    // Days billed, grouped by (month, days in that year).
    let mut by_month: BTreeMap<Month, (i64, i64)> = BTreeMap::new();
    for &day in &billed {
        by_month
            .entry(Month::of_day(day))
            .or_insert((0, days_in_year(day)))
            .0 += 1;
    }
    if !billed.is_empty() {
        let mut by_year: BTreeMap<i64, i64> = BTreeMap::new();
        for (days, year_days) in by_month.values() {
            *by_year.entry(*year_days).or_default() += days;
        }
        let quantity: f64 = by_year.iter().map(|(y, d)| *d as f64 / *y as f64).sum();
        let amount: i64 = by_year
            .iter()
            .map(|(y, d)| prorate(grid.per_tenant_per_year_micros, *d, *y))
            .sum();
        let fractions: Vec<String> = by_year.iter().map(|(y, d)| format!("{d}/{y}")).collect();
        lines.push(pb::CostLine {
            kind: pb::CostLineKind::TenantFee as i32,
            description: format!(
                "tenant fee: {} {} served between {} and {} ({} of a year)",
                billed.len(),
                if billed.len() == 1 { "day" } else { "days" },
                date_text(period.first),
                date_text(period.last),
                fractions.join(" + ")
            ),
            quantity,
            unit_price: Some(money(grid.per_tenant_per_year_micros)),
            amount: Some(money(amount)),
            ..Default::default()
        });
    }
    for (month, (days, year_days)) in &by_month {
        let (users, basis) = match users_by_month.get(month) {
            Some(reported) => (reported.ceil() as i64, "largest active_users reported"),
            None => (
                i64::from(subscription.user_count),
                "users declared on the subscription; no active_users reported",
            ),
        };
        lines.push(pb::CostLine {
            kind: pb::CostLineKind::UserFee as i32,
            description: format!(
                "user fee {month}: {users} users ({basis}) × {days}/{year_days} of a year"
            ),
            quantity: (users * days) as f64 / *year_days as f64,
            unit_price: Some(money(grid.per_user_per_year_micros)),
            amount: Some(money(prorate(
                grid.per_user_per_year_micros,
                users * days,
                *year_days,
            ))),
            ..Default::default()
        });
    }
    let total = lines
        .iter()
        .map(|l| l.amount.as_ref().map_or(0, |m| m.amount_micros))
        .sum();
    pb::CostStatement {
        subscription_id: subscription.subscription_id.clone(),
        offer_id: subscription.offer_id.clone(),
        tenant_id: subscription.tenant_id.clone(),
        provider_member_id: subscription.provider_member_id.clone(),
        subscriber_member_id: subscription.subscriber_member_id.clone(),
        period: Some(period.to_proto()),
        currency_code: currency.clone(),
        lines,
        total: Some(money(total)),
        generate_time: Some(prost_types::Timestamp {
            seconds: now,
            nanos: 0,
        }),
    }
}
