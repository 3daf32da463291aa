//! A hostile member's node: a real gRPC server over mutual TLS, presenting a member node's
//! real certificate, that registers its own endpoint with the coordinator and serves a crafted
//! journal to whoever follows it (the coordinator, its tenants' nodes). The test decides every
//! entry: foreign ids, other owners, invalid entities, revisions that go backward, a journal id
//! that changes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use fedmesh::federation::PartyManifest;
use fedmesh_proto::pb;
use fedmesh_proto::pb::journal_service_server::{JournalService, JournalServiceServer};
use fedmesh_proto::pb::watch_response::Event;
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status};

use crate::TestFederation;

/// The journal a hostile node serves.
#[derive(Debug, Clone, Default)]
struct Journal {
    id: String,
    entries: Vec<pb::JournalEntry>,
    /// Revisions up to this one are compacted away: a watch below it is told so.
    compacted: u64,
    /// What `GetSnapshot` sends, before its end marker at the last revision.
    snapshot: Vec<pb::JournalEntry>,
}

impl Journal {
    fn last_revision(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| e.revision)
            .max()
            .unwrap_or(0)
            .max(self.compacted)
    }
}

#[derive(Debug, Clone, Default)]
struct Served(Arc<Mutex<Journal>>);

impl Served {
    fn get(&self) -> Journal {
        self.0.lock().map(|j| j.clone()).unwrap_or_default()
    }
}

#[tonic::async_trait]
impl JournalService for Served {
    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<fedmesh_grpc::stream::ResponseStream<pb::WatchResponse>>, Status> {
        let since = request.into_inner().since_revision;
        let journal = self.get();
        if since < journal.compacted {
            let mut status = Status::out_of_range("revision compacted");
            status.metadata_mut().insert(
                fedmesh_grpc::error::COMPACT_REVISION_HEADER,
                journal
                    .compacted
                    .to_string()
                    .parse()
                    .unwrap_or_else(|e| panic!("metadata: {e}")),
            );
            return Err(status);
        }
        let last_revision = journal
            .entries
            .iter()
            .map(|e| e.revision)
            .max()
            .unwrap_or(0);
        // Every entry above `since`, in the order the test gave them (so that it can send a
        // revision below one already sent), then caught up, then silence.
        let mut events: Vec<Result<pb::WatchResponse, Status>> = journal
            .entries
            .into_iter()
            .filter(|e| e.revision > since)
            .map(|e| {
                Ok(pb::WatchResponse {
                    event: Some(Event::Entry(e)),
                })
            })
            .collect();
        events.push(Ok(pb::WatchResponse {
            event: Some(Event::CaughtUp(pb::WatchCaughtUp { last_revision })),
        }));
        let stream = tokio_stream::iter(events).chain(tokio_stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_entries(
        &self,
        _request: Request<pb::ListEntriesRequest>,
    ) -> Result<Response<pb::ListEntriesResponse>, Status> {
        let journal = self.get();
        Ok(Response::new(pb::ListEntriesResponse {
            last_revision: journal
                .entries
                .iter()
                .map(|e| e.revision)
                .max()
                .unwrap_or(0),
            entries: journal.entries,
            next_page_token: String::new(),
        }))
    }

    async fn get_journal_info(
        &self,
        _request: Request<pb::GetJournalInfoRequest>,
    ) -> Result<Response<pb::GetJournalInfoResponse>, Status> {
        let journal = self.get();
        Ok(Response::new(pb::GetJournalInfoResponse {
            member_id: String::new(),
            first_revision: journal.compacted + 1,
            last_revision: journal.last_revision(),
            journal_id: journal.id,
            server_time: Some(std::time::SystemTime::now().into()),
        }))
    }

    async fn get_snapshot(
        &self,
        _request: Request<pb::GetSnapshotRequest>,
    ) -> Result<Response<fedmesh_grpc::stream::ResponseStream<pb::GetSnapshotResponse>>, Status>
    {
        use pb::get_snapshot_response::Item;
        let journal = self.get();
        let end = pb::SnapshotEnd {
            revision: journal.last_revision(),
            journal_id: journal.id.clone(),
            item_count: journal.snapshot.len() as u64,
        };
        let items: Vec<Result<pb::GetSnapshotResponse, Status>> = journal
            .snapshot
            .into_iter()
            .map(Item::Entry)
            .chain([Item::End(end)])
            .map(|item| Ok(pb::GetSnapshotResponse { item: Some(item) }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }
}

/// A running hostile node; it stops when dropped.
#[derive(Debug)]
pub struct HostileNode {
    addr: SocketAddr,
    served: Served,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostileNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A journal entry of `payload` at `revision`, with the kind that matches it.
pub fn entry(revision: u64, payload: pb::journal_entry::Payload) -> pb::JournalEntry {
    use pb::journal_entry::Payload;
    let (kind, id) = match &payload {
        Payload::Offer(o) => (pb::EntityKind::Offer, o.offer_id.clone()),
        Payload::Subscription(s) => (pb::EntityKind::Subscription, s.subscription_id.clone()),
        Payload::Incident(i) => (pb::EntityKind::Incident, i.incident_id.clone()),
        Payload::MaintenanceWindow(m) => {
            (pb::EntityKind::MaintenanceWindow, m.maintenance_id.clone())
        }
        Payload::UsageRecords(_) => (pb::EntityKind::UsageRecord, String::new()),
        Payload::AvailabilityRecords(_) => (pb::EntityKind::AvailabilityRecord, String::new()),
        Payload::MonthlyReport(r) => (pb::EntityKind::MonthlyReport, r.report_id.clone()),
    };
    pb::JournalEntry {
        revision,
        record_time: Some(std::time::SystemTime::now().into()),
        entity_kind: kind as i32,
        entity_id: id,
        payload: Some(payload),
        ..Default::default()
    }
}

/// The value of `fedmesh_replication_rejected_total{member,reason}` on a `/metrics` page.
pub fn rejected(page: &str, member: &str, reason: &str) -> u64 {
    let prefix =
        format!("fedmesh_replication_rejected_total{{member=\"{member}\",reason=\"{reason}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

impl HostileNode {
    /// Starts a node presenting `party`'s node certificate (the member's real one) on a free
    /// loopback port, serving an empty journal.
    pub async fn start(federation: &TestFederation, party: &PartyManifest) -> Self {
        let identity = tonic::transport::Identity::from_pem(
            crate::read(&party.node_cert),
            crate::read(&party.node_key),
        );
        let tls = tonic::transport::ServerTlsConfig::new()
            .identity(identity)
            .client_ca_root(tonic::transport::Certificate::from_pem(federation.ca_pem()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("binding the hostile node: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("hostile node address: {e}"));
        let served = Served::default();
        let server = tonic::transport::Server::builder()
            .tls_config(tls)
            .unwrap_or_else(|e| panic!("hostile node TLS: {e}"))
            .add_service(JournalServiceServer::new(served.clone()));
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let task = tokio::spawn(async move {
            let _ = server.serve_with_incoming(incoming).await;
        });
        Self { addr, served, task }
    }

    /// Its endpoint, as a node advertises one.
    pub fn endpoint(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// Serves `entries` (in this order) as journal `journal_id` from now on, to new watches.
    pub fn serve(&self, journal_id: &str, entries: Vec<pb::JournalEntry>) {
        if let Ok(mut journal) = self.served.0.lock() {
            *journal = Journal {
                id: journal_id.to_owned(),
                entries,
                ..Journal::default()
            };
        }
    }

    /// Serves journal `journal_id` compacted through revision `compacted` (nothing after it),
    /// whose `GetSnapshot` sends `snapshot`, from now on.
    pub fn serve_compacted(
        &self,
        journal_id: &str,
        compacted: u64,
        snapshot: Vec<pb::JournalEntry>,
    ) {
        if let Ok(mut journal) = self.served.0.lock() {
            *journal = Journal {
                id: journal_id.to_owned(),
                entries: Vec::new(),
                compacted,
                snapshot,
            };
        }
    }

    /// Registers this node's endpoint with the coordinator as `party`'s node (its real
    /// certificate: the coordinator cannot tell it from the real node).
    pub async fn register(&self, federation: &TestFederation, party: &PartyManifest) {
        let channel = federation.channel(
            &federation.coordinator().endpoint,
            &party.node_cert,
            &party.node_key,
        );
        pb::registry_service_client::RegistryServiceClient::new(channel)
            .register_node(pb::RegisterNodeRequest {
                endpoint: self.endpoint(),
                software_version: "0.0.1-hostile".into(),
            })
            .await
            .unwrap_or_else(|s| panic!("registering the hostile node: {s:?}"));
    }
}
