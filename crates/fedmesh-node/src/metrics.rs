//! What a node's `/metrics` reports of its state, read from the store at each scrape.

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
        if let Ok(open) = store.list_incidents("", usize::MAX, fedmesh_core::incident::is_open) {
            for incident in &open {
                *incidents
                    .entry(fedmesh_core::incident::worst_clock_state(incident))
                    .or_default() += 1.0;
            }
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
            let month =
                fedmesh_grpc::figures::current_month(&fedmesh_grpc::figures::calendar_of(&offer));
            let users = fedmesh_grpc::figures::month_usage(&store, &offer.offer_id, month)
                .map(|records| {
                    fedmesh_core::usage::aggregate(
                        records.iter().filter(|r| r.metric == "active_users"),
                    )
                    .iter()
                    .map(|a| a.last_value)
                    .sum::<f64>()
                })
                .unwrap_or(0.0);
            snapshot.active_users.push((offer.offer_id, users));
        }
        snapshot
    }
}
