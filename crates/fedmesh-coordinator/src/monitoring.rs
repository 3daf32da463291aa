//! What the coordinator's `/metrics` reports of its state, read from the store at each scrape:
//! nodes by liveness, replication lag per node, tenants and users per offer, open incidents.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use fedmesh_core::liveness::Liveness;
use fedmesh_grpc::figures;
use fedmesh_grpc::metrics::Snapshot;
use fedmesh_proto::pb;
use fedmesh_store::Store;

/// The snapshot function of the coordinator (certificate `cert`); `staleness` says when a
/// node is stale.
pub fn snapshot(
    store: Store,
    cert: PathBuf,
    staleness: crate::liveness::Staleness,
) -> impl Fn() -> Snapshot {
    move || {
        let judged = staleness.at(SystemTime::now());
        let mut snapshot = Snapshot {
            certificate_expiry: fedmesh_tls::config::cert_not_after(&cert)
                .ok()
                .map(|t| t as f64),
            store_writable: Some(if store.write_failure().is_some() {
                0.0
            } else {
                1.0
            }),
            heartbeat_allowance_seconds: Some(judged.allowance().as_secs_f64()),
            ..Default::default()
        };
        let nodes = store.list_nodes("", usize::MAX).unwrap_or_default();
        let (mut active, mut stale) = (0.0, 0.0);
        for node in &nodes {
            match judged.of(node) {
                Liveness::Active => active += 1.0,
                Liveness::Stale => stale += 1.0,
            }
            let applied = store
                .cursor(&node.member_id)
                .ok()
                .flatten()
                .map_or(0, |c| c.revision);
            snapshot.replication_lag.push((
                node.member_id.clone(),
                node.journal_revision.saturating_sub(applied) as f64,
            ));
        }
        snapshot.nodes = vec![("active".into(), active), ("stale".into(), stale)];
        let mut incidents: BTreeMap<&str, f64> =
            [("on_time", 0.0), ("at_risk", 0.0), ("breached", 0.0)].into();
        let at = figures::now();
        let offers: Vec<pb::Offer> = store.live_catalogue_offers().unwrap_or_default();
        // One pass over the incidents for every offer: each open one counted with its offer's
        // clocks.
        let terms: BTreeMap<&str, (pb::ServiceEngagement, _)> = offers
            .iter()
            .map(|o| {
                let engagement = o.engagement.clone().unwrap_or_default();
                (o.offer_id.as_str(), (engagement, figures::calendar_of(o)))
            })
            .collect();
        if let Ok(counted) = store.fold_incidents(incidents.clone(), |mut counts, mut i| {
            if let Some((engagement, cal)) = terms.get(i.offer_id.as_str())
                && fedmesh_core::incident::is_open(&i)
            {
                i.sla_clocks =
                    fedmesh_core::incident::clocks(&i, engagement, cal, at, figures::AT_RISK_SHARE);
                *counts
                    .entry(fedmesh_core::incident::worst_clock_state(&i))
                    .or_default() += 1.0;
            }
            counts
        }) {
            incidents = counted;
        }
        for offer in offers {
            let tenants = store.tenancy_counts(&offer.offer_id).map_or(0, |(t, _)| t);
            snapshot
                .tenants
                .push((offer.offer_id.clone(), f64::from(tenants)));
            let users = fedmesh_grpc::figures::latest_active_users(&store, &offer).unwrap_or(0.0);
            snapshot.active_users.push((offer.offer_id.clone(), users));
        }
        snapshot.open_incidents = incidents
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        snapshot
    }
}
