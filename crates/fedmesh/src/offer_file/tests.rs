//! Tests of the offer file conversion.

use super::*;

const COLLABORATION: &str = include_str!("../../../../examples/offers/collaboration.toml");
const VIDEO: &str = include_str!("../../../../examples/offers/video.toml");
const OTP: &str = include_str!("../../../../examples/offers/otp.toml");

fn hours(h: i64) -> Option<Duration> {
    Some(Duration {
        seconds: h * 3600,
        nanos: 0,
    })
}

fn date(year: i32, month: i32, day: i32) -> Option<pb::LocalDate> {
    Some(pb::LocalDate { year, month, day })
}

fn target(engagement: &pb::ServiceEngagement, priority: pb::Priority) -> pb::PriorityTarget {
    *engagement
        .priority_targets
        .iter()
        .find(|t| t.priority == priority as i32)
        .unwrap()
}

/// A valid file with `extra` appended, to test one bad value at a time.
fn minimal_with(extra: &str) -> String {
    format!("service_id = \"x\"\nstatus = \"pilot\"\n{extra}")
}

fn value_error(text: &str) -> OfferFileError {
    match parse_offer_file(text) {
        Err(e @ OfferFileError::Value { .. }) => e,
        other => panic!("expected a value error, got {other:?}"),
    }
}

#[test]
fn collaboration_example_converts() {
    let offer = parse_offer_file(COLLABORATION).unwrap();
    assert_eq!(offer.service_id, "collab");
    assert_eq!(offer.status, pb::OfferStatus::Available as i32);
    assert_eq!(
        offer.approval_policy,
        pb::SubscriptionApprovalPolicy::AutoWithinCapacity as i32
    );
    assert!(!offer.description.unwrap().fr.is_empty());

    let engagement = offer.engagement.unwrap();
    let calendar = engagement.calendar.clone().unwrap();
    assert_eq!(calendar.time_zone, "Europe/Paris");
    assert_eq!(calendar.holiday_set, pb::HolidaySet::Fr as i32);
    let days: Vec<i32> = calendar
        .weekly_windows
        .iter()
        .map(|w| w.day_of_week)
        .collect();
    assert_eq!(days, [1, 2, 3, 4, 5]);
    assert!(
        calendar
            .weekly_windows
            .iter()
            .all(|w| w.start_minute == 480 && w.end_minute == 1080)
    );
    assert_eq!(calendar.annual_closures[0].start_date, date(2026, 12, 24));
    assert_eq!(calendar.annual_closures[0].end_date, date(2027, 1, 1));
    assert_eq!(engagement.availability_sla_percent, 99.0);
    assert_eq!(engagement.availability_slo_percent, 95.0);
    let p1 = target(&engagement, pb::Priority::P1);
    assert_eq!(p1.acknowledge_within, hours(1));
    assert_eq!(p1.resolve_within, hours(8));
    assert_eq!(engagement.priority_targets.len(), 4);

    let capacity = offer.capacity.unwrap();
    assert_eq!(
        (capacity.max_tenants, capacity.max_users_per_tenant),
        (18, 5000)
    );
    let pricing = offer.pricing.unwrap();
    assert_eq!(pricing.currency_code, "EUR");
    assert_eq!(pricing.setup_fee_micros, 1_500_000_000);
    assert_eq!(pricing.per_user_per_year_micros, 500_000);
    let gdpr = offer.gdpr.unwrap();
    assert_eq!(gdpr.hosting_country_code, "FR");
    assert_eq!(gdpr.retention_period.unwrap().seconds, 90 * 86_400);
    assert!(!gdpr.sub_processors.is_empty());
    assert!(gdpr.dpo_contact.unwrap().email.ends_with(".example"));
    assert!(offer.support.unwrap().single_point_of_contact.is_some());

    // What the node sets stays empty.
    assert!(offer.offer_id.is_empty() && offer.provider_member_id.is_empty());
    assert!(offer.etag.is_empty() && offer.create_time.is_none());
}

#[test]
fn video_example_converts() {
    let offer = parse_offer_file(VIDEO).unwrap();
    assert_eq!(offer.service_id, "pod");
    assert_eq!(offer.category, "video");
    assert_eq!(
        offer.approval_policy,
        pb::SubscriptionApprovalPolicy::Manual as i32
    );
    let calendar = offer.engagement.unwrap().calendar.unwrap();
    // Monday to Thursday until 18:00, Friday until 17:00.
    assert_eq!(calendar.weekly_windows.len(), 5);
    let friday = calendar
        .weekly_windows
        .iter()
        .find(|w| w.day_of_week == pb::DayOfWeek::Friday as i32)
        .unwrap();
    assert_eq!((friday.start_minute, friday.end_minute), (480, 1020));
    assert_eq!(calendar.annual_closures.len(), 2);
    let pricing = offer.pricing.unwrap();
    assert_eq!(pricing.setup_fee_micros, 2_000_000_000);
    assert_eq!(pricing.per_user_per_year_micros, 250_000);
}

#[test]
fn otp_example_converts() {
    let offer = parse_offer_file(OTP).unwrap();
    assert_eq!(offer.service_id, "otp");
    assert_eq!(offer.status, pb::OfferStatus::Pilot as i32);
    assert!(offer.pilot_tenants_accepted);
    assert_eq!(
        offer.approval_policy,
        pb::SubscriptionApprovalPolicy::AutoListedMembers as i32
    );
    assert_eq!(offer.auto_approved_member_ids, ["rennes2", "rouen"]);
    let engagement = offer.engagement.unwrap();
    assert!(engagement.p1_round_the_clock);
    let calendar = engagement.calendar.clone().unwrap();
    assert_eq!(calendar.holiday_set, pb::HolidaySet::FrAlsaceMoselle as i32);
    assert_eq!(calendar.weekly_windows[0].start_minute, 7 * 60 + 30);
    // Half an hour to acknowledge a P1.
    let p1 = target(&engagement, pb::Priority::P1);
    assert_eq!(p1.acknowledge_within.unwrap().seconds, 1800);
    assert_eq!(offer.pricing.unwrap().per_user_per_year_micros, 100_000);
    let gdpr = offer.gdpr.unwrap();
    assert!(gdpr.sub_processors.iter().any(|s| s.country_code == "US"));
}

#[test]
fn empty_file_gives_an_empty_offer_for_the_node_to_judge() {
    let offer = parse_offer_file("").unwrap();
    assert_eq!(
        offer,
        pb::Offer {
            approval_policy: pb::SubscriptionApprovalPolicy::Manual as i32,
            ..pb::Offer::default()
        }
    );
}

#[test]
fn the_seed_window_and_holidays_are_the_defaults() {
    let offer = parse_offer_file("[engagement]\n").unwrap();
    let calendar = offer.engagement.unwrap().calendar.unwrap();
    assert_eq!(calendar.holiday_set, pb::HolidaySet::Fr as i32);
    assert_eq!(calendar.weekly_windows.len(), 5);
    assert!(
        calendar
            .weekly_windows
            .iter()
            .all(|w| (w.start_minute, w.end_minute) == (480, 1080))
    );
}

#[test]
fn bad_time_names_its_window() {
    let text = minimal_with(
        "[engagement]\nwindows = [\n\
         { days = [\"mon\"], from = \"08:00\", to = \"12:00\" },\n\
         { days = [\"tue\"], from = \"8h\", to = \"12:00\" },\n]\n",
    );
    let err = value_error(&text);
    assert_eq!(err.path(), Some("engagement.windows[1].from"));
    let message = err.to_string();
    assert!(
        message.starts_with("engagement.windows[1].from: \"8h\" is not a HH:MM time"),
        "{message}"
    );
    assert!(message.contains("line 6"), "{message}");
}

#[test]
fn times_accept_one_digit_hours_toml_times_and_midnight_as_an_end() {
    assert_eq!(parse_minute(&Value::String("7:30".into()), false), Ok(450));
    assert_eq!(parse_minute(&Value::String("24:00".into()), true), Ok(1440));
    assert!(parse_minute(&Value::String("24:00".into()), false).is_err());
    for bad in [
        "08:60", "25:00", "0800", "08:0", "08:00:00", "-1:00", "", "8h",
    ] {
        assert!(
            parse_minute(&Value::String(bad.into()), true).is_err(),
            "{bad}"
        );
    }
    let text =
        minimal_with("[engagement]\nwindows = [{ days = [\"sat\"], from = 09:00, to = 12:30 }]\n");
    let offer = parse_offer_file(&text).unwrap();
    let window = offer.engagement.unwrap().calendar.unwrap().weekly_windows[0];
    assert_eq!((window.start_minute, window.end_minute), (540, 750));
    assert_eq!(window.day_of_week, pb::DayOfWeek::Saturday as i32);
}

#[test]
fn window_without_days_is_an_error() {
    let text =
        minimal_with("[engagement]\nwindows = [{ days = [], from = \"08:00\", to = \"18:00\" }]\n");
    assert_eq!(
        value_error(&text).path(),
        Some("engagement.windows[0].days")
    );
}

#[test]
fn closures_take_real_dates_and_default_to_one_day() {
    let text = minimal_with(
        "[engagement]\nclosures = [\
         { from = \"2028-02-29\" }, { from = 2027-08-02, to = 2027-08-20 }]\n",
    );
    let offer = parse_offer_file(&text).unwrap();
    let closures = offer.engagement.unwrap().calendar.unwrap().annual_closures;
    assert_eq!(closures[0].start_date, date(2028, 2, 29));
    assert_eq!(closures[0].end_date, date(2028, 2, 29));
    assert_eq!(closures[1].end_date, date(2027, 8, 20));

    let text = minimal_with("[engagement]\nclosures = [{ from = \"2027-02-29\" }]\n");
    assert_eq!(
        value_error(&text).path(),
        Some("engagement.closures[0].from")
    );
    let text =
        minimal_with("[engagement]\nclosures = [{ from = \"2026-12-24\", to = \"24/12/2026\" }]\n");
    assert_eq!(value_error(&text).path(), Some("engagement.closures[0].to"));
}

#[test]
fn decimal_amounts_convert_exactly() {
    assert_eq!(parse_decimal_micros("1500.00"), Ok(1_500_000_000));
    assert_eq!(parse_decimal_micros("1500"), Ok(1_500_000_000));
    assert_eq!(parse_decimal_micros("0.50"), Ok(500_000));
    assert_eq!(parse_decimal_micros("0.1"), Ok(100_000));
    assert_eq!(parse_decimal_micros("0.000001"), Ok(1));
    assert_eq!(parse_decimal_micros("9223372036854.775807"), Ok(i64::MAX));
    for bad in [
        "9223372036854.775808",
        "99999999999999999999",
        "1.0000001",
        "-5",
        "+5",
        "1,50",
        "1 500",
        "1e3",
        ".5",
        "5.",
        "1.2.3",
        "",
        "abc",
    ] {
        assert!(parse_decimal_micros(bad).is_err(), "{bad}");
    }
    assert!(
        parse_decimal_micros("1.0000001")
            .unwrap_err()
            .contains("more than 6 decimals")
    );
}

#[test]
fn bad_amounts_name_their_key() {
    let err = value_error(&minimal_with("[pricing]\nsetup_fee = \"12.3456789\"\n"));
    assert_eq!(err.path(), Some("pricing.setup_fee"));
    assert!(err.to_string().contains("more than 6 decimals"), "{err}");

    let err = value_error(&minimal_with("[pricing]\nper_user_per_year = 0.5\n"));
    assert_eq!(err.path(), Some("pricing.per_user_per_year"));

    let err = value_error(&minimal_with("[pricing]\nper_tenant_per_year = \"-100\"\n"));
    assert_eq!(err.path(), Some("pricing.per_tenant_per_year"));

    let offer = parse_offer_file(&minimal_with("[pricing]\nsetup_fee = 1500\n")).unwrap();
    assert_eq!(offer.pricing.unwrap().setup_fee_micros, 1_500_000_000);
}

#[test]
fn hours_may_be_fractional_or_integers() {
    let text = minimal_with(
        "[[engagement.priorities]]\npriority = \"P2\"\n\
         acknowledge_hours = 0.25\nresolve_hours = 16\n",
    );
    let engagement = parse_offer_file(&text).unwrap().engagement.unwrap();
    let p2 = target(&engagement, pb::Priority::P2);
    assert_eq!(p2.acknowledge_within.unwrap().seconds, 900);
    assert_eq!(p2.resolve_within, hours(16));

    let text = minimal_with("[[engagement.priorities]]\npriority = \"P1\"\nresolve_hours = inf\n");
    assert_eq!(
        value_error(&text).path(),
        Some("engagement.priorities[0].resolve_hours")
    );
}

#[test]
fn unknown_keys_and_words_are_toml_errors_with_a_line() {
    for extra in [
        "[capacity]\nmax_tenant = 3\n",
        "[engagement]\nholidays = \"de\"\n",
        "approval = { policy = \"automatic\" }\n",
        "[[engagement.priorities]]\npriority = \"P5\"\n",
        "[engagement]\nwindows = [{ days = [\"monday\"], from = \"08:00\", to = \"18:00\" }]\n",
    ] {
        match parse_offer_file(&minimal_with(extra)) {
            Err(OfferFileError::Toml { message }) => {
                assert!(message.contains("line"), "{extra}: {message}");
            }
            other => panic!("{extra}: expected a TOML error, got {other:?}"),
        }
    }
    let err = parse_offer_file("status = \"withdrawn\"\n").unwrap_err();
    assert!(err.to_string().contains("withdrawn"), "{err}");
}

#[test]
fn every_example_passes_the_nodes_validation() {
    for (text, provider) in [
        (
            include_str!("../../../../examples/offers/collaboration.toml"),
            "rennes2",
        ),
        (
            include_str!("../../../../examples/offers/video.toml"),
            "rouen",
        ),
        (
            include_str!("../../../../examples/offers/otp.toml"),
            "unistra",
        ),
    ] {
        let offer = parse_offer_file(text).unwrap();
        let provider: fedmesh_core::MemberId = provider.parse().unwrap();
        if let Err(e) = fedmesh_core::offer::validate(offer, &provider) {
            panic!("an example offer of {provider} is invalid: {e}");
        }
    }
}
