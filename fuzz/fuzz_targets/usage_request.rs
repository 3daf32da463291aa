//! `UsageService` and metrics requests as the provider's node checks them: the first byte
//! picks the RPC, the rest is its request message. The records and periods that pass are
//! then carried into the figures computed from them.
//!
//! - `ReportUsage`: `usage::check_usage` of each record against the fixture offer and its
//!   tenancies, the month it is filed under, `aggregate` and `month_totals` of the accepted.
//! - `ReportAvailability`: `usage::check_availability`, the month it is filed under, and the
//!   `availability` summary of the accepted records over their months.
//! - `GetUsage`, `GetAvailability`: the month (`month_field`) and its span on the calendar.
//! - `GetCostStatement`: the period (`cost::Days::from_proto`) and `cost::statement`.
//! - `GetOfferMetrics`: the month range (`month_field`, `figures::months`).
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use fedmesh_core::cost::{self, Days};
use fedmesh_core::usage::{self, MAX_BATCH, Month};
use fedmesh_fuzz::{NOW, calendar, offer, tenancies};
use fedmesh_grpc::figures::{month_field, months};
use fedmesh_proto::pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 6 {
        0 => report_usage(body),
        1 => report_availability(body),
        2 => {
            if let Ok(request) = pb::GetUsageRequest::decode(body) {
                month_of(request.month.as_ref());
            }
        }
        3 => {
            if let Ok(request) = pb::GetAvailabilityRequest::decode(body)
                && let Some(month) = month_of(request.month.as_ref())
            {
                let _ = usage::availability(calendar(), month.span(calendar()), NOW, &[]);
            }
        }
        4 => cost_statement(body),
        _ => {
            if let Ok(request) = pb::GetOfferMetricsRequest::decode(body)
                && let Ok(from) = month_field("from_month", request.from_month.as_ref())
            {
                let to = match request.to_month {
                    None => Ok(from),
                    Some(_) => month_field("to_month", request.to_month.as_ref()),
                };
                if let Ok(to) = to {
                    let _ = months(from, to);
                }
            }
        }
    }
});

fn month_of(value: Option<&pb::YearMonth>) -> Option<Month> {
    let month = month_field("month", value).ok()?;
    let _ = (
        month.span(calendar()),
        month.next(),
        month.previous(),
        month.key(),
    );
    Some(month)
}

fn report_usage(body: &[u8]) {
    let Ok(request) = pb::ReportUsageRequest::decode(body) else {
        return;
    };
    if request.records.len() > MAX_BATCH {
        return;
    }
    let mut accepted = Vec::new();
    for (i, mut record) in request.records.into_iter().enumerate() {
        if usage::check_usage(i, &mut record, offer(), tenancies(), NOW).is_ok() {
            let _ = usage::usage_month(&record, calendar()).key();
            accepted.push(record);
        }
    }
    let _ = usage::aggregate(&accepted);
    let _ = usage::month_totals(&accepted);
}

fn report_availability(body: &[u8]) {
    let Ok(request) = pb::ReportAvailabilityRequest::decode(body) else {
        return;
    };
    if request.records.len() > MAX_BATCH {
        return;
    }
    let mut accepted = Vec::new();
    let mut filed = BTreeSet::new();
    for (i, record) in request.records.into_iter().enumerate() {
        if usage::check_availability(i, &record, NOW).is_ok() {
            filed.insert(Month::of_day(
                usage::observed_at(&record).div_euclid(86_400),
            ));
            accepted.push(record);
        }
    }
    // The node sums a month from the records filed under it and the month before.
    for month in filed.into_iter().take(4) {
        let _ = usage::availability(calendar(), month.span(calendar()), NOW, &accepted);
    }
}

fn cost_statement(body: &[u8]) {
    let Ok(request) = pb::GetCostStatementRequest::decode(body) else {
        return;
    };
    let Ok(period) = Days::from_proto("period", request.period.as_ref()) else {
        return;
    };
    let mut users = BTreeMap::new();
    let mut month = Month::of_day(period.first);
    while month.first_day() <= period.last {
        users.insert(month, 1184.0);
        month = month.next();
    }
    let _ = cost::statement(offer(), &tenancies()[0], calendar(), period, &users, NOW);
}
