//! What a node reports of its state, read from the store when asked: its `/metrics` gauges
//! and `NodeService.GetNodeStatus` (`fedmesh status`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use fedmesh_core::MemberId;
use fedmesh_grpc::metrics::Snapshot;
use fedmesh_proto::pb;
use fedmesh_store::Store;

/// The snapshot function of `member`'s node (certificate `cert`).
pub fn snapshot(store: Store, member: MemberId, cert: PathBuf) -> impl Fn() -> Snapshot {
    move || {
        let now = fedmesh_grpc::figures::now();
        let mut snapshot = Snapshot {
            journal_revision: store.journal_bounds().ok().map(|(_, last)| last),
            certificate_expiry: fedmesh_tls::config::cert_not_after(&cert)
                .ok()
                .map(|t| t as f64),
            store_writable: Some(if store.write_failure().is_some() {
                0.0
            } else {
                1.0
            }),
            ..Default::default()
        };
        if let Ok(outbox) = store.outbox() {
            snapshot.outbox_depth = Some(outbox.len() as u64);
            snapshot.outbox_oldest_age_seconds = Some(
                outbox
                    .iter()
                    .map(|(_, item)| (now - item.queued_at).max(0) as f64)
                    .fold(0.0, f64::max),
            );
        }
        let mut incidents: BTreeMap<&str, f64> = BTreeMap::new();
        for state in ["on_time", "at_risk", "breached"] {
            incidents.insert(state, 0.0);
        }
        if let Ok(counted) = store.fold_incidents(incidents.clone(), |mut counts, incident| {
            if fedmesh_core::incident::is_open(&incident) {
                *counts
                    .entry(fedmesh_core::incident::worst_clock_state(&incident))
                    .or_default() += 1.0;
            }
            counts
        }) {
            incidents = counted;
        }
        snapshot.open_incidents = incidents
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let own_offers = store
            .list_offers("", usize::MAX, |o| {
                o.provider_member_id == member.as_str()
                    && o.status != pb::OfferStatus::Withdrawn as i32
            })
            .unwrap_or_default();
        for offer in own_offers {
            let tenants = store
                .list_subscriptions("", usize::MAX, |s| {
                    s.offer_id == offer.offer_id && fedmesh_core::usage::is_served(s.state())
                })
                .map_or(0, |s| s.len());
            snapshot
                .tenants
                .push((offer.offer_id.clone(), tenants as f64));
            let users = fedmesh_grpc::figures::latest_active_users(&store, &offer).unwrap_or(0.0);
            snapshot.active_users.push((offer.offer_id, users));
        }
        snapshot
    }
}

fn counts<'a>(states: impl Iterator<Item = &'a str>) -> Vec<pb::StateCount> {
    let mut by: BTreeMap<&str, i32> = BTreeMap::new();
    for state in states {
        *by.entry(state).or_default() += 1;
    }
    by.into_iter()
        .map(|(state, count)| pb::StateCount {
            state: state.to_owned(),
            count,
        })
        .collect()
}

fn state_word(state: pb::SubscriptionState) -> &'static str {
    state
        .as_str_name()
        .trim_start_matches("SUBSCRIPTION_STATE_")
        .split('_')
        .next()
        .unwrap_or("")
}

/// The `GetNodeStatus` answer of `member`'s node (certificate `cert`); `link` is the outcome
/// of its last exchange with the coordinator, when one is configured.
pub fn status(
    store: Store,
    member: MemberId,
    cert: PathBuf,
    link: Option<crate::registration::Link>,
) -> fedmesh_grpc::node_info::StatusFn {
    fedmesh_grpc::node_info::StatusFn(std::sync::Arc::new(move || {
        let now = fedmesh_grpc::figures::now();
        let mut status = pb::GetNodeStatusResponse {
            coordinator_configured: link.is_some(),
            journal_revision: store.journal_bounds().map_or(0, |(_, last)| last),
            certificate_expire_time: fedmesh_tls::config::cert_not_after(&cert)
                .ok()
                .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
            ..Default::default()
        };
        if let Some(link) = &link {
            let state = match link.lock() {
                Ok(guard) => guard.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            status.coordinator_reachable = state.last_contact.is_some() && state.error.is_none();
            status.coordinator_last_contact = state.last_contact.map(Into::into);
            status.coordinator_error = state.error.unwrap_or_default();
        }
        if let Ok(outbox) = store.outbox() {
            status.outbox_depth = outbox.len() as i32;
            let oldest = outbox
                .iter()
                .map(|(_, item)| (now - item.queued_at).max(0))
                .max()
                .unwrap_or(0);
            status.outbox_oldest_age = Some(prost_types::Duration {
                seconds: oldest,
                nanos: 0,
            });
        }
        let subscriptions = store
            .list_subscriptions("", usize::MAX, |_| true)
            .unwrap_or_default();
        status.subscriptions = counts(
            subscriptions
                .iter()
                .filter(|s| s.subscriber_member_id == member.as_str())
                .map(|s| state_word(s.state())),
        );
        status.tenancies = counts(
            subscriptions
                .iter()
                .filter(|s| s.provider_member_id == member.as_str())
                .map(|s| state_word(s.state())),
        );
        status.open_incidents = store
            .fold_incidents(BTreeMap::new(), |mut by: BTreeMap<&str, i32>, incident| {
                if fedmesh_core::incident::is_open(&incident) {
                    *by.entry(fedmesh_core::incident::worst_clock_state(&incident))
                        .or_default() += 1;
                }
                by
            })
            .unwrap_or_default()
            .into_iter()
            .map(|(state, count)| pb::StateCount {
                state: state.to_owned(),
                count,
            })
            .collect();
        status.offer_count = store
            .list_offers("", usize::MAX, |o| {
                o.provider_member_id == member.as_str()
                    && o.status != pb::OfferStatus::Withdrawn as i32
            })
            .map_or(0, |o| o.len() as i32);
        status
    }))
}
