//! The federation CRL, followed from the coordinator: every `coordinator.crl_refresh_ms` the
//! node asks `RegistryService.GetCrl`, and a newer CRL signed by the federation CA is put in
//! force for new connections at once (and kept in the data directory for restarts), and the
//! connections a revoked peer already has open are closed. A certificate revoked on the
//! coordinator is thus shut out of every node within that interval.

use std::path::PathBuf;
use std::time::Duration;

use fedmesh_grpc::GrpcChannel;
use fedmesh_proto::pb;
use fedmesh_proto::pb::registry_service_client::RegistryServiceClient;
use fedmesh_tls::ReloadableServerConfig;
use tokio::sync::watch;

/// Follows the coordinator's CRL.
#[derive(Debug, Clone)]
pub struct CrlFollower {
    /// The channel to the coordinator.
    pub channel: GrpcChannel,
    /// The TLS configuration to update.
    pub tls: ReloadableServerConfig,
    /// How often to ask.
    pub interval: Duration,
    /// Where the last CRL received is kept.
    pub file: PathBuf,
    /// The server's open connections.
    pub connections: fedmesh_grpc::connections::Connections,
}

impl CrlFollower {
    fn apply(&self, der: &[u8], from: &str) -> bool {
        fedmesh_grpc::connections::enforce_crl(&self.tls, &self.connections, der, from)
    }

    /// Runs until `stop`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        if let Ok(der) = std::fs::read(&self.file) {
            self.apply(&der, "the data directory");
        }
        let mut client = RegistryServiceClient::new(self.channel.clone());
        loop {
            match client.get_crl(pb::GetCrlRequest {}).await {
                Ok(response) => {
                    let der = response.into_inner().crl_der;
                    if !der.is_empty() && self.apply(&der, "the coordinator") {
                        let tmp = self.file.with_extension("tmp");
                        let written = std::fs::write(&tmp, &der)
                            .and_then(|()| std::fs::rename(&tmp, &self.file));
                        if let Err(error) = written {
                            tracing::warn!(%error, "cannot keep the CRL in the data directory");
                        }
                    }
                }
                Err(status) => {
                    tracing::debug!(code = ?status.code(), "the coordinator's CRL is unavailable for now");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}
