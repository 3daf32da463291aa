//! Maintenance windows a provider announces on its offers: what an announcement must hold,
//! checked where it is made (the provider's node) and wherever it is applied (a tenant's
//! node mirroring it).

use fedmesh_proto::pb;

use crate::offer::FieldError;
use crate::span::{Secs, Span};
use crate::text::{self, Lines};

/// The longest summary, in bytes.
pub const MAX_SUMMARY: usize = 200;
/// The longest description, in bytes.
pub const MAX_DESCRIPTION: usize = 16 * 1024;
/// The longest reason of a change, in bytes.
pub const MAX_REASON: usize = 500;
/// The most changes a window records: a window rescheduled more often than this is announced
/// anew.
pub const MAX_CHANGES: usize = 50;

/// An end this much before the node's clock, asked for a window in progress, is read as
/// "now".
pub const CLOCK_SKEW: Secs = 60;

/// Why a change of a window was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A field is invalid.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The window's state does not allow it.
    #[error("{0}")]
    Status(String),
}

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

/// Checks a whole window as another member's node applies it: the announcement
/// ([`check`]), and its changes (at most [`MAX_CHANGES`], reasons and names inert).
pub fn check_window(window: &pb::MaintenanceWindow) -> Result<Span, FieldError> {
    let span = check(window.period.as_ref(), &window.summary, &window.description)?;
    if window.changes.len() > MAX_CHANGES {
        return Err(FieldError {
            field: "changes".to_owned(),
            message: format!("more than {MAX_CHANGES}"),
        });
    }
    for (i, change) in window.changes.iter().enumerate() {
        check_reason(&format!("changes[{i}].reason"), &change.reason)?;
        let by = format!("changes[{i}].changed_by");
        if change.changed_by.len() > MAX_SUMMARY {
            return Err(FieldError {
                field: by,
                message: format!("at most {MAX_SUMMARY} bytes"),
            });
        }
        text::check(&by, &change.changed_by, Lines::One)?;
    }
    Ok(span)
}

fn check_reason(field: &str, reason: &str) -> Result<(), FieldError> {
    if reason.len() > MAX_REASON {
        return Err(FieldError {
            field: field.to_owned(),
            message: format!("at most {MAX_REASON} bytes"),
        });
    }
    text::check(field, reason, Lines::One)
}

/// Whether `incoming`, another member's copy of a window, may replace `current`, the copy
/// held: its history goes on from the one held (never rewritten), and a window already over
/// at `now` does not change any more.
pub fn follows(
    current: &pb::MaintenanceWindow,
    incoming: &pb::MaintenanceWindow,
    now: Secs,
) -> bool {
    let ended = !cancelled(current) && period_of(current).end <= now;
    incoming.changes.starts_with(&current.changes) && !(ended && incoming != current)
}

/// Whether `window` was cancelled.
pub fn cancelled(window: &pb::MaintenanceWindow) -> bool {
    window.status() == pb::MaintenanceStatus::Cancelled
}

fn period_of(window: &pb::MaintenanceWindow) -> Span {
    crate::calendar::closed_period("period", window.period.as_ref()).unwrap_or(Span::new(0, 0))
}

fn utc(at: Secs) -> String {
    jiff::Timestamp::from_second(at).map_or_else(|_| at.to_string(), |t| t.to_string())
}

/// What only the future of `window` allows at `now`: it is not cancelled, nor over.
fn still_to_come(window: &pb::MaintenanceWindow, now: Secs) -> Result<Span, Refused> {
    let id = &window.maintenance_id;
    if cancelled(window) {
        return Err(Refused::Status(format!(
            "maintenance {id} is cancelled: announce a new window"
        )));
    }
    let old = period_of(window);
    if old.end <= now {
        return Err(Refused::Status(format!(
            "maintenance {id} ended at {}: what it excluded stands, and it can no longer change",
            utc(old.end)
        )));
    }
    if window.changes.len() >= MAX_CHANGES {
        return Err(Refused::Status(format!(
            "maintenance {id} has changed {MAX_CHANGES} times: cancel it and announce a new window"
        )));
    }
    Ok(old)
}

/// The record of `window` going to `period` (`None`: cancelled) at `now` by `by`.
fn change(
    window: &pb::MaintenanceWindow,
    period: Option<pb::Period>,
    reason: &str,
    by: &str,
    now: Secs,
) -> pb::MaintenanceChange {
    pb::MaintenanceChange {
        change_time: Some(prost_types::Timestamp {
            seconds: now,
            nanos: 0,
        }),
        changed_by: by.to_owned(),
        previous_period: window.period,
        period,
        reason: reason.to_owned(),
    }
}

/// `window` moved to `period` at `now` by `by`, for `reason`. What already happened stays: a
/// window not started yet may move to any future period; one in progress keeps its start and
/// may end from `now` on (shortened or extended; an end up to [`CLOCK_SKEW`] past is `now`);
/// an ended or cancelled one does not move.
pub fn reschedule(
    window: &pb::MaintenanceWindow,
    period: Option<&pb::Period>,
    reason: &str,
    by: &str,
    now: Secs,
) -> Result<pb::MaintenanceWindow, Refused> {
    let old = still_to_come(window, now)?;
    let mut new = check(period, &window.summary, &window.description)?;
    check_reason("reason", reason)?;
    let mut period = period.copied();
    // "End it now" from a client whose clock is a little behind, or whose call took a moment.
    if (now - CLOCK_SKEW..now).contains(&new.end) && new.start < now {
        new.end = now;
        if let Some(p) = period.as_mut() {
            p.end_time = Some(prost_types::Timestamp {
                seconds: now,
                nanos: 0,
            });
        }
    }
    let field = |field: &str, message: String| {
        Refused::Invalid(FieldError {
            field: field.to_owned(),
            message,
        })
    };
    if old.start <= now {
        if new.start != old.start {
            return Err(field(
                "period.start_time",
                format!(
                    "the window started at {}: its start cannot move (only its end, from now on)",
                    utc(old.start)
                ),
            ));
        }
    } else if new.start < now {
        return Err(field("period.start_time", "is already past".to_owned()));
    }
    if new.end < now {
        return Err(field(
            "period.end_time",
            "is already past: end the window now at the earliest".to_owned(),
        ));
    }
    if new == old {
        return Err(field(
            "period",
            "is the window's period already: nothing to change".to_owned(),
        ));
    }
    let mut moved = window.clone();
    moved.changes.push(change(window, period, reason, by, now));
    moved.period = period;
    moved.status = pb::MaintenanceStatus::Scheduled as i32;
    Ok(moved)
}

/// `window` cancelled at `now` by `by`, for `reason`: only before it starts (one in progress
/// is shortened with [`reschedule`]: what it already excluded stands).
pub fn cancel(
    window: &pb::MaintenanceWindow,
    reason: &str,
    by: &str,
    now: Secs,
) -> Result<pb::MaintenanceWindow, Refused> {
    let old = still_to_come(window, now)?;
    check_reason("reason", reason)?;
    if old.start <= now {
        return Err(Refused::Status(format!(
            "maintenance {} started at {}: what it excluded stands; end it now by rescheduling its end instead (fedmesh maintenance reschedule {} --end <now or later>)",
            window.maintenance_id,
            utc(old.start),
            window.maintenance_id,
        )));
    }
    let mut cancelled = window.clone();
    cancelled
        .changes
        .push(change(window, None, reason, by, now));
    cancelled.status = pb::MaintenanceStatus::Cancelled as i32;
    Ok(cancelled)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Secs = 3_600;
    const NOW: Secs = 1_800_000_000;

    fn period(start: Secs, end: Secs) -> pb::Period {
        let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
        pb::Period {
            start_time: at(start),
            end_time: at(end),
        }
    }

    fn window(start: Secs, end: Secs) -> pb::MaintenanceWindow {
        pb::MaintenanceWindow {
            maintenance_id: "MW-20270115-rennes2-7".into(),
            offer_id: "rennes2.moodle".into(),
            provider_member_id: "rennes2".into(),
            period: Some(period(start, end)),
            summary: "Moodle upgrade".into(),
            status: pb::MaintenanceStatus::Scheduled as i32,
            ..Default::default()
        }
    }

    fn field(refused: Refused) -> String {
        match refused {
            Refused::Invalid(e) => e.field,
            Refused::Status(message) => panic!("not a field: {message}"),
        }
    }

    #[test]
    fn a_window_to_come_moves_to_any_future_period_and_records_why() {
        let w = window(NOW + HOUR, NOW + 2 * HOUR);
        let to = period(NOW + 24 * HOUR, NOW + 26 * HOUR);
        let moved = reschedule(
            &w,
            Some(&to),
            "vendor patch late",
            "spiffe://x/admin/a",
            NOW,
        )
        .unwrap();
        assert_eq!(moved.period, Some(to));
        assert_eq!(moved.changes.len(), 1);
        assert_eq!(moved.changes[0].previous_period, w.period);
        assert_eq!(moved.changes[0].period, Some(to));
        assert_eq!(moved.changes[0].reason, "vendor patch late");
        assert_eq!(moved.changes[0].changed_by, "spiffe://x/admin/a");
        let early = period(NOW - HOUR, NOW + HOUR);
        assert_eq!(
            field(reschedule(&w, Some(&early), "", "a", NOW).unwrap_err()),
            "period.start_time"
        );
    }

    #[test]
    fn a_window_in_progress_keeps_its_start_and_ends_from_now_on() {
        let w = window(NOW - HOUR, NOW + HOUR);
        let shortened =
            reschedule(&w, Some(&period(NOW - HOUR, NOW)), "done early", "a", NOW).unwrap();
        assert_eq!(shortened.period, Some(period(NOW - HOUR, NOW)));
        reschedule(&w, Some(&period(NOW - HOUR, NOW + 3 * HOUR)), "", "a", NOW).unwrap();
        let ended_now = reschedule(&w, Some(&period(NOW - HOUR, NOW - 5)), "", "a", NOW).unwrap();
        assert_eq!(ended_now.period, Some(period(NOW - HOUR, NOW)));
        for (moved, bad) in [
            (period(NOW - 2 * HOUR, NOW + HOUR), "period.start_time"),
            (period(NOW, NOW + HOUR), "period.start_time"),
            (period(NOW - HOUR, NOW - CLOCK_SKEW - 1), "period.end_time"),
        ] {
            assert_eq!(
                field(reschedule(&w, Some(&moved), "", "a", NOW).unwrap_err()),
                bad
            );
        }
    }

    #[test]
    fn an_ended_or_cancelled_window_does_not_change() {
        let ended = window(NOW - 2 * HOUR, NOW - HOUR);
        let err = reschedule(
            &ended,
            Some(&period(NOW - 2 * HOUR, NOW + HOUR)),
            "",
            "a",
            NOW,
        )
        .unwrap_err();
        assert!(
            matches!(&err, Refused::Status(m) if m.contains("can no longer change")),
            "{err}"
        );
        assert!(matches!(
            cancel(&ended, "", "a", NOW),
            Err(Refused::Status(_))
        ));

        let cancelled =
            cancel(&window(NOW + HOUR, NOW + 2 * HOUR), "not needed", "a", NOW).unwrap();
        assert!(super::cancelled(&cancelled));
        assert_eq!(cancelled.changes[0].period, None);
        let again = cancel(&cancelled, "", "a", NOW).unwrap_err();
        assert!(again.to_string().contains("is cancelled"), "{again}");
        let moved = reschedule(
            &cancelled,
            Some(&period(NOW + HOUR, NOW + 3 * HOUR)),
            "",
            "a",
            NOW,
        );
        assert!(matches!(moved, Err(Refused::Status(_))));
    }

    #[test]
    fn a_window_in_progress_is_shortened_not_cancelled() {
        let err = cancel(&window(NOW - HOUR, NOW + HOUR), "", "a", NOW).unwrap_err();
        assert!(err.to_string().contains("reschedule"), "{err}");
    }

    #[test]
    fn reasons_are_bounded_and_inert_and_so_are_mirrored_changes() {
        let w = window(NOW + HOUR, NOW + 2 * HOUR);
        let long = "x".repeat(MAX_REASON + 1);
        assert_eq!(field(cancel(&w, &long, "a", NOW).unwrap_err()), "reason");
        assert_eq!(
            field(cancel(&w, "a\u{1b}[2J", "a", NOW).unwrap_err()),
            "reason"
        );
        let mut mirrored = cancel(&w, "fine", "a", NOW).unwrap();
        check_window(&mirrored).unwrap();
        mirrored.changes[0].reason = "line\nbreak".into();
        assert_eq!(
            check_window(&mirrored).unwrap_err().field,
            "changes[0].reason"
        );
        mirrored.changes = vec![pb::MaintenanceChange::default(); MAX_CHANGES + 1];
        assert_eq!(check_window(&mirrored).unwrap_err().field, "changes");
    }

    #[test]
    fn a_mirrored_copy_only_goes_forward() {
        let w = window(NOW + HOUR, NOW + 2 * HOUR);
        let moved = reschedule(
            &w,
            Some(&period(NOW + 3 * HOUR, NOW + 4 * HOUR)),
            "",
            "a",
            NOW,
        )
        .unwrap();
        assert!(follows(&w, &moved, NOW));
        // A history rewritten, or an ended window changed, is not taken.
        let mut rewritten = moved.clone();
        rewritten.changes[0].reason = "something else".into();
        assert!(!follows(&moved, &rewritten, NOW));
        assert!(!follows(&moved, &w, NOW), "a change taken back");
        let ended = window(NOW - 2 * HOUR, NOW - HOUR);
        let mut stretched = ended.clone();
        stretched.period = Some(period(NOW - 30 * 24 * HOUR, NOW - HOUR));
        assert!(!follows(&ended, &stretched, NOW));
        assert!(follows(&ended, &ended, NOW));
    }

    #[test]
    fn the_same_period_again_is_no_change() {
        let w = window(NOW + HOUR, NOW + 2 * HOUR);
        assert_eq!(
            field(reschedule(&w, w.period.as_ref(), "", "a", NOW).unwrap_err()),
            "period"
        );
    }
}
