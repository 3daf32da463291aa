//! The node's cached copy of the federation catalogue: it follows the coordinator's
//! `WatchCatalogue` from a persisted cursor and keeps the catalogue in the node's own store,
//! which the node serves with `CatalogueService`, so that its admins can browse the catalogue
//! while the coordinator is down.

use std::time::Duration;

use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_proto::pb;
use fedmesh_proto::pb::catalogue_service_client::CatalogueServiceClient;
use fedmesh_store::{Applied, Cursor, Store, StoreError};
use tokio::sync::watch;

use crate::registration::Backoff;

/// The cursor name of the coordinator's catalogue in the node's store.
pub const SOURCE: &str = "coordinator";

/// Follows the coordinator's catalogue into the node's store.
#[derive(Debug, Clone)]
pub struct CatalogueFollower {
    /// The channel to the coordinator.
    pub channel: Channel,
    /// The node's store.
    pub store: Store,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Where refused catalogue changes are counted (as `member="coordinator"`).
    pub rejections: fedmesh_grpc::metrics::Rejections,
}

/// Why one follow session ended.
#[derive(Debug)]
enum Ended {
    Status(tonic::Status),
    Store(StoreError),
    /// The coordinator's catalogue is behind our cursor: it started over.
    Reset,
}

impl CatalogueFollower {
    /// Follows until `stop` turns true, reconnecting with backoff.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(self.retry_initial, self.retry_max);
        loop {
            let outcome = tokio::select! {
                outcome = self.follow(&mut backoff) => outcome,
                _ = stop.wait_for(|s| *s) => return,
            };
            let delay = match outcome {
                Ended::Reset => {
                    tracing::warn!("the coordinator's catalogue started over; reloading it");
                    if let Err(error) = self.store.set_cursor(SOURCE, &Cursor::default()) {
                        tracing::error!(%error, "cannot reset the catalogue cursor");
                    }
                    Duration::ZERO
                }
                Ended::Status(status) => {
                    let delay = backoff.next();
                    tracing::debug!(code = ?status.code(), error = status.message(), retry_in_ms = delay.as_millis() as u64, "catalogue watch interrupted");
                    delay
                }
                Ended::Store(error) => {
                    let delay = backoff.next();
                    tracing::error!(%error, "catalogue cache write failed");
                    delay
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Removes from the cache every offer a complete snapshot did not hold.
    async fn drop_unseen(
        &self,
        seen: &std::collections::HashSet<String>,
    ) -> Result<(), StoreError> {
        let mut last = None;
        for offer in self.store.catalogue_offers()? {
            let Some(id) = offer.offer.map(|o| o.offer_id) else {
                continue;
            };
            if !seen.contains(&id) {
                tracing::info!(offer = %id, "an offer no longer in the catalogue left the cache");
                last = self.store.remove_catalogue_offer(&id)?.or(last);
            }
        }
        if let Some(revision) = last {
            self.store.catalogue_durable(revision).await?;
        }
        Ok(())
    }

    /// One follow session; the changes it applied are made durable (and so shown to the
    /// node's own catalogue watchers) before it returns, however it ends.
    async fn follow(&self, backoff: &mut Backoff) -> Ended {
        let mut unflushed = Unflushed::default();
        let ended = self.follow_session(backoff, &mut unflushed).await;
        match unflushed.settle(&self.store).await {
            Ok(()) => ended,
            Err(e) => Ended::Store(e),
        }
    }

    async fn follow_session(&self, backoff: &mut Backoff, unflushed: &mut Unflushed) -> Ended {
        let since = match self.store.cursor(SOURCE) {
            Ok(cursor) => cursor.map_or(0, |c| c.revision),
            Err(e) => return Ended::Store(e),
        };
        let mut client = CatalogueServiceClient::new(self.channel.clone());
        let mut stream = match client
            .watch_catalogue(pb::WatchCatalogueRequest {
                since_revision: since,
                ..Default::default()
            })
            .await
        {
            Ok(response) => response.into_inner(),
            // Our cursor was compacted away: the whole catalogue again, from 0.
            Err(status) if fedmesh_grpc::error::compact_revision(&status).is_some() => {
                return Ended::Reset;
            }
            Err(status) => return Ended::Status(status),
        };
        // From 0 the coordinator sends a snapshot first: its items are applied as they come
        // and, once it is complete, the offers it did not hold leave the cache (withdrawn or
        // removed while the cache was away) and the cursor is set.
        let mut in_snapshot = since == 0;
        let mut seen = std::collections::HashSet::new();
        loop {
            // Group commit: the changes the stream already holds are applied together and
            // made durable by one flush, once it holds no more (or every `MAX_UNFLUSHED`).
            // Each change moves the cursor in its own transaction, and sled recovers its log
            // in order up to the first write that did not reach the disk, so a crash leaves a
            // cursor that never passes a change it lost; the follower asks again from there.
            let next = tokio::select! {
                biased;
                next = stream.message() => next,
                () = std::future::ready(()) => {
                    if let Err(e) = unflushed.settle(&self.store).await {
                        return Ended::Store(e);
                    }
                    stream.message().await
                }
            };
            let message = match next {
                Ok(Some(message)) => message,
                Ok(None) => {
                    return Ended::Status(tonic::Status::unavailable("catalogue watch ended"));
                }
                Err(status) => return Ended::Status(status),
            };
            backoff.reset();
            if let Some(change) = message.change {
                let position = Cursor {
                    journal_id: String::new(),
                    revision: change.revision,
                };
                let removed = change.kind == pb::CatalogueChangeKind::Removed as i32;
                // An offer is cached only as its provider may have published it; a refused
                // change moves the cursor past it.
                let offer = change.offer.filter(|offer| {
                    match fedmesh_core::trust::check_catalogue_offer(offer) {
                        Ok(()) => true,
                        Err(rejected) => {
                            self.rejections.refuse(SOURCE, change.revision, &rejected);
                            false
                        }
                    }
                });
                if removed {
                    if offer.is_some() {
                        match self.store.remove_catalogue_offer(&change.offer_id) {
                            // Durable before the cursor moves past it, which is a write of
                            // its own (removals are rare; no need to group them).
                            Ok(Some(revision)) => {
                                if let Err(e) = self.store.catalogue_durable(revision).await {
                                    return Ended::Store(e);
                                }
                            }
                            Ok(None) => {}
                            Err(e) => return Ended::Store(e),
                        }
                    }
                    if let Err(e) = self.store.set_cursor(SOURCE, &position) {
                        return Ended::Store(e);
                    }
                    continue;
                }
                if in_snapshot && offer.is_some() {
                    seen.insert(change.offer_id.clone());
                }
                let applied =
                    self.store
                        .apply_catalogue(SOURCE, (!in_snapshot).then_some(&position), offer);
                match applied {
                    Ok(Applied::Changed(revision)) => {
                        if let Err(e) = unflushed.add(&self.store, revision).await {
                            return Ended::Store(e);
                        }
                    }
                    Ok(Applied::Duplicate | Applied::CursorOnly) => {}
                    Err(e) => return Ended::Store(e),
                }
            }
            if message.caught_up {
                if message.last_revision < since {
                    return Ended::Reset;
                }
                if in_snapshot {
                    in_snapshot = false;
                    if let Err(e) = unflushed.settle(&self.store).await {
                        return Ended::Store(e);
                    }
                    if let Err(e) = self.drop_unseen(&seen).await {
                        return Ended::Store(e);
                    }
                    let cursor = Cursor {
                        journal_id: String::new(),
                        revision: message.last_revision,
                    };
                    if let Err(e) = self.store.set_cursor(SOURCE, &cursor) {
                        return Ended::Store(e);
                    }
                }
            }
        }
    }
}

/// At most this many cache changes wait for one flush.
const MAX_UNFLUSHED: u32 = 256;

/// The cache changes applied and not yet made durable: the last one's revision of the
/// node's catalogue log, and how many.
#[derive(Debug, Default)]
struct Unflushed {
    last: Option<u64>,
    count: u32,
}

impl Unflushed {
    /// Counts a change applied at `revision`, flushing when `MAX_UNFLUSHED` wait.
    async fn add(&mut self, store: &Store, revision: u64) -> Result<(), StoreError> {
        self.last = Some(revision);
        self.count += 1;
        if self.count >= MAX_UNFLUSHED {
            self.settle(store).await?;
        }
        Ok(())
    }

    /// Makes every change applied so far durable.
    async fn settle(&mut self, store: &Store) -> Result<(), StoreError> {
        if let Some(revision) = self.last.take() {
            self.count = 0;
            store.catalogue_durable(revision).await?;
        }
        Ok(())
    }
}
