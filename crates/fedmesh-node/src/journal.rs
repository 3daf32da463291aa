//! `JournalService`: how every other party follows this node's changes. `Watch` streams the
//! backlog after a revision, a caught-up marker, then live entries, each filtered by what the
//! caller may see; only durable entries are ever sent.
//!
//! A reader's cost follows what it may read, not the journal's size: entries of kinds it may
//! never see (another member's node and usage records) are passed over without decoding their
//! payload, every read of the store runs off the async runtime, and one `ListEntries` call
//! looks at no more than [`SCAN`] entries (it answers a shorter page, possibly empty, with the
//! token to go on).

use fedmesh_core::{Identity, MemberId};
use fedmesh_grpc::compaction::FollowerProgress;
use fedmesh_grpc::error::page_size;
use fedmesh_grpc::stream::{
    HEARTBEAT, ResponseStream, Sink, Stopping, spawn_stream, stopping_status,
};
use fedmesh_grpc::{ServiceError, caller};
use fedmesh_proto::pb;
use fedmesh_proto::pb::watch_response::Event;
use fedmesh_store::Store;
use fedmesh_store::compact::LogKind;
use tonic::{Request, Response, Status};

/// The most bytes of entries one `ListEntries` page carries (at least one entry is sent).
const PAGE_BYTES: usize = 1024 * 1024;
/// Entries read per batch.
const BATCH: usize = 256;
/// The most journal entries one `ListEntries` call looks at.
pub const SCAN: usize = 4096;
/// Record buckets read per batch of a snapshot.
const SNAPSHOT_BATCH: usize = 64;

/// The answer to a reader whose cursor is below the journal's compaction point.
fn compacted(requested: u64, point: u64) -> ServiceError {
    ServiceError::Compacted {
        log: "journal",
        requested,
        compacted: point,
        first: point + 1,
        resync: "JournalService.GetSnapshot",
    }
}

/// Refuses a read after `since` when entries after it were compacted away.
fn check_not_compacted(store: &Store, since: u64) -> Result<(), ServiceError> {
    let point = store.compacted(LogKind::Journal)?;
    if since < point {
        return Err(compacted(since, point));
    }
    Ok(())
}

/// The service.
#[derive(Debug, Clone)]
pub struct JournalApi {
    store: Store,
    member: MemberId,
    stopping: Stopping,
}

impl JournalApi {
    /// The journal of `member`'s node; watches end when `stopping` fires.
    pub fn new(store: Store, member: MemberId, stopping: Stopping) -> Self {
        Self {
            store,
            member,
            stopping,
        }
    }
}

/// Which entries a reader gets: visible to it, and of the kinds it asked for.
#[derive(Debug, Clone)]
struct Filter {
    caller: Identity,
    local: MemberId,
    kinds: Vec<i32>,
    store: Store,
}

impl Filter {
    fn new(
        caller: Identity,
        local: MemberId,
        kinds: Vec<i32>,
        store: Store,
    ) -> Result<Self, ServiceError> {
        fedmesh_core::filter::check_enum_filter::<pb::EntityKind>("entity_kinds", &kinds)
            .map_err(|(field, message)| ServiceError::invalid(field, message))?;
        Ok(Self {
            caller,
            local,
            kinds,
            store,
        })
    }

    /// Whether entries of `kind` may be for this reader at all (decided before decoding).
    fn wants(&self, kind: i32) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&kind))
            && fedmesh_core::journal::may_see_kind(&self.caller, &self.local, kind)
    }

    /// Up to `limit` entries after `since` this reader may see, shaped for it, looking at no
    /// more than `scan` entries; and the last revision looked at. Blocks on the store.
    fn read(
        &self,
        since: u64,
        limit: usize,
        scan: usize,
    ) -> Result<(Vec<pb::JournalEntry>, u64), fedmesh_store::StoreError> {
        let (entries, last) = self
            .store
            .journal_scan(since, limit, scan, |kind| self.wants(kind))?;
        let kept = entries
            .into_iter()
            .filter(|e| self.keeps(e))
            .map(|e| self.shape(e))
            .collect();
        Ok((kept, last))
    }

    /// [`Self::read`] off the async runtime.
    async fn read_off_runtime(
        &self,
        since: u64,
        limit: usize,
        scan: usize,
    ) -> Result<(Vec<pb::JournalEntry>, u64), ServiceError> {
        let filter = self.clone();
        tokio::task::spawn_blocking(move || filter.read(since, limit, scan))
            .await
            .map_err(|e| ServiceError::Unavailable(format!("reading the journal: {e}")))?
            .map_err(ServiceError::from)
    }

    fn keeps(&self, entry: &pb::JournalEntry) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&entry.entity_kind))
            && fedmesh_core::journal::visible(entry, &self.caller, &self.local, &|offer| {
                self.is_tenant(offer)
            })
    }

    /// Whether the caller's member holds a tenancy (active or suspended) on `offer_id` here.
    fn is_tenant(&self, offer_id: &str) -> bool {
        let Some(member) = self.caller.member() else {
            return false;
        };
        self.store
            .list_subscriptions("", 1, |s| {
                s.offer_id == offer_id
                    && s.subscriber_member_id == member.as_str()
                    && fedmesh_core::usage::is_served(s.state())
            })
            .is_ok_and(|found| !found.is_empty())
    }

    /// The entry as this reader may receive it (see [`fedmesh_core::journal::redact`]).
    /// The entry as this caller may see it. An incident is journaled without its comment
    /// list; it is sent with it, rebuilt, as every reader of an incident gets it.
    fn shape(&self, entry: pb::JournalEntry) -> pb::JournalEntry {
        let mut entry = fedmesh_core::journal::redact(entry, &self.caller);
        if let Some(pb::journal_entry::Payload::Incident(incident)) = &mut entry.payload {
            *incident = std::mem::take(incident).with_comment_list();
        }
        entry
    }
}

fn event(event: Event) -> pb::WatchResponse {
    pb::WatchResponse { event: Some(event) }
}

async fn watch(
    store: Store,
    filter: Filter,
    since: u64,
    mut progress: FollowerProgress,
    mut stopping: Stopping,
    sink: Sink<pb::WatchResponse>,
) {
    let mut durable = store.watch_journal();
    let mut cursor = since;
    let mut caught_up_sent = false;
    loop {
        let head = *durable.borrow_and_update();
        let (entries, last) = match filter.read_off_runtime(cursor, BATCH, BATCH * 4).await {
            Ok(read) => read,
            Err(e) => return sink.fail(e.into()).await,
        };
        // Checked after reading: an entry above the cursor removed during the read shows here,
        // and the follower resyncs rather than miss it.
        if let Err(e) = check_not_compacted(&store, cursor) {
            return sink.fail(e.into()).await;
        }
        for entry in entries {
            if !sink.send(event(Event::Entry(entry))).await {
                return;
            }
        }
        let more = last > cursor && last < head;
        cursor = last;
        progress.sent(cursor);
        if more {
            continue;
        }
        if !caught_up_sent {
            caught_up_sent = true;
            let last_revision = head.max(cursor);
            if !sink
                .send(event(Event::CaughtUp(pb::WatchCaughtUp { last_revision })))
                .await
            {
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
                let beat = pb::WatchHeartbeat {
                    server_time: Some(std::time::SystemTime::now().into()),
                    last_revision: head,
                };
                if !sink.send(event(Event::Heartbeat(beat))).await {
                    return;
                }
            }
        }
    }
}

fn snapshot_item(entry: pb::JournalEntry) -> pb::GetSnapshotResponse {
    pb::GetSnapshotResponse {
        item: Some(pb::get_snapshot_response::Item::Entry(entry)),
    }
}

/// Streams a snapshot: its entities the reader may see, then the record buckets (if it may see
/// records), a batch at a time off the runtime, then the end marker.
async fn send_snapshot(
    store: Store,
    filter: Filter,
    snapshot: fedmesh_store::snapshot::JournalSnapshot,
    sink: Sink<pb::GetSnapshotResponse>,
) {
    let mut count = 0u64;
    let entities = match snapshot.entities(|kind| filter.wants(kind)) {
        Ok(entities) => entities,
        Err(e) => return sink.fail(ServiceError::from(e).into()).await,
    };
    for entry in entities {
        // A subscription's visibility reads the store: off the runtime, a few at a time.
        let reader = filter.clone();
        let kept =
            tokio::task::spawn_blocking(move || reader.keeps(&entry).then(|| reader.shape(entry)))
                .await
                .ok()
                .flatten();
        if let Some(entry) = kept {
            count += 1;
            if !sink.send(snapshot_item(entry)).await {
                return;
            }
        }
    }
    let records = [
        pb::EntityKind::UsageRecord,
        pb::EntityKind::AvailabilityRecord,
    ];
    if records.iter().any(|kind| filter.wants(*kind as i32)) {
        let snapshot = std::sync::Arc::new(snapshot.clone());
        let mut from = Vec::new();
        loop {
            let (reader, taken, start) = (store.clone(), snapshot.clone(), from.clone());
            let page = match tokio::task::spawn_blocking(move || {
                reader.snapshot_records(&taken, &start, SNAPSHOT_BATCH)
            })
            .await
            {
                Ok(Ok(page)) => page,
                Ok(Err(e)) => return sink.fail(ServiceError::from(e).into()).await,
                Err(e) => {
                    let error = ServiceError::Unavailable(format!("reading a snapshot: {e}"));
                    return sink.fail(error.into()).await;
                }
            };
            for entry in page.items {
                if filter.keeps(&entry) {
                    count += 1;
                    if !sink.send(snapshot_item(entry)).await {
                        return;
                    }
                }
            }
            match page.next {
                Some(next) => from = next,
                None => break,
            }
        }
    }
    if !store.snapshot_intact(&snapshot) {
        let error = ServiceError::Unavailable(
            "records changed while the snapshot was read (a month closed); ask again".into(),
        );
        return sink.fail(error.into()).await;
    }
    let end = pb::SnapshotEnd {
        revision: snapshot.revision,
        journal_id: snapshot.journal_id.clone(),
        item_count: count,
    };
    let _ = sink
        .send(pb::GetSnapshotResponse {
            item: Some(pb::get_snapshot_response::Item::End(end)),
        })
        .await;
}

#[tonic::async_trait]
impl pb::journal_service_server::JournalService for JournalApi {
    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<ResponseStream<pb::WatchResponse>>, Status> {
        let identity = caller(&request)?.clone();
        let request = request.into_inner();
        let filter = Filter::new(
            identity.clone(),
            self.member.clone(),
            request.entity_kinds,
            self.store.clone(),
        )?;
        let since = request.since_revision;
        check_not_compacted(&self.store, since)?;
        let progress = FollowerProgress::start(
            self.store.clone(),
            LogKind::Journal,
            identity.to_string(),
            since,
        );
        let store = self.store.clone();
        let stopping = self.stopping.clone();
        Ok(Response::new(spawn_stream(move |sink| {
            watch(store, filter, since, progress, stopping, sink)
        })))
    }

    async fn get_snapshot(
        &self,
        request: Request<pb::GetSnapshotRequest>,
    ) -> Result<Response<ResponseStream<pb::GetSnapshotResponse>>, Status> {
        let identity = caller(&request)?.clone();
        let request = request.into_inner();
        let filter = Filter::new(
            identity,
            self.member.clone(),
            request.entity_kinds,
            self.store.clone(),
        )?;
        let store = self.store.clone();
        let member = self.member.to_string();
        let snapshot = tokio::task::spawn_blocking(move || store.journal_snapshot(&member))
            .await
            .map_err(|e| ServiceError::Unavailable(format!("taking a snapshot: {e}")))?
            .map_err(ServiceError::from)?;
        // Nothing is sent that a crash could undo.
        self.store
            .journal_durable(snapshot.revision)
            .await
            .map_err(ServiceError::from)?;
        let store = self.store.clone();
        Ok(Response::new(spawn_stream(move |sink| {
            send_snapshot(store, filter, snapshot, sink)
        })))
    }

    async fn list_entries(
        &self,
        request: Request<pb::ListEntriesRequest>,
    ) -> Result<Response<pb::ListEntriesResponse>, Status> {
        let identity = caller(&request)?.clone();
        let request = request.into_inner();
        let size = page_size(request.page_size, 100, 1000)?;
        let filter = Filter::new(
            identity,
            self.member.clone(),
            request.entity_kinds,
            self.store.clone(),
        )?;
        let who = filter.caller.to_string();
        let mut cursor = if request.page_token.is_empty() {
            request.since_revision
        } else {
            request.page_token.parse().map_err(|_| {
                ServiceError::invalid("page_token", "not a token from a previous page")
            })?
        };
        check_not_compacted(&self.store, cursor)?;
        if request.page_token.is_empty() {
            // A reader paging on is not a new cursor: its first page said where it stands.
            fedmesh_grpc::compaction::note(&self.store, LogKind::Journal, &who, cursor);
        }
        let (_, last_revision) = self.store.journal_bounds().map_err(ServiceError::from)?;
        let request_cursor = cursor;
        let mut entries = Vec::new();
        let mut bytes = 0;
        let mut scanned = 0;
        // At most PAGE_BYTES, and what one response may carry.
        let page_bytes = PAGE_BYTES.min(self.store.max_entry_bytes().saturating_sub(1024));
        // Read until the page is full (in entries or in bytes: an entry may hold a batch of
        // 1,000 usage records), the journal ends, or SCAN entries were looked at.
        'page: while entries.len() < size && cursor < last_revision && scanned < SCAN {
            let scan = BATCH.min(SCAN - scanned);
            let (batch, last) = filter
                .read_off_runtime(cursor, size - entries.len(), scan)
                .await?;
            if last == cursor {
                break;
            }
            scanned += scan;
            for entry in batch {
                // With its field tag and length prefix in the response.
                let encoded = prost::Message::encoded_len(&entry);
                let len = encoded + prost::length_delimiter_len(encoded) + 1;
                if !entries.is_empty() && bytes + len > page_bytes {
                    // The page ends before this entry: the next one starts with it.
                    cursor = entry.revision.saturating_sub(1);
                    break 'page;
                }
                bytes += len;
                entries.push(entry);
            }
            cursor = last;
        }
        // A page read across a compaction may have missed entries: the reader resyncs.
        check_not_compacted(&self.store, request_cursor)?;
        let next_page_token = if cursor < last_revision {
            cursor.to_string()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListEntriesResponse {
            entries,
            next_page_token,
            last_revision,
        }))
    }

    async fn get_journal_info(
        &self,
        _request: Request<pb::GetJournalInfoRequest>,
    ) -> Result<Response<pb::GetJournalInfoResponse>, Status> {
        let (first_revision, last_revision) =
            self.store.journal_bounds().map_err(ServiceError::from)?;
        Ok(Response::new(pb::GetJournalInfoResponse {
            member_id: self.member.to_string(),
            journal_id: self.store.journal_id().map_err(ServiceError::from)?,
            first_revision,
            last_revision,
            server_time: Some(std::time::SystemTime::now().into()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use fedmesh_proto::pb::journal_service_server::JournalService as _;
    use tokio_stream::StreamExt as _;

    use super::*;

    /// More entities than the stream's buffer holds, so that its producer waits for the
    /// reader before it reaches its end.
    const OFFERS: usize = 40;

    #[tokio::test]
    async fn a_snapshot_read_across_a_bucket_rewrite_answers_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for n in 0..OFFERS {
            let id = format!("unistra.s{n}");
            store
                .update_offer("unistra", &id, |_, _| {
                    Ok::<_, ()>(pb::Offer {
                        offer_id: id.clone(),
                        provider_member_id: "unistra".into(),
                        ..Default::default()
                    })
                })
                .unwrap();
        }
        let member: MemberId = "unistra".parse().unwrap();
        let (_stop, stopping) = Stopping::new();
        let api = JournalApi::new(store.clone(), member, stopping);
        let snapshot = |api: JournalApi| async move {
            let mut request = Request::new(pb::GetSnapshotRequest::default());
            request
                .extensions_mut()
                .insert(std::sync::Arc::new(Identity::coordinator(
                    "fed".parse().unwrap(),
                )));
            api.get_snapshot(request).await.unwrap().into_inner()
        };

        // Undisturbed, the snapshot ends with its end marker.
        let whole: Vec<_> = snapshot(api.clone()).await.collect().await;
        assert_eq!(whole.len(), OFFERS + 1);
        assert!(matches!(
            whole.last(),
            Some(Ok(pb::GetSnapshotResponse {
                item: Some(pb::get_snapshot_response::Item::End(_))
            }))
        ));

        // Buckets rewritten while it is read (a month closed): no end marker, UNAVAILABLE.
        let mut stream = snapshot(api).await;
        let first = stream.next().await.unwrap().unwrap();
        assert!(matches!(
            first.item,
            Some(pb::get_snapshot_response::Item::Entry(_))
        ));
        store.buckets_rewritten();
        let rest: Vec<_> = stream.collect().await;
        assert!(
            rest.iter().all(|item| !matches!(
                item,
                Ok(pb::GetSnapshotResponse {
                    item: Some(pb::get_snapshot_response::Item::End(_))
                })
            )),
            "a snapshot read across a rewrite has no end"
        );
        match rest.last() {
            Some(Err(status)) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                assert!(status.message().contains("ask again"), "{status:?}");
            }
            other => panic!("the snapshot did not fail: {other:?}"),
        }
    }
}
