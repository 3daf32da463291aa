//! The service calendar of design section 6: when a provider's service is *in service*.
//!
//! A calendar is an IANA time zone, weekly windows in local time, a public-holiday set,
//! annual closures (local dates) and declared maintenance windows (instants). It answers three
//! questions, in whole seconds of UTC time:
//! - [`Calendar::is_in_service`]: is an instant in service?
//! - [`Calendar::service_time`]: how much service time lies between two instants?
//! - [`Calendar::add_service_time`]: when has a given amount of service time elapsed?
//!
//! An instant is in service when its *local* civil time (the wall clock of the calendar's
//! zone at that instant) falls in a weekly window of a working day, and the instant is not in
//! a maintenance window. So on the October daylight-saving night a 02:00–03:00 window lasts
//! two real hours (the wall clock shows that hour twice) and in March it lasts none.

use fedmesh_proto::pb;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::offer::FieldError;
use crate::span::{self, Secs, Span};

const DAY: Secs = 86_400;
/// How far [`Calendar::add_service_time`] looks ahead before concluding the calendar never
/// reaches the requested amount (about ten years).
const HORIZON: Secs = 3_660 * DAY;
/// Instants a calendar accepts: 1970-01-01 to 9999-01-01.
const MAX_INSTANT: Secs = 253_370_764_800;

/// Which public holidays are not service days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holidays {
    /// None.
    None,
    /// France: 1 January, Easter Monday, 1 and 8 May, Ascension, Whit Monday, 14 July,
    /// 15 August, 1 and 11 November, 25 December.
    Fr,
    /// France plus Good Friday and 26 December (Alsace-Moselle).
    FrAlsaceMoselle,
}

/// A validated service calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    zone: TimeZone,
    zone_name: String,
    /// Windows of each weekday (Monday first), as sorted, merged local second ranges.
    week: [Vec<(Secs, Secs)>; 7],
    holidays: Holidays,
    /// Closures as inclusive ranges of local day numbers (days since 1970-01-01).
    closures: Vec<(i64, i64)>,
    /// Maintenance windows as merged instants.
    maintenance: Vec<Span>,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// The calendar the design gives by default: Europe/Paris, Monday–Friday 08:00–18:00,
/// French public holidays, no closure.
pub fn default_proto() -> pb::ServiceCalendar {
    pb::ServiceCalendar {
        time_zone: "Europe/Paris".into(),
        weekly_windows: (1..=5)
            .map(|day| pb::WeeklyWindow {
                day_of_week: day,
                start_minute: 8 * 60,
                end_minute: 18 * 60,
            })
            .collect(),
        holiday_set: pb::HolidaySet::Fr as i32,
        annual_closures: Vec::new(),
        maintenance_windows: Vec::new(),
    }
}

impl Calendar {
    /// Builds a calendar from its protobuf form; errors name the field under `field`
    /// (e.g. `offer.engagement.calendar.time_zone`). Empty fields take the design's
    /// defaults (Europe/Paris, Monday–Friday 08:00–18:00, French holidays).
    pub fn from_proto(field: &str, cal: &pb::ServiceCalendar) -> Result<Self, FieldError> {
        let zone_name = if cal.time_zone.is_empty() {
            "Europe/Paris"
        } else {
            cal.time_zone.as_str()
        };
        let zone = TimeZone::get(zone_name).map_err(|_| {
            bad(
                format!("{field}.time_zone"),
                format!("`{zone_name}` is not an IANA time zone such as Europe/Paris"),
            )
        })?;
        let defaults;
        let windows = if cal.weekly_windows.is_empty() {
            defaults = default_proto().weekly_windows;
            &defaults
        } else {
            &cal.weekly_windows
        };
        let mut week: [Vec<(Secs, Secs)>; 7] = Default::default();
        for (i, w) in windows.iter().enumerate() {
            let path = format!("{field}.weekly_windows[{i}]");
            let day = match pb::DayOfWeek::try_from(w.day_of_week) {
                Ok(pb::DayOfWeek::Unspecified) | Err(_) => {
                    return Err(bad(format!("{path}.day_of_week"), "required"));
                }
                Ok(day) => day as usize - 1,
            };
            if !(0..1440).contains(&w.start_minute)
                || !(1..=1440).contains(&w.end_minute)
                || w.start_minute >= w.end_minute
            {
                return Err(bad(
                    path,
                    "start_minute must precede end_minute, within 0..=1440",
                ));
            }
            week[day].push((
                Secs::from(w.start_minute) * 60,
                Secs::from(w.end_minute) * 60,
            ));
        }
        for day in &mut week {
            day.sort_unstable();
            let mut merged: Vec<(Secs, Secs)> = Vec::with_capacity(day.len());
            for &(start, end) in day.iter() {
                match merged.last_mut() {
                    Some(last) if start <= last.1 => last.1 = last.1.max(end),
                    _ => merged.push((start, end)),
                }
            }
            *day = merged;
        }
        let holidays = match pb::HolidaySet::try_from(cal.holiday_set) {
            Ok(pb::HolidaySet::Unspecified | pb::HolidaySet::Fr) => Holidays::Fr,
            Ok(pb::HolidaySet::None) => Holidays::None,
            Ok(pb::HolidaySet::FrAlsaceMoselle) => Holidays::FrAlsaceMoselle,
            Err(_) => {
                return Err(bad(
                    format!("{field}.holiday_set"),
                    "unknown value: use NONE, FR or FR_ALSACE_MOSELLE",
                ));
            }
        };
        let mut closures = Vec::new();
        for (i, c) in cal.annual_closures.iter().enumerate() {
            let path = format!("{field}.annual_closures[{i}]");
            let start = day_of(&format!("{path}.start_date"), c.start_date.as_ref())?;
            let end = day_of(&format!("{path}.end_date"), c.end_date.as_ref())?;
            if start > end {
                return Err(bad(path, "start_date is after end_date"));
            }
            closures.push((start, end));
        }
        let mut maintenance = Vec::new();
        for (i, m) in cal.maintenance_windows.iter().enumerate() {
            // A cancelled window excludes nothing (its node removes it from the offer: this
            // is for copies from before).
            if crate::maintenance::cancelled(m) {
                continue;
            }
            let path = format!("{field}.maintenance_windows[{i}].period");
            maintenance.push(closed_period(&path, m.period.as_ref())?);
        }
        Ok(Self {
            zone,
            zone_name: zone_name.to_owned(),
            week,
            holidays,
            closures,
            maintenance: span::normalize(maintenance),
        })
    }

    /// A calendar in service at every instant (a P1 configured to run around the clock).
    pub fn around_the_clock() -> Self {
        Self {
            zone: TimeZone::UTC,
            zone_name: "UTC".into(),
            week: std::array::from_fn(|_| vec![(0, DAY)]),
            holidays: Holidays::None,
            closures: Vec::new(),
            maintenance: Vec::new(),
        }
    }

    /// The same calendar with more maintenance windows declared.
    pub fn with_maintenance(mut self, windows: impl IntoIterator<Item = Span>) -> Self {
        self.maintenance.extend(windows);
        self.maintenance = span::normalize(std::mem::take(&mut self.maintenance));
        self
    }

    /// The calendar's time zone.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// The calendar's time zone name.
    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    /// Declared maintenance windows, merged.
    pub fn maintenance(&self) -> &[Span] {
        &self.maintenance
    }

    /// The UTC offset in seconds at instant `t`.
    pub fn offset_at(&self, t: Secs) -> Secs {
        match Timestamp::from_second(t.clamp(0, MAX_INSTANT)) {
            Ok(ts) => Secs::from(self.zone.to_offset(ts).seconds()),
            Err(_) => 0,
        }
    }

    /// The local day number (days since 1970-01-01 on the calendar's wall clock) of `t`.
    pub fn local_day(&self, t: Secs) -> i64 {
        (t + self.offset_at(t)).div_euclid(DAY)
    }

    /// The instant the wall clock of the calendar shows midnight starting local day `day`
    /// (or the first instant of that day when midnight is skipped by a clock change).
    pub fn day_start(&self, day: i64) -> Secs {
        let (year, month, dom) = civil_from_days(day);
        let midnight = jiff::civil::DateTime::new(year as i16, month as i8, dom as i8, 0, 0, 0, 0)
            .ok()
            .and_then(|dt| dt.to_zoned(self.zone.clone()).ok());
        match midnight {
            Some(zoned) => zoned.timestamp().as_second(),
            None => day * DAY,
        }
    }

    /// Whether local day number `day` is a service day (not a holiday, not closed); its
    /// weekly windows still apply.
    pub fn is_working_day(&self, day: i64) -> bool {
        !self.closures.iter().any(|&(s, e)| (s..=e).contains(&day))
            && !is_holiday(self.holidays, day)
    }

    /// The windows of local day `day`, in local seconds after midnight; empty on a holiday
    /// or a closure.
    fn windows_of(&self, day: i64) -> &[(Secs, Secs)] {
        if self.is_working_day(day) {
            &self.week[weekday(day)]
        } else {
            &[]
        }
    }

    /// The in-service intervals between `from` and `to` (instants), sorted and merged.
    pub fn service_spans(&self, from: Secs, to: Secs) -> Vec<Span> {
        let (from, to) = (from.clamp(0, MAX_INSTANT), to.clamp(0, MAX_INSTANT));
        let mut out = Vec::new();
        let mut start = from;
        // Walk stretches of constant UTC offset: inside one, local = instant + offset.
        while start < to {
            let (offset, next_change) = self.offset_stretch(start);
            let end = next_change.min(to);
            let (local_start, local_end) = (start + offset, end + offset);
            for day in local_start.div_euclid(DAY)..=(local_end - 1).div_euclid(DAY) {
                for &(open, close) in self.windows_of(day) {
                    let lo = (day * DAY + open).max(local_start);
                    let hi = (day * DAY + close).min(local_end);
                    if lo < hi {
                        out.push(Span::new(lo - offset, hi - offset));
                    }
                }
            }
            start = end;
        }
        span::subtract(&span::normalize(out), &self.maintenance)
    }

    /// The offset in effect at `t` and the instant it next changes.
    fn offset_stretch(&self, t: Secs) -> (Secs, Secs) {
        let Ok(ts) = Timestamp::from_second(t) else {
            return (0, MAX_INSTANT);
        };
        let offset = Secs::from(self.zone.to_offset(ts).seconds());
        let next = self
            .zone
            .following(ts)
            .next()
            .map(|transition| transition.timestamp().as_second())
            .filter(|&next| next > t)
            .unwrap_or(MAX_INSTANT);
        (offset, next)
    }

    /// Whether instant `t` is in service.
    pub fn is_in_service(&self, t: Secs) -> bool {
        self.service_time(t, t + 1) == 1
    }

    /// Seconds of service time in `[from, to)`; 0 when `to <= from`.
    pub fn service_time(&self, from: Secs, to: Secs) -> Secs {
        span::measure(&self.service_spans(from, to))
    }

    /// The instant at which `amount` seconds of service time after `start` have elapsed, or
    /// `None` when the calendar has not that much service time in the next ten years.
    /// A zero amount elapses at `start`.
    pub fn add_service_time(&self, start: Secs, amount: Secs) -> Option<Secs> {
        if amount <= 0 {
            return Some(start);
        }
        let mut left = amount;
        let mut from = start;
        while from < start + HORIZON && from < MAX_INSTANT {
            let to = from + 32 * DAY;
            for s in self.service_spans(from, to) {
                if left <= s.len() {
                    return Some(s.start + left);
                }
                left -= s.len();
            }
            from = to;
        }
        None
    }
}

/// Local day number of a `LocalDate`.
fn day_of(field: &str, d: Option<&pb::LocalDate>) -> Result<i64, FieldError> {
    let d = d.ok_or_else(|| bad(field, "required"))?;
    let valid = (1970..=9999).contains(&d.year)
        && (1..=12).contains(&d.month)
        && d.day >= 1
        && d.day <= days_in_month(d.year, d.month as u32) as i32;
    if !valid {
        return Err(bad(
            field,
            format!("{}-{:02}-{:02} is not a date", d.year, d.month, d.day),
        ));
    }
    Ok(days_from_civil(d.year, d.month as u32, d.day as u32))
}

/// A period both of whose ends are set, as instants (end after start).
pub fn closed_period(field: &str, p: Option<&pb::Period>) -> Result<Span, FieldError> {
    let p = p.ok_or_else(|| bad(field, "required"))?;
    let start = instant(&format!("{field}.start_time"), p.start_time.as_ref())?;
    let end = instant(&format!("{field}.end_time"), p.end_time.as_ref())?;
    if end <= start {
        return Err(bad(format!("{field}.end_time"), "must be after start_time"));
    }
    Ok(Span::new(start, end))
}

/// A required timestamp between 1970 and 9999, in whole seconds.
pub fn instant(field: &str, t: Option<&prost_types::Timestamp>) -> Result<Secs, FieldError> {
    let t = t.ok_or_else(|| bad(field, "required"))?;
    if !(0..MAX_INSTANT).contains(&t.seconds) || !(0..1_000_000_000).contains(&t.nanos) {
        return Err(bad(field, "must be between 1970 and 9999"));
    }
    Ok(t.seconds)
}

/// Monday = 0 … Sunday = 6 for a day number (1970-01-01 was a Thursday).
pub fn weekday(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

/// Days in month `month` of `year`.
pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Whether `year` is a leap year.
pub fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a day number.
pub fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

/// Easter Sunday of `year` as a day number (anonymous Gregorian algorithm).
pub fn easter(year: i32) -> i64 {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    days_from_civil(year, month as u32, day as u32)
}

/// Whether local day `day` is a public holiday of `set`.
pub fn is_holiday(set: Holidays, day: i64) -> bool {
    if set == Holidays::None {
        return false;
    }
    let (year, month, dom) = civil_from_days(day);
    let fixed = matches!(
        (month, dom),
        (1, 1) | (5, 1) | (5, 8) | (7, 14) | (8, 15) | (11, 1) | (11, 11) | (12, 25)
    );
    let easter = easter(year);
    // Easter Monday, Ascension Thursday, Whit Monday.
    let moving = [easter + 1, easter + 39, easter + 50].contains(&day);
    let alsace =
        set == Holidays::FrAlsaceMoselle && (day == easter - 2 || (month, dom) == (12, 26));
    fixed || moving || alsace
}

#[cfg(test)]
mod tests;
