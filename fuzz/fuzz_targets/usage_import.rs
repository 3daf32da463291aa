//! The CLI's usage and availability import (`fedmesh usage report --file`,
//! `fedmesh availability report --file`): CSV (RFC 4180 quoting) or JSON Lines, then each row
//! to a record.
//!
//! The parsers of a file's text are private to `fedmesh::reports`; the public entry points,
//! `read_usage` and `read_availability`, take a path. So the input is written to a temporary
//! file first. The first byte picks the reader and the format (`.csv` or `.jsonl`, which the
//! readers choose by extension) and whether `--offer` is given.
#![no_main]

use std::io::Write as _;

use fedmesh::reports::{read_availability, read_usage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let suffix = if selector & 1 == 0 { ".csv" } else { ".jsonl" };
    let offer = (selector & 4 != 0).then_some("rennes2.collab");
    let Ok(mut file) = tempfile::Builder::new()
        .prefix("fedmesh-fuzz-")
        .suffix(suffix)
        .tempfile()
    else {
        return;
    };
    if file.write_all(text).and_then(|()| file.flush()).is_err() {
        return;
    }
    if selector & 2 == 0 {
        let _ = read_usage(file.path(), offer);
    } else {
        let _ = read_availability(file.path(), offer);
    }
});
