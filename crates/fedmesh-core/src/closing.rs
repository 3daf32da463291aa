//! Closing months (design section 9): an offer's month closes a grace period after it ends on
//! the offer's calendar; from then on no record of it is taken, and its figures are those of
//! the monthly reports written when it closed.
//!
//! The decision is a pure function of the offer's calendar, the month, the grace period and
//! the instant: the node's closing task and its report handlers ask the same question with the
//! same clock.

use crate::calendar::Calendar;
use crate::span::Secs;
use crate::usage::Month;

/// The grace period when `usage.close_after_days` is not set.
pub const DEFAULT_CLOSE_AFTER_DAYS: u32 = 5;
/// The longest grace period `usage.close_after_days` may set: a year.
pub const MAX_CLOSE_AFTER_DAYS: u32 = 366;

/// The instant `month` closes on `cal`: local midnight `close_after_days` days after the
/// month's last day ended (0: as the month ends).
pub fn close_time(cal: &Calendar, month: Month, close_after_days: u32) -> Secs {
    cal.day_start(month.next().first_day() + i64::from(close_after_days))
}

/// Whether `month` is closed on `cal` at `now`.
pub fn is_closed(cal: &Calendar, month: Month, close_after_days: u32, now: Secs) -> bool {
    now >= close_time(cal, month, close_after_days)
}

/// The latest month closed on `cal` at `now`.
pub fn last_closed(cal: &Calendar, close_after_days: u32, now: Secs) -> Month {
    let mut month = Month::of_day(cal.local_day(now)).previous();
    // The grace period is at most a year: thirteen steps back at most.
    while !is_closed(cal, month, close_after_days, now) {
        month = month.previous();
    }
    month
}

/// The reason a record of a closed month is refused, naming the field, the month and how to
/// correct it.
pub fn refusal(field: &str, offer_id: &str, month: Month, provider: &str) -> String {
    format!(
        "{field}: month {month} of offer {offer_id} is closed and its reports are written; a \
         correction of {month} is an adjustment issued by {provider}'s admins, carried to a later \
         statement"
    )
}

/// The answer of a report call whose every record falls in a closed month.
pub fn all_closed(months: &[(String, Month)]) -> String {
    let named: Vec<String> = months
        .iter()
        .map(|(offer, month)| format!("{month} of offer {offer}"))
        .collect();
    format!(
        "every record falls in a closed month ({}): nothing was stored; corrections are \
         adjustments by the provider's admins on a later statement",
        named.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar;

    fn paris() -> Calendar {
        Calendar::from_proto("calendar", &calendar::default_proto()).unwrap()
    }

    fn at(y: i32, m: u32, d: u32, hour: i64) -> Secs {
        calendar::days_from_civil(y, m, d) * 86_400 + hour * 3600
    }

    #[test]
    fn a_month_closes_its_grace_period_after_it_ends_in_the_offers_time_zone() {
        let cal = paris();
        let november = Month::new(2026, 11).unwrap();
        // Paris is UTC+1 in December: local midnight of 6 December is 23:00 UTC on the 5th.
        assert_eq!(close_time(&cal, november, 5), at(2026, 12, 5, 23));
        assert!(!is_closed(&cal, november, 5, at(2026, 12, 5, 22)));
        assert!(is_closed(&cal, november, 5, at(2026, 12, 5, 23)));
        // No grace: closed as it ends.
        assert_eq!(close_time(&cal, november, 0), at(2026, 11, 30, 23));
        // Around the clock in UTC it is UTC midnight.
        let utc = Calendar::around_the_clock();
        assert_eq!(close_time(&utc, november, 5), at(2026, 12, 6, 0));
        // A summer month in Paris (UTC+2).
        let july = Month::new(2026, 7).unwrap();
        assert_eq!(close_time(&cal, july, 0), at(2026, 7, 31, 22));
    }

    #[test]
    fn the_last_closed_month_follows_the_grace_period() {
        let cal = paris();
        let now = at(2026, 12, 3, 12);
        assert_eq!(last_closed(&cal, 5, now), Month::new(2026, 10).unwrap());
        assert_eq!(last_closed(&cal, 0, now), Month::new(2026, 11).unwrap());
        assert_eq!(last_closed(&cal, 60, now), Month::new(2026, 9).unwrap());
        assert_eq!(
            last_closed(&cal, 5, at(2026, 12, 6, 0)),
            Month::new(2026, 11).unwrap()
        );
    }

    #[test]
    fn refusals_name_the_month_and_the_correction() {
        let reason = refusal(
            "records[3].period.start_time",
            "rennes2.collab",
            Month::new(2026, 11).unwrap(),
            "rennes2",
        );
        assert!(reason.starts_with("records[3].period.start_time: month 2026-11"));
        assert!(reason.contains("adjustment"), "{reason}");
    }
}
