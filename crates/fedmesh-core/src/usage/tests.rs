use super::*;
use crate::cost::{self, Days};

const HOUR: Secs = 3600;

fn paris(m: i8, d: i8, h: i8, min: i8) -> Secs {
    let zone = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    jiff::civil::date(2026, m, d)
        .at(h, min, 0, 0)
        .to_zoned(zone)
        .unwrap()
        .timestamp()
        .as_second()
}

fn ts(seconds: Secs) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

fn period(start: Secs, end: Secs) -> Option<pb::Period> {
    Some(pb::Period {
        start_time: Some(ts(start)),
        end_time: Some(ts(end)),
    })
}

fn outage(id: &str, start: Secs, end: Secs, planned: bool) -> pb::AvailabilityRecord {
    pb::AvailabilityRecord {
        record_id: id.into(),
        offer_id: "unistra.pod".into(),
        observation: Some(pb::availability_record::Observation::Outage(pb::Outage {
            period: period(start, end),
            ..Default::default()
        })),
        planned_maintenance: planned,
        ..Default::default()
    }
}

fn probe(id: &str, at: Secs, up: bool) -> pb::AvailabilityRecord {
    pb::AvailabilityRecord {
        record_id: id.into(),
        offer_id: "unistra.pod".into(),
        observation: Some(pb::availability_record::Observation::Probe(
            pb::ProbeResult {
                probe_time: Some(ts(at)),
                up,
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn seconds(d: &Option<prost_types::Duration>) -> Secs {
    d.as_ref().unwrap().seconds
}

fn november_calendar() -> Calendar {
    let mut proto = calendar::default_proto();
    proto.maintenance_windows = vec![pb::MaintenanceWindow {
        maintenance_id: "m1".into(),
        period: period(paris(11, 5, 8, 0), paris(11, 5, 10, 0)),
        ..Default::default()
    }];
    Calendar::from_proto("calendar", &proto).unwrap()
}

#[test]
fn november_2026_has_twenty_service_days() {
    let cal = november_calendar();
    let november = Month::new(2026, 11).unwrap().span(&cal);
    assert_eq!(november, Span::new(paris(11, 1, 0, 0), paris(12, 1, 0, 0)));
    let summary = availability(&cal, november, paris(12, 2, 0, 0), &[]);
    // 30 days, 9 weekend days, Armistice Wednesday 11th: 20 days of 10 h, less 2 h of
    // declared maintenance.
    assert_eq!(seconds(&summary.in_window_time), 198 * HOUR);
    assert_eq!(seconds(&summary.out_of_window_time), 520 * HOUR);
    assert_eq!(seconds(&summary.maintenance_time), 2 * HOUR);
    assert_eq!(summary.in_window_availability_percent, 100.0);
}

#[test]
fn availability_on_hand_checked_outages() {
    let cal = november_calendar();
    let november = Month::new(2026, 11).unwrap().span(&cal);
    let records = [
        // Tuesday 3rd, 17:00–19:30: 1 h inside the window, 1 h 30 outside.
        outage(
            "crossing-18h",
            paris(11, 3, 17, 0),
            paris(11, 3, 19, 30),
            false,
        ),
        // Armistice, Wednesday 11th, 09:00–12:00: a public holiday, all outside.
        outage("holiday", paris(11, 11, 9, 0), paris(11, 11, 12, 0), false),
        // Thursday 5th, 08:30–09:30: inside the declared maintenance window, excluded.
        outage(
            "in-maintenance",
            paris(11, 5, 8, 30),
            paris(11, 5, 9, 30),
            false,
        ),
        // Friday 6th, 08:00–09:00: reported as planned maintenance, excluded.
        outage("planned", paris(11, 6, 8, 0), paris(11, 6, 9, 0), true),
        // Monday 16th: down at 10:00 and 10:05, up again at 10:20: 20 minutes.
        probe("p1", paris(11, 16, 10, 0), false),
        probe("p2", paris(11, 16, 10, 5), false),
        probe("p3", paris(11, 16, 10, 20), true),
    ];
    let summary = availability(&cal, november, paris(12, 2, 0, 0), &records);
    assert_eq!(seconds(&summary.in_window_time), 197 * HOUR);
    assert_eq!(seconds(&summary.in_window_downtime), HOUR + 20 * 60);
    assert_eq!(seconds(&summary.out_of_window_time), 520 * HOUR);
    assert_eq!(seconds(&summary.out_of_window_downtime), 4 * HOUR + 30 * 60);
    assert_eq!(seconds(&summary.maintenance_time), 3 * HOUR);
    let inside = 100.0 * (197.0 * 60.0 - 80.0) / (197.0 * 60.0);
    assert!((summary.in_window_availability_percent - inside).abs() < 1e-9);
    assert!((summary.in_window_availability_percent - 99.323).abs() < 1e-3);
    let outside = 100.0 * (520.0 - 4.5) / 520.0;
    assert!((summary.out_of_window_availability_percent - outside).abs() < 1e-9);
    assert_eq!(summary.outage_count, 4);
    assert_eq!(summary.probe_count, 3);
}

#[test]
fn the_current_month_is_measured_up_to_now() {
    let cal = november_calendar();
    let november = Month::new(2026, 11).unwrap().span(&cal);
    // Still down at "now" (Monday 2nd, 12:00), since 10:00.
    let summary = availability(
        &cal,
        november,
        paris(11, 2, 12, 0),
        &[probe("p", paris(11, 2, 10, 0), false)],
    );
    assert_eq!(seconds(&summary.in_window_time), 4 * HOUR);
    assert_eq!(seconds(&summary.in_window_downtime), 2 * HOUR);
    assert_eq!(summary.in_window_availability_percent, 50.0);
}

fn offer() -> pb::Offer {
    pb::Offer {
        offer_id: "unistra.pod".into(),
        custom_metrics: vec!["videos".into()],
        pricing: Some(pb::PricingGrid {
            currency_code: "EUR".into(),
            setup_fee_micros: 500_000_000,
            per_tenant_per_year_micros: 1_200_000_000,
            per_user_per_year_micros: 2_000_000,
            notes: String::new(),
        }),
        ..Default::default()
    }
}

fn change(to: pb::SubscriptionState, at: Secs) -> pb::SubscriptionStateChange {
    pb::SubscriptionStateChange {
        to_state: to as i32,
        change_time: Some(ts(at)),
        ..Default::default()
    }
}

fn tenancy() -> pb::Subscription {
    use pb::SubscriptionState::*;
    pb::Subscription {
        subscription_id: "sub-1".into(),
        offer_id: "unistra.pod".into(),
        provider_member_id: "unistra".into(),
        subscriber_member_id: "univ-rouen".into(),
        state: Terminating as i32,
        tenant_id: "rouen".into(),
        user_count: 1000,
        history: vec![
            change(Requested, paris(11, 5, 9, 0)),
            change(Active, paris(11, 10, 10, 0)),
            change(Suspended, paris(12, 10, 9, 0)),
            change(Terminating, paris(12, 20, 9, 0)),
        ],
        ..Default::default()
    }
}

fn usage(id: &str, metric: &str, value: f64, start: Secs, end: Secs) -> pb::UsageRecord {
    pb::UsageRecord {
        record_id: id.into(),
        offer_id: "unistra.pod".into(),
        subscription_id: "sub-1".into(),
        tenant_id: "rouen".into(),
        metric: metric.into(),
        value,
        period: period(start, end),
        ..Default::default()
    }
}

#[test]
fn a_cost_statement_checked_by_hand() {
    let cal = november_calendar();
    let users = BTreeMap::from([(Month::new(2026, 11).unwrap(), 1200.0)]);
    let november = Days::month(Month::new(2026, 11).unwrap());
    let s = cost::statement(
        &offer(),
        &tenancy(),
        &cal,
        november,
        &users,
        paris(12, 1, 12, 0),
    );
    let amounts: Vec<(i32, i64)> = s
        .lines
        .iter()
        .map(|l| (l.kind, l.amount.as_ref().unwrap().amount_micros))
        .collect();
    // Approved Tuesday 10 November: setup fee; 10–30 November is 21 days of service.
    // 1,200 € × 21/365 = 69.041096 €; 2 € × 1,200 users × 21/365 = 138.082192 €.
    assert_eq!(
        amounts,
        [
            (pb::CostLineKind::SetupFee as i32, 500_000_000),
            (pb::CostLineKind::TenantFee as i32, 69_041_096),
            (pb::CostLineKind::UserFee as i32, 138_082_192),
        ]
    );
    assert_eq!(s.total.unwrap().amount_micros, 707_123_288);
    assert!(
        s.lines[1].description.contains("21 days served"),
        "{:?}",
        s.lines[1]
    );
    assert!(
        s.lines[2].description.contains("1200 users"),
        "{:?}",
        s.lines[2]
    );

    // December: suspended on the 10th (still billed), terminated on the 20th (billed that
    // day): 20 days; no usage reported, so the 1,000 declared users are billed.
    let december = Days::month(Month::new(2026, 12).unwrap());
    let s = cost::statement(
        &offer(),
        &tenancy(),
        &cal,
        december,
        &users,
        paris(12, 31, 12, 0),
    );
    let amounts: Vec<i64> = s
        .lines
        .iter()
        .map(|l| l.amount.as_ref().unwrap().amount_micros)
        .collect();
    assert_eq!(amounts, [65_753_425, 109_589_041]);
    assert!(
        s.lines[1].description.contains("declared"),
        "{:?}",
        s.lines[1]
    );
    assert_eq!(s.total.unwrap().amount_micros, 175_342_466);
}

#[test]
fn aggregates_and_totals_per_month() {
    let records = [
        usage(
            "a",
            "active_users",
            100.0,
            paris(11, 1, 0, 0),
            paris(11, 2, 0, 0),
        ),
        usage(
            "b",
            "active_users",
            140.0,
            paris(11, 2, 0, 0),
            paris(11, 3, 0, 0),
        ),
        usage(
            "c",
            "active_users",
            120.0,
            paris(11, 3, 0, 0),
            paris(11, 4, 0, 0),
        ),
        usage(
            "d",
            "requests",
            10.0,
            paris(11, 1, 0, 0),
            paris(11, 2, 0, 0),
        ),
        usage(
            "e",
            "requests",
            15.0,
            paris(11, 2, 0, 0),
            paris(11, 3, 0, 0),
        ),
        pb::UsageRecord {
            subscription_id: "sub-2".into(),
            ..usage(
                "f",
                "active_users",
                50.0,
                paris(11, 2, 12, 0),
                paris(11, 2, 18, 0),
            )
        },
    ];
    let aggregates = aggregate(&records);
    let users = &aggregates[0];
    assert_eq!(
        (users.subscription_id.as_str(), users.metric.as_str()),
        ("sub-1", "active_users")
    );
    assert_eq!(
        (users.last_value, users.max_value, users.record_count),
        (120.0, 140.0, 3)
    );
    assert_eq!(aggregates[1].sum_value, 25.0);
    assert_eq!(aggregates[2].subscription_id, "sub-2");
    let totals = month_totals(&records);
    // sub-2's 50 joins while sub-1 is at 100 (150), then sub-1 reaches 140 (190).
    assert_eq!(totals.active_users, 190.0);
    assert_eq!(totals.requests, 25.0);
}

#[test]
fn reported_records_are_checked_and_completed() {
    let now = paris(11, 28, 12, 0);
    let tenancies = vec![tenancy()];
    let mut by_tenant = pb::UsageRecord {
        subscription_id: String::new(),
        ..usage("r1", "videos", 3.0, paris(11, 1, 0, 0), paris(11, 2, 0, 0))
    };
    check_usage(0, &mut by_tenant, &offer(), &tenancies, now).unwrap();
    assert_eq!(by_tenant.subscription_id, "sub-1");
    let refused = |mut r: pb::UsageRecord| check_usage(7, &mut r, &offer(), &tenancies, now);
    let cases = [
        (
            usage("", "requests", 1.0, now - 60, now),
            "records[7].record_id",
        ),
        (usage("r", "cpu", 1.0, now - 60, now), "records[7].metric"),
        (
            usage("r", "requests", -1.0, now - 60, now),
            "records[7].value",
        ),
        (
            usage("r", "requests", f64::NAN, now - 60, now),
            "records[7].value",
        ),
        (
            usage("r", "requests", 1.0, now, now - 60),
            "records[7].period.end_time",
        ),
        (
            usage("r", "requests", 1.0, now, now + 3600),
            "records[7].period.end_time",
        ),
        (
            pb::UsageRecord {
                subscription_id: "sub-9".into(),
                ..usage("r", "requests", 1.0, now - 60, now)
            },
            "records[7].subscription_id",
        ),
        (
            pb::UsageRecord {
                tenant_id: "caen".into(),
                ..usage("r", "requests", 1.0, now - 60, now)
            },
            "records[7].tenant_id",
        ),
    ];
    for (record, field) in cases {
        let reason = refused(record).unwrap_err();
        assert!(reason.starts_with(field), "{reason} should name {field}");
    }
    let long = pb::AvailabilityRecord {
        ..outage("o", paris(10, 1, 0, 0), paris(11, 5, 0, 0), false)
    };
    assert!(
        check_availability(0, &long, now)
            .unwrap_err()
            .contains("31 days")
    );
}

#[test]
fn months_parse_and_step() {
    let m: Month = "2026-12".parse().unwrap();
    assert_eq!(m.next(), Month::new(2027, 1).unwrap());
    assert_eq!(m.next().previous(), m);
    assert_eq!(m.to_string(), "2026-12");
    assert!("2026-13".parse::<Month>().is_err());
    assert!("november".parse::<Month>().is_err());
}
