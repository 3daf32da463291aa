//! The federation's trust data, followed from the coordinator: every
//! `coordinator.crl_refresh_ms` the node asks `RegistryService.GetCrl`.
//!
//! - A newer CRL signed by the federation CA is put in force for new connections at once (and
//!   kept in the data directory for restarts), and the connections a revoked peer already has
//!   open are closed. A certificate revoked on the coordinator is thus shut out of every node
//!   within that interval.
//! - The members removed from the federation are refused whatever certificate they present,
//!   their open connections are closed, no request is sent to them any more, and every
//!   tenancy that involves them ends: pending requests are rejected, running tenancies move to
//!   TERMINATING. The list is kept in the database for restarts.

use std::path::PathBuf;
use std::time::Duration;

use fedmesh_core::MemberId;
use fedmesh_grpc::{GrpcChannel, RemovedMembers};
use fedmesh_proto::pb;
use fedmesh_proto::pb::registry_service_client::RegistryServiceClient;
use fedmesh_store::{Store, StoreError};
use fedmesh_tls::ReloadableServerConfig;
use tokio::sync::watch;

/// Follows the coordinator's CRL and removed members.
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
    /// The removed members the auth layer and the peers refuse.
    pub removed: RemovedMembers,
    /// The node's store.
    pub store: Store,
    /// The node's member.
    pub member: MemberId,
    /// The coordinator's identity, recorded as who ended the tenancies.
    pub coordinator: String,
}

impl CrlFollower {
    fn apply(&self, der: &[u8], from: &str) -> bool {
        fedmesh_grpc::connections::enforce_crl(&self.tls, &self.connections, der, from)
    }

    /// Puts a list of removed members in force: refused from now on, connections closed,
    /// tenancies ended. Idempotent.
    /// Tenancies are ended for the members new to the list, or for all of them with `every`
    /// (at start-up, which finishes a pass a crash interrupted): the scan is not repeated at
    /// each refresh.
    async fn apply_removed(
        &self,
        members: &[pb::RemovedMember],
        every: bool,
    ) -> Result<(), StoreError> {
        let added = self
            .removed
            .replace(members.iter().map(|m| m.member_id.clone()));
        for member in &added {
            let closed = self.connections.close_member(member);
            tracing::warn!(member = %member, closed, "member removed from the federation: refused from now on");
        }
        for removed in members
            .iter()
            .filter(|m| every || added.contains(&m.member_id))
        {
            let (ended, last) =
                end_tenancies(&self.store, &self.member, removed, &self.coordinator)?;
            if let Some(revision) = last {
                self.store.journal_durable(revision).await?;
                tracing::warn!(member = %removed.member_id, ended, "tenancies of a removed member ended");
            }
        }
        Ok(())
    }

    /// Runs until `stop`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        if let Ok(der) = std::fs::read(&self.file) {
            self.apply(&der, "the data directory");
        }
        match self.store.removed_members() {
            Ok(members) => {
                if let Err(error) = self.apply_removed(&members, true).await {
                    tracing::error!(%error, "cannot apply the removed members");
                }
            }
            Err(error) => tracing::error!(%error, "cannot read the removed members"),
        }
        let mut client = RegistryServiceClient::new(self.channel.clone());
        loop {
            match client.get_crl(pb::GetCrlRequest {}).await {
                Ok(response) => {
                    let response = response.into_inner();
                    let der = response.crl_der;
                    if !der.is_empty() && self.apply(&der, "the coordinator") {
                        let tmp = self.file.with_extension("tmp");
                        let written = std::fs::write(&tmp, &der)
                            .and_then(|()| std::fs::rename(&tmp, &self.file));
                        if let Err(error) = written {
                            tracing::warn!(%error, "cannot keep the CRL in the data directory");
                        }
                    }
                    let applied = match self.store.set_removed_members(&response.removed_members) {
                        Ok(()) => self.apply_removed(&response.removed_members, false).await,
                        Err(e) => Err(e),
                    };
                    if let Err(error) = applied {
                        tracing::error!(%error, "cannot apply the removed members");
                    }
                }
                Err(status) => {
                    tracing::debug!(code = ?status.code(), "the coordinator's CRL is unavailable for now");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(crate::registration::jittered(self.interval)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// Ends every tenancy on this node that involves `removed`: those of this member's offers with
/// it as tenant (the reference copies, data kept for the offer's retention period), and this
/// member's copies of tenancies on its offers. Each change is journaled. Returns how many, and
/// the last journal revision written.
pub fn end_tenancies(
    store: &Store,
    member: &MemberId,
    removed: &pb::RemovedMember,
    actor: &str,
) -> Result<(usize, Option<u64>), StoreError> {
    let gone = removed.member_id.as_str();
    let concerned = store.list_subscriptions("", usize::MAX, |s| {
        (s.provider_member_id == gone || s.subscriber_member_id == gone)
            && matches!(
                s.state(),
                pb::SubscriptionState::Requested
                    | pb::SubscriptionState::Active
                    | pb::SubscriptionState::Suspended
            )
    })?;
    let (mut ended, mut last) = (0, None);
    for subscription in concerned {
        let now: prost_types::Timestamp = std::time::SystemTime::now().into();
        let mut deadline = now;
        if subscription.provider_member_id == member.as_str() {
            let retention = store
                .get_offer(&subscription.offer_id)?
                .and_then(|o| o.gdpr)
                .and_then(|g| g.retention_period)
                .map_or(0, |d| d.seconds.max(0));
            deadline.seconds = deadline.seconds.saturating_add(retention);
        }
        let written = store.update_subscription(
            member.as_str(),
            &subscription.subscription_id,
            None,
            |current, _| {
                let current = current.ok_or(())?;
                fedmesh_core::subscription::offboard(
                    &current,
                    gone,
                    actor,
                    &removed.reason,
                    deadline,
                    now,
                )
                .ok_or(())
            },
        );
        match written {
            Ok((_, revision)) => {
                ended += 1;
                last = Some(revision);
            }
            // Changed meanwhile so that nothing is left to end.
            Err(fedmesh_store::WriteError::Rejected(())) => {}
            Err(fedmesh_store::WriteError::Repeated(_)) => {}
            Err(fedmesh_store::WriteError::Store(e)) => return Err(e),
        }
    }
    Ok((ended, last))
}
