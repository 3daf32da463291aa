//! The answer to a request naming an entity that ended and left the hot trees for the
//! archive ([`fedmesh_store::retire`]): `FAILED_PRECONDITION` saying so, to whoever could see
//! it, rather than `NOT_FOUND` (which would invite a new request) or anything that would
//! bring it back. Anyone else is answered as for an id that does not exist.

use fedmesh_core::{Identity, MemberId, Role};
use fedmesh_grpc::ServiceError;
use fedmesh_proto::pb;
use fedmesh_store::Store;

/// `FAILED_PRECONDITION` for entity `id` of `kind` if it was archived here and `caller` could
/// see it on `local`'s node (this member's admins; the node of its subscriber member).
pub(crate) fn answer(
    store: &Store,
    caller: &Identity,
    local: &MemberId,
    kind: pb::EntityKind,
    id: &str,
) -> Result<Option<ServiceError>, ServiceError> {
    let Some(mark) = store.retired(kind, id)? else {
        return Ok(None);
    };
    let visible = match caller.role() {
        Role::Admin => caller.member() == Some(local),
        Role::Node => caller.member().is_some_and(|m| {
            !mark.subscriber_member_id.is_empty() && m.as_str() == mark.subscriber_member_id
        }),
        Role::Agent | Role::Coordinator | Role::Operator => false,
    };
    if !visible {
        return Ok(None);
    }
    let what = match kind {
        pb::EntityKind::Incident => "incident",
        pb::EntityKind::Subscription => "tenancy",
        pb::EntityKind::MaintenanceWindow => "maintenance window",
        _ => "offer",
    };
    let (y, m, d) = fedmesh_core::calendar::civil_from_days(mark.ended_unix.div_euclid(86_400));
    Ok(Some(ServiceError::FailedPrecondition(format!(
        "{what} {id} ended on {y:04}-{m:02}-{d:02} and was archived (retention.ended_days of {local}'s node): it can no longer be read or changed here; its last state is in the node's archive, shelf {}",
        mark.shelf
    ))))
}
