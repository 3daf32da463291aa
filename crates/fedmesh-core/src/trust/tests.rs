use proptest::prelude::*;

use super::*;

const NOW: crate::span::Secs = 1_790_000_000;

fn m(id: &str) -> MemberId {
    id.parse().unwrap()
}

/// An offer `provider` may publish, as its node stores it.
fn offer(provider: &str, service: &str) -> pb::Offer {
    let mut offer = crate::offer::tests::sample();
    offer.service_id = service.into();
    offer.offer_id = format!("{provider}.{service}");
    offer.provider_member_id = provider.into();
    offer
}

fn tenancy(provider: &str, n: u32, subscriber: &str) -> pb::Subscription {
    pb::Subscription {
        subscription_id: format!("{provider}.s{n}"),
        offer_id: format!("{provider}.collab"),
        provider_member_id: provider.into(),
        subscriber_member_id: subscriber.into(),
        state: pb::SubscriptionState::Active as i32,
        user_count: 10,
        ..Default::default()
    }
}

fn incident(provider: &str, subscriber: &str) -> pb::Incident {
    pb::Incident {
        incident_id: format!("INC-20261128-153001-{provider}-42"),
        offer_id: format!("{provider}.collab"),
        subscription_id: format!("{provider}.s4"),
        provider_member_id: provider.into(),
        subscriber_member_id: subscriber.into(),
        priority: pb::Priority::P2 as i32,
        status: pb::IncidentStatus::New as i32,
        summary: "Login fails".into(),
        ..Default::default()
    }
}

fn window(provider: &str) -> pb::MaintenanceWindow {
    pb::MaintenanceWindow {
        maintenance_id: format!("MW-20261128-{provider}-7"),
        offer_id: format!("{provider}.collab"),
        provider_member_id: provider.into(),
        period: Some(pb::Period {
            start_time: Some(prost_types::Timestamp {
                seconds: NOW,
                nanos: 0,
            }),
            end_time: Some(prost_types::Timestamp {
                seconds: NOW + 3600,
                nanos: 0,
            }),
        }),
        summary: "Upgrade".into(),
        ..Default::default()
    }
}

fn reason<T>(result: Result<T, Rejected>) -> Reason {
    match result {
        Ok(_) => panic!("accepted"),
        Err(e) => e.reason,
    }
}

#[test]
fn ids_name_their_member_unambiguously() {
    assert_eq!(
        incident_owner("INC-20261128-153001-rennes2-42"),
        Some(m("rennes2"))
    );
    // A member id may contain '-': the revision is what follows the last one.
    assert_eq!(incident_owner("INC-20261128-153001-a-b-42"), Some(m("a-b")));
    assert_eq!(
        maintenance_owner("MW-20261128-univ-lille-3"),
        Some(m("univ-lille"))
    );
    assert_eq!(subscription_owner("rouen.s4"), Some(m("rouen")));
    for bad in [
        "INC-2026112-153001-rennes2-42",
        "INC-20261128-153001-rennes2-",
        "INC-20261128-153001-rennes2",
        "INC-20261128-153001--4",
        "INC-20261128-1530x1-rennes2-4",
        "rennes2-42",
        "",
    ] {
        assert_eq!(incident_owner(bad), None, "{bad}");
    }
    for bad in [
        "rouen.x4",
        "rouen.s",
        "rouen.s4x",
        "rouen",
        ".s4",
        "Rouen.s4",
    ] {
        assert_eq!(subscription_owner(bad), None, "{bad}");
    }
}

#[test]
fn an_offer_is_applied_only_from_its_provider_and_valid() {
    let rouen = m("rouen");
    assert_eq!(check_offer(&rouen, &offer("rouen", "pod")), Ok(()));
    // Rouen's node journals rennes2's offer id with itself as provider: refused.
    let mut stolen = offer("rennes2", "collab");
    stolen.provider_member_id = "rouen".into();
    assert_eq!(reason(check_offer(&rouen, &stolen)), Reason::ForeignId);
    // Its own id, another provider field.
    let mut lent = offer("rouen", "pod");
    lent.provider_member_id = "rennes2".into();
    assert_eq!(reason(check_offer(&rouen, &lent)), Reason::NotOwner);
    // An SLA a publish would refuse.
    let mut broken = offer("rouen", "pod");
    if let Some(e) = broken.engagement.as_mut() {
        e.availability_sla_percent = 250.0;
    }
    let refused = check_offer(&rouen, &broken).unwrap_err();
    assert_eq!(refused.reason, Reason::Invalid);
    assert!(
        refused.detail.contains("availability_sla_percent"),
        "{refused}"
    );
    // A withdrawn offer was valid when published.
    let mut withdrawn = offer("rouen", "pod");
    withdrawn.status = pb::OfferStatus::Withdrawn as i32;
    assert_eq!(check_offer(&rouen, &withdrawn), Ok(()));
}

#[test]
fn tenancies_and_incidents_are_checked_for_owner_and_party() {
    let (rouen, unistra) = (m("rouen"), m("unistra"));
    let me = Follower::Subscriber(&unistra);
    assert_eq!(
        check_subscription(&rouen, &tenancy("rouen", 4, "unistra"), me),
        Ok(())
    );
    assert_eq!(
        reason(check_subscription(
            &rouen,
            &tenancy("rennes2", 4, "unistra"),
            me
        )),
        Reason::ForeignId
    );
    assert_eq!(
        reason(check_subscription(
            &rouen,
            &tenancy("rouen", 4, "rennes2"),
            me
        )),
        Reason::NotParty
    );
    assert_eq!(
        check_subscription(
            &rouen,
            &tenancy("rouen", 4, "rennes2"),
            Follower::Coordinator
        ),
        Ok(())
    );
    let mut other_offer = tenancy("rouen", 4, "unistra");
    other_offer.offer_id = "rennes2.collab".into();
    assert_eq!(
        reason(check_subscription(&rouen, &other_offer, me)),
        Reason::NotOwner
    );

    assert_eq!(
        check_incident(&rouen, &incident("rouen", "unistra"), me),
        Ok(())
    );
    // Rennes2's incident id, claimed by rouen: it cannot make it vanish.
    let mut stolen = incident("rouen", "unistra");
    stolen.incident_id = "INC-20261128-153001-rennes2-42".into();
    assert_eq!(
        reason(check_incident(&rouen, &stolen, me)),
        Reason::ForeignId
    );
    // A member whose id prefixes another's ("a" and "a-b") cannot claim its incidents.
    let mut prefixed = incident("a", "unistra");
    prefixed.incident_id = "INC-20261128-153001-a-b-42".into();
    assert_eq!(
        reason(check_incident(&m("a"), &prefixed, me)),
        Reason::ForeignId
    );
    let mut control = incident("rouen", "unistra");
    control.summary = "x\u{1b}]0;owned\u{7}".into();
    control.priority = 0;
    assert_eq!(
        reason(check_incident(&rouen, &control, me)),
        Reason::Invalid
    );
    // The coordinator's copy has no texts.
    let mut redacted = incident("rouen", "unistra");
    redacted.summary.clear();
    assert_eq!(
        check_incident(&rouen, &redacted, Follower::Coordinator),
        Ok(())
    );
}

#[test]
fn maintenance_windows_stay_in_their_provider_namespace() {
    let rouen = m("rouen");
    assert_eq!(check_maintenance(&rouen, &window("rouen")), Ok(()));
    // Another provider's window id, or the subscriber's own.
    for id in ["MW-20261128-rennes2-7", "MW-20261128-unistra-3", "MW-x"] {
        let mut forged = window("rouen");
        forged.maintenance_id = id.into();
        assert_eq!(
            reason(check_maintenance(&rouen, &forged)),
            Reason::ForeignId,
            "{id}"
        );
    }
    let mut long = window("rouen");
    if let Some(p) = long.period.as_mut() {
        p.end_time = Some(prost_types::Timestamp {
            seconds: NOW + 40 * 86_400,
            nanos: 0,
        });
    }
    assert_eq!(reason(check_maintenance(&rouen, &long)), Reason::Invalid);
}

#[test]
fn record_batches_are_refused_whole_for_one_foreign_record() {
    let rouen = m("rouen");
    let record = |offer: &str, subscription: &str| pb::UsageRecord {
        record_id: "r1".into(),
        offer_id: offer.into(),
        subscription_id: subscription.into(),
        metric: "active_users".into(),
        value: 3.0,
        period: window("rouen").period,
        ..Default::default()
    };
    let mut batch = pb::UsageRecordBatch {
        records: vec![record("rouen.collab", "rouen.s1")],
    };
    assert_eq!(check_usage(&rouen, &batch, NOW + 7200), Ok(()));
    batch.records.push(record("rennes2.collab", "rennes2.s1"));
    assert_eq!(
        reason(check_usage(&rouen, &batch, NOW + 7200)),
        Reason::NotOwner
    );
    let mut negative = pb::UsageRecordBatch {
        records: vec![record("rouen.collab", "rouen.s1")],
    };
    negative.records[0].value = f64::NAN;
    assert_eq!(
        reason(check_usage(&rouen, &negative, NOW + 7200)),
        Reason::Invalid
    );
}

#[test]
fn an_entry_kind_must_match_its_payload() {
    let rouen = m("rouen");
    let entry = pb::JournalEntry {
        revision: 3,
        entity_kind: pb::EntityKind::Subscription as i32,
        payload: Some(Payload::Offer(offer("rouen", "pod"))),
        ..Default::default()
    };
    assert_eq!(
        reason(check_entry(&rouen, &entry, Follower::Coordinator, NOW)),
        Reason::Invalid
    );
}

/// The members a hostile source picks its ids and owners from: itself, others, and a member
/// whose id extends its own.
const MEMBERS: &[&str] = &["rouen", "rennes2", "unistra", "rouen-2"];

fn any_member() -> BoxedStrategy<String> {
    prop::sample::select(MEMBERS)
        .prop_map(|m: &str| m.to_owned())
        .boxed()
}

/// A random entity from a hostile source: each id, owner and reference drawn independently.
fn any_payload() -> impl Strategy<Value = Payload> {
    let ids = (
        any_member(),
        any_member(),
        any_member(),
        any_member(),
        0u32..4,
    );
    prop_oneof![
        ids.clone().prop_map(|(a, b, _, _, _)| {
            let mut o = offer(&a, "pod");
            o.provider_member_id = b;
            Payload::Offer(o)
        }),
        ids.clone().prop_map(|(a, b, c, d, n)| {
            let mut s = tenancy(&a, n, &d);
            s.provider_member_id = b;
            s.offer_id = format!("{c}.collab");
            Payload::Subscription(s)
        }),
        ids.clone().prop_map(|(a, b, c, d, n)| {
            let mut i = incident(&a, &d);
            i.provider_member_id = b;
            i.offer_id = format!("{c}.collab");
            i.subscription_id = format!("{c}.s{n}");
            Payload::Incident(i)
        }),
        ids.prop_map(|(a, b, c, _, _)| {
            let mut w = window(&a);
            w.provider_member_id = b;
            w.offer_id = format!("{c}.collab");
            Payload::MaintenanceWindow(w)
        }),
    ]
}

/// Every member an entity names as owner, id namespace or referenced offer.
fn members_named(payload: &Payload) -> Vec<Option<MemberId>> {
    match payload {
        Payload::Offer(o) => vec![offer_owner(&o.offer_id), o.provider_member_id.parse().ok()],
        Payload::Subscription(s) => vec![
            subscription_owner(&s.subscription_id),
            s.provider_member_id.parse().ok(),
            offer_owner(&s.offer_id),
        ],
        Payload::Incident(i) => vec![
            incident_owner(&i.incident_id),
            i.provider_member_id.parse().ok(),
            offer_owner(&i.offer_id),
            subscription_owner(&i.subscription_id),
        ],
        Payload::MaintenanceWindow(w) => vec![
            maintenance_owner(&w.maintenance_id),
            w.provider_member_id.parse().ok(),
            offer_owner(&w.offer_id),
        ],
        _ => Vec::new(),
    }
}

proptest! {
    /// Whatever a hostile member journals, what a follower accepts from it names no other
    /// member as owner, namespace or referenced offer, and on a subscriber's node concerns
    /// that subscriber.
    #[test]
    fn a_hostile_source_never_passes_for_another_member(payload in any_payload()) {
        let source = m("rouen");
        let unistra = m("unistra");
        let entry = |payload: Payload| pb::JournalEntry {
            revision: 1,
            entity_kind: match &payload {
                Payload::Offer(_) => pb::EntityKind::Offer,
                Payload::Subscription(_) => pb::EntityKind::Subscription,
                Payload::Incident(_) => pb::EntityKind::Incident,
                _ => pb::EntityKind::MaintenanceWindow,
            } as i32,
            payload: Some(payload),
            ..Default::default()
        };
        for follower in [Follower::Coordinator, Follower::Subscriber(&unistra)] {
            if check_entry(&source, &entry(payload.clone()), follower, NOW).is_ok() {
                for named in members_named(&payload) {
                    prop_assert_eq!(named.as_ref(), Some(&source));
                }
                if let Follower::Subscriber(me) = follower {
                    let subscriber = match &payload {
                        Payload::Subscription(s) => Some(&s.subscriber_member_id),
                        Payload::Incident(i) => Some(&i.subscriber_member_id),
                        _ => None,
                    };
                    if let Some(subscriber) = subscriber {
                        prop_assert_eq!(subscriber.as_str(), me.as_str());
                    }
                }
            }
        }
    }
}

fn monthly(provider: &str, scope: pb::ReportScope, subscriber: &str) -> pb::MonthlyReport {
    let tenancy = scope == pb::ReportScope::Tenancy;
    let subscription_id = if tenancy {
        format!("{provider}.s4")
    } else {
        String::new()
    };
    let of = if tenancy {
        subscription_id.clone()
    } else {
        format!("{provider}.collab")
    };
    pb::MonthlyReport {
        report_id: format!("{of}/2026-11"),
        scope: scope as i32,
        offer_id: format!("{provider}.collab"),
        subscription_id,
        provider_member_id: provider.into(),
        subscriber_member_id: subscriber.into(),
        month: Some(pb::YearMonth {
            year: 2026,
            month: 11,
        }),
        ..Default::default()
    }
}

#[test]
fn reports_are_the_providers_own_and_offer_reports_name_no_one() {
    let (rennes2, rouen) = (m("rennes2"), m("rouen"));
    let me = Follower::Subscriber(&rouen);
    let offer = monthly("rennes2", pb::ReportScope::Offer, "");
    let tenancy = monthly("rennes2", pb::ReportScope::Tenancy, "rouen");
    assert_eq!(
        check_report(&rennes2, &offer, Follower::Coordinator),
        Ok(())
    );
    assert_eq!(check_report(&rennes2, &tenancy, me), Ok(()));
    let reason = |r: &pb::MonthlyReport, source: &MemberId, f| {
        check_report(source, r, f).map_err(|e| e.reason)
    };
    // Another member's offer, or a report said by someone else.
    assert_eq!(
        reason(&offer, &rouen, Follower::Coordinator),
        Err(Reason::NotOwner)
    );
    // An offer report carrying a tenancy is refused: aggregates without people.
    let mut named = offer.clone();
    named.subscriber_member_id = "rouen".into();
    assert_eq!(
        reason(&named, &rennes2, Follower::Coordinator),
        Err(Reason::Invalid)
    );
    // A tenancy report never goes to the coordinator.
    assert_eq!(
        reason(&tenancy, &rennes2, Follower::Coordinator),
        Err(Reason::NotParty)
    );
    // A subscriber's node takes its own tenancy reports only.
    assert_eq!(reason(&offer, &rennes2, me), Err(Reason::NotParty));
    let other = monthly("rennes2", pb::ReportScope::Tenancy, "unistra");
    assert_eq!(reason(&other, &rennes2, me), Err(Reason::NotParty));
    // An id that is not the report's own.
    let mut moved = tenancy.clone();
    moved.report_id = "rennes2.s5/2026-11".into();
    assert_eq!(reason(&moved, &rennes2, me), Err(Reason::Invalid));
    let mut foreign = tenancy.clone();
    foreign.subscription_id = "rouen.s4".into();
    assert_eq!(reason(&foreign, &rennes2, me), Err(Reason::ForeignId));
    // Texts must be inert, figures percentages.
    let mut loud = tenancy.clone();
    loud.outages.push(pb::Outage {
        description: "\u{1b}[2J".into(),
        ..Default::default()
    });
    assert_eq!(reason(&loud, &rennes2, me), Err(Reason::Invalid));
    let mut odd = offer.clone();
    odd.compliance = Some(pb::OfferSlaCompliance {
        requests_in_time_percent: 250.0,
        ..Default::default()
    });
    assert_eq!(
        reason(&odd, &rennes2, Follower::Coordinator),
        Err(Reason::Invalid)
    );
}
