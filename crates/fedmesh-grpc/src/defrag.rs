//! The periodic task that rewrites a running database whose files outgrow its live data
//! (`storage.defrag_*`, docs/operations.md "Giving disk space back").

use std::time::{Duration, Instant};

use fedmesh_store::Store;
use fedmesh_store::defrag::DefragError;
use tokio::sync::watch;

use crate::server::StorageConfig;

/// Checks `store` against `config`'s rule at start and then every `defrag_check_ms`, and
/// rewrites it when its files have outgrown its live data, until `stop`.
pub async fn run(store: Store, config: StorageConfig, mut stop: watch::Receiver<bool>) {
    let bloat = config.bloat();
    if bloat.ratio == 0 {
        return;
    }
    loop {
        let checked = store.clone();
        let started = Instant::now();
        match tokio::task::spawn_blocking(move || checked.defragment_if_bloated(bloat)).await {
            Ok(Ok(Some(done))) => tracing::info!(
                before_mib = done.before / (1024 * 1024),
                after_mib = done.after / (1024 * 1024),
                entries = done.entries,
                took_ms = started.elapsed().as_millis() as u64,
                "database rewritten to give disk space back"
            ),
            Ok(Ok(None)) => {}
            Ok(Err(error @ DefragError::Busy)) => tracing::info!(%error, "database not rewritten"),
            Ok(Err(error)) => tracing::error!(%error, "cannot rewrite the database"),
            Err(error) => tracing::error!(%error, "the defragmentation task failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(config.defrag_check_ms)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
