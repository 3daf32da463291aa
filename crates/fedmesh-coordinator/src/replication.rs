//! Replication of every registered node's journal into the federation catalogue.
//!
//! One follower task per registered node watches its journal from the coordinator's persisted
//! cursor and applies each entry idempotently (by source journal and revision) in the same
//! transaction as the cursor, so a restart or a dropped stream resumes where it stopped,
//! applying nothing twice. A sweep every heartbeat interval starts followers for new nodes,
//! marks the offers of stale nodes "provider unreachable" (never deleting them) and back when
//! they return, and repairs lag (anti-entropy): a follower whose cursor stays behind the
//! revision its node reports in heartbeats is restarted.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use fedmesh_core::liveness::Liveness;
use fedmesh_grpc::ClientOptions;
use fedmesh_proto::pb;
use fedmesh_proto::pb::journal_service_client::JournalServiceClient;
use fedmesh_proto::pb::watch_response::Event;
use fedmesh_store::{Applied, Cursor, Store, StoreError};
use fedmesh_tls::TlsFiles;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Sweeps a lagging follower may stay behind its node's reported revision before it is
/// restarted.
const LAG_SWEEPS: u32 = 3;

/// The replication manager.
#[derive(Debug, Clone)]
pub struct Replicator {
    /// The federation, whose node identities followers check.
    pub federation: fedmesh_core::FederationName,
    /// The coordinator's store (registry, catalogue, cursors).
    pub store: Store,
    /// The coordinator's certificate, used as client towards nodes.
    pub tls: TlsFiles,
    /// How often to sweep.
    pub interval: Duration,
    /// When a node is stale.
    pub staleness: crate::liveness::Staleness,
    /// First retry delay of a follower.
    pub retry_initial: Duration,
    /// Longest retry delay of a follower.
    pub retry_max: Duration,
    /// Woken when a node registers (or a member is removed), so that followers start or stop
    /// at once.
    pub registered: std::sync::Arc<tokio::sync::Notify>,
    /// The members removed from the federation: their journals are no longer followed.
    pub removed: fedmesh_grpc::RemovedMembers,
    /// Where refused entries are counted.
    pub rejections: fedmesh_grpc::metrics::Rejections,
}

struct Follower {
    endpoint: String,
    task: JoinHandle<()>,
    lagging_sweeps: u32,
}

impl Replicator {
    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut followers: HashMap<String, Follower> = HashMap::new();
        let mut up: HashMap<String, bool> = HashMap::new();
        loop {
            if let Err(error) = self.sweep(&mut followers, &mut up, &stop).await {
                tracing::error!(%error, "replication sweep failed");
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = self.registered.notified() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        for (_, follower) in followers {
            follower.task.abort();
        }
    }

    async fn sweep(
        &self,
        followers: &mut HashMap<String, Follower>,
        up: &mut HashMap<String, bool>,
        stop: &watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        let judged = self.staleness.at(SystemTime::now());
        let nodes = self.store.list_nodes("", usize::MAX)?;
        let late = nodes
            .iter()
            .filter(|n| judged.late_within_allowance(n))
            .count();
        if late > 0 {
            tracing::warn!(
                nodes = late,
                allowance_ms = judged.allowance().as_millis() as u64,
                "heartbeats later than registry.stale_after_ms, but within the coordinator's own recent delay: not stale yet"
            );
        }
        // A member removed from the federation is no longer followed.
        followers.retain(|member, follower| {
            let keep = nodes.iter().any(|n| &n.member_id == member);
            if !keep {
                follower.task.abort();
                tracing::info!(member = %member, "no longer registered: its journal is no longer followed");
            }
            keep
        });
        for node in nodes {
            let member = node.member_id.clone();
            let Ok(member_id) = member.parse::<fedmesh_core::MemberId>() else {
                tracing::error!(member = %member, "a registered node with an invalid member id is not followed");
                continue;
            };
            // Liveness: mark the catalogue when it flips.
            let alive = judged.of(&node) == Liveness::Active;
            if up.insert(member.clone(), alive) != Some(alive)
                && let Some(revision) = self.store.mark_provider(&member, alive)?
            {
                self.store.catalogue_durable(revision).await?;
                tracing::info!(member = %member, up = alive, "provider reachability changed in the catalogue");
            }
            // Anti-entropy: a follower behind what its node reports for several sweeps is
            // restarted from its cursor.
            let cursor = self.store.cursor(&member)?.map_or(0, |c| c.revision);
            // A resync moves the cursor only at its end, and restarting it starts it over: a
            // follower resyncing is not lagging.
            let resyncing = self.store.resyncing(&member)?.is_some();
            let restart = match followers.get_mut(&member) {
                None => true,
                Some(f) if f.endpoint != node.endpoint || f.task.is_finished() => true,
                Some(f) => {
                    f.lagging_sweeps = if cursor < node.journal_revision && !resyncing {
                        f.lagging_sweeps + 1
                    } else {
                        0
                    };
                    f.lagging_sweeps >= LAG_SWEEPS
                }
            };
            if restart {
                if let Some(old) = followers.remove(&member) {
                    old.task.abort();
                    tracing::info!(member = %member, cursor, reported = node.journal_revision, "restarting journal follower");
                }
                let follow = NodeFollower {
                    federation: self.federation.clone(),
                    member_id,
                    member: member.clone(),
                    endpoint: node.endpoint.clone(),
                    store: self.store.clone(),
                    tls: self.tls.clone(),
                    retry_initial: self.retry_initial,
                    retry_max: self.retry_max,
                    removed: self.removed.clone(),
                    rejections: self.rejections.clone(),
                };
                followers.insert(
                    member,
                    Follower {
                        endpoint: node.endpoint,
                        task: tokio::spawn(follow.run(stop.clone())),
                        lagging_sweeps: 0,
                    },
                );
            }
        }
        Ok(())
    }
}

/// Follows one node's journal.
#[derive(Debug, Clone)]
struct NodeFollower {
    federation: fedmesh_core::FederationName,
    member_id: fedmesh_core::MemberId,
    member: String,
    endpoint: String,
    store: Store,
    tls: TlsFiles,
    retry_initial: Duration,
    retry_max: Duration,
    removed: fedmesh_grpc::RemovedMembers,
    rejections: fedmesh_grpc::metrics::Rejections,
}

#[derive(Debug)]
enum Ended {
    Status(tonic::Status),
    Store(StoreError),
    Client(String),
}

impl NodeFollower {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut delay = self.retry_initial;
        loop {
            let ended = tokio::select! {
                ended = self.follow(&mut delay) => ended,
                _ = stop.wait_for(|s| *s) => return,
            };
            match &ended {
                Ended::Status(status) => {
                    tracing::debug!(member = %self.member, code = ?status.code(), error = status.message(), "journal watch interrupted");
                }
                Ended::Store(error) => {
                    tracing::error!(member = %self.member, %error, "applying a journal entry failed")
                }
                Ended::Client(error) => {
                    tracing::error!(member = %self.member, %error, "cannot connect to the node")
                }
            }
            // Jittered exponential backoff, so that followers do not reconnect in step.
            let jitter = f64::from(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos() % 1000)
                    .unwrap_or(0),
            ) / 1000.0;
            let wait = delay.mul_f64(0.5 + jitter / 2.0);
            delay = (delay * 2).min(self.retry_max);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    async fn follow(&self, delay: &mut Duration) -> Ended {
        // The node must prove it is this member's node, not merely answer on its host name.
        let expected =
            fedmesh_core::Identity::node(self.federation.clone(), self.member_id.clone());
        let channel = match fedmesh_grpc::connect_to(
            &self.endpoint,
            &self.tls,
            ClientOptions::default(),
            expected,
        ) {
            Ok(channel) => channel,
            Err(e) => return Ended::Client(e.to_string()),
        };
        let mut client = JournalServiceClient::new(channel);
        let info = match client.get_journal_info(pb::GetJournalInfoRequest {}).await {
            Ok(info) => info.into_inner(),
            Err(status) => return Ended::Status(status),
        };
        let stored = match self.store.cursor(&self.member) {
            Ok(cursor) => cursor,
            Err(e) => return Ended::Store(e),
        };
        let since = match stored {
            Some(cursor)
                if cursor.journal_id == info.journal_id
                    && cursor.revision <= info.last_revision =>
            {
                cursor.revision
            }
            Some(cursor) => {
                if cursor.journal_id == info.journal_id {
                    // The same journal, behind what was applied from it: its database went
                    // back (a copy of its files restored, not `fedmesh admin restore`). It is
                    // read again from the start, as a journal that started over.
                    tracing::error!(member = %self.member, applied = cursor.revision, last = info.last_revision, "the node's journal went backward without a restore; replicating it from the beginning");
                } else {
                    tracing::warn!(member = %self.member, old = %cursor.journal_id, new = %info.journal_id, "the node's journal started over; replicating it from the beginning");
                }
                // Its records are counted again from the new journal: what was counted from
                // the old one goes first.
                let (store, member, journal, last) = (
                    self.store.clone(),
                    self.member.clone(),
                    info.journal_id.clone(),
                    info.last_revision,
                );
                match tokio::task::spawn_blocking(move || {
                    store.forget_records(&member, &journal, last)
                })
                .await
                {
                    Ok(Ok(buckets)) => {
                        tracing::info!(member = %self.member, buckets, "forgot the records counted from the old journal");
                    }
                    Ok(Err(e)) => return Ended::Store(e),
                    Err(e) => {
                        return Ended::Client(format!("forgetting the old journal's records: {e}"));
                    }
                }
                0
            }
            None => 0,
        };
        // A resync interrupted (its mark is still there), or a cursor whose next entries were
        // compacted away: the node's state comes from a snapshot first.
        let interrupted = match self.store.resyncing(&self.member) {
            Ok(mark) => mark.is_some(),
            Err(e) => return Ended::Store(e),
        };
        let mut since = since;
        if interrupted || info.first_revision > since.saturating_add(1) {
            since = match self.resync(&mut client, &info.journal_id).await {
                Ok(revision) => revision,
                Err(ended) => return ended,
            };
        }
        let mut stream = match client
            .watch(pb::WatchRequest {
                since_revision: since,
                entity_kinds: Vec::new(),
            })
            .await
        {
            Ok(response) => response.into_inner(),
            Err(status) if fedmesh_grpc::error::compact_revision(&status).is_some() => {
                // Compacted between GetJournalInfo and Watch: resync, then the next session
                // watches from the snapshot's revision.
                return match self.resync(&mut client, &info.journal_id).await {
                    Ok(_) => Ended::Status(status),
                    Err(ended) => ended,
                };
            }
            Err(status) => return Ended::Status(status),
        };
        // Revisions of one stream only go up: an entry at or below the last one is refused.
        let mut last = since;
        loop {
            let message = match stream.message().await {
                Ok(Some(message)) => message,
                Ok(None) => {
                    return Ended::Status(tonic::Status::unavailable("journal watch ended"));
                }
                Err(status) => return Ended::Status(status),
            };
            *delay = self.retry_initial;
            let Some(Event::Entry(entry)) = message.event else {
                continue;
            };
            if entry.revision <= last {
                let rejected = fedmesh_core::trust::Rejected {
                    reason: fedmesh_core::trust::Reason::Backward,
                    detail: format!("entry {} after entry {last}", entry.revision),
                };
                self.rejections
                    .refuse(&self.member, entry.revision, &rejected);
                continue;
            }
            last = entry.revision;
            if let Err(e) = self.apply(&info.journal_id, entry).await {
                return Ended::Store(e);
            }
        }
    }

    /// The usage or availability records of an entry (all of the node's own offers: the
    /// entry was checked), filed as the provider filed them (usage by month of the offer's
    /// calendar, availability by UTC month of observation). `None` for other entries.
    fn filed_records(
        &self,
        entry: &pb::JournalEntry,
    ) -> Result<Option<Vec<fedmesh_store::usage::Filed>>, StoreError> {
        use fedmesh_core::usage::{self, Month};
        use fedmesh_store::usage::Filed;
        Ok(match &entry.payload {
            Some(pb::journal_entry::Payload::UsageRecords(batch)) => {
                let mut calendars = std::collections::HashMap::new();
                let mut filed = Vec::new();
                for record in &batch.records {
                    if !calendars.contains_key(&record.offer_id) {
                        let offer = self
                            .store
                            .catalogue_offer(&record.offer_id)?
                            .and_then(|c| c.offer)
                            .unwrap_or_default();
                        calendars.insert(
                            record.offer_id.clone(),
                            fedmesh_grpc::figures::calendar_of(&offer),
                        );
                    }
                    let month = calendars
                        .get(&record.offer_id)
                        .map_or(0, |cal| usage::usage_month(record, cal).key());
                    filed.push(Filed::Usage(record.clone(), month));
                }
                Some(filed)
            }
            Some(pb::journal_entry::Payload::AvailabilityRecords(batch)) => Some(
                batch
                    .records
                    .iter()
                    .map(|r| {
                        let day = usage::observed_at(r).div_euclid(86_400);
                        Filed::Availability(r.clone(), Month::of_day(day).key())
                    })
                    .collect(),
            ),
            _ => None,
        })
    }

    /// Applies one entry of the node's journal, after checking that the node may say it
    /// ([`fedmesh_core::trust::check_entry`]): an entry it may not say is refused, counted, and
    /// passed over (the cursor moves past it), and nothing of it is applied.
    async fn apply(&self, journal_id: &str, entry: pb::JournalEntry) -> Result<(), StoreError> {
        // The follower of a member removed meanwhile stops applying before its task ends.
        if self.removed.contains(&self.member) {
            return Ok(());
        }
        let position = Cursor {
            journal_id: journal_id.to_owned(),
            revision: entry.revision,
        };
        // The node's copies of others' tenancies and incidents (it is their subscriber) are
        // followed at their provider; an entry the node may not say is refused. Either way the
        // cursor moves past it.
        if !self.admits(&entry) || self.archived_here(&entry)? {
            self.store
                .apply_catalogue(&self.member, Some(&position), None)?;
            return Ok(());
        }
        if let Some(pb::journal_entry::Payload::Incident(incident)) = &entry.payload {
            self.store
                .apply_incident(&self.member, &position, incident)?;
            if incident.escalation_level > 0
                && incident
                    .events
                    .last()
                    .is_some_and(|e| e.kind == pb::IncidentEventKind::Escalated as i32)
            {
                tracing::warn!(member = %self.member, incident = %incident.incident_id, offer = %incident.offer_id, level = incident.escalation_level, "incident escalated: an SLA deadline was missed");
            }
            return Ok(());
        }
        if let Some(pb::journal_entry::Payload::MonthlyReport(report)) = &entry.payload {
            // An offer report (the entry was checked, its month too): that month is read from
            // it from now on. The month before's usage buckets go (kept one more month: the
            // latest users of a tenant that has not reported yet this month are read there),
            // and the availability no later month reads.
            match reported_months(report) {
                Some((usage_month, availability_through)) => self.store.apply_report(
                    &self.member,
                    &position,
                    report,
                    usage_month,
                    availability_through,
                )?,
                None => self
                    .store
                    .apply_catalogue(&self.member, Some(&position), None)?,
            };
            return Ok(());
        }
        if let Some(records) = self.filed_records(&entry)? {
            self.store.apply_records(&self.member, &position, records)?;
            return Ok(());
        }
        let offer = self.catalogue_change(entry)?;
        if let Applied::Changed(revision) =
            self.store
                .apply_catalogue(&self.member, Some(&position), offer)?
        {
            self.store.catalogue_durable(revision).await?;
        }
        Ok(())
    }

    /// What an offer or tenancy entry changes in the catalogue (tenancies are stored on the
    /// way: only their counts reach the catalogue).
    fn catalogue_change(
        &self,
        entry: pb::JournalEntry,
    ) -> Result<Option<pb::CatalogueOffer>, StoreError> {
        Ok(match entry.payload {
            Some(pb::journal_entry::Payload::Offer(offer)) => {
                let (tenant_count, user_count) = self
                    .store
                    .catalogue_offer(&offer.offer_id)?
                    .map_or((0, 0), |existing| {
                        (existing.tenant_count, existing.user_count)
                    });
                Some(pb::CatalogueOffer {
                    provider_display_name: self.member.clone(),
                    source_revision: entry.revision,
                    replicate_time: Some(fedmesh_core::clock::now_timestamp()),
                    provider_node_up: true,
                    tenant_count,
                    user_count,
                    offer: Some(offer),
                })
            }
            Some(pb::journal_entry::Payload::Subscription(subscription)) => {
                // Only counts reach the catalogue: never who the subscriber's contacts are.
                let tenancy = fedmesh_store::Tenancy {
                    offer_id: subscription.offer_id.clone(),
                    occupies: fedmesh_core::subscription::occupies_capacity(&subscription),
                    user_count: i64::from(subscription.user_count),
                    subscription: Some(subscription.clone()),
                };
                let key = format!("{}/{}", self.member, subscription.subscription_id);
                let (tenants, users) = self.store.set_tenancy(&key, &tenancy)?;
                self.store
                    .catalogue_offer(&subscription.offer_id)?
                    .filter(|current| {
                        current.tenant_count != tenants || current.user_count != users
                    })
                    .map(|current| pb::CatalogueOffer {
                        tenant_count: tenants,
                        user_count: users,
                        ..current
                    })
            }
            _ => None,
        })
    }

    /// Whether the entity of `entry` was archived here after the coordinator's retention of
    /// ended things: a replayed or resynced copy of it does not come back.
    fn archived_here(&self, entry: &pb::JournalEntry) -> Result<bool, StoreError> {
        use pb::journal_entry::Payload;
        let (kind, id) = match &entry.payload {
            Some(Payload::Incident(i)) => (pb::EntityKind::Incident, &i.incident_id),
            Some(Payload::Subscription(s)) => (pb::EntityKind::Subscription, &s.subscription_id),
            Some(Payload::Offer(o)) => (pb::EntityKind::Offer, &o.offer_id),
            _ => return Ok(false),
        };
        Ok(self.store.retired(kind, id)?.is_some())
    }

    /// Whether the node may say `entry` ([`fedmesh_core::trust::check_entry`]), and not merely
    /// repeat what another member said (its copies as a subscriber, followed at their
    /// provider). A refusal is counted.
    fn admits(&self, entry: &pb::JournalEntry) -> bool {
        use fedmesh_core::trust;
        if trust::is_copy_of_others(&self.member_id, entry) {
            return false;
        }
        let now = fedmesh_grpc::figures::now();
        match trust::check_entry(&self.member_id, entry, trust::Follower::Coordinator, now) {
            Ok(()) => true,
            Err(rejected) => {
                self.rejections
                    .refuse(&self.member, entry.revision, &rejected);
                false
            }
        }
    }

    /// Replaces what the coordinator holds from the node with the node's snapshot (see
    /// [`fedmesh_store::resync`]), and returns the revision to watch from. Interrupted, the
    /// resync mark stays and the next session starts it again.
    async fn resync(
        &self,
        client: &mut JournalServiceClient<fedmesh_grpc::GrpcChannel>,
        journal_id: &str,
    ) -> Result<u64, Ended> {
        tracing::warn!(member = %self.member, journal = %journal_id, "resyncing the node's journal from a snapshot");
        let (store, member, journal) = (
            self.store.clone(),
            self.member.clone(),
            journal_id.to_owned(),
        );
        match tokio::task::spawn_blocking(move || store.begin_resync(&member, &journal)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(Ended::Store(e)),
            Err(e) => return Err(Ended::Client(format!("starting a resync: {e}"))),
        }
        let mut stream = client
            .get_snapshot(pb::GetSnapshotRequest::default())
            .await
            .map_err(Ended::Status)?
            .into_inner();
        let mut seen = fedmesh_store::resync::Seen::default();
        let mut applied = 0u64;
        loop {
            let message = stream
                .message()
                .await
                .map_err(Ended::Status)?
                .ok_or_else(|| Ended::Status(tonic::Status::unavailable("snapshot ended early")))?;
            match message.item {
                Some(pb::get_snapshot_response::Item::Entry(entry)) => {
                    if self.removed.contains(&self.member) {
                        return Err(Ended::Client("member removed during its resync".into()));
                    }
                    self.apply_snapshot_item(journal_id, entry, &mut seen)
                        .map_err(Ended::Store)?;
                    applied += 1;
                }
                Some(pb::get_snapshot_response::Item::End(end)) => {
                    if end.journal_id != journal_id {
                        return Err(Ended::Client(format!(
                            "the snapshot is of journal {}, not {journal_id}",
                            end.journal_id
                        )));
                    }
                    let finished = self
                        .store
                        .finish_resync(&self.member, journal_id, end.revision, &seen)
                        .map_err(Ended::Store)?;
                    if let Some(revision) = finished.catalogue_revision {
                        self.store
                            .catalogue_durable(revision)
                            .await
                            .map_err(Ended::Store)?;
                    }
                    self.store.flush().await.map_err(Ended::Store)?;
                    tracing::info!(member = %self.member, revision = end.revision, items = applied, removed_offers = finished.offers, removed_tenancies = finished.tenancies, removed_incidents = finished.incidents, "resync complete");
                    return Ok(end.revision);
                }
                None => {}
            }
        }
    }

    /// Applies one item of the node's snapshot, checked as a journal entry would be.
    fn apply_snapshot_item(
        &self,
        journal_id: &str,
        entry: pb::JournalEntry,
        seen: &mut fedmesh_store::resync::Seen,
    ) -> Result<(), StoreError> {
        if !self.admits(&entry) || self.archived_here(&entry)? {
            return Ok(());
        }
        if let Some(pb::journal_entry::Payload::Incident(incident)) = &entry.payload {
            seen.incidents.insert(incident.incident_id.clone());
            return self.store.put_snapshot_incident(incident);
        }
        if let Some(records) = self.filed_records(&entry)? {
            self.store
                .apply_snapshot_records(&self.member, journal_id, records)?;
            return Ok(());
        }
        if let Some(pb::journal_entry::Payload::MonthlyReport(report)) = &entry.payload {
            if let Some((usage_month, availability_through)) = reported_months(report) {
                self.store
                    .put_snapshot_report(report, usage_month, availability_through)?;
            }
            return Ok(());
        }
        match &entry.payload {
            Some(pb::journal_entry::Payload::Offer(offer)) => {
                seen.offers.insert(offer.offer_id.clone());
            }
            Some(pb::journal_entry::Payload::Subscription(subscription)) => {
                seen.tenancies.insert(subscription.subscription_id.clone());
            }
            _ => {}
        }
        let offer = self.catalogue_change(entry)?;
        if offer.is_some() {
            self.store.apply_catalogue(&self.member, None, offer)?;
        }
        Ok(())
    }
}

/// The months whose buckets an offer report of month M replaces on the coordinator: the usage of
/// the month before M (M's own stays one more month: the latest users of a tenant that has not
/// reported yet this month are read there) and the availability no later month reads (UTC
/// months up to two before M). `None` for a report without a valid month (refused before).
fn reported_months(report: &pb::MonthlyReport) -> Option<(u32, u32)> {
    let month = fedmesh_core::usage::Month::from_proto("month", report.month.as_ref()).ok()?;
    Some((month.previous().key(), month.previous().previous().key()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::liveness::Staleness;

    /// A replicator over `store` whose followers never reach their nodes.
    fn replicator(store: &Store, staleness: Staleness) -> Replicator {
        let nowhere = std::path::PathBuf::from("/nonexistent");
        Replicator {
            federation: "esup".parse().unwrap(),
            store: store.clone(),
            tls: TlsFiles {
                ca: nowhere.clone(),
                cert: nowhere.clone(),
                key: nowhere,
                crl: None,
            },
            interval: Duration::from_secs(3600),
            staleness,
            retry_initial: Duration::from_secs(3600),
            retry_max: Duration::from_secs(3600),
            registered: Default::default(),
            removed: Default::default(),
            rejections: Default::default(),
        }
    }

    fn provider_up(store: &Store, offer_id: &str) -> bool {
        store
            .catalogue_offer(offer_id)
            .unwrap()
            .unwrap()
            .provider_node_up
    }

    /// The coordinator's own delay in answering heartbeats keeps it from marking a provider
    /// unreachable whose heartbeat is late by no more than that; without such a delay the
    /// same heartbeat makes it stale.
    #[tokio::test]
    async fn a_heartbeat_late_by_the_coordinators_own_delay_leaves_the_provider_reachable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let member = "univ-rennes2";
        store
            .put_node(&pb::RegisteredNode {
                member_id: member.into(),
                endpoint: "127.0.0.1:9".into(),
                last_heartbeat_at: Some((SystemTime::now() - Duration::from_secs(3)).into()),
                ..Default::default()
            })
            .unwrap();
        let offer_id = format!("{member}.otp");
        store
            .apply_catalogue(
                member,
                None,
                Some(pb::CatalogueOffer {
                    offer: Some(pb::Offer {
                        offer_id: offer_id.clone(),
                        provider_member_id: member.into(),
                        ..Default::default()
                    }),
                    provider_node_up: true,
                    ..Default::default()
                }),
            )
            .unwrap();
        let (_stop, stopped) = watch::channel(false);
        let mut followers = HashMap::new();

        // Silent for 3 s against a limit of 2 s, while the coordinator took 1.5 s to answer
        // heartbeats: not stale yet.
        let lagging = Staleness::new(Duration::from_secs(2));
        lagging.record_answer(Duration::from_millis(1500));
        replicator(&store, lagging)
            .sweep(&mut followers, &mut HashMap::new(), &stopped)
            .await
            .unwrap();
        assert!(provider_up(&store, &offer_id), "marked for our own delay");

        // The same silence with a coordinator that answered at once.
        replicator(&store, Staleness::new(Duration::from_secs(2)))
            .sweep(&mut followers, &mut HashMap::new(), &stopped)
            .await
            .unwrap();
        assert!(
            !provider_up(&store, &offer_id),
            "a silent provider stays up"
        );
        for (_, follower) in followers {
            follower.task.abort();
        }
    }
}
