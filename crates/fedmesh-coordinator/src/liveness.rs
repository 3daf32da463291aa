//! When the coordinator calls a registered node stale, the one rule of every place that says
//! so (the catalogue's "provider unreachable" marks, `ListNodes` and `GetNode`, the dashboard,
//! `/metrics`, the federation summary): after `registry.stale_after_ms` without a heartbeat,
//! plus the delay the coordinator's own handling of heartbeats showed lately.
//!
//! A coordinator that falls behind (a burst of publications to send to every member, a
//! starved machine, a slow disk) makes heartbeats wait in its own queues, and a node sends its
//! next heartbeat an interval after the answer to the last. Judged by the limit alone, nodes
//! would turn stale for the coordinator's own delay, and every provider marked unreachable is
//! one more catalogue change for every member's cache: more work for a coordinator already
//! behind. The allowance is the longest time a heartbeat took to be answered plus the longest
//! delay of the coordinator's own timers, each over the last `stale_after`, and never more
//! than `stale_after` itself: a node that really stopped is stale after twice the limit at
//! most, however loaded the coordinator.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use fedmesh_core::liveness::{Liveness, liveness};
use fedmesh_proto::pb;

/// How often the coordinator measures how late its own timers fire.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// The longest window of delays kept, whatever the staleness limit.
const MAX_WINDOW_SECONDS: u64 = 3600;

/// The coordinator's staleness rule, shared by everything that judges liveness.
#[derive(Debug, Clone)]
pub struct Staleness {
    stale_after: Duration,
    delays: Arc<Mutex<Delays>>,
}

/// The longest delays seen in each of the last seconds, one slot a second.
#[derive(Debug)]
struct Delays {
    origin: Instant,
    slots: Vec<Slot>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The second (since `origin`) the slot holds; a slot of an older second is empty.
    second: u64,
    answering: Duration,
    scheduling: Duration,
}

/// Which delay a measure is.
#[derive(Debug, Clone, Copy)]
enum Delay {
    /// From a heartbeat's arrival in its handler to its answer (durable).
    Answering,
    /// How late a timer of the coordinator fired.
    Scheduling,
}

impl Staleness {
    /// The rule for a limit of `stale_after` without a heartbeat.
    pub fn new(stale_after: Duration) -> Self {
        // One slot more than the window's seconds: the current second is partly in it.
        let seconds = stale_after.as_secs_f64().ceil() as u64;
        let slots = seconds.clamp(1, MAX_WINDOW_SECONDS) as usize + 1;
        Self {
            stale_after,
            delays: Arc::new(Mutex::new(Delays {
                origin: Instant::now(),
                slots: vec![Slot::default(); slots],
            })),
        }
    }

    /// The configured limit, without allowance.
    pub fn stale_after(&self) -> Duration {
        self.stale_after
    }

    /// A heartbeat took `took` from its handler's start to its answer.
    pub fn record_answer(&self, took: Duration) {
        self.record(Delay::Answering, took, Instant::now());
    }

    /// A timer of the coordinator fired `late` after its due time.
    pub fn record_scheduling(&self, late: Duration) {
        self.record(Delay::Scheduling, late, Instant::now());
    }

    /// How much longer than the limit a node may stay silent now.
    pub fn allowance(&self) -> Duration {
        self.allowance_at(Instant::now())
    }

    /// The judgement of every node at `now`, with the allowance of this moment.
    pub fn at(&self, now: SystemTime) -> Judgement {
        Judgement {
            now,
            stale_after: self.stale_after,
            allowance: self.allowance(),
        }
    }

    fn record(&self, delay: Delay, took: Duration, at: Instant) {
        let mut delays = self.delays.lock().unwrap_or_else(PoisonError::into_inner);
        let second = at.saturating_duration_since(delays.origin).as_secs();
        let count = delays.slots.len();
        let slot = &mut delays.slots[(second % count as u64) as usize];
        if slot.second != second {
            *slot = Slot {
                second,
                ..Slot::default()
            };
        }
        let longest = match delay {
            Delay::Answering => &mut slot.answering,
            Delay::Scheduling => &mut slot.scheduling,
        };
        *longest = (*longest).max(took);
    }

    fn allowance_at(&self, at: Instant) -> Duration {
        let delays = self.delays.lock().unwrap_or_else(PoisonError::into_inner);
        let second = at.saturating_duration_since(delays.origin).as_secs();
        let oldest = second.saturating_sub(delays.slots.len() as u64 - 1);
        let (answering, scheduling) = delays
            .slots
            .iter()
            .filter(|s| (oldest..=second).contains(&s.second))
            .fold((Duration::ZERO, Duration::ZERO), |(a, s), slot| {
                (a.max(slot.answering), s.max(slot.scheduling))
            });
        (answering + scheduling).min(self.stale_after)
    }
}

/// Nodes judged at one moment, with one allowance.
#[derive(Debug, Clone, Copy)]
pub struct Judgement {
    now: SystemTime,
    stale_after: Duration,
    allowance: Duration,
}

impl Judgement {
    /// Whether `node` is heard from.
    pub fn of(&self, node: &pb::RegisteredNode) -> Liveness {
        liveness(
            last_heartbeat(node),
            self.now,
            self.stale_after + self.allowance,
        )
    }

    /// Whether `node` is heard from only thanks to the allowance: silent for longer than the
    /// limit, but not longer than the coordinator's own recent delay allows.
    pub fn late_within_allowance(&self, node: &pb::RegisteredNode) -> bool {
        self.of(node) == Liveness::Active
            && liveness(last_heartbeat(node), self.now, self.stale_after) == Liveness::Stale
    }

    /// The allowance of this judgement.
    pub fn allowance(&self) -> Duration {
        self.allowance
    }
}

/// When `node` last heartbeated (the epoch if never).
fn last_heartbeat(node: &pb::RegisteredNode) -> SystemTime {
    node.last_heartbeat_at
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Measures how late the coordinator's timers fire, every [`PROBE_INTERVAL`], until `stop`
/// turns true: a starved coordinator delays its heartbeats' handling by as much.
pub async fn probe(staleness: Staleness, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let due = tokio::time::Instant::now() + PROBE_INTERVAL;
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        staleness.record_scheduling(tokio::time::Instant::now().saturating_duration_since(due));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_heard(ago: Duration, now: SystemTime) -> pb::RegisteredNode {
        pb::RegisteredNode {
            last_heartbeat_at: Some((now - ago).into()),
            ..Default::default()
        }
    }

    #[test]
    fn without_delays_a_node_is_stale_after_the_limit() {
        let rule = Staleness::new(Duration::from_secs(30));
        let now = SystemTime::now();
        let judged = rule.at(now);
        assert_eq!(judged.allowance(), Duration::ZERO);
        assert_eq!(
            judged.of(&node_heard(Duration::from_secs(29), now)),
            Liveness::Active
        );
        assert_eq!(
            judged.of(&node_heard(Duration::from_secs(31), now)),
            Liveness::Stale
        );
        assert_eq!(
            judged.of(&pb::RegisteredNode::default()),
            Liveness::Stale,
            "never heard"
        );
    }

    #[test]
    fn the_coordinators_own_delays_extend_the_limit() {
        let rule = Staleness::new(Duration::from_secs(30));
        rule.record_answer(Duration::from_secs(8));
        rule.record_answer(Duration::from_secs(3));
        rule.record_scheduling(Duration::from_millis(1500));
        rule.record_scheduling(Duration::from_millis(20));
        let now = SystemTime::now();
        let judged = rule.at(now);
        assert_eq!(judged.allowance(), Duration::from_millis(9500));
        let late = node_heard(Duration::from_secs(35), now);
        assert_eq!(judged.of(&late), Liveness::Active);
        assert!(judged.late_within_allowance(&late));
        let on_time = node_heard(Duration::from_secs(5), now);
        assert!(!judged.late_within_allowance(&on_time));
        assert_eq!(
            judged.of(&node_heard(Duration::from_secs(40), now)),
            Liveness::Stale
        );
    }

    #[test]
    fn the_allowance_never_passes_the_limit() {
        let rule = Staleness::new(Duration::from_secs(30));
        rule.record_answer(Duration::from_secs(50));
        rule.record_scheduling(Duration::from_secs(20));
        assert_eq!(rule.allowance(), Duration::from_secs(30));
        let now = SystemTime::now();
        assert_eq!(
            rule.at(now).of(&node_heard(Duration::from_secs(61), now)),
            Liveness::Stale,
            "a stopped node is stale after twice the limit at most"
        );
    }

    #[test]
    fn delays_older_than_the_limit_no_longer_count() {
        let rule = Staleness::new(Duration::from_secs(5));
        let start = Instant::now();
        rule.record(Delay::Answering, Duration::from_secs(4), start);
        rule.record(
            Delay::Scheduling,
            Duration::from_secs(1),
            start + Duration::from_secs(3),
        );
        assert_eq!(
            rule.allowance_at(start + Duration::from_secs(4)),
            Duration::from_secs(5),
            "both within the window"
        );
        assert_eq!(
            rule.allowance_at(start + Duration::from_secs(7)),
            Duration::from_secs(1),
            "the answer of 7 s ago left the window"
        );
        assert_eq!(
            rule.allowance_at(start + Duration::from_secs(20)),
            Duration::ZERO
        );
        // A slot reused for a later second starts empty.
        rule.record(
            Delay::Answering,
            Duration::from_millis(300),
            start + Duration::from_secs(24),
        );
        assert_eq!(
            rule.allowance_at(start + Duration::from_secs(24)),
            Duration::from_millis(300)
        );
    }

    #[tokio::test]
    async fn the_probe_measures_a_starved_runtime() {
        let rule = Staleness::new(Duration::from_secs(30));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let probe = tokio::spawn(probe(rule.clone(), stopped));
        // Let the probe arm its timer, then keep the only thread busy past its due time.
        tokio::time::sleep(Duration::from_millis(10)).await;
        std::thread::sleep(PROBE_INTERVAL + Duration::from_millis(300));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            rule.allowance() >= Duration::from_millis(250),
            "{:?}",
            rule.allowance()
        );
        stop.send_replace(true);
        probe.await.unwrap();
    }
}
