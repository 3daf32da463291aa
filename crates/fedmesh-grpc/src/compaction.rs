//! The compaction settings shared by a node's `[journal]` and the coordinator's `[catalogue]`
//! sections, and the periodic task that applies them
//! (see `docs/reliability.md`, "Journals compact").

use std::time::Duration;

use fedmesh_store::Store;
use fedmesh_store::compact::{LogKind, Rule};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

const DAY: i64 = 86_400;

/// How a log is compacted. The defaults suit a federation of some 76 members: a week of
/// history survives any follower's outage of a week (a long weekend, a holiday closure), and
/// a follower known to the log is waited for up to 45 days (the summer closure of a university
/// with margin) before it has to resync from a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// At least this many of the last entries stay (at least 1).
    pub keep_entries: u64,
    /// Every entry younger than this many days stays.
    pub keep_days: u32,
    /// Entries a known follower still needs stay until they are this many days old (at least
    /// `keep_days`).
    pub max_keep_days: u32,
    /// How often the log is compacted, in milliseconds (also once at start).
    pub compact_interval_ms: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            keep_entries: 10_000,
            keep_days: 7,
            max_keep_days: 45,
            compact_interval_ms: 3_600_000,
        }
    }
}

impl CompactionConfig {
    /// Checks the values of section `section`; the error names the key.
    pub fn validate(&self, section: &str) -> Result<(), (String, String)> {
        if self.keep_entries == 0 {
            return Err((
                format!("{section}.keep_entries"),
                "must be at least 1".into(),
            ));
        }
        if self.max_keep_days < self.keep_days {
            return Err((
                format!("{section}.max_keep_days"),
                format!(
                    "{} is less than {section}.keep_days ({})",
                    self.max_keep_days, self.keep_days
                ),
            ));
        }
        if self.compact_interval_ms == 0 {
            return Err((
                format!("{section}.compact_interval_ms"),
                "must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The store's rule for these settings.
    pub fn rule(&self) -> Rule {
        Rule {
            keep_entries: self.keep_entries,
            keep_secs: i64::from(self.keep_days) * DAY,
            max_keep_secs: i64::from(self.max_keep_days) * DAY,
        }
    }
}

/// Compacts `logs` of `store` by `config`, at start and then every interval, until `stop`.
/// "Now" is [`crate::figures::now`].
pub async fn run(
    store: Store,
    logs: Vec<LogKind>,
    config: CompactionConfig,
    mut stop: watch::Receiver<bool>,
) {
    let rule = config.rule();
    loop {
        for log in &logs {
            let (store, log) = (store.clone(), *log);
            let now = crate::figures::now();
            match tokio::task::spawn_blocking(move || store.compact(log, &rule, now)).await {
                Ok(Ok(done)) if done.removed > 0 => {
                    tracing::info!(
                        ?log,
                        compacted = done.compacted,
                        removed = done.removed,
                        "log compacted"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::error!(?log, %error, "cannot compact the log"),
                Err(error) => tracing::error!(?log, %error, "the compaction task failed"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(config.compact_interval_ms)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// How often a long-lived stream records its follower's progress.
const NOTE_EVERY: Duration = Duration::from_secs(60);

/// Records, for compaction, how far a follower reading a log has come. A stream notes the
/// `since` it was opened with, then, at most every minute, the revision it had sent a minute
/// before: by then the follower has had a minute to persist it as its cursor.
#[derive(Debug)]
pub struct FollowerProgress {
    store: Store,
    log: LogKind,
    who: String,
    noted_at: tokio::time::Instant,
    pending: u64,
}

impl FollowerProgress {
    /// Notes that `who` reads `log` after `since`.
    pub fn start(store: Store, log: LogKind, who: String, since: u64) -> Self {
        note(&store, log, &who, since);
        Self {
            store,
            log,
            who,
            noted_at: tokio::time::Instant::now(),
            pending: since,
        }
    }

    /// The stream has sent everything up to `sent`.
    pub fn sent(&mut self, sent: u64) {
        if self.noted_at.elapsed() < NOTE_EVERY {
            return;
        }
        note(&self.store, self.log, &self.who, self.pending);
        self.pending = sent;
        self.noted_at = tokio::time::Instant::now();
    }
}

/// Notes that `who` read `log` after `since` now (a one-off read, such as a page).
pub fn note(store: &Store, log: LogKind, who: &str, since: u64) {
    if let Err(error) = store.note_follower(log, who, since, crate::figures::now()) {
        tracing::warn!(?log, follower = who, %error, "cannot record a follower's cursor");
    }
}
