//! `CatalogueService` over a store's catalogue: served by the coordinator from the catalogue it
//! replicates, and by every node from its cached copy (so admins can browse while the
//! coordinator is down).

use fedmesh_core::catalogue::Query;
use fedmesh_proto::pb;
use fedmesh_store::Store;
use fedmesh_store::compact::LogKind;
use tonic::{Request, Response, Status};

use crate::caller;
use crate::compaction::FollowerProgress;
use crate::error::{ServiceError, bounded_page, page_after, page_size};
use crate::stream::{HEARTBEAT, ResponseStream, Sink, Stopping, spawn_stream, stopping_status};

/// Changes read from the log per batch while replaying.
const BATCH: usize = 256;

/// The service.
#[derive(Debug, Clone)]
pub struct CatalogueApi {
    store: Store,
    stopping: Stopping,
}

impl CatalogueApi {
    /// Serves `store`'s catalogue; watches end when `stopping` fires.
    pub fn new(store: Store, stopping: Stopping) -> Self {
        Self { store, stopping }
    }
}

/// A snapshot item: the offer as it stands, at the revision the snapshot was taken.
fn upsert(revision: u64, offer: pb::CatalogueOffer) -> pb::WatchCatalogueResponse {
    let time = offer.replicate_time.unwrap_or_default();
    pb::WatchCatalogueResponse {
        change: Some(fedmesh_store::catalogue::upserted(revision, offer, time)),
        caught_up: false,
        last_revision: revision,
    }
}

fn marker(last_revision: u64, caught_up: bool) -> pb::WatchCatalogueResponse {
    pb::WatchCatalogueResponse {
        change: None,
        caught_up,
        last_revision,
    }
}

/// The answer to a watcher whose `since` was compacted away: it resyncs by watching from 0
/// (the whole catalogue, then what follows).
fn compacted(requested: u64, compacted: u64) -> ServiceError {
    ServiceError::Compacted {
        log: "catalogue",
        requested,
        compacted,
        first: compacted + 1,
        resync: "WatchCatalogue with since_revision 0 (the whole catalogue, then the changes after it; offers not in it are gone)",
    }
}

/// Streams a watch: the snapshot (from 0) or the changes after `since`, a caught-up marker,
/// then live changes, with heartbeats when quiet. A `since` compacted away was refused
/// before; if compaction passes the stream while it reads, it ends the same way.
async fn watch(
    store: Store,
    query: Query,
    since: u64,
    mut progress: FollowerProgress,
    mut stopping: Stopping,
    sink: Sink<pb::WatchCatalogueResponse>,
) {
    let mut durable = store.watch_catalogue();
    let head = *durable.borrow_and_update();
    let mut cursor = if since == 0 || since > head {
        // A fresh watcher, or one whose cursor is from a catalogue that started over.
        let offers = match store.catalogue_offers() {
            Ok(offers) => offers,
            Err(e) => return sink.fail(ServiceError::from(e).into()).await,
        };
        for offer in offers.into_iter().filter(|o| query.matches(o)) {
            if !sink.send(upsert(head, offer)).await {
                return;
            }
        }
        head
    } else {
        since
    };
    let mut caught_up_sent = false;
    loop {
        let changes = match store.catalogue_changes(cursor, BATCH) {
            Ok(changes) => changes,
            Err(e) => return sink.fail(ServiceError::from(e).into()).await,
        };
        // Checked after reading: a change above the cursor removed during the read would show.
        match store.catalogue_compacted() {
            Ok(point) if point > cursor => {
                return sink.fail(compacted(cursor, point).into()).await;
            }
            Ok(_) => {}
            Err(e) => return sink.fail(ServiceError::from(e).into()).await,
        }
        let full_batch = changes.len() == BATCH;
        for change in changes {
            cursor = change.revision;
            if change.offer.as_ref().is_some_and(|o| query.matches(o)) {
                let revision = change.revision;
                let response = pb::WatchCatalogueResponse {
                    change: Some(change),
                    caught_up: false,
                    last_revision: revision,
                };
                if !sink.send(response).await {
                    return;
                }
            }
        }
        progress.sent(cursor);
        if full_batch {
            continue;
        }
        if !caught_up_sent {
            caught_up_sent = true;
            if !sink.send(marker(cursor, true)).await {
                return;
            }
        }
        tokio::select! {
            changed = durable.changed() => if changed.is_err() {
                return sink.fail(stopping_status()).await;
            },
            () = stopping.wait() => return sink.fail(stopping_status()).await,
            () = sink.closed() => return,
            () = tokio::time::sleep(HEARTBEAT) => {
                if !sink.send(marker(cursor, false)).await {
                    return;
                }
            }
        }
    }
}

#[tonic::async_trait]
impl pb::catalogue_service_server::CatalogueService for CatalogueApi {
    async fn search_offers(
        &self,
        request: Request<pb::SearchOffersRequest>,
    ) -> Result<Response<pb::SearchOffersResponse>, Status> {
        let request = request.into_inner();
        let query = Query::search(&request).map_err(ServiceError::from)?;
        let size = page_size(request.page_size, 50, 500)?;
        let after = page_after(&request.page_token, |t| {
            fedmesh_core::offer::provider_of(t).is_some()
        })?;
        let matching: Vec<pb::CatalogueOffer> = self
            .store
            .catalogue_offers()
            .map_err(ServiceError::from)?
            .into_iter()
            .filter(|o| query.matches(o))
            .collect();
        let total_size = i32::try_from(matching.len()).unwrap_or(i32::MAX);
        let following: Vec<pb::CatalogueOffer> = matching
            .into_iter()
            .filter(|o| {
                o.offer
                    .as_ref()
                    .is_some_and(|offer| offer.offer_id.as_str() > after)
            })
            .take(size + 1)
            .collect();
        let (page, next_page_token) =
            bounded_page(following, size, self.store.max_entry_bytes(), |o| {
                o.offer
                    .as_ref()
                    .map(|o| o.offer_id.clone())
                    .unwrap_or_default()
            });
        Ok(Response::new(pb::SearchOffersResponse {
            offers: page,
            next_page_token,
            total_size,
        }))
    }

    async fn get_catalogue_offer(
        &self,
        request: Request<pb::GetCatalogueOfferRequest>,
    ) -> Result<Response<pb::GetCatalogueOfferResponse>, Status> {
        let offer_id = request.into_inner().offer_id;
        if fedmesh_core::offer::provider_of(&offer_id).is_none() {
            return Err(ServiceError::invalid(
                "offer_id",
                "not an offer id (<member>.<service_id>)",
            )
            .into());
        }
        let offer = self
            .store
            .catalogue_offer(&offer_id)
            .map_err(ServiceError::from)?
            .ok_or_else(|| ServiceError::no_offer(&offer_id))?;
        Ok(Response::new(pb::GetCatalogueOfferResponse {
            offer: Some(offer),
        }))
    }

    async fn watch_catalogue(
        &self,
        request: Request<pb::WatchCatalogueRequest>,
    ) -> Result<Response<ResponseStream<pb::WatchCatalogueResponse>>, Status> {
        let who = caller(&request)?.to_string();
        let request = request.into_inner();
        let query = Query::watch(&request).map_err(ServiceError::from)?;
        let since = request.since_revision;
        let point = self
            .store
            .catalogue_compacted()
            .map_err(ServiceError::from)?;
        // 0 asks for the whole catalogue, and a revision above the head is from a catalogue
        // that started over: both get a snapshot. Anything else needs the changes after it.
        if since != 0 && since < point && since <= self.store.catalogue_revision() {
            return Err(compacted(since, point).into());
        }
        let progress = FollowerProgress::start(self.store.clone(), LogKind::Catalogue, who, since);
        let store = self.store.clone();
        let stopping = self.stopping.clone();
        Ok(Response::new(spawn_stream(move |sink| {
            watch(store, query, since, progress, stopping, sink)
        })))
    }
}
