//! Instants as the reader reads them: in the reader's time zone (`--tz`, `FEDMESH_TZ`, else
//! the system's), with the offset, to the minute — `2026-12-05 07:00 +01:00` rather than
//! `2026-12-05T06:00:00Z`. `--json` output keeps RFC 3339 UTC.

use std::sync::OnceLock;

use jiff::tz::TimeZone;

static ZONE: OnceLock<TimeZone> = OnceLock::new();

/// Sets the reader's time zone from `--tz` (an IANA name such as `Europe/Paris`, or `UTC`);
/// without it, the system's. Called once, at start.
pub fn set_zone(name: Option<&str>) -> anyhow::Result<()> {
    let zone = match name {
        Some(name) => TimeZone::get(name)
            .map_err(|e| anyhow::anyhow!("--tz: `{name}` is not a time zone ({e})"))?,
        None => TimeZone::try_system().unwrap_or(TimeZone::UTC),
    };
    let _ = ZONE.set(zone);
    Ok(())
}

fn zone() -> TimeZone {
    ZONE.get()
        .cloned()
        .unwrap_or_else(|| TimeZone::try_system().unwrap_or(TimeZone::UTC))
}

/// `t` in the reader's zone: `2026-12-05 07:00 +01:00`; `-` when unset.
pub fn local(t: Option<&prost_types::Timestamp>) -> String {
    let Some(t) = t else {
        return "-".to_owned();
    };
    in_zone(t.seconds, &zone())
}

fn in_zone(seconds: i64, zone: &TimeZone) -> String {
    jiff::Timestamp::from_second(seconds).map_or_else(
        |_| seconds.to_string(),
        |at| {
            at.to_zoned(zone.clone())
                .strftime("%Y-%m-%d %H:%M %:z")
                .to_string()
        },
    )
}

/// How far `t` is from `now` (Unix seconds): `in 3 h 20 min`, `12 min ago`.
pub fn from_now(t: &prost_types::Timestamp, now: i64) -> String {
    let delta = t.seconds - now;
    let span = delta.unsigned_abs();
    let text = match span {
        0..60 => format!("{span} s"),
        60..3600 => format!("{} min", span / 60),
        3600..86_400 => format!("{} h {:02} min", span / 3600, span % 3600 / 60),
        _ => {
            let days = span / 86_400;
            let unit = if days == 1 { "day" } else { "days" };
            format!("{days} {unit} {} h", span % 86_400 / 3600)
        }
    };
    // "0 s ago" rather than "in 0 s": what just happened.
    if delta > 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_reads_in_the_zone_with_its_offset() {
        let paris = TimeZone::get("Europe/Paris").unwrap();
        // 2026-12-05T06:00:00Z, a window announced for 07:00 in Paris.
        assert_eq!(in_zone(1_796_450_400, &paris), "2026-12-05 07:00 +01:00");
        assert_eq!(
            in_zone(1_796_450_400, &TimeZone::UTC),
            "2026-12-05 06:00 +00:00"
        );
    }

    #[test]
    fn time_left_and_time_past_read_as_words() {
        let at = prost_types::Timestamp {
            seconds: 10_000,
            nanos: 0,
        };
        assert_eq!(from_now(&at, 10_000 - 12_000), "in 3 h 20 min");
        assert_eq!(from_now(&at, 10_000 + 720), "12 min ago");
        assert_eq!(from_now(&at, 10_000 - 30), "in 30 s");
        assert_eq!(from_now(&at, 10_000), "0 s ago");
        assert_eq!(from_now(&at, 10_000 - 90_000), "in 1 day 1 h");
    }
}
