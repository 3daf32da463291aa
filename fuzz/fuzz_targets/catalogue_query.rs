//! Catalogue queries: a `SearchOffersRequest` or `WatchCatalogueRequest` becomes a
//! `catalogue::Query` (`Query::search`, `Query::watch`), which then selects among catalogue
//! entries replicated from members' nodes (`Query::matches`, accent folding of both sides).
//!
//! Input: steps (`fedmesh_fuzz::Steps`); the first selector picks search or watch and its
//! request follows; every later step is one `CatalogueOffer` entry (its selector unused).
#![no_main]

use fedmesh_core::catalogue::Query;
use fedmesh_fuzz::Steps;
use fedmesh_proto::pb;
use libfuzzer_sys::fuzz_target;

/// Most entries matched per input.
const MAX_ENTRIES: usize = 16;

fuzz_target!(|data: &[u8]| {
    let mut steps = Steps::new(data);
    let Some(selector) = steps.selector() else {
        return;
    };
    let query = if selector % 2 == 0 {
        let Some(request) = steps.message::<pb::SearchOffersRequest>() else {
            return;
        };
        Query::search(&request)
    } else {
        let Some(request) = steps.message::<pb::WatchCatalogueRequest>() else {
            return;
        };
        Query::watch(&request)
    };
    let Ok(query) = query else {
        return;
    };
    let fixture = pb::CatalogueOffer {
        offer: Some(fedmesh_fuzz::offer().clone()),
        ..Default::default()
    };
    let _ = query.matches(&fixture);
    for _ in 0..MAX_ENTRIES {
        if steps.selector().is_none() {
            break;
        }
        let Some(entry) = steps.message::<pb::CatalogueOffer>() else {
            break;
        };
        let _ = query.matches(&entry);
    }
});
