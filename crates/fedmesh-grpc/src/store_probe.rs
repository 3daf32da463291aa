//! The periodic write probe of a party's database (`storage.probe_interval_ms`): it notices a
//! database that refuses writes (a full disk) before a client does, and brings writes back on
//! their own once the cause is gone ([`fedmesh_store::health`]).

use std::time::Duration;

use fedmesh_store::Store;
use tokio::sync::watch;

/// Probes `store` every `interval` until `stop`.
pub async fn run(store: Store, interval: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let probed = store.clone();
        let was_failing = store.write_failure().is_some();
        match tokio::task::spawn_blocking(move || probed.probe_writes()).await {
            Ok(Ok(())) if was_failing => tracing::info!("the database accepts writes again"),
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the database still refuses writes"),
            Err(error) => tracing::error!(%error, "the write probe failed"),
        }
    }
}
