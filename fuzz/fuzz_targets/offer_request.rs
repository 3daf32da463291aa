//! `OfferService` requests as the provider's node checks them: the first byte picks the RPC,
//! the rest is its request message.
//!
//! - `PublishOffer`: the claimed provider (`provider_of`), `offer::validate`, then
//!   `offer::publish` as a create and as an update of the stored offer, and the calendar
//!   the node builds from the stored result.
//! - `WithdrawOffer`: the offer id and `offer::withdraw` of the stored offer.
//! - `AnnounceMaintenance`: the period (`closed_period`) and the offer's calendar with it
//!   declared.
#![no_main]

use fedmesh_core::calendar::closed_period;
use fedmesh_core::offer;
use fedmesh_fuzz::{NOW, calendar, provider, ts};
use fedmesh_proto::pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => publish(body),
        1 => withdraw(body),
        _ => announce(body),
    }
});

fn publish(body: &[u8]) {
    let Ok(request) = pb::PublishOfferRequest::decode(body) else {
        return;
    };
    let Some(incoming) = request.offer else {
        return;
    };
    let member = provider();
    let _ = offer::provider_of(&incoming.offer_id);
    let Ok(valid) = offer::validate(incoming, &member) else {
        return;
    };
    let stored = fedmesh_fuzz::offer();
    for current in [None, Some(stored)] {
        let published = offer::publish(
            current,
            valid.clone(),
            &member,
            &request.etag,
            "2".into(),
            ts(NOW),
        );
        if let Ok(published) = published {
            let cal = fedmesh_grpc::figures::calendar_of(&published.offer);
            let _ = cal.service_time(NOW - 7 * 86_400, NOW);
            let _ = offer::tenant_url(&published.offer, "unistra");
        }
    }
}

fn withdraw(body: &[u8]) {
    let Ok(request) = pb::WithdrawOfferRequest::decode(body) else {
        return;
    };
    let _ = offer::provider_of(&request.offer_id);
    let _ = offer::withdraw(fedmesh_fuzz::offer(), &request.etag, "2".into(), ts(NOW));
}

fn announce(body: &[u8]) {
    let Ok(request) = pb::AnnounceMaintenanceRequest::decode(body) else {
        return;
    };
    let _ = offer::provider_of(&request.offer_id);
    let Ok(period) = closed_period("period", request.period.as_ref()) else {
        return;
    };
    if period.len() > fedmesh_core::usage::MAX_OUTAGE {
        return;
    }
    let declared = calendar().clone().with_maintenance([period]);
    let _ = declared.service_time(period.start - 86_400, period.end + 86_400);
    let _ = declared.add_service_time(period.start, 3_600);
}
