//! The one place where service errors become gRPC statuses, with a small deliberate set of
//! codes. Handlers return [`ServiceError`]; they never build statuses themselves.

use tonic::Status;

/// What went wrong in a handler, in terms a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A request field is invalid; `field` is its path (`offer.sla.availability_target`).
    #[error("{field}: {message}")]
    InvalidArgument {
        /// The field path.
        field: String,
        /// The rule it breaks.
        message: String,
    },
    /// The entity does not exist, or the caller may not know that it does.
    #[error("{0}")]
    NotFound(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The request would overwrite something already stored with other content.
    #[error("{0}")]
    AlreadyExists(String),
    /// A concurrent change won (stale etag): read again and retry.
    #[error("{0}")]
    Aborted(String),
    /// The entity is not in a state that allows this.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Another member's node refused a forwarded request; its status is passed on.
    #[error("{member}'s node: {message}")]
    Peer {
        /// The member whose node answered.
        member: String,
        /// Its status code.
        code: tonic::Code,
        /// Its message.
        message: String,
    },
    /// A dependency of the server (a file, another party) is unavailable for now.
    #[error("{0}")]
    Unavailable(String),
    /// A follower asked for a revision of a log that was compacted away: it must resync from
    /// a snapshot. Sent as `OUT_OF_RANGE` with the compaction point in the response metadata
    /// ([`COMPACT_REVISION_HEADER`]).
    #[error(
        "revision {requested} was compacted: this {log} holds revisions from {first}; resync from {resync}, then follow from the revision it ends at"
    )]
    Compacted {
        /// Which log (`journal`, `catalogue`).
        log: &'static str,
        /// The revision asked for.
        requested: u64,
        /// The compaction point: the last revision removed.
        compacted: u64,
        /// The first revision held.
        first: u64,
        /// Where the snapshot is (`JournalService.GetSnapshot`, or `WatchCatalogue` from 0).
        resync: &'static str,
    },
    /// The storage layer failed; details are logged, not sent.
    #[error("storage failure")]
    Store(#[from] fedmesh_store::StoreError),
}

impl ServiceError {
    /// An invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    // The `NOT_FOUND` answers, one per kind of entity, built from the id the caller gave.
    // An entity the caller may not see gets exactly the answer of an id that does not exist
    // (design section 2, isolation rule): handlers build these here, never by hand, so the
    // two cannot drift apart (`tests/tests/federation/not_found.rs` compares them).

    /// No offer `offer_id`, or none whose figures the caller may see.
    pub fn no_offer(offer_id: &str) -> Self {
        Self::NotFound(format!("offer {offer_id} not found"))
    }

    /// No tenancy `subscription_id` that the caller may see.
    pub fn no_subscription(subscription_id: &str) -> Self {
        Self::NotFound(format!("subscription {subscription_id} not found"))
    }

    /// No incident `incident_id` that the caller may see.
    pub fn no_incident(incident_id: &str) -> Self {
        Self::NotFound(format!("incident {incident_id} not found"))
    }

    /// No maintenance window `maintenance_id` that the caller may see.
    pub fn no_maintenance(maintenance_id: &str) -> Self {
        Self::NotFound(format!("maintenance {maintenance_id} not found"))
    }

    /// No member `member_id` in the registry.
    pub fn no_member(member_id: &str) -> Self {
        Self::NotFound(format!("member {member_id} not found"))
    }
}

/// The response metadata key carrying a log's compaction point in a `Compacted` answer, so
/// that clients read it without parsing the message.
pub const COMPACT_REVISION_HEADER: &str = "fedmesh-compact-revision";

/// The compaction point of a status answered for [`ServiceError::Compacted`], if it is one.
pub fn compact_revision(status: &Status) -> Option<u64> {
    if status.code() != tonic::Code::OutOfRange {
        return None;
    }
    status
        .metadata()
        .get(COMPACT_REVISION_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        match &error {
            ServiceError::Compacted { compacted, .. } => {
                let mut status = Status::out_of_range(error.to_string());
                if let Ok(value) = compacted.to_string().parse() {
                    status.metadata_mut().insert(COMPACT_REVISION_HEADER, value);
                }
                status
            }
            ServiceError::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
            ServiceError::NotFound(_) => Status::not_found(error.to_string()),
            ServiceError::PermissionDenied(_) => Status::permission_denied(error.to_string()),
            ServiceError::AlreadyExists(_) => Status::already_exists(error.to_string()),
            ServiceError::Aborted(_) => Status::aborted(error.to_string()),
            ServiceError::FailedPrecondition(_) => Status::failed_precondition(error.to_string()),
            ServiceError::Unavailable(_) => Status::unavailable(error.to_string()),
            ServiceError::Peer { code, .. } => Status::new(*code, error.to_string()),
            ServiceError::Store(source @ fedmesh_store::StoreError::EntryTooLarge { .. }) => {
                Status::out_of_range(source.to_string())
            }
            ServiceError::Store(source @ fedmesh_store::StoreError::Corrupt { .. }) => {
                tracing::error!(error = %source, "corrupt stored value");
                Status::internal(
                    "corrupt data on the server; its operators have been told in its log",
                )
            }
            ServiceError::Store(source) => {
                tracing::error!(error = %source, "storage failure");
                Status::unavailable("storage failure on the server; retry later")
            }
        }
    }
}

impl From<fedmesh_core::offer::FieldError> for ServiceError {
    fn from(error: fedmesh_core::offer::FieldError) -> Self {
        Self::InvalidArgument {
            field: error.field,
            message: error.message,
        }
    }
}

impl From<fedmesh_core::offer::LifecycleError> for ServiceError {
    fn from(error: fedmesh_core::offer::LifecycleError) -> Self {
        use fedmesh_core::offer::LifecycleError;
        match error {
            LifecycleError::Stale { .. } | LifecycleError::Exists { .. } => {
                Self::Aborted(error.to_string())
            }
            LifecycleError::Missing(_) => Self::NotFound(error.to_string()),
            LifecycleError::Withdrawn(_) => Self::FailedPrecondition(error.to_string()),
        }
    }
}

impl From<fedmesh_core::subscription::RequestRefused> for ServiceError {
    fn from(error: fedmesh_core::subscription::RequestRefused) -> Self {
        use fedmesh_core::subscription::RequestRefused;
        match error {
            RequestRefused::Invalid(field) => field.into(),
            RequestRefused::Closed(message) => Self::FailedPrecondition(message),
        }
    }
}

impl<E: Into<ServiceError>> From<fedmesh_store::WriteError<E>> for ServiceError {
    fn from(error: fedmesh_store::WriteError<E>) -> Self {
        match error {
            fedmesh_store::WriteError::Rejected(e) => e.into(),
            fedmesh_store::WriteError::Repeated(id) => {
                Self::Aborted(format!("this request was already applied, to {id}"))
            }
            fedmesh_store::WriteError::Store(e) => Self::Store(e),
        }
    }
}

impl From<fedmesh_core::maintenance::Refused> for ServiceError {
    fn from(refused: fedmesh_core::maintenance::Refused) -> Self {
        use fedmesh_core::maintenance::Refused;
        match refused {
            Refused::Invalid(field) => field.into(),
            Refused::Status(message) => Self::FailedPrecondition(message),
        }
    }
}

impl From<fedmesh_core::incident::Refused> for ServiceError {
    fn from(refused: fedmesh_core::incident::Refused) -> Self {
        use fedmesh_core::incident::Refused;
        match refused {
            Refused::Invalid { field, message } => Self::InvalidArgument { field, message },
            Refused::Status(message) => Self::FailedPrecondition(message),
            Refused::NotAllowed(message) => Self::PermissionDenied(message),
        }
    }
}

impl From<fedmesh_store::usage::RecordError> for ServiceError {
    fn from(error: fedmesh_store::usage::RecordError) -> Self {
        match error {
            fedmesh_store::usage::RecordError::Conflict { .. } => Self::AlreadyExists(format!(
                "{error}; nothing of this batch was stored (give the new content a new record_id)"
            )),
            fedmesh_store::usage::RecordError::Closed { .. } => {
                Self::FailedPrecondition(format!("{error}; nothing of this batch was stored"))
            }
            fedmesh_store::usage::RecordError::Store(e) => Self::Store(e),
        }
    }
}

/// Reads a page token that is the last key of the previous page; `field` names it in errors.
pub fn page_after(token: &str, valid: impl Fn(&str) -> bool) -> Result<&str, ServiceError> {
    if token.is_empty() || valid(token) {
        Ok(token)
    } else {
        Err(ServiceError::invalid(
            "page_token",
            "not a token from a previous page",
        ))
    }
}

/// Ends a page: `items` were read one more than `size` (to tell whether more follow); the page
/// keeps at most `size` of them, and stops before their encoded size would pass `max_bytes`
/// (what one response may carry) so that a page of long items is shorter rather than refused.
/// Returns the page and the next page's token, the key (`key_of`) of its last item, empty when
/// nothing follows. The first item is always kept.
pub fn bounded_page<T: prost::Message>(
    items: Vec<T>,
    size: usize,
    max_bytes: usize,
    key_of: impl Fn(&T) -> String,
) -> (Vec<T>, String) {
    let mut more = items.len() > size;
    let mut page = Vec::with_capacity(items.len().min(size));
    // A little under the limit: the response's envelope and next_page_token.
    let budget = max_bytes.saturating_sub(1024);
    let mut bytes = 0;
    for item in items.into_iter().take(size) {
        let len = item.encoded_len() + 8;
        if !page.is_empty() && bytes + len > budget {
            more = true;
            break;
        }
        bytes += len;
        page.push(item);
    }
    let token = if more {
        page.last().map(&key_of).unwrap_or_default()
    } else {
        String::new()
    };
    (page, token)
}

/// Reads `page_size` with a default and a cap; negative sizes are invalid.
pub fn page_size(requested: i32, default: usize, max: usize) -> Result<usize, ServiceError> {
    match requested {
        0 => Ok(default),
        n if n < 0 => Err(ServiceError::invalid("page_size", "must not be negative")),
        n => Ok((n as usize).min(max)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedmesh_proto::pb;

    fn offers(lengths: &[usize]) -> Vec<pb::Offer> {
        lengths
            .iter()
            .enumerate()
            .map(|(i, len)| pb::Offer {
                offer_id: format!("m.o{i}"),
                service_name: "x".repeat(*len),
                ..Default::default()
            })
            .collect()
    }

    fn ids(page: &[pb::Offer]) -> Vec<&str> {
        page.iter().map(|o| o.offer_id.as_str()).collect()
    }

    #[test]
    fn a_page_ends_at_its_size_or_before_it_outgrows_a_response() {
        let key = |o: &pb::Offer| o.offer_id.clone();
        // By count: three asked, four read, the token is the third's.
        let (page, token) = bounded_page(offers(&[10, 10, 10, 10]), 3, 1 << 20, key);
        assert_eq!(
            (ids(&page), token.as_str()),
            (vec!["m.o0", "m.o1", "m.o2"], "m.o2")
        );
        // The last page: no token.
        let (page, token) = bounded_page(offers(&[10, 10]), 3, 1 << 20, key);
        assert_eq!((page.len(), token.as_str()), (2, ""));
        // By bytes: 3 KiB items under a 8 KiB limit (less 1 KiB for the envelope): two fit.
        let (page, token) = bounded_page(offers(&[3000, 3000, 3000]), 50, 8192, key);
        assert_eq!((ids(&page), token.as_str()), (vec!["m.o0", "m.o1"], "m.o1"));
        // The next page goes on from there, and ends where the items do.
        let (page, token) = bounded_page(offers(&[3000]), 50, 8192, key);
        assert_eq!((page.len(), token.as_str()), (1, ""));
        // An item larger than the budget still makes a page of one (the response may then be
        // refused as too large, which names the limit), rather than an empty page forever.
        let (page, token) = bounded_page(offers(&[9000, 10]), 50, 8192, key);
        assert_eq!((ids(&page), token.as_str()), (vec!["m.o0"], "m.o0"));
    }
}
