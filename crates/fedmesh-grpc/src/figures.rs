//! Figures computed from stored usage and availability records, the same way on the
//! provider's node (`UsageService`) and on the coordinator (`MetricsService`).

use fedmesh_core::calendar::{self, Calendar};
use fedmesh_core::span::Secs;
use fedmesh_core::usage::{self, MAX_OUTAGE, Month};
use fedmesh_proto::pb;
use fedmesh_store::{Store, StoreError};

/// The longest range of months one request may cover.
pub const MAX_MONTHS: usize = 36;

/// The instant now on the federation's clock ([`fedmesh_core::clock`]), in whole seconds.
pub fn now() -> Secs {
    fedmesh_core::clock::now_secs()
}

/// The calendar of an offer (the design's default when the offer has none).
pub fn calendar_of(offer: &pb::Offer) -> Calendar {
    let proto = offer
        .engagement
        .as_ref()
        .and_then(|e| e.calendar.clone())
        .unwrap_or_else(calendar::default_proto);
    Calendar::from_proto("calendar", &proto)
        .or_else(|_| Calendar::from_proto("calendar", &calendar::default_proto()))
        .unwrap_or_else(|_| Calendar::around_the_clock())
}

/// The current month on `cal`'s wall clock.
pub fn current_month(cal: &Calendar) -> Month {
    Month::of_day(cal.local_day(now()))
}

/// The usage records of `offer_id` filed under `month`.
pub fn month_usage(
    store: &Store,
    offer_id: &str,
    month: Month,
) -> Result<Vec<pb::UsageRecord>, StoreError> {
    store.usage_records(offer_id, month.key(), month.key())
}

/// The active users of `offer` now: for each tenant, the latest `active_users` reported this
/// month, or last month when it has not reported yet this month; summed. Last month, once
/// closed and its records archived (on the provider's node), is read from its tenancy reports.
pub fn latest_active_users(store: &Store, offer: &pb::Offer) -> Result<f64, StoreError> {
    let current = current_month(&calendar_of(offer));
    let mut latest: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    for month in [current.previous(), current] {
        let records = month_usage(store, &offer.offer_id, month)?;
        if records.is_empty() && month < current {
            let closed = month.to_proto();
            let reports = store.list_reports("", usize::MAX, |r| {
                r.offer_id == offer.offer_id
                    && r.scope == pb::ReportScope::Tenancy as i32
                    && r.month.as_ref() == Some(&closed)
            })?;
            for agg in reports.into_iter().flat_map(|r| r.tenant_usage) {
                if agg.metric == "active_users" {
                    latest.insert(agg.subscription_id, agg.last_value);
                }
            }
            continue;
        }
        for agg in usage::aggregate(records.iter().filter(|r| r.metric == "active_users")) {
            latest.insert(agg.subscription_id, agg.last_value);
        }
    }
    // Folded from 0: an empty f64 sum is -0.0, which reads "-0" on screens and in metrics.
    Ok(latest.values().fold(0.0, |total, users| total + users))
}

/// The availability of `offer` in `month` (up to now for the current month), with the
/// outages recorded in it.
pub fn month_availability(
    store: &Store,
    offer: &pb::Offer,
    month: Month,
) -> Result<(pb::AvailabilitySummary, Vec<pb::Outage>), StoreError> {
    month_availability_at(store, offer, month, now())
}

/// [`month_availability`] as of `at` (the month up to `at` when it has not ended).
pub fn month_availability_at(
    store: &Store,
    offer: &pb::Offer,
    month: Month,
    at: Secs,
) -> Result<(pb::AvailabilitySummary, Vec<pb::Outage>), StoreError> {
    let cal = calendar_of(offer);
    let span = month.span(&cal);
    // Outages are at most MAX_OUTAGE long, and the probe before the month tells whether the
    // month starts down: records from one MAX_OUTAGE before the month are enough.
    let records = store.availability_records(
        &offer.offer_id,
        Month::of_day((span.start - MAX_OUTAGE).div_euclid(86_400)).key(),
        Month::of_day(span.end.div_euclid(86_400)).key(),
    )?;
    let mut summary = usage::availability(&cal, span, at, &records);
    summary.offer_id = offer.offer_id.clone();
    let outages = records
        .into_iter()
        .filter_map(|r| match r.observation {
            Some(pb::availability_record::Observation::Outage(o)) => Some(o),
            _ => None,
        })
        .filter(|o| {
            let p = o.period.as_ref();
            let at = |t: Option<&prost_types::Timestamp>| t.map_or(0, |t| t.seconds);
            at(p.and_then(|p| p.end_time.as_ref())) > span.start
                && at(p.and_then(|p| p.start_time.as_ref())) < span.end
        })
        .collect();
    Ok((summary, outages))
}

/// The share of an allowance after which a clock is shown at risk where no node setting
/// applies (the coordinator).
pub const AT_RISK_SHARE: f64 = 0.75;

/// The incidents of `offer` known to `store`, with their clocks computed at `at`, without
/// their events and comments (what statistics and lists need: held all at once, they stay a
/// few hundred bytes each however long their histories).
pub fn offer_incidents(
    store: &Store,
    offer: &pb::Offer,
    at: Secs,
) -> Result<Vec<pb::Incident>, StoreError> {
    fold_offer_incidents(store, offer, at, Vec::new(), |mut all, mut incident| {
        incident.events = Vec::new();
        incident.comments = Vec::new();
        all.push(incident);
        all
    })
}

/// What the SLA clocks of an offer's incidents are computed with: its engagement and its
/// calendar, read once for all of them.
#[derive(Debug, Clone)]
pub struct ClockRules {
    engagement: pb::ServiceEngagement,
    calendar: Calendar,
}

impl ClockRules {
    /// The rules of `offer`.
    pub fn of(offer: &pb::Offer) -> Self {
        Self {
            engagement: offer.engagement.clone().unwrap_or_default(),
            calendar: calendar_of(offer),
        }
    }

    /// The clocks of `incident`, an incident of the offer, at `at`.
    pub fn clocks(&self, incident: &pb::Incident, at: Secs) -> Vec<pb::SlaClock> {
        fedmesh_core::incident::clocks(
            incident,
            &self.engagement,
            &self.calendar,
            at,
            AT_RISK_SHARE,
        )
    }
}

/// Folds `f` over the incidents of `offer`, with their clocks computed at `at`, one decoded at
/// a time.
pub fn fold_offer_incidents<T>(
    store: &Store,
    offer: &pb::Offer,
    at: Secs,
    init: T,
    mut f: impl FnMut(T, pb::Incident) -> T,
) -> Result<T, StoreError> {
    let rules = ClockRules::of(offer);
    store.fold_incidents(init, |acc, mut i| {
        if i.offer_id != offer.offer_id {
            return acc;
        }
        i.sla_clocks = rules.clocks(&i, at);
        f(acc, i)
    })
}

fn clock_of(incident: &pb::Incident, target: pb::SlaTarget) -> Option<&pb::SlaClock> {
    incident
        .sla_clocks
        .iter()
        .find(|c| c.target == target as i32)
}

/// The incident statistics of `offer` in `month`.
pub fn incident_statistics(
    store: &Store,
    offer: &pb::Offer,
    month: Month,
) -> Result<pb::OfferIncidentStatistics, StoreError> {
    incident_statistics_at(store, offer, month, now(), |_| true)
}

/// [`incident_statistics`] as of `at`, over the incidents `keep` accepts (a tenancy's own,
/// for its monthly report).
pub fn incident_statistics_at(
    store: &Store,
    offer: &pb::Offer,
    month: Month,
    at: Secs,
    keep: impl Fn(&pb::Incident) -> bool,
) -> Result<pb::OfferIncidentStatistics, StoreError> {
    let cal = calendar_of(offer);
    let span = month.span(&cal);
    let mut incidents = offer_incidents(store, offer, at)?;
    incidents.retain(|i| keep(i));
    let in_month = |t: Option<&prost_types::Timestamp>| {
        t.is_some_and(|t| (span.start..span.end).contains(&t.seconds))
    };
    let opened: Vec<&pb::Incident> = incidents
        .iter()
        .filter(|i| in_month(i.create_time.as_ref()))
        .collect();
    let open_at_month_end = incidents
        .iter()
        .filter(|i| {
            i.create_time.as_ref().is_some_and(|t| t.seconds < span.end)
                && i.resolve_time
                    .as_ref()
                    .is_none_or(|t| t.seconds >= span.end)
        })
        .count() as i32;
    let median = |mut values: Vec<Secs>| -> Option<prost_types::Duration> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        Some(prost_types::Duration {
            seconds: values[values.len() / 2],
            nanos: 0,
        })
    };
    let percent = |good: usize, all: usize| {
        if all == 0 {
            100.0
        } else {
            100.0 * good as f64 / all as f64
        }
    };
    let mut by_priority = Vec::new();
    for priority in [
        pb::Priority::P1,
        pb::Priority::P2,
        pb::Priority::P3,
        pb::Priority::P4,
    ] {
        let these: Vec<&&pb::Incident> = opened
            .iter()
            .filter(|i| i.priority == priority as i32)
            .collect();
        // A clock is decided once it stopped or was breached.
        let decided = |target: pb::SlaTarget| -> Vec<&pb::SlaClock> {
            these
                .iter()
                .filter_map(|i| clock_of(i, target))
                .filter(|c| c.stop_time.is_some() || c.state() == pb::SlaClockState::Breached)
                .collect()
        };
        let elapsed = |clocks: &[&pb::SlaClock]| -> Vec<Secs> {
            clocks
                .iter()
                .filter(|c| c.stop_time.is_some())
                .map(|c| c.elapsed.as_ref().map_or(0, |d| d.seconds))
                .collect()
        };
        let on_time = |clocks: &[&pb::SlaClock]| {
            clocks
                .iter()
                .filter(|c| c.state() != pb::SlaClockState::Breached)
                .count()
        };
        let acks = decided(pb::SlaTarget::Acknowledge);
        let resolutions = decided(pb::SlaTarget::Resolve);
        by_priority.push(pb::PriorityIncidentStatistics {
            priority: priority as i32,
            opened_count: these.len() as i32,
            resolved_count: incidents
                .iter()
                .filter(|i| i.priority == priority as i32 && in_month(i.resolve_time.as_ref()))
                .count() as i32,
            median_time_to_acknowledge: median(elapsed(&acks)),
            median_time_to_resolve: median(elapsed(&resolutions)),
            acknowledged_in_time_percent: percent(on_time(&acks), acks.len()),
            resolved_in_time_percent: percent(on_time(&resolutions), resolutions.len()),
        });
    }
    Ok(pb::OfferIncidentStatistics {
        offer_id: offer.offer_id.clone(),
        provider_member_id: offer.provider_member_id.clone(),
        month: Some(month.to_proto()),
        opened_count: opened.len() as i32,
        open_at_month_end,
        by_priority,
    })
}

/// The SLA/SLO compliance of `offer` in `month`: availability against the SLA and SLO, and
/// the share of incidents and requests whose resolution deadline fell in the month (and has
/// passed) that were resolved in time.
pub fn sla_compliance(
    store: &Store,
    offer: &pb::Offer,
    month: Month,
) -> Result<pb::OfferSlaCompliance, StoreError> {
    sla_compliance_at(store, offer, month, now())
}

/// [`sla_compliance`] as of `at`.
pub fn sla_compliance_at(
    store: &Store,
    offer: &pb::Offer,
    month: Month,
    at: Secs,
) -> Result<pb::OfferSlaCompliance, StoreError> {
    let (summary, _) = month_availability_at(store, offer, month, at)?;
    let span = month.span(&calendar_of(offer));
    let due: Vec<pb::SlaClock> = offer_incidents(store, offer, at)?
        .iter()
        .filter_map(|i| clock_of(i, pb::SlaTarget::Resolve).copied())
        .filter(|c| {
            c.deadline
                .as_ref()
                .is_some_and(|d| (span.start..span.end).contains(&d.seconds) && d.seconds <= at)
                || (c.stop_time.is_some()
                    && c.deadline
                        .as_ref()
                        .is_some_and(|d| (span.start..span.end).contains(&d.seconds)))
        })
        .collect();
    let request_count = due.len() as i32;
    let requests_in_time = due
        .iter()
        .filter(|c| c.state() != pb::SlaClockState::Breached)
        .count() as i32;
    let engagement = offer.engagement.clone().unwrap_or_default();
    let target = |value: f64, default: f64| if value > 0.0 { value } else { default };
    let sla = target(engagement.availability_sla_percent, 99.0);
    let slo = target(engagement.availability_slo_percent, 95.0);
    let request_target = target(engagement.request_handling_target_percent, 95.0);
    let sla_met = summary.in_window_availability_percent >= sla;
    let in_time_percent = if request_count == 0 {
        100.0
    } else {
        100.0 * f64::from(requests_in_time) / f64::from(request_count)
    };
    let slo_met = summary.out_of_window_availability_percent >= slo;
    Ok(pb::OfferSlaCompliance {
        offer_id: offer.offer_id.clone(),
        provider_member_id: offer.provider_member_id.clone(),
        month: Some(month.to_proto()),
        availability: Some(summary),
        availability_sla_percent: sla,
        sla_met,
        availability_slo_percent: slo,
        slo_met,
        request_count,
        requests_in_time,
        requests_in_time_percent: in_time_percent,
        request_handling_target_percent: request_target,
        request_target_met: in_time_percent >= request_target,
        compliant: sla_met && in_time_percent >= request_target,
    })
}

/// The months `from..=to`, refusing reversed or too long ranges (errors name the fields).
pub fn months(from: Month, to: Month) -> Result<Vec<Month>, crate::ServiceError> {
    if to < from {
        return Err(crate::ServiceError::invalid(
            "to_month",
            "is before from_month",
        ));
    }
    let mut out = vec![from];
    while let Some(&last) = out.last()
        && last < to
    {
        if out.len() == MAX_MONTHS {
            return Err(crate::ServiceError::invalid(
                "from_month",
                format!("at most {MAX_MONTHS} months per request"),
            ));
        }
        out.push(last.next());
    }
    Ok(out)
}

/// Reads a required month field.
pub fn month_field(
    field: &str,
    value: Option<&pb::YearMonth>,
) -> Result<Month, crate::ServiceError> {
    Month::from_proto(field, value).map_err(|message| crate::ServiceError::InvalidArgument {
        field: field.to_owned(),
        message: message
            .strip_prefix(&format!("{field}: "))
            .unwrap_or(&message)
            .to_owned(),
    })
}

/// The month figures of one offer: tenants at the end of the month (now for the current
/// month) from the tenancies' histories, and the usage totals of the month's records.
pub fn month_metrics(
    records: &[pb::UsageRecord],
    tenancies: &[pb::Subscription],
    month: Month,
    cal: &Calendar,
) -> pb::OfferMonthMetrics {
    month_metrics_at(records, tenancies, month, cal, now())
}

/// [`month_metrics`] as of `at`.
pub fn month_metrics_at(
    records: &[pb::UsageRecord],
    tenancies: &[pb::Subscription],
    month: Month,
    cal: &Calendar,
    at: Secs,
) -> pb::OfferMonthMetrics {
    let end = (month.span(cal).end - 1).min(at);
    let tenant_count = tenancies
        .iter()
        .filter(|s| usage::is_served(usage::state_at(s, end)))
        .count() as i32;
    let totals = usage::month_totals(records);
    pb::OfferMonthMetrics {
        month: Some(month.to_proto()),
        tenant_count,
        user_count: totals.active_users.round() as i64,
        storage_bytes: totals.storage_bytes.round() as i64,
        request_count: totals.requests.round() as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(y: i32, m: u32) -> Month {
        Month::new(y, m).unwrap_or_else(|| panic!("{y}-{m}"))
    }

    #[test]
    fn month_ranges_are_bounded_and_ordered() {
        let range = months(month(2025, 11), month(2026, 2)).map_err(|e| e.to_string());
        assert_eq!(
            range,
            Ok(vec![
                month(2025, 11),
                month(2025, 12),
                month(2026, 1),
                month(2026, 2)
            ])
        );
        assert_eq!(
            months(month(2024, 1), month(2026, 12))
                .map(|m| m.len())
                .ok(),
            Some(MAX_MONTHS)
        );
        let too_long = months(month(2024, 1), month(2027, 1))
            .unwrap_err()
            .to_string();
        assert!(too_long.starts_with("from_month: at most 36"), "{too_long}");
        let reversed = months(month(2026, 2), month(2026, 1))
            .unwrap_err()
            .to_string();
        assert!(reversed.starts_with("to_month"), "{reversed}");
    }
}
