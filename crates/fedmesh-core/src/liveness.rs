//! Node liveness as the coordinator sees it, derived from the time of the last heartbeat.

use std::time::{Duration, SystemTime};

/// Whether a registered node is heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The last heartbeat is recent enough.
    Active,
    /// No heartbeat for longer than the staleness limit.
    Stale,
}

/// A node is stale once more than `stale_after` has passed since its last heartbeat. A
/// heartbeat "from the future" (clock skew between institutions) counts as recent.
pub fn liveness(last_heartbeat: SystemTime, now: SystemTime, stale_after: Duration) -> Liveness {
    match now.duration_since(last_heartbeat) {
        Ok(elapsed) if elapsed > stale_after => Liveness::Stale,
        _ => Liveness::Active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_only_after_the_limit() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let limit = Duration::from_secs(30);
        assert_eq!(liveness(t0, t0, limit), Liveness::Active);
        assert_eq!(liveness(t0, t0 + limit, limit), Liveness::Active);
        assert_eq!(
            liveness(t0, t0 + limit + Duration::from_millis(1), limit),
            Liveness::Stale
        );
        assert_eq!(
            liveness(t0 + limit, t0, limit),
            Liveness::Active,
            "future heartbeat"
        );
    }
}
