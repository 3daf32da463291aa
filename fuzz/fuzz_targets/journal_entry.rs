//! Journal entries from outside: what a node or the coordinator receives when it follows
//! another node's journal (`Watch`, `ListEntries`). Each decoded `JournalEntry` goes through
//! what the serving node decides for each kind of reader (`journal::visible`,
//! `journal::redact`), what the coordinator reads off replicated incidents, and the JSON the
//! node posts to the helpdesk webhook for incidents and maintenance windows
//! (`notify::event_json`).
#![no_main]

use fedmesh_core::{Identity, MemberId, incident, journal};
use fedmesh_fuzz::{FEDERATION, PROVIDER, SUBSCRIBER, admin_uri, node_uri};
use fedmesh_proto::pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(entry) = pb::JournalEntry::decode(data) else {
        return;
    };
    let local: MemberId = PROVIDER.parse().expect("a member id");
    let readers = [
        admin_uri(PROVIDER),
        node_uri(SUBSCRIBER),
        node_uri("rouen"),
        format!("spiffe://{FEDERATION}/coordinator"),
        format!("spiffe://{FEDERATION}/member/{PROVIDER}/agent/probe"),
    ];
    for reader in readers {
        let caller: Identity = reader.parse().expect("a fixture identity");
        let is_tenant = |offer_id: &str| offer_id.starts_with(PROVIDER);
        if journal::visible(&entry, &caller, &local, &is_tenant) {
            let _ = journal::redact(entry.clone(), &caller);
        }
    }
    let _ = fedmesh_node::notify::event_json(&local, &entry);
    if let Some(pb::journal_entry::Payload::Incident(replicated)) = &entry.payload {
        let _ = incident::is_open(replicated);
        let _ = incident::worst_clock_state(replicated);
    }
});
