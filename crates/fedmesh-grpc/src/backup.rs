//! `AdminService`: online backup of the serving process's database.

use std::sync::Arc;

use fedmesh_core::Role;
use fedmesh_proto::pb;
use fedmesh_store::Store;
use tonic::{Request, Response, Status};

use crate::auth::caller;
use crate::error::ServiceError;
use crate::stream::ResponseStream;

/// The largest chunk of a backup stream; smaller when `limits.max_encoding_message_bytes` is.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Room for a chunk's framing within a message.
const FRAMING: usize = 64;

/// Serves `AdminService` over one store.
#[derive(Debug, Clone)]
pub struct AdminApi {
    store: Store,
    /// Who may back up this database: the member's admins on a node, the coordinator itself
    /// on the coordinator (the authorization table lets both roles call; this picks one).
    allowed: Role,
    /// One backup at a time: each holds a copy of the database in memory.
    running: Arc<tokio::sync::Semaphore>,
    /// The chunk size: [`CHUNK_BYTES`], or less to fit the server's message size limit.
    chunk_bytes: usize,
}

impl AdminApi {
    /// The service over `store`, callable by `allowed` only, sending messages of at most
    /// `max_message_bytes` (`limits.max_encoding_message_bytes`).
    pub fn new(store: Store, allowed: Role, max_message_bytes: usize) -> Self {
        Self {
            store,
            allowed,
            running: Arc::new(tokio::sync::Semaphore::new(1)),
            chunk_bytes: max_message_bytes
                .saturating_sub(FRAMING)
                .clamp(1, CHUNK_BYTES),
        }
    }
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminApi {
    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<ResponseStream<pb::BackupResponse>>, Status> {
        let identity = caller(&request)?;
        if identity.role() != self.allowed {
            return Err(ServiceError::PermissionDenied(format!(
                "{identity} may not back up this database: only {} may",
                match self.allowed {
                    Role::Coordinator => "the coordinator's own identity",
                    _ => "this member's admins",
                }
            ))
            .into());
        }
        let Ok(permit) = self.running.clone().try_acquire_owned() else {
            return Err(Status::resource_exhausted(
                "a backup of this database is already running: retry when it ends",
            ));
        };
        let store = self.store.clone();
        let started = std::time::Instant::now();
        let snapshot = tokio::task::spawn_blocking(move || store.snapshot())
            .await
            .map_err(|e| Status::internal(format!("backup task failed: {e}")))?
            .map_err(ServiceError::from)?;
        tracing::info!(
            %identity,
            bytes = snapshot.bytes.len(),
            entries = snapshot.summary.entries,
            took_ms = started.elapsed().as_millis() as u64,
            "database snapshot taken for a backup"
        );
        let total = snapshot.bytes.len() as u64;
        let summary = snapshot.summary;
        let bytes = snapshot.bytes;
        let size = self.chunk_bytes;
        // Each chunk is copied out when the stream reaches it, so the server holds the
        // snapshot once, not twice. The permit goes with the stream: the next backup may
        // start once this one is sent (or abandoned).
        let chunks = (0..bytes.len().max(1))
            .step_by(size)
            .enumerate()
            .map(move |(i, at)| {
                let _running = &permit;
                let chunk = bytes[at..(at + size).min(bytes.len())].to_vec();
                Ok(if i == 0 {
                    pb::BackupResponse {
                        chunk,
                        total_bytes: total,
                        entries: summary.entries,
                        schema_version: summary.schema_version,
                    }
                } else {
                    pb::BackupResponse {
                        chunk,
                        ..Default::default()
                    }
                })
            });
        let stream = tokio_stream::iter(chunks);
        Ok(Response::new(Box::pin(stream)))
    }
}
