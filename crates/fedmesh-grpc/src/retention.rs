//! The retention of ended things shared by a node's and the coordinator's `[retention]`
//! sections, and the periodic task that archives them (see `docs/reliability.md`, "Ended
//! things leave the hot trees").

use std::time::Duration;

use fedmesh_core::retention::{DEFAULT_ENDED_DAYS, MAX_ENDED_DAYS};
use fedmesh_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// When ended entities (closed incidents, tenancies in a final state, withdrawn offers, ended
/// maintenance windows) leave the hot trees for the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days after an entity ended before it is archived (0–36500). The default, 400, lets the
    /// month it ended in close and its report be written and contested, and the audit look a
    /// year back, with a month of margin.
    pub ended_days: u32,
    /// How often ended entities are archived, in milliseconds (also once at start).
    pub interval_ms: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            ended_days: DEFAULT_ENDED_DAYS,
            interval_ms: 3_600_000,
        }
    }
}

impl RetentionConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.ended_days > MAX_ENDED_DAYS {
            return Err((
                "retention.ended_days".into(),
                format!("{} is not between 0 and {MAX_ENDED_DAYS}", self.ended_days),
            ));
        }
        if self.interval_ms == 0 {
            return Err(("retention.interval_ms".into(), "must be positive".into()));
        }
        Ok(())
    }
}

/// Archives the ended entities of `store` by `config`, at start and then every interval,
/// until `stop`. "Now" is [`crate::figures::now`].
pub async fn run(store: Store, config: RetentionConfig, mut stop: watch::Receiver<bool>) {
    loop {
        let (pass, days, now) = (store.clone(), config.ended_days, crate::figures::now());
        match tokio::task::spawn_blocking(move || pass.retire_ended(days, now)).await {
            Ok(Ok(done)) => {
                if let Some(revision) = done.catalogue_revision
                    && let Err(error) = store.catalogue_durable(revision).await
                {
                    tracing::error!(%error, "cannot flush the catalogue after archiving");
                }
                if done.total() > 0 {
                    tracing::info!(archived = ?done.archived, marks_expired = done.marks_expired, "ended entities archived");
                }
            }
            Ok(Err(error)) => tracing::error!(%error, "cannot archive ended entities"),
            Err(error) => tracing::error!(%error, "the archiving task failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(config.interval_ms)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
