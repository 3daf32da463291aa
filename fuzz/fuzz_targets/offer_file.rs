//! Offer files: `fedmesh offer publish --file offer.toml` reads the admin's TOML with
//! `parse_offer_file` (including the line and column of a bad value), then the node checks the
//! result with `offer::validate`.
#![no_main]

use fedmesh::offer_file::parse_offer_file;
use fedmesh_fuzz::provider;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_offer_file(text) {
        Ok(offer) => {
            let _ = fedmesh_core::offer::validate(offer, &provider());
        }
        Err(error) => {
            let _ = (error.to_string(), error.path());
        }
    }
});
