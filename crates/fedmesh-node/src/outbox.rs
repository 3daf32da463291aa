//! The subscriber side of tenancies and incidents: a request of this member's admin to another
//! member's node (a tenancy request or change, an incident opened, commented, answered,
//! closed, reopened or re-prioritized) is sent to the provider's node at once, or, when that
//! node cannot be reached, kept in the durable outbox and delivered later (with backoff, across
//! restarts of either node, in order per provider). The provider's copy of each tenancy and
//! incident, and the maintenance it announces on offers this member is a tenant of, are
//! mirrored here, kept current by following the provider's journal (filtered by the provider
//! to what concerns this member) from a persisted cursor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fedmesh_core::{Identity, MemberId, Role, trust};
use fedmesh_grpc::ServiceError;
use fedmesh_grpc::metrics::Rejections;
use fedmesh_proto::pb;
use fedmesh_proto::pb::incident_service_client::IncidentServiceClient;
use fedmesh_proto::pb::journal_service_client::JournalServiceClient;
use fedmesh_proto::pb::report_service_client::ReportServiceClient;
use fedmesh_proto::pb::subscription_service_client::SubscriptionServiceClient;
use fedmesh_proto::pb::watch_response::Event;
use fedmesh_store::{Cursor, OutboxItem, Store, StoreError};
use prost::Message as _;
use tokio::sync::{Notify, watch};
use tonic::Code;

use crate::peers::Peers;
use crate::registration::Backoff;

/// How long a direct attempt may take before the request is queued instead.
const DIRECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a delivery did not happen.
#[derive(Debug)]
enum Undelivered {
    /// Worth retrying later: the provider's node is unreachable or busy.
    Retry(String),
    /// The provider refused: retrying cannot help.
    Refused(tonic::Status),
}

fn classify(status: tonic::Status) -> Undelivered {
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Unknown
        | Code::Internal
        | Code::Cancelled => {
            Undelivered::Retry(format!("{:?}: {}", status.code(), status.message()))
        }
        _ => Undelivered::Refused(status),
    }
}

/// The request id of any forwarded request: field 1 of every forwarded request message.
#[derive(Clone, PartialEq, prost::Message)]
struct RequestId {
    #[prost(string, tag = "1")]
    request_id: String,
}

fn refusal_key(provider: &str, request_id: &str) -> Vec<u8> {
    format!("refused/{provider}/{request_id}").into_bytes()
}

/// A mirrored copy that brings nothing new: nothing is written, no journal entry.
#[derive(Debug)]
struct Unchanged;

/// What a provider's node answered a forwarded request with.
#[derive(Debug, Clone)]
pub enum Delivered {
    /// A tenancy.
    Subscription(pb::Subscription),
    /// An incident (as this member may see it).
    Incident(pb::Incident),
    /// A monthly report of a tenancy of this member (boxed: the largest of the three).
    Report(Box<pb::MonthlyReport>),
}

/// Sends this member's requests to providers and mirrors the answers.
#[derive(Debug, Clone)]
pub struct Forwarder {
    store: Store,
    peers: Peers,
    member: MemberId,
    wake: Arc<Notify>,
    retry_initial: Duration,
    retry_max: Duration,
    rejections: Rejections,
}

impl Forwarder {
    /// A forwarder for `member`'s node; what it refuses to mirror counts in `rejections`.
    pub fn new(
        store: Store,
        peers: Peers,
        member: MemberId,
        retry_initial: Duration,
        retry_max: Duration,
        rejections: Rejections,
    ) -> Self {
        Self {
            store,
            peers,
            member,
            wake: Arc::new(Notify::new()),
            retry_initial,
            retry_max,
            rejections,
        }
    }

    /// Whether `provider` may say `checked` to this member's node; a refusal is logged and
    /// counted (`revision` of the provider's journal, 0 for a direct answer).
    fn admits(
        &self,
        provider: &str,
        revision: u64,
        checked: impl FnOnce(&MemberId, trust::Follower<'_>) -> Result<(), trust::Rejected>,
    ) -> bool {
        let verdict = match provider.parse::<MemberId>() {
            Ok(source) => checked(&source, trust::Follower::Subscriber(&self.member)),
            Err(e) => Err(trust::Rejected {
                reason: trust::Reason::NotOwner,
                detail: format!("`{provider}` is not a member id: {e}"),
            }),
        };
        match verdict {
            Ok(()) => true,
            Err(rejected) => {
                self.rejections.refuse(provider, revision, &rejected);
                false
            }
        }
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<Delivered, Undelivered> {
        if self.peers.is_removed(&item.provider_member_id) {
            return Err(Undelivered::Refused(tonic::Status::failed_precondition(
                format!(
                    "member {} was removed from the federation",
                    item.provider_member_id
                ),
            )));
        }
        let channel = self
            .peers
            .channel(&item.provider_member_id)
            .await
            .map_err(Undelivered::Retry)?;
        let mut subscriptions = SubscriptionServiceClient::new(channel.clone());
        let mut incidents = IncidentServiceClient::new(channel.clone());
        let mut reports = ReportServiceClient::new(channel);
        fn decode<M: prost::Message + Default>(raw: &[u8]) -> Result<M, Undelivered> {
            M::decode(raw).map_err(|e| {
                Undelivered::Refused(tonic::Status::internal(format!("corrupt outbox item: {e}")))
            })
        }
        let raw = item.request.as_slice();
        let answered: Result<Option<Delivered>, tonic::Status> = match item.rpc.as_str() {
            "RequestSubscription" => subscriptions
                .request_subscription(fedmesh_grpc::acting::request_for(
                    decode::<pb::RequestSubscriptionRequest>(raw)?,
                    &item.acting_for,
                ))
                .await
                .map(|r| r.into_inner().subscription.map(Delivered::Subscription)),
            "CancelSubscription" => subscriptions
                .cancel_subscription(fedmesh_grpc::acting::request_for(
                    decode::<pb::CancelSubscriptionRequest>(raw)?,
                    &item.acting_for,
                ))
                .await
                .map(|r| r.into_inner().subscription.map(Delivered::Subscription)),
            "ChangeUsers" => subscriptions
                .change_users(fedmesh_grpc::acting::request_for(
                    decode::<pb::ChangeUsersRequest>(raw)?,
                    &item.acting_for,
                ))
                .await
                .map(|r| r.into_inner().subscription.map(Delivered::Subscription)),
            "OpenIncident" => incidents
                .open_incident(fedmesh_grpc::acting::request_for(
                    decode::<pb::OpenIncidentRequest>(raw)?,
                    &item.acting_for,
                ))
                .await
                .map(|r| r.into_inner().incident.map(Delivered::Incident)),
            "CommentIncident" => incidents
                .comment_incident(fedmesh_grpc::acting::request_for(
                    decode::<pb::CommentIncidentRequest>(raw)?,
                    &item.acting_for,
                ))
                .await
                .map(|r| r.into_inner().incident.map(Delivered::Incident)),
            "AnswerIncident" => incidents
                .answer_incident(fedmesh_grpc::acting::request_for(
                    decode::<pb::AnswerIncidentRequest>(raw)?,
                    &item.acting_for,
                ))
                .await
                .map(|r| r.into_inner().incident.map(Delivered::Incident)),
            "CloseIncident" => incidents
                .close_incident(fedmesh_grpc::acting::request_for(
                    decode::<pb::CloseIncidentRequest>(raw)?,
                    &item.acting_for,
                ))
                .await
                .map(|r| r.into_inner().incident.map(Delivered::Incident)),
            "ReopenIncident" => incidents
                .reopen_incident(fedmesh_grpc::acting::request_for(
                    decode::<pb::ReopenIncidentRequest>(raw)?,
                    &item.acting_for,
                ))
                .await
                .map(|r| r.into_inner().incident.map(Delivered::Incident)),
            "ChangePriority" => incidents
                .change_priority(fedmesh_grpc::acting::request_for(
                    decode::<pb::ChangePriorityRequest>(raw)?,
                    &item.acting_for,
                ))
                .await
                .map(|r| r.into_inner().incident.map(Delivered::Incident)),
            "ContestReport" => reports
                .contest_report(fedmesh_grpc::acting::request_for(
                    decode::<pb::ContestReportRequest>(raw)?,
                    &item.acting_for,
                ))
                .await
                .map(|r| {
                    r.into_inner()
                        .report
                        .map(|report| Delivered::Report(Box::new(report)))
                }),
            other => {
                return Err(Undelivered::Refused(tonic::Status::internal(format!(
                    "unknown outbox rpc {other}"
                ))));
            }
        };
        answered
            .map_err(classify)?
            .ok_or_else(|| Undelivered::Retry("the provider answered without a result".into()))
    }

    /// Mirrors what a provider's node answered.
    async fn mirror_delivered(
        &self,
        provider: &str,
        delivered: Delivered,
    ) -> Result<(), StoreError> {
        match delivered {
            Delivered::Subscription(s) => self.mirror(provider, 0, s).await,
            Delivered::Incident(i) => self.mirror_incident(provider, 0, i).await,
            Delivered::Report(r) => self.mirror_report(provider, 0, *r).await,
        }
    }

    /// Sends `request` (of `rpc`) to `provider`'s node now, or queues it durably. Returns the
    /// provider's tenancy, or `None` when queued.
    pub async fn send_or_queue<M: prost::Message>(
        &self,
        provider: &str,
        rpc: &str,
        request: &M,
        acting: &Identity,
    ) -> Result<Option<pb::Subscription>, ServiceError> {
        Ok(match self.forward(provider, rpc, request, acting).await? {
            Some(Delivered::Subscription(s)) => Some(s),
            _ => None,
        })
    }

    /// Like [`Forwarder::send_or_queue`], for incident requests: the provider's incident, or
    /// `None` when queued.
    pub async fn send_incident<M: prost::Message>(
        &self,
        provider: &str,
        rpc: &str,
        request: &M,
        acting: &Identity,
    ) -> Result<Option<pb::Incident>, ServiceError> {
        Ok(match self.forward(provider, rpc, request, acting).await? {
            Some(Delivered::Incident(i)) => Some(i),
            _ => None,
        })
    }

    /// Like [`Forwarder::send_or_queue`], for a contestation of a report: the provider's
    /// report, or `None` when queued.
    pub async fn send_report<M: prost::Message>(
        &self,
        provider: &str,
        rpc: &str,
        request: &M,
        acting: &Identity,
    ) -> Result<Option<pb::MonthlyReport>, ServiceError> {
        Ok(match self.forward(provider, rpc, request, acting).await? {
            Some(Delivered::Report(r)) => Some(*r),
            _ => None,
        })
    }

    /// Sends `request` (of `rpc`) to `provider`'s node for this member's `acting` admin or
    /// agent, now or later from the outbox.
    async fn forward<M: prost::Message>(
        &self,
        provider: &str,
        rpc: &str,
        request: &M,
        acting: &Identity,
    ) -> Result<Option<Delivered>, ServiceError> {
        let acting_for = if matches!(acting.role(), Role::Admin | Role::Agent) {
            acting.to_uri()
        } else {
            String::new()
        };
        let item = OutboxItem {
            provider_member_id: provider.to_owned(),
            rpc: rpc.to_owned(),
            request: request.encode_to_vec(),
            acting_for,
            queued_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            ..Default::default()
        };
        // Behind anything already waiting for this provider, so that its changes keep their order.
        let waiting = self
            .store
            .outbox()?
            .iter()
            .any(|(_, queued)| queued.provider_member_id == provider);
        if waiting {
            self.store.enqueue(&item)?;
            self.store.flush().await?;
            self.wake.notify_one();
            return Ok(None);
        }
        let attempt = tokio::time::timeout(DIRECT_TIMEOUT, self.deliver(&item)).await;
        let error = match attempt {
            Ok(Ok(delivered)) => {
                // The answer is the provider's word like its journal: what it may not say is
                // neither mirrored nor shown to the admin.
                let admitted = self.admits(provider, 0, |source, me| match &delivered {
                    Delivered::Subscription(s) => trust::check_subscription(source, s, me),
                    Delivered::Incident(i) => trust::check_incident(source, i, me),
                    Delivered::Report(r) => trust::check_report(source, r, me),
                });
                if !admitted {
                    return Err(ServiceError::Peer {
                        member: provider.to_owned(),
                        code: Code::Internal,
                        message: "its answer concerns what it may not speak for; this node refused it (see its log)".to_owned(),
                    });
                }
                self.mirror_delivered(provider, delivered.clone()).await?;
                return Ok(Some(delivered));
            }
            Ok(Err(Undelivered::Refused(status))) => {
                return Err(ServiceError::Peer {
                    member: provider.to_owned(),
                    code: status.code(),
                    message: status.message().to_owned(),
                });
            }
            Ok(Err(Undelivered::Retry(error))) => error,
            Err(_) => "no answer in time".to_owned(),
        };
        self.store.enqueue(&OutboxItem {
            attempts: 1,
            last_error: error.clone(),
            ..item
        })?;
        self.store.flush().await?;
        tracing::info!(provider, rpc, %error, "provider unreachable: request queued");
        self.wake.notify_one();
        Ok(None)
    }

    /// The provider's refusal of a queued request, if it refused it: (code, message).
    pub fn refusal(
        &self,
        provider: &str,
        request_id: &str,
    ) -> Result<Option<(Code, String)>, StoreError> {
        Ok(self
            .store
            .request_record(&refusal_key(provider, request_id))?
            .and_then(|record| {
                let (code, message) = record.split_once('\n')?;
                Some((Code::from_i32(code.parse().ok()?), message.to_owned()))
            }))
    }

    /// Stores the provider's copy of a tenancy of this member, unless ours is more recent.
    pub async fn mirror(
        &self,
        provider: &str,
        revision: u64,
        incoming: pb::Subscription,
    ) -> Result<(), StoreError> {
        // Only what `provider` may speak for: its own tenancies, with this member as tenant.
        if !self.admits(provider, revision, |source, me| {
            trust::check_subscription(source, &incoming, me)
        }) {
            return Ok(());
        }
        // Archived here after this node's retention: its copy does not come back.
        if self
            .store
            .retired(pb::EntityKind::Subscription, &incoming.subscription_id)?
            .is_some()
        {
            return Ok(());
        }
        let id = incoming.subscription_id.clone();
        let written =
            self.store
                .update_subscription(self.member.as_str(), &id, None, |current, _| {
                    match current {
                        // A copy never goes back to an older version, nor changes hands, and
                        // the same version again (a replay) writes nothing.
                        Some(current)
                            if current.history.len() > incoming.history.len()
                                || current.provider_member_id != incoming.provider_member_id
                                || current == incoming =>
                        {
                            Err(Unchanged)
                        }
                        _ => Ok(incoming),
                    }
                });
        let revision = match written {
            Ok((_, revision)) => revision,
            Err(fedmesh_store::WriteError::Store(e)) => return Err(e),
            Err(fedmesh_store::WriteError::Rejected(Unchanged)) => return Ok(()),
            // Mirror writes carry no request key: nothing was a repeat.
            Err(fedmesh_store::WriteError::Repeated(_)) => return Ok(()),
        };
        self.store.journal_durable(revision).await
    }

    /// Stores the provider's copy of an incident of this member, unless ours is more recent.
    pub async fn mirror_incident(
        &self,
        provider: &str,
        revision: u64,
        incoming: pb::Incident,
    ) -> Result<(), StoreError> {
        if !self.admits(provider, revision, |source, me| {
            trust::check_incident(source, &incoming, me)
        }) {
            return Ok(());
        }
        // Archived here after this node's retention: its copy does not come back.
        if self
            .store
            .retired(pb::EntityKind::Incident, &incoming.incident_id)?
            .is_some()
        {
            return Ok(());
        }
        let id = incoming.incident_id.clone();
        let written =
            self.store.update_incident(
                self.member.as_str(),
                &id,
                None,
                |current, _| match current {
                    Some(current)
                        if current.events.len() > incoming.events.len()
                            || fedmesh_core::incident::same_version(&current, &incoming) =>
                    {
                        Err(Unchanged)
                    }
                    _ => Ok(incoming),
                },
            );
        match written {
            Ok((_, revision)) => self.store.journal_durable(revision).await,
            // A copy larger than this node's journal entries may be (its
            // limits.max_encoding_message_bytes lower than the provider's) is skipped, not
            // retried: retrying would stop every later change from that provider.
            Err(fedmesh_store::WriteError::Store(e @ StoreError::EntryTooLarge { .. })) => {
                tracing::error!(provider, incident = %id, error = %e, "incident not mirrored: raise limits.max_encoding_message_bytes to the provider's");
                Ok(())
            }
            Err(fedmesh_store::WriteError::Store(e)) => Err(e),
            Err(fedmesh_store::WriteError::Rejected(Unchanged)) => Ok(()),
            Err(fedmesh_store::WriteError::Repeated(_)) => Ok(()),
        }
    }

    /// Stores a maintenance window a provider announced on one of its offers.
    pub async fn mirror_maintenance(
        &self,
        provider: &str,
        revision: u64,
        incoming: pb::MaintenanceWindow,
    ) -> Result<(), StoreError> {
        if !self.admits(provider, revision, |source, _| {
            trust::check_maintenance(source, &incoming)
        }) {
            return Ok(());
        }
        // Archived here after this node's retention: its copy does not come back.
        if self
            .store
            .retired(pb::EntityKind::MaintenanceWindow, &incoming.maintenance_id)?
            .is_some()
        {
            return Ok(());
        }
        let id = incoming.maintenance_id.clone();
        let written =
            self.store
                .update_maintenance(self.member.as_str(), &id, None, |current, _| {
                    match current {
                        Some(current) if current == incoming => Err(Unchanged),
                        // Only forward: a provider cannot rewrite a window's history, nor
                        // change one that is over (its copy here stays as it was).
                        Some(current)
                            if !fedmesh_core::maintenance::follows(
                                &current,
                                &incoming,
                                fedmesh_grpc::figures::now(),
                            ) =>
                        {
                            tracing::warn!(provider, maintenance = %incoming.maintenance_id, "a maintenance window's copy that rewrites its history or changes it after its end was not applied");
                            Err(Unchanged)
                        }
                        _ => Ok(incoming),
                    }
                });
        match written {
            Ok((_, revision)) => self.store.journal_durable(revision).await,
            Err(fedmesh_store::WriteError::Store(e)) => Err(e),
            Err(fedmesh_store::WriteError::Rejected(Unchanged)) => Ok(()),
            Err(fedmesh_store::WriteError::Repeated(_)) => Ok(()),
        }
    }

    /// Stores a provider's monthly report of a tenancy of this member (checked like every
    /// entry from another member), unless the copy held has as long a history.
    pub async fn mirror_report(
        &self,
        provider: &str,
        revision: u64,
        incoming: pb::MonthlyReport,
    ) -> Result<(), StoreError> {
        if !self.admits(provider, revision, |source, me| {
            trust::check_report(source, &incoming, me)
        }) {
            return Ok(());
        }
        let id = incoming.report_id.clone();
        match self.store.mirror_report(self.member.as_str(), incoming) {
            Ok(Some(revision)) => self.store.journal_durable(revision).await,
            Ok(None) => Ok(()),
            Err(e @ StoreError::EntryTooLarge { .. }) => {
                tracing::error!(provider, report = %id, error = %e, "report not mirrored: raise limits.max_encoding_message_bytes to the provider's");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Delivers the outbox until `stop`, then follows providers' journals.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let mirror = tokio::spawn(self.clone().follow_providers(stop.clone()));
        self.deliver_queued(stop).await;
        let _ = mirror.await;
    }

    async fn deliver_queued(&self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(self.retry_initial, self.retry_max);
        loop {
            let mut pending = false;
            match self.store.outbox() {
                Ok(items) => {
                    // A provider that cannot be reached holds back its own items only.
                    let mut unreachable: Vec<String> = Vec::new();
                    for (sequence, mut item) in items {
                        if unreachable.contains(&item.provider_member_id) {
                            continue;
                        }
                        match self.deliver(&item).await {
                            Ok(delivered) => {
                                backoff.reset();
                                if let Err(error) = self
                                    .mirror_delivered(&item.provider_member_id, delivered)
                                    .await
                                {
                                    tracing::error!(%error, "cannot mirror a delivered answer");
                                }
                                if let Err(error) = self.store.dequeue(sequence) {
                                    tracing::error!(%error, "cannot remove a delivered outbox item");
                                }
                                tracing::info!(provider = %item.provider_member_id, rpc = %item.rpc, "queued request delivered");
                            }
                            Err(Undelivered::Refused(status)) => {
                                tracing::error!(provider = %item.provider_member_id, rpc = %item.rpc, code = ?status.code(), error = status.message(), "the provider refused a queued request");
                                // Kept for the admin: a retry of the request answers with it.
                                let request_id = RequestId::decode(item.request.as_slice())
                                    .map(|r| r.request_id)
                                    .unwrap_or_default();
                                let record =
                                    format!("{}\n{}", status.code() as i32, status.message());
                                let key = refusal_key(&item.provider_member_id, &request_id);
                                if let Err(error) = self.store.set_request_record(&key, &record) {
                                    tracing::error!(%error, "cannot record a refusal");
                                }
                                let _ = self.store.dequeue(sequence);
                            }
                            Err(Undelivered::Retry(error)) => {
                                item.attempts += 1;
                                item.last_error = error;
                                let _ = self.store.update_outbox(sequence, &item);
                                pending = true;
                                // Keep the order of this provider's requests: skip the rest of
                                // them this round.
                                unreachable.push(item.provider_member_id);
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "cannot read the outbox");
                    pending = true;
                }
            }
            let delay = if pending {
                backoff.next()
            } else {
                Duration::from_secs(3600)
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.wake.notified() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// What a subscriber's node mirrors of its providers' journals.
    const MIRRORED: [i32; 4] = [
        pb::EntityKind::Subscription as i32,
        pb::EntityKind::Incident as i32,
        pb::EntityKind::MaintenanceWindow as i32,
        pb::EntityKind::MonthlyReport as i32,
    ];

    /// Follows, for each provider this member has tenancies with, its journal of this
    /// member's tenancies.
    async fn follow_providers(self, mut stop: watch::Receiver<bool>) {
        let mut followed: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            let providers: Vec<String> = self
                .store
                .list_subscriptions("", usize::MAX, |s| {
                    s.subscriber_member_id == self.member.as_str()
                        && s.provider_member_id != self.member.as_str()
                })
                .map(|subs| subs.into_iter().map(|s| s.provider_member_id).collect())
                .unwrap_or_default();
            // A removed provider's journal no longer speaks for our copies.
            followed.retain(|provider, task| {
                let keep = !self.peers.is_removed(provider);
                if !keep {
                    task.abort();
                }
                keep
            });
            for provider in providers {
                if self.peers.is_removed(&provider) {
                    continue;
                }
                let finished = followed.get(&provider).is_none_or(|t| t.is_finished());
                if finished {
                    let task = tokio::spawn(self.clone().follow(provider.clone(), stop.clone()));
                    followed.insert(provider, task);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        for (_, task) in followed {
            task.abort();
        }
    }

    /// Mirrors one entry of `provider`'s journal, or one item of its snapshot, of the kinds
    /// this member mirrors ([`Self::MIRRORED`]); others are passed over.
    async fn mirror_entry(
        &self,
        provider: &str,
        entry: pb::JournalEntry,
    ) -> Result<(), StoreError> {
        let revision = entry.revision;
        match entry.payload {
            Some(pb::journal_entry::Payload::Subscription(s)) => {
                self.mirror(provider, revision, s).await
            }
            Some(pb::journal_entry::Payload::Incident(i)) => {
                self.mirror_incident(provider, revision, i).await
            }
            Some(pb::journal_entry::Payload::MaintenanceWindow(m)) => {
                self.mirror_maintenance(provider, revision, m).await
            }
            Some(pb::journal_entry::Payload::MonthlyReport(r)) => {
                self.mirror_report(provider, revision, r).await
            }
            _ => Ok(()),
        }
    }

    /// Mirrors `provider`'s snapshot of what concerns this member (its tenancies, incidents,
    /// maintenance windows and monthly reports), each item checked and applied as a journal entry would be (a copy
    /// never goes back to an older version), then moves the cursor to the snapshot's revision
    /// and returns it. Interrupted, the cursor has not moved and the next session starts again.
    async fn resync(
        &self,
        provider: &str,
        client: &mut JournalServiceClient<fedmesh_grpc::GrpcChannel>,
        journal_id: &str,
    ) -> Result<u64, tonic::Status> {
        tracing::info!(provider, "resyncing the provider's journal from a snapshot");
        let internal = |e: StoreError| tonic::Status::internal(e.to_string());
        let mut stream = client
            .get_snapshot(pb::GetSnapshotRequest {
                entity_kinds: Self::MIRRORED.to_vec(),
            })
            .await?
            .into_inner();
        loop {
            let Some(message) = stream.message().await? else {
                return Err(tonic::Status::unavailable("snapshot ended early"));
            };
            match message.item {
                Some(pb::get_snapshot_response::Item::Entry(entry)) => {
                    self.mirror_entry(provider, entry).await.map_err(internal)?;
                }
                Some(pb::get_snapshot_response::Item::End(end)) => {
                    if end.journal_id != journal_id {
                        return Err(tonic::Status::unavailable(
                            "the provider's journal changed during the snapshot",
                        ));
                    }
                    let cursor = Cursor {
                        journal_id: end.journal_id,
                        revision: end.revision,
                    };
                    self.store
                        .set_cursor(&format!("journal:{provider}"), &cursor)
                        .map_err(internal)?;
                    return Ok(end.revision);
                }
                None => {}
            }
        }
    }

    async fn follow(self, provider: String, mut stop: watch::Receiver<bool>) {
        let source = format!("journal:{provider}");
        let mut backoff = Backoff::new(self.retry_initial, self.retry_max);
        loop {
            let session = async {
                let channel = self
                    .peers
                    .channel(&provider)
                    .await
                    .map_err(tonic::Status::unavailable)?;
                let mut client = JournalServiceClient::new(channel);
                let info = client
                    .get_journal_info(pb::GetJournalInfoRequest {})
                    .await?
                    .into_inner();
                // A journal that started over, or went back below what was mirrored, is read
                // again from its start: mirroring is idempotent (a copy never goes back to an
                // older version).
                let since = match self
                    .store
                    .cursor(&source)
                    .map_err(|e| tonic::Status::internal(e.to_string()))?
                {
                    Some(c)
                        if c.journal_id == info.journal_id && c.revision <= info.last_revision =>
                    {
                        c.revision
                    }
                    _ => 0,
                };
                // Entries after our cursor compacted away: the provider's snapshot first.
                let since = if info.first_revision > since.saturating_add(1) {
                    self.resync(&provider, &mut client, &info.journal_id)
                        .await?
                } else {
                    since
                };
                let watched = client
                    .watch(pb::WatchRequest {
                        since_revision: since,
                        entity_kinds: Self::MIRRORED.to_vec(),
                    })
                    .await;
                let mut stream = match watched {
                    Ok(response) => response.into_inner(),
                    Err(status) if fedmesh_grpc::error::compact_revision(&status).is_some() => {
                        // Compacted meanwhile: resync; the next session watches from there.
                        self.resync(&provider, &mut client, &info.journal_id)
                            .await?;
                        return Err(status);
                    }
                    Err(status) => return Err(status),
                };
                // Revisions of one stream only go up: an entry at or below the last one is
                // refused.
                let mut last = since;
                while let Some(message) = stream.message().await? {
                    backoff.reset();
                    if let Some(Event::Entry(entry)) = message.event {
                        let revision = entry.revision;
                        if revision <= last {
                            let rejected = trust::Rejected {
                                reason: trust::Reason::Backward,
                                detail: format!("entry {revision} after entry {last}"),
                            };
                            self.rejections.refuse(&provider, revision, &rejected);
                            continue;
                        }
                        last = revision;
                        self.mirror_entry(&provider, entry)
                            .await
                            .map_err(|e| tonic::Status::internal(e.to_string()))?;
                        let cursor = Cursor {
                            journal_id: info.journal_id.clone(),
                            revision,
                        };
                        self.store
                            .set_cursor(&source, &cursor)
                            .map_err(|e| tonic::Status::internal(e.to_string()))?;
                    }
                }
                Ok::<(), tonic::Status>(())
            };
            let ended = tokio::select! {
                ended = session => ended,
                _ = stop.wait_for(|s| *s) => return,
            };
            if let Err(status) = ended {
                tracing::debug!(provider = %provider, code = ?status.code(), error = status.message(), "provider journal watch interrupted");
            }
            tokio::select! {
                () = tokio::time::sleep(backoff.next()) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}
