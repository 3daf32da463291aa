//! Service calendars: `Calendar::from_proto` on a `ServiceCalendar` from outside (an offer's
//! engagement, published by an admin or replicated from another member's node), then the
//! questions SLA clocks and availability figures ask of it around an instant.
//!
//! Input: 4 bytes (little-endian minutes since 1970, so any instant the calendar accepts),
//! then the `ServiceCalendar` message.
#![no_main]

use fedmesh_core::calendar::Calendar;
use fedmesh_proto::pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// 9999-01-01T00:00:00Z, the end of the instants calendars accept.
const MAX_INSTANT: i64 = 253_370_764_800;

fuzz_target!(|data: &[u8]| {
    let Some((minutes, body)) = data.split_first_chunk::<4>() else {
        return;
    };
    let Ok(proto) = pb::ServiceCalendar::decode(body) else {
        return;
    };
    let Ok(cal) = Calendar::from_proto("offer.engagement.calendar", &proto) else {
        return;
    };
    let at = (i64::from(u32::from_le_bytes(*minutes)) * 60).min(MAX_INSTANT - 1);
    let _ = cal.is_in_service(at);
    let _ = cal.offset_at(at);
    let day = cal.local_day(at);
    let _ = (
        cal.day_start(day),
        cal.day_start(day + 1),
        cal.is_working_day(day),
    );
    let _ = cal.service_time(at, at + 40 * 86_400);
    let _ = cal.service_spans(at - 86_400, at + 86_400);
    let _ = cal.add_service_time(at, 8 * 3_600);
});
