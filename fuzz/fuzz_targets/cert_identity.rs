//! Certificates from outside: every TLS peer's certificate goes through `identity_from_der`
//! (exactly one URI SAN, of a known shape) and its expiry through `not_after_unix`, on
//! arbitrary DER bytes.
//!
//! Round trip: the identity read from a certificate prints to a URI that parses back to it.
#![no_main]

use fedmesh_core::Identity;
use fedmesh_tls::identity::not_after_unix;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(identity) = fedmesh_tls::identity_from_der(data) {
        assert_eq!(
            identity.to_uri().parse::<Identity>().as_ref(),
            Ok(&identity)
        );
    }
    let _ = not_after_unix(data);
});
