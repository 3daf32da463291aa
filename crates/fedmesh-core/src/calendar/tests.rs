use jiff::civil;
use proptest::prelude::*;

use super::*;

const HOUR: Secs = 3600;

fn paris(y: i16, m: i8, d: i8, h: i8, min: i8) -> Secs {
    let zone = TimeZone::get("Europe/Paris").unwrap();
    civil::date(y, m, d)
        .at(h, min, 0, 0)
        .to_zoned(zone)
        .unwrap()
        .timestamp()
        .as_second()
}

fn window(day: i32, start_minute: i32, end_minute: i32) -> pb::WeeklyWindow {
    pb::WeeklyWindow {
        day_of_week: day,
        start_minute,
        end_minute,
    }
}

fn date(year: i32, month: i32, day: i32) -> pb::LocalDate {
    pb::LocalDate { year, month, day }
}

fn default_calendar() -> Calendar {
    Calendar::from_proto("calendar", &default_proto()).unwrap()
}

#[test]
fn easter_falls_on_known_dates() {
    for (year, month, day) in [
        (2000, 4, 23),
        (2024, 3, 31),
        (2025, 4, 20),
        (2026, 4, 5),
        (2027, 3, 28),
        (2038, 4, 25),
        (2285, 3, 22),
    ] {
        assert_eq!(
            civil_from_days(easter(year)),
            (year, month, day),
            "Easter {year}"
        );
    }
}

#[test]
fn day_numbers_round_trip_and_know_their_weekday() {
    for day in -800_000..800_000 {
        if day % 997 != 0 {
            continue;
        }
        let (y, m, d) = civil_from_days(day);
        assert_eq!(days_from_civil(y, m, d), day);
    }
    // 2026-11-28 is a Saturday.
    assert_eq!(weekday(days_from_civil(2026, 11, 28)), 5);
}

#[test]
fn a_weekend_is_not_service_time() {
    let cal = default_calendar();
    // Friday 27 November 2026, 17:00 to Monday 30 November, 10:00: 1 h + 2 h.
    assert_eq!(
        cal.service_time(paris(2026, 11, 27, 17, 0), paris(2026, 11, 30, 10, 0)),
        3 * HOUR
    );
    assert!(!cal.is_in_service(paris(2026, 11, 28, 12, 0)));
    assert!(cal.is_in_service(paris(2026, 11, 27, 17, 59)));
    assert!(!cal.is_in_service(paris(2026, 11, 27, 18, 0)));
    // Opened Friday 17:30 with a 4-service-hour deadline: Monday 11:30.
    assert_eq!(
        cal.add_service_time(paris(2026, 11, 27, 17, 30), 4 * HOUR),
        Some(paris(2026, 11, 30, 11, 30))
    );
    // A deadline that ends exactly at closing time is at closing time.
    assert_eq!(
        cal.add_service_time(paris(2026, 11, 27, 8, 0), 10 * HOUR),
        Some(paris(2026, 11, 27, 18, 0))
    );
}

#[test]
fn french_moving_holidays_are_not_service_days() {
    let cal = default_calendar();
    // 2026: Easter Monday 6 April, Ascension Thursday 14 May, Whit Monday 25 May.
    for (m, d) in [(4, 6), (5, 14), (5, 25)] {
        assert_eq!(
            cal.service_time(paris(2026, m, d, 0, 0), paris(2026, m, d + 1, 0, 0)),
            0,
            "2026-{m}-{d}"
        );
    }
    // The Wednesday before Ascension is an ordinary day.
    assert_eq!(
        cal.service_time(paris(2026, 5, 13, 0, 0), paris(2026, 5, 14, 0, 0)),
        10 * HOUR
    );
    // Across Ascension: Wednesday 17:00 + 2 h = Friday 09:00.
    assert_eq!(
        cal.add_service_time(paris(2026, 5, 13, 17, 0), 2 * HOUR),
        Some(paris(2026, 5, 15, 9, 0))
    );
    // 14 July 2026 is a Tuesday.
    assert_eq!(
        cal.service_time(paris(2026, 7, 14, 0, 0), paris(2026, 7, 15, 0, 0)),
        0
    );
}

#[test]
fn alsace_moselle_adds_good_friday_and_saint_stephen() {
    let fr = default_calendar();
    let mut proto = default_proto();
    proto.holiday_set = pb::HolidaySet::FrAlsaceMoselle as i32;
    let alsace = Calendar::from_proto("calendar", &proto).unwrap();
    // Good Friday 2026: 3 April. 26 December 2025: a Friday.
    for (y, m, d) in [(2026, 4, 3), (2025, 12, 26)] {
        let (from, to) = (paris(y, m, d, 0, 0), paris(y, m, d, 23, 0));
        assert_eq!(fr.service_time(from, to), 10 * HOUR);
        assert_eq!(alsace.service_time(from, to), 0);
    }
}

#[test]
fn the_october_night_has_two_hours_between_two_and_three() {
    let mut proto = default_proto();
    proto.weekly_windows = vec![window(7, 120, 180), window(6, 0, 1440)];
    let cal = Calendar::from_proto("calendar", &proto).unwrap();
    // Sunday 25 October 2026: the wall clock shows 02:00–03:00 twice.
    let night = cal.service_spans(paris(2026, 10, 25, 0, 0), paris(2026, 10, 25, 12, 0));
    assert_eq!(span::measure(&night), 2 * HOUR);
    // Sunday 29 March 2026: that hour does not exist.
    assert_eq!(
        cal.service_time(paris(2026, 3, 29, 0, 0), paris(2026, 3, 29, 12, 0)),
        0
    );
    // A whole Saturday lasts 24 h either side; the Sunday 00:00-24:00 window would last 25 h.
    let mut all_sunday = default_proto();
    all_sunday.weekly_windows = vec![window(7, 0, 1440)];
    let sunday = Calendar::from_proto("calendar", &all_sunday).unwrap();
    assert_eq!(
        sunday.service_time(paris(2026, 10, 24, 0, 0), paris(2026, 10, 27, 0, 0)),
        25 * HOUR
    );
    assert_eq!(
        sunday.service_time(paris(2026, 3, 28, 0, 0), paris(2026, 3, 31, 0, 0)),
        23 * HOUR
    );
    // Office hours around the October change keep their local times.
    let office = default_calendar();
    assert_eq!(
        office.add_service_time(paris(2026, 10, 23, 17, 0), 2 * HOUR),
        Some(paris(2026, 10, 26, 9, 0))
    );
}

#[test]
fn a_closure_week_and_maintenance_are_not_service_time() {
    let mut proto = default_proto();
    proto.annual_closures = vec![pb::DateRange {
        start_date: Some(date(2026, 12, 21)),
        end_date: Some(date(2027, 1, 1)),
    }];
    proto.maintenance_windows = vec![pb::MaintenanceWindow {
        period: Some(pb::Period {
            start_time: Some(prost_types::Timestamp {
                seconds: paris(2027, 1, 4, 8, 0),
                nanos: 0,
            }),
            end_time: Some(prost_types::Timestamp {
                seconds: paris(2027, 1, 4, 9, 30),
                nanos: 0,
            }),
        }),
        ..Default::default()
    }];
    let cal = Calendar::from_proto("calendar", &proto).unwrap();
    assert_eq!(
        cal.service_time(paris(2026, 12, 19, 0, 0), paris(2027, 1, 3, 0, 0)),
        0
    );
    // Friday 18 December 17:00 + 2 h: the closure and the maintenance are skipped.
    assert_eq!(
        cal.add_service_time(paris(2026, 12, 18, 17, 0), 2 * HOUR),
        Some(paris(2027, 1, 4, 10, 30))
    );
    assert!(!cal.is_in_service(paris(2027, 1, 4, 9, 0)));
}

#[test]
fn a_calendar_without_enough_service_time_has_no_deadline() {
    let mut proto = default_proto();
    proto.weekly_windows = vec![window(1, 0, 60)];
    proto.annual_closures = vec![pb::DateRange {
        start_date: Some(date(2026, 1, 1)),
        end_date: Some(date(2040, 12, 31)),
    }];
    let cal = Calendar::from_proto("calendar", &proto).unwrap();
    assert_eq!(cal.add_service_time(paris(2026, 3, 2, 0, 0), HOUR), None);
}

#[test]
fn bad_calendars_name_the_field() {
    let mut proto = default_proto();
    proto.time_zone = "Europe/Atlantis".into();
    let err = Calendar::from_proto("offer.engagement.calendar", &proto).unwrap_err();
    assert_eq!(err.field, "offer.engagement.calendar.time_zone");
    let mut proto = default_proto();
    proto.weekly_windows.push(window(3, 600, 600));
    let err = Calendar::from_proto("c", &proto).unwrap_err();
    assert_eq!(err.field, "c.weekly_windows[5]");
    let mut proto = default_proto();
    proto.annual_closures = vec![pb::DateRange {
        start_date: Some(date(2026, 2, 30)),
        end_date: Some(date(2026, 3, 1)),
    }];
    let err = Calendar::from_proto("c", &proto).unwrap_err();
    assert_eq!(err.field, "c.annual_closures[0].start_date");
}

// ---------------------------------------------------------------------------------------
// The oracle: a minute-by-minute walk that asks jiff for each minute's wall-clock time.

const ZONES: &[&str] = &[
    "Europe/Paris",
    "America/New_York",
    "UTC",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
];

#[derive(Debug, Clone)]
struct Spec {
    zone: &'static str,
    windows: Vec<(i32, i32, i32)>,
    holiday_set: i32,
    closures: Vec<(i64, i64)>,
    maintenance: Vec<(Secs, Secs)>,
}

impl Spec {
    fn proto(&self) -> pb::ServiceCalendar {
        let to_date = |day: i64| {
            let (y, m, d) = civil_from_days(day);
            date(y, m as i32, d as i32)
        };
        let ts = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
        pb::ServiceCalendar {
            time_zone: self.zone.into(),
            weekly_windows: self
                .windows
                .iter()
                .map(|&(d, s, e)| window(d, s, e))
                .collect(),
            holiday_set: self.holiday_set,
            annual_closures: self
                .closures
                .iter()
                .map(|&(s, e)| pb::DateRange {
                    start_date: Some(to_date(s)),
                    end_date: Some(to_date(e)),
                })
                .collect(),
            maintenance_windows: self
                .maintenance
                .iter()
                .map(|&(s, e)| pb::MaintenanceWindow {
                    period: Some(pb::Period {
                        start_time: Some(ts(s)),
                        end_time: Some(ts(e)),
                    }),
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn in_service(&self, zone: &TimeZone, minute_start: Secs) -> bool {
        let local = zone.to_datetime(Timestamp::from_second(minute_start).unwrap());
        let day = days_from_civil(
            i32::from(local.year()),
            local.month() as u32,
            local.day() as u32,
        );
        let weekday = local.weekday().to_monday_one_offset() as i32;
        let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
        let holidays = match self.holiday_set {
            1 => Holidays::None,
            3 => Holidays::FrAlsaceMoselle,
            _ => Holidays::Fr,
        };
        self.windows
            .iter()
            .any(|&(d, s, e)| d == weekday && s <= minute && minute < e)
            && !is_holiday(holidays, day)
            && !self.closures.iter().any(|&(s, e)| s <= day && day <= e)
            && !self
                .maintenance
                .iter()
                .any(|&(s, e)| s <= minute_start && minute_start < e)
    }
}

const START_2025: Secs = 1_735_689_600;
const MINUTES_IN_3_YEARS: i64 = 3 * 365 * 1440;

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::sample::select(ZONES),
        prop::collection::vec((1..=7i32, 0..1440i32, 1..=720i32), 1..5),
        0..4i32,
        prop::collection::vec((0..MINUTES_IN_3_YEARS / 1440, 0..12i64), 0..3),
        prop::collection::vec((0..MINUTES_IN_3_YEARS, 1..3000i64), 0..4),
    )
        .prop_map(|(zone, windows, holiday_set, closures, maintenance)| {
            let first_day = START_2025 / DAY;
            Spec {
                zone,
                windows: windows
                    .into_iter()
                    .map(|(d, s, len)| (d, s, (s + len).min(1440)))
                    .collect(),
                holiday_set,
                closures: closures
                    .into_iter()
                    .map(|(s, len)| (first_day + s, first_day + s + len))
                    .collect(),
                maintenance: maintenance
                    .into_iter()
                    .map(|(s, len)| (START_2025 + s * 60, START_2025 + (s + len) * 60))
                    .collect(),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn service_time_and_deadlines_match_the_minute_oracle(
        spec in spec(),
        start_minute in 0..MINUTES_IN_3_YEARS,
        near_transition in any::<bool>(),
        lead_minutes in 0..(3 * 1440i64),
        length_minutes in 0..(12 * 1440i64),
        pick in 0.0..1.0f64,
    ) {
        let cal = Calendar::from_proto("calendar", &spec.proto()).unwrap();
        let zone = TimeZone::get(spec.zone).unwrap();
        let mut from = START_2025 + start_minute * 60;
        // Half the cases start shortly before an offset change (daylight saving), where
        // calendars go wrong.
        if near_transition
            && let Some(change) = zone.following(Timestamp::from_second(from).unwrap()).next()
        {
            from = (change.timestamp().as_second() - lead_minutes * 60).max(START_2025);
        }
        let to = from + length_minutes * 60;
        let in_service: Vec<Secs> = (0..length_minutes)
            .map(|m| from + m * 60)
            .filter(|&t| spec.in_service(&zone, t))
            .collect();
        prop_assert_eq!(cal.service_time(from, to), in_service.len() as Secs * 60);
        if !in_service.is_empty() {
            // The deadline of n service minutes is the end of the n-th service minute.
            let n = 1 + ((in_service.len() - 1) as f64 * pick) as usize;
            prop_assert_eq!(
                cal.add_service_time(from, n as Secs * 60),
                Some(in_service[n - 1] + 60)
            );
            let probe = in_service[n - 1];
            prop_assert!(cal.is_in_service(probe));
        }
    }
}
