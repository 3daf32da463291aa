//! Who a member's node acts for when it forwards its admin's request to another member's node.
//!
//! A subscriber's admin asks its own node (a tenancy request, a change of users, an incident
//! opened or commented); that node forwards the request to the provider's node under its own
//! certificate, and says for whom in the `fedmesh-acting-for` header: the admin's identity.
//! The provider takes that word only for the node's own member (a node speaks for its
//! member's admins and agents, nobody else's) and records the person in the histories it
//! journals, which the subscriber's node mirrors: both sides show who did it. Rights stay the
//! node's: the header names a person, it grants nothing.
//!
//! The auth layer checks the header and runs the call with the person in a task-local
//! ([`actor`] reads it), so that every handler records the same person without threading it
//! through.

use std::future::Future;

use fedmesh_core::{Identity, Role};
use tonic::Status;

/// The request header naming the person a node acts for (an identity URI).
pub const HEADER: &str = "fedmesh-acting-for";

tokio::task_local! {
    static ACTING: Option<Identity>;
}

/// Who to record as having done what `caller` asks: the person its node acts for, when
/// the call carries one, otherwise the caller itself.
pub fn actor(caller: &Identity) -> Identity {
    ACTING
        .try_with(|acting| acting.clone())
        .ok()
        .flatten()
        .filter(|person| person.member() == caller.member())
        .unwrap_or_else(|| caller.clone())
}

/// The person named by the `fedmesh-acting-for` header of a call by `caller`, if any:
/// only a node may name one, and only an admin or agent of its own member in its federation.
pub(crate) fn admit(
    caller: &Identity,
    headers: &http::HeaderMap,
) -> Result<Option<Identity>, Status> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let refused = |why: &str| Status::permission_denied(format!("{HEADER}: {why}"));
    let person: Identity = value
        .to_str()
        .map_err(|_| refused("not an identity URI"))?
        .parse()
        .map_err(|e: fedmesh_core::IdentityError| refused(&e.to_string()))?;
    if caller.role() != Role::Node {
        return Err(refused("only a member's node acts for someone"));
    }
    if person.federation != caller.federation
        || person.member() != caller.member()
        || !matches!(person.role(), Role::Admin | Role::Agent)
    {
        return Err(refused(
            "a node acts only for its own member's admins and agents",
        ));
    }
    Ok(Some(person))
}

/// Runs `call` with `acting` as the person [`actor`] reports.
pub(crate) fn scope<F: Future>(
    acting: Option<Identity>,
    call: F,
) -> tokio::task::futures::TaskLocalFuture<Option<Identity>, F> {
    ACTING.scope(acting, call)
}

/// `message` as a request that says it is made for `person` (empty: for nobody but the node).
pub fn request_for<M>(message: M, person: &str) -> tonic::Request<M> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = person.parse() {
        request.metadata_mut().insert(HEADER, value);
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(uri: &str) -> Identity {
        uri.parse().unwrap()
    }

    fn headers(person: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(HEADER, person.parse().unwrap());
        headers
    }

    const NODE: &str = "spiffe://esup.example/member/unistra/node";
    const ADMIN: &str = "spiffe://esup.example/member/unistra/admin/alice";

    #[test]
    fn a_node_acts_for_its_own_members_admins_and_agents_only() {
        let node = id(NODE);
        assert_eq!(admit(&node, &http::HeaderMap::new()).unwrap(), None);
        assert_eq!(admit(&node, &headers(ADMIN)).unwrap(), Some(id(ADMIN)));
        let agent = "spiffe://esup.example/member/unistra/agent/glpi";
        assert_eq!(admit(&node, &headers(agent)).unwrap(), Some(id(agent)));
        for forged in [
            "spiffe://esup.example/member/rennes2/admin/bob",
            "spiffe://other.example/member/unistra/admin/alice",
            "spiffe://esup.example/member/unistra/node",
            "spiffe://esup.example/coordinator",
            "not a uri",
        ] {
            let status = admit(&node, &headers(forged)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::PermissionDenied, "{forged}");
            assert!(status.message().starts_with(HEADER), "{}", status.message());
        }
        // An admin calling directly speaks for itself.
        let status = admit(&id(ADMIN), &headers(ADMIN)).unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
    }

    #[tokio::test]
    async fn the_actor_is_the_person_in_scope_for_that_member_only() {
        let node = id(NODE);
        assert_eq!(actor(&node), node);
        let inside = scope(Some(id(ADMIN)), async { actor(&id(NODE)) }).await;
        assert_eq!(inside, id(ADMIN));
        let other = id("spiffe://esup.example/member/rennes2/node");
        let inside = scope(Some(id(ADMIN)), async move { actor(&other) }).await;
        assert_eq!(inside.to_uri(), "spiffe://esup.example/member/rennes2/node");
    }
}
