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
    #[error("{0} not found")]
    NotFound(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    PermissionDenied(String),
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
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        match &error {
            ServiceError::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
            ServiceError::NotFound(_) => Status::not_found(error.to_string()),
            ServiceError::PermissionDenied(_) => Status::permission_denied(error.to_string()),
            ServiceError::Store(source) => {
                tracing::error!(error = %source, "storage failure");
                Status::unavailable("storage failure on the server; retry later")
            }
        }
    }
}

/// Reads `page_size` with a default and a cap; negative sizes are invalid.
pub fn page_size(requested: i32, default: usize, max: usize) -> Result<usize, ServiceError> {
    match requested {
        0 => Ok(default),
        n if n < 0 => Err(ServiceError::invalid("page_size", "must not be negative")),
        n => Ok((n as usize).min(max)),
    }
}
