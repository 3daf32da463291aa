//! The federation's clock: the instant at which calendars, months, SLA clocks, record checks,
//! journal times and retention are reckoned.
//!
//! It is the system clock, unless the process was given an **accelerated** clock
//! ([`accelerate`], configuration keys `clock.speed` and `clock.anchor_unix_ms`): from the
//! anchor on, it runs `speed` times faster than the system clock, so that a soak lives a year of
//! months closing, reports and retention in half an hour. Everything that measures real time
//! stays on the system clock: TLS certificates and CRLs, heartbeats and liveness, retries,
//! rate limits, deadlines, timeouts. A process has one clock; all the parties of a process (an
//! in-process federation) share it, and processes given the same anchor and speed agree.
//!
//! Reading it is a load of a `OnceLock`, cheap enough for every call.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An accelerated clock: `anchor + (system - anchor) × speed` from the anchor on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Acceleration {
    /// The system instant at which the accelerated clock equals the system clock.
    pub anchor: SystemTime,
    /// How many seconds of the clock pass in one second of the system's (at least 1).
    pub speed: f64,
}

static ACCELERATION: OnceLock<Acceleration> = OnceLock::new();

/// Why the clock could not be accelerated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClockError {
    /// The speed is not a finite number of at least 1.
    #[error("clock.speed must be a number from 1 to 1000000, not {0}")]
    Speed(f64),
    /// The process already runs on another acceleration.
    #[error(
        "this process's clock already runs at speed {current} from another anchor: every party of one process shares one clock"
    )]
    Conflict {
        /// The speed already set.
        current: f64,
    },
}

/// Runs this process's clock `acceleration.speed` times faster from its anchor. A speed of 1
/// changes nothing and is always accepted; setting the same acceleration twice is accepted
/// (several parties of one process configured alike); another one is refused.
pub fn accelerate(acceleration: Acceleration) -> Result<(), ClockError> {
    let speed = acceleration.speed;
    if !speed.is_finite() || !(1.0..=1_000_000.0).contains(&speed) {
        return Err(ClockError::Speed(speed));
    }
    if speed == 1.0 {
        return Ok(());
    }
    let set = ACCELERATION.get_or_init(|| acceleration);
    if *set == acceleration {
        Ok(())
    } else {
        Err(ClockError::Conflict { current: set.speed })
    }
}

/// The acceleration this process runs on, if any.
pub fn acceleration() -> Option<Acceleration> {
    ACCELERATION.get().copied()
}

/// What the clock reads when the system clock reads `system`.
pub fn at(system: SystemTime, acceleration: Option<Acceleration>) -> SystemTime {
    let Some(Acceleration { anchor, speed }) = acceleration else {
        return system;
    };
    match system.duration_since(anchor) {
        Ok(elapsed) => anchor + elapsed.mul_f64(speed),
        // Before the anchor the clock is the system's.
        Err(_) => system,
    }
}

/// The instant now.
pub fn now() -> SystemTime {
    at(SystemTime::now(), acceleration())
}

/// The instant now, in whole seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The instant now, as a protobuf timestamp.
pub fn now_timestamp() -> prost_types::Timestamp {
    now().into()
}

/// How long the clock takes to run `span` of its time, in system time (at least a
/// millisecond): what a periodic task of the clock's time sleeps.
pub fn system_span(span: Duration) -> Duration {
    let speed = acceleration().map_or(1.0, |a| a.speed);
    span.div_f64(speed).max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accelerated_clock_runs_faster_from_its_anchor_only() {
        let anchor = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let fast = Some(Acceleration {
            anchor,
            speed: 17_520.0,
        });
        assert_eq!(at(anchor, fast), anchor);
        // One second of the system's is 17,520 of the clock's: a year in half an hour.
        assert_eq!(
            at(anchor + Duration::from_secs(1), fast),
            anchor + Duration::from_secs(17_520)
        );
        assert_eq!(
            at(anchor + Duration::from_secs(1800), fast)
                .duration_since(anchor)
                .unwrap()
                .as_secs()
                / 86_400,
            365
        );
        let before = anchor - Duration::from_secs(5);
        assert_eq!(at(before, fast), before);
        assert_eq!(
            at(anchor + Duration::from_secs(7), None),
            anchor + Duration::from_secs(7)
        );
    }

    #[test]
    fn a_speed_out_of_range_is_refused_and_one_changes_nothing() {
        for speed in [0.5, 0.0, -3.0, f64::NAN, f64::INFINITY, 2e6] {
            let refused = accelerate(Acceleration {
                anchor: SystemTime::now(),
                speed,
            });
            assert!(matches!(refused, Err(ClockError::Speed(_))), "{speed}");
        }
        accelerate(Acceleration {
            anchor: SystemTime::now(),
            speed: 1.0,
        })
        .unwrap();
        assert_eq!(acceleration(), None);
        let real = SystemTime::now();
        let read = now();
        assert!(read >= real && read.duration_since(real).unwrap() < Duration::from_secs(5));
    }
}
