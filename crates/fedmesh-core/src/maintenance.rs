//! Maintenance windows a provider announces on its offers: what an announcement must hold,
//! checked where it is made (the provider's node) and wherever it is applied (a tenant's
//! node mirroring it).

use fedmesh_proto::pb;

use crate::offer::FieldError;
use crate::span::Span;
use crate::text::{self, Lines};

/// The longest summary, in bytes.
pub const MAX_SUMMARY: usize = 200;
/// The longest description, in bytes.
pub const MAX_DESCRIPTION: usize = 16 * 1024;

/// Checks an announcement's period (closed, at most 31 days) and texts (a one-line summary of
/// at most 200 bytes, a description of at most 16 KiB, both inert); the period as a span.
pub fn check(
    period: Option<&pb::Period>,
    summary: &str,
    description: &str,
) -> Result<Span, FieldError> {
    let span = crate::calendar::closed_period("period", period)?;
    let bad = |field: &str, message: &str| FieldError {
        field: field.to_owned(),
        message: message.to_owned(),
    };
    if span.len() > crate::usage::MAX_OUTAGE {
        return Err(bad("period", "longer than 31 days"));
    }
    if summary.trim().is_empty() || summary.len() > MAX_SUMMARY {
        return Err(bad("summary", "required, at most 200 bytes"));
    }
    if description.len() > MAX_DESCRIPTION {
        return Err(bad("description", "at most 16 KiB"));
    }
    // Every tenant's people read them: inert on their screens.
    text::check("summary", summary, Lines::One)?;
    text::check("description", description, Lines::Many)?;
    Ok(span)
}
