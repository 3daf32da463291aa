//! Identities and names from outside: the URI SAN of a peer's certificate (`Identity`), member
//! ids and federation names (configuration, offer ids, request fields), offer ids
//! (`<member>.<service_id>`), registered endpoints and the HTTP/2 path the authorization table
//! looks up.
//!
//! Round trips: a parsed identity, member id or federation name prints back to its input and
//! parses again to the same value; an offer id that names a provider is rebuilt by `offer_id`.
#![no_main]

use fedmesh_core::{FederationName, Identity, MemberId, Role, authz, endpoint, offer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(identity) = text.parse::<Identity>() {
        let uri = identity.to_uri();
        assert_eq!(
            uri, text,
            "an identity prints back to the URI it was read from"
        );
        assert_eq!(uri.parse::<Identity>().as_ref(), Ok(&identity));
        let _ = (identity.role(), identity.member(), identity.name());
    }
    if let Ok(member) = text.parse::<MemberId>() {
        assert_eq!(member.to_string(), text);
        assert_eq!(member.to_string().parse::<MemberId>().as_ref(), Ok(&member));
    }
    if let Ok(federation) = text.parse::<FederationName>() {
        assert_eq!(federation.to_string(), text);
        assert_eq!(
            federation.to_string().parse::<FederationName>().as_ref(),
            Ok(&federation)
        );
    }
    if let Some(provider) = offer::provider_of(text) {
        let (_, service_id) = text.split_once('.').expect("provider_of found a dot");
        assert_eq!(offer::offer_id(&provider, service_id), text);
    }
    let _ = endpoint::validate(text);
    for role in Role::ALL {
        let _ = authz::decide(role, text);
    }
});
