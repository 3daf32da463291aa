//! When an entity has ended, so that it may leave the hot state after the retention of ended
//! things (design section 9, "State over years"): a closed incident, a tenancy in a final
//! state (rejected, terminated), a withdrawn offer, a maintenance window whose period is over.
//! Anything else is live and stays.

use fedmesh_proto::pb;
use pb::journal_entry::Payload;

use crate::span::Secs;

/// The number of seconds in a day.
pub const DAY: Secs = 86_400;

/// The default retention of ended things, in days: a year for the month an entity ended in to
/// close (a few days) and its monthly report to be written and contested, plus the audit's
/// look back on the year before, with a month of margin.
pub const DEFAULT_ENDED_DAYS: u32 = 400;

/// The longest retention accepted, in days (a hundred years).
pub const MAX_ENDED_DAYS: u32 = 36_500;

fn seconds(t: Option<&prost_types::Timestamp>) -> Option<Secs> {
    t.map(|t| t.seconds)
}

/// When `incident` ended (Unix seconds): its closing, if it is closed.
pub fn incident_ended(incident: &pb::Incident) -> Option<Secs> {
    (incident.status() == pb::IncidentStatus::Closed).then(|| {
        seconds(incident.close_time.as_ref())
            .or(seconds(incident.update_time.as_ref()))
            .unwrap_or(0)
    })
}

/// When `subscription` ended: the change to its final state (rejected or terminated).
pub fn subscription_ended(subscription: &pb::Subscription) -> Option<Secs> {
    matches!(
        subscription.state(),
        pb::SubscriptionState::Rejected | pb::SubscriptionState::Terminated
    )
    .then(|| {
        subscription
            .history
            .last()
            .and_then(|change| seconds(change.change_time.as_ref()))
            .or(seconds(subscription.update_time.as_ref()))
            .unwrap_or(0)
    })
}

/// When `offer` ended: its withdrawal (its last change), if it is withdrawn.
pub fn offer_ended(offer: &pb::Offer) -> Option<Secs> {
    (offer.status() == pb::OfferStatus::Withdrawn)
        .then(|| seconds(offer.update_time.as_ref()).unwrap_or(0))
}

/// When `window` ended: the end of its period (a window without one never ends), or its
/// cancellation.
pub fn maintenance_ended(window: &pb::MaintenanceWindow) -> Option<Secs> {
    if crate::maintenance::cancelled(window) {
        return Some(
            window
                .changes
                .last()
                .and_then(|c| seconds(c.change_time.as_ref()))
                .unwrap_or(0),
        );
    }
    seconds(window.period.as_ref()?.end_time.as_ref())
}

/// When the entity of a journal payload ended, if it did; records never end (closing months
/// takes care of them), nor do monthly reports (a few a month, kept: they are the record of
/// what was billed).
pub fn ended(payload: &Payload) -> Option<Secs> {
    match payload {
        Payload::Incident(i) => incident_ended(i),
        Payload::Subscription(s) => subscription_ended(s),
        Payload::Offer(o) => offer_ended(o),
        Payload::MaintenanceWindow(m) => maintenance_ended(m),
        Payload::UsageRecords(_) | Payload::AvailabilityRecords(_) | Payload::MonthlyReport(_) => {
            None
        }
    }
}

/// Whether something that ended at `ended` is past a retention of `days` at `now`: it
/// ended strictly before `now - days`.
pub fn past(ended: Secs, days: u32, now: Secs) -> bool {
    ended < now - Secs::from(days) * DAY
}

/// The year (UTC) of an instant: the shelf an ended entity is archived on.
pub fn year_of(at: Secs) -> i32 {
    crate::calendar::civil_from_days(at.div_euclid(DAY)).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn only_ended_things_have_an_end() {
        let mut incident = pb::Incident {
            status: pb::IncidentStatus::Resolved as i32,
            update_time: at(10),
            ..Default::default()
        };
        assert_eq!(incident_ended(&incident), None, "resolved may be reopened");
        incident.status = pb::IncidentStatus::Closed as i32;
        incident.close_time = at(20);
        assert_eq!(incident_ended(&incident), Some(20));

        let mut tenancy = pb::Subscription {
            state: pb::SubscriptionState::Terminating as i32,
            update_time: at(5),
            ..Default::default()
        };
        assert_eq!(subscription_ended(&tenancy), None, "data still kept");
        tenancy.state = pb::SubscriptionState::Terminated as i32;
        tenancy.history.push(pb::SubscriptionStateChange {
            change_time: at(30),
            ..Default::default()
        });
        assert_eq!(subscription_ended(&tenancy), Some(30));
        tenancy.state = pb::SubscriptionState::Rejected as i32;
        assert_eq!(subscription_ended(&tenancy), Some(30));

        let mut offer = pb::Offer {
            status: pb::OfferStatus::Deprecated as i32,
            update_time: at(40),
            ..Default::default()
        };
        assert_eq!(offer_ended(&offer), None);
        offer.status = pb::OfferStatus::Withdrawn as i32;
        assert_eq!(ended(&Payload::Offer(offer)), Some(40));

        let window = pb::MaintenanceWindow {
            period: Some(pb::Period {
                start_time: at(50),
                end_time: at(60),
            }),
            ..Default::default()
        };
        assert_eq!(maintenance_ended(&window), Some(60));
        assert_eq!(
            ended(&Payload::UsageRecords(pb::UsageRecordBatch::default())),
            None
        );
    }

    #[test]
    fn past_the_retention_means_strictly_older() {
        let now = 1_000 * DAY;
        assert!(!past(now - 400 * DAY, 400, now));
        assert!(past(now - 400 * DAY - 1, 400, now));
        assert!(past(now - 1, 0, now), "no retention: at the next pass");
        assert_eq!(year_of(1_791_151_200), 2026);
    }
}
