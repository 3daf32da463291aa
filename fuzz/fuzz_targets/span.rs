//! Interval arithmetic on instants from outside: the periods of outages, maintenance windows
//! and usage records reach `span::normalize`, `subtract`, `intersect` and `measure` once they
//! passed `calendar::closed_period` (both ends between 1970 and 9999, end after start).
//!
//! Input: pairs of little-endian `u64` (start, end), reduced into the instants
//! `closed_period` accepts; the first byte says how many pairs go to the first list.
//!
//! Property: the parts of `a` outside `b` and inside `b` add up to `a`.
#![no_main]

use fedmesh_core::calendar::closed_period;
use fedmesh_core::span::{self, Span};
use fedmesh_fuzz::ts;
use fedmesh_proto::pb;
use libfuzzer_sys::fuzz_target;

/// 9999-01-01T00:00:00Z, the end of the instants `closed_period` accepts.
const MAX_INSTANT: u64 = 253_370_764_800;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let spans: Vec<Span> = rest
        .chunks_exact(16)
        .filter_map(|pair| {
            let (start, end) = pair.split_at(8);
            let instant = |bytes: &[u8]| {
                let raw = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
                (raw % MAX_INSTANT) as i64
            };
            let period = pb::Period {
                start_time: Some(ts(instant(start))),
                end_time: Some(ts(instant(end))),
            };
            closed_period("period", Some(&period)).ok()
        })
        .collect();
    let split = usize::from(split).min(spans.len());
    let a = span::normalize(spans[..split].to_vec());
    let b = span::normalize(spans[split..].to_vec());
    let outside = span::subtract(&a, &b);
    let inside = span::intersect(&a, &b);
    assert_eq!(
        span::measure(&outside) + span::measure(&inside),
        span::measure(&a),
        "a \\ b and a ∩ b partition a"
    );
});
