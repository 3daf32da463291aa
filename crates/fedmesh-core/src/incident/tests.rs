use super::*;
use crate::calendar::{self, Calendar};

const HOUR: Secs = 3600;
const SHARE: f64 = 0.75;

fn paris(m: i8, d: i8, h: i8, min: i8) -> Secs {
    let zone = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    jiff::civil::date(2026, m, d)
        .at(h, min, 0, 0)
        .to_zoned(zone)
        .unwrap()
        .timestamp()
        .as_second()
}

fn hours(h: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: h * HOUR,
        nanos: 0,
    })
}

fn engagement(p1_round_the_clock: bool) -> pb::ServiceEngagement {
    let target = |p: pb::Priority, ack: i64, resolve: i64| pb::PriorityTarget {
        priority: p as i32,
        acknowledge_within: hours(ack),
        resolve_within: hours(resolve),
    };
    pb::ServiceEngagement {
        calendar: Some(calendar::default_proto()),
        priority_targets: vec![
            target(pb::Priority::P1, 1, 4),
            target(pb::Priority::P2, 2, 4),
            target(pb::Priority::P3, 4, 8),
            target(pb::Priority::P4, 8, 24),
        ],
        p1_round_the_clock,
        ..Default::default()
    }
}

fn cal() -> Calendar {
    Calendar::from_proto("calendar", &calendar::default_proto()).unwrap()
}

fn opened(priority: pb::Priority, at: Secs) -> pb::Incident {
    let request = pb::OpenIncidentRequest {
        request_id: "r1".into(),
        offer_id: "rennes2.collab".into(),
        priority: priority as i32,
        summary: "Login fails for every user".into(),
        ..Default::default()
    };
    let subscription = pb::Subscription {
        subscription_id: "rennes2.s1".into(),
        offer_id: "rennes2.collab".into(),
        provider_member_id: "rennes2".into(),
        subscriber_member_id: "unistra".into(),
        ..Default::default()
    };
    check_open(&request).unwrap();
    open(
        &request,
        &subscription,
        incident_id("rennes2", at, 7),
        "spiffe://f/member/unistra/admin/desk",
        at,
        None,
    )
}

fn provider(incident: &pb::Incident, action: Action, at: Secs) -> pb::Incident {
    act(
        incident,
        Party::Provider,
        "spiffe://f/member/rennes2/admin/n2",
        "rennes2",
        action,
        at,
        10 * 86_400,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn subscriber(incident: &pb::Incident, action: Action, at: Secs) -> pb::Incident {
    act(
        incident,
        Party::Subscriber,
        "spiffe://f/member/unistra/node",
        "unistra",
        action,
        at,
        10 * 86_400,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn status(to: pb::IncidentStatus) -> Action {
    Action::SetStatus {
        status: to,
        comment: String::new(),
        resolution: if to == pb::IncidentStatus::Resolved {
            "restarted the identity provider".into()
        } else {
            String::new()
        },
    }
}

fn resolve_clock(incident: &pb::Incident, now: Secs) -> pb::SlaClock {
    clocks(incident, &engagement(false), &cal(), now, SHARE)[1]
}

fn ack_clock(
    incident: &pb::Incident,
    engagement: &pb::ServiceEngagement,
    now: Secs,
) -> pb::SlaClock {
    clocks(incident, engagement, &cal(), now, SHARE)[0]
}

fn deadline(c: &pb::SlaClock) -> Secs {
    c.deadline.unwrap().seconds
}

fn elapsed(c: &pb::SlaClock) -> Secs {
    c.elapsed.unwrap().seconds
}

#[test]
fn ids_sort_by_opening_time() {
    let a = incident_id("rennes2", paris(11, 27, 17, 30), 42);
    assert_eq!(a, "INC-20261127-163000-rennes2-42");
    assert!(incident_id("unistra", paris(11, 27, 17, 31), 1) > a);
}

#[test]
fn opened_friday_1730_with_four_service_hours() {
    let incident = opened(pb::Priority::P2, paris(11, 27, 17, 30));
    let on_saturday = resolve_clock(&incident, paris(11, 28, 12, 0));
    // Half an hour of service time on Friday; the weekend does not count.
    assert_eq!(elapsed(&on_saturday), 30 * 60);
    assert_eq!(deadline(&on_saturday), paris(11, 30, 11, 30));
    assert_eq!(on_saturday.state(), pb::SlaClockState::OnTime);
    // Monday 10:30: 3 h of 4 used — at risk (75 %).
    let monday = resolve_clock(&incident, paris(11, 30, 10, 30));
    assert_eq!(monday.state(), pb::SlaClockState::AtRisk);
    assert_eq!(monday.remaining.unwrap().seconds, HOUR);
    // Monday 11:31: breached, and the deadline stays where it was.
    let late = resolve_clock(&incident, paris(11, 30, 11, 31));
    assert_eq!(late.state(), pb::SlaClockState::Breached);
    assert_eq!(deadline(&late), paris(11, 30, 11, 30));
    // The acknowledge clock (2 h) ran out Monday 09:30.
    let ack = ack_clock(&incident, &engagement(false), paris(11, 30, 9, 31));
    assert_eq!(ack.state(), pb::SlaClockState::Breached);
    assert_eq!(deadline(&ack), paris(11, 30, 9, 30));
}

#[test]
fn a_public_holiday_is_skipped() {
    // Wednesday 13 May 2026, 17:00, 2 h to acknowledge: Ascension Thursday is skipped.
    let incident = opened(pb::Priority::P2, paris(5, 13, 17, 0));
    let ack = ack_clock(&incident, &engagement(false), paris(5, 14, 12, 0));
    assert_eq!(deadline(&ack), paris(5, 15, 9, 0));
    assert_eq!(elapsed(&ack), HOUR);
    // Acknowledged Friday 08:30: stopped on time, 1 h 30 used.
    let acked = provider(
        &incident,
        Action::Acknowledge {
            comment: String::new(),
        },
        paris(5, 15, 8, 30),
    );
    let ack = ack_clock(&acked, &engagement(false), paris(5, 20, 12, 0));
    assert_eq!(ack.state(), pb::SlaClockState::OnTime);
    assert_eq!(elapsed(&ack), 90 * 60);
    assert_eq!(ack.stop_time.unwrap().seconds, paris(5, 15, 8, 30));
}

#[test]
fn a_two_day_pause_moves_the_deadline_by_the_paused_service_time_only() {
    // Monday 23 November 09:00, P3: 8 service hours to resolve.
    let open = opened(pb::Priority::P3, paris(11, 23, 9, 0));
    let before = resolve_clock(&open, paris(11, 23, 10, 0));
    assert_eq!(deadline(&before), paris(11, 23, 17, 0));
    let waiting = provider(
        &open,
        status(pb::IncidentStatus::WaitingOnSubscriber),
        paris(11, 23, 11, 0),
    );
    let paused = resolve_clock(&waiting, paris(11, 24, 15, 0));
    assert!(paused.paused);
    assert_eq!(elapsed(&paused), 2 * HOUR, "no time runs while waiting");
    // Answered Wednesday 11:00, two days later: 6 service hours left from then.
    let answered = subscriber(
        &waiting,
        Action::Answer {
            body: "It happens with Firefox only".into(),
        },
        paris(11, 25, 11, 0),
    );
    assert_eq!(answered.status(), pb::IncidentStatus::InProgress);
    let after = resolve_clock(&answered, paris(11, 25, 12, 0));
    assert!(!after.paused);
    assert_eq!(deadline(&after), paris(11, 25, 17, 0));
    // Which is the old deadline moved by the paused service time (Mon 11–18, Tue 8–18,
    // Wed 8–11 = 20 h), not by the 48 hours of the calendar.
    assert_eq!(
        cal().add_service_time(deadline(&before), 20 * HOUR),
        Some(deadline(&after))
    );
}

#[test]
fn a_priority_change_keeps_the_elapsed_time_and_the_pauses() {
    let open = opened(pb::Priority::P3, paris(11, 23, 9, 0));
    let waiting = provider(
        &open,
        status(pb::IncidentStatus::WaitingOnSubscriber),
        paris(11, 23, 11, 0),
    );
    let answered = subscriber(
        &waiting,
        Action::Answer {
            body: "Firefox only".into(),
        },
        paris(11, 25, 11, 0),
    );
    let lowered = subscriber(
        &answered,
        Action::ChangePriority {
            priority: pb::Priority::P4,
            reason: "a workaround exists".into(),
        },
        paris(11, 25, 12, 0),
    );
    let clock = resolve_clock(&lowered, paris(11, 25, 13, 0));
    // 2 h before the pause and 2 h since the answer; the pause is still excluded.
    assert_eq!(elapsed(&clock), 4 * HOUR);
    assert_eq!(clock.allowed.unwrap().seconds, 24 * HOUR);
    assert_eq!(
        deadline(&clock),
        cal()
            .add_service_time(paris(11, 25, 13, 0), 20 * HOUR)
            .unwrap()
    );
}

#[test]
fn waiting_over_a_weekend_counts_service_time_not_calendar_time() {
    let open = opened(pb::Priority::P4, paris(11, 20, 9, 0));
    let waiting = provider(
        &open,
        status(pb::IncidentStatus::WaitingOnSubscriber),
        paris(11, 20, 17, 0),
    );
    let answered = subscriber(
        &waiting,
        Action::Answer {
            body: "done".into(),
        },
        paris(11, 23, 10, 0),
    );
    let clock = resolve_clock(&answered, paris(11, 23, 12, 0));
    // Friday 09–17 (8 h) + Monday 10–12 (2 h).
    assert_eq!(elapsed(&clock), 10 * HOUR);
}

#[test]
fn round_the_clock_p1_and_calendar_p2_escalate_at_different_times() {
    let saturday = paris(11, 28, 10, 0);
    let p1 = opened(pb::Priority::P1, saturday);
    let around = engagement(true);
    let clock = ack_clock(&p1, &around, saturday + HOUR + 60);
    assert_eq!(clock.state(), pb::SlaClockState::Breached);
    assert_eq!(deadline(&clock), saturday + HOUR);
    // The same P1 without round-the-clock, or a P2, waits for Monday 08:00.
    let calendar_p1 = ack_clock(&p1, &engagement(false), saturday + 5 * HOUR);
    assert_eq!(calendar_p1.state(), pb::SlaClockState::OnTime);
    assert_eq!(deadline(&calendar_p1), paris(11, 30, 9, 0));
    let p2 = opened(pb::Priority::P2, saturday);
    assert_eq!(
        deadline(&ack_clock(&p2, &around, saturday)),
        paris(11, 30, 10, 0)
    );
}

#[test]
fn who_may_do_what() {
    let at = paris(11, 23, 9, 0);
    let open = opened(pb::Priority::P3, at);
    let refused = |incident: &pb::Incident, party: Party, action: Action| {
        act(incident, party, "x", "m", action, at + 60, 86_400).unwrap_err()
    };
    assert!(matches!(
        refused(
            &open,
            Party::Subscriber,
            Action::Acknowledge {
                comment: String::new()
            }
        ),
        Refused::NotAllowed(_)
    ));
    assert!(matches!(
        refused(&open, Party::Provider, Action::Answer { body: "x".into() }),
        Refused::NotAllowed(_)
    ));
    assert!(matches!(
        refused(
            &open,
            Party::Subscriber,
            Action::Answer { body: "x".into() }
        ),
        Refused::Status(_)
    ));
    assert!(matches!(
        refused(&open, Party::Subscriber, Action::Comment { body: "x".into(), internal: true }),
        Refused::Invalid { field, .. } if field == "internal"
    ));
    assert!(matches!(
        refused(&open, Party::Provider, Action::SetStatus { status: pb::IncidentStatus::Resolved, comment: String::new(), resolution: String::new() }),
        Refused::Invalid { field, .. } if field == "resolution"
    ));
    // Working on it acknowledges it.
    let working = provider(&open, status(pb::IncidentStatus::InProgress), at + 60);
    assert!(working.acknowledge_time.is_some());
    assert_eq!(working.events.len(), 3);
    assert_eq!(
        working.events[1].kind(),
        pb::IncidentEventKind::Acknowledged
    );
    let resolved = provider(&working, status(pb::IncidentStatus::Resolved), at + 120);
    assert_eq!(resolved.resolution, "restarted the identity provider");
    let closed = subscriber(
        &resolved,
        Action::Close {
            comment: "confirmed".into(),
        },
        at + 180,
    );
    assert_eq!(closed.status(), pb::IncidentStatus::Closed);
    assert!(matches!(
        refused(
            &closed,
            Party::Provider,
            Action::Assign {
                assignee: "n2".into()
            }
        ),
        Refused::Status(_)
    ));
    // Reopened within the delay; not after it.
    let reopened = subscriber(
        &closed,
        Action::Reopen {
            reason: "it is back".into(),
        },
        at + 86_400,
    );
    assert_eq!(reopened.status(), pb::IncidentStatus::InProgress);
    assert!(reopened.close_time.is_none());
    let late = act(
        &closed,
        Party::Subscriber,
        "x",
        "m",
        Action::Reopen {
            reason: "again".into(),
        },
        at + 11 * 86_400,
        10 * 86_400,
    );
    assert!(matches!(late, Err(Refused::Status(m)) if m.contains("open a new one")));
}

#[test]
fn a_breach_escalates_once_and_internal_notes_stay_with_the_provider() {
    let at = paris(11, 23, 9, 0);
    let open = opened(pb::Priority::P2, at);
    let breached = act(
        &open,
        Party::System,
        "spiffe://f/member/rennes2/node",
        "rennes2",
        Action::ClockAlert {
            target: pb::SlaTarget::Acknowledge,
            breached: true,
        },
        at + 3 * HOUR,
        0,
    )
    .unwrap();
    assert_eq!(breached.escalation_level, 1);
    assert!(alerted(
        &breached,
        pb::IncidentEventKind::SlaBreached,
        pb::SlaTarget::Acknowledge
    ));
    assert!(!alerted(
        &breached,
        pb::IncidentEventKind::SlaBreached,
        pb::SlaTarget::Resolve
    ));
    assert_eq!(
        breached.events.last().unwrap().kind(),
        pb::IncidentEventKind::Escalated
    );
    let noted = provider(
        &breached,
        Action::Comment {
            body: "customer is upset".into(),
            internal: true,
        },
        at + 4 * HOUR,
    );
    let seen = redact_for_subscriber(noted.clone());
    assert!(seen.comments.is_empty());
    assert!(seen.events.iter().all(|e| e.comment.is_none()));
    let coordinator = redact_for_coordinator(noted);
    assert!(coordinator.summary.is_empty() && coordinator.comments.is_empty());
    assert_eq!(coordinator.escalation_level, 1);
}

#[test]
fn a_full_history_takes_only_what_ends_the_incident() {
    let at = paris(3, 4, 10, 0);
    let comment = |n: usize| Action::Comment {
        body: format!("{n} {}", "x".repeat(1000)),
        internal: false,
    };
    let mut incident = opened(pb::Priority::P3, at);
    let limit = prost::Message::encoded_len(&incident) + 5_000;
    let mut taken = 0;
    let full = loop {
        let next = subscriber(&incident, comment(taken), at + 60);
        if has_room(&next, &comment(taken), limit).is_err() {
            break next;
        }
        incident = next;
        taken += 1;
        assert!(taken < 10, "never full");
    };
    // Counted as a response carries it, each comment twice (in its event and in the comment
    // list): two 1 kB comments fit in 5 kB, a third does not.
    assert_eq!(taken, 2);
    assert!(prost::Message::encoded_len(&incident) <= limit);
    assert!(prost::Message::encoded_len(&full) > limit);
    let short = |s: &str| s.to_owned();
    let growing = [
        comment(taken),
        Action::Answer { body: short("ok") },
        Action::Assign {
            assignee: short("n2"),
        },
        status(pb::IncidentStatus::InProgress),
        status(pb::IncidentStatus::WaitingOnSubscriber),
        Action::ChangePriority {
            priority: pb::Priority::P1,
            reason: short("worse"),
        },
        Action::Reopen {
            reason: short("again"),
        },
    ];
    for action in growing {
        match has_room(&full, &action, limit) {
            Err(Refused::Status(message)) => {
                assert!(message.contains("history is full"), "{message}");
                assert!(message.contains("open a new incident"), "{message}");
            }
            other => panic!("{action:?}: {other:?}"),
        }
    }
    let ending = [
        Action::Acknowledge {
            comment: short("on it"),
        },
        Action::SetStatus {
            status: pb::IncidentStatus::Resolved,
            comment: String::new(),
            resolution: "x".repeat(MAX_TEXT_WHEN_FULL),
        },
        Action::Close {
            comment: String::new(),
        },
        Action::ClockAlert {
            target: pb::SlaTarget::Resolve,
            breached: true,
        },
    ];
    for action in ending {
        assert_eq!(has_room(&full, &action, limit), Ok(()), "{action:?}");
    }
    // ... with short texts only.
    let long = "x".repeat(MAX_TEXT_WHEN_FULL + 1);
    for (action, field) in [
        (
            Action::SetStatus {
                status: pb::IncidentStatus::Resolved,
                comment: String::new(),
                resolution: long.clone(),
            },
            "resolution",
        ),
        (
            Action::Close {
                comment: long.clone(),
            },
            "comment",
        ),
    ] {
        match has_room(&full, &action, limit) {
            Err(Refused::Invalid { field: named, .. }) => assert_eq!(named, field),
            other => panic!("{action:?}: {other:?}"),
        }
    }
    // Within the limit, everything has room.
    assert_eq!(has_room(&full, &comment(9), usize::MAX), Ok(()));
}

#[test]
fn versions_compare_without_the_comment_list() {
    let at = paris(3, 4, 10, 0);
    let opened = opened(pb::Priority::P3, at);
    let commented = subscriber(
        &opened,
        Action::Comment {
            body: "still down".into(),
            internal: false,
        },
        at + 60,
    );
    assert_eq!(commented.comments.len(), 1);
    let journaled = commented.clone().without_comment_list();
    assert!(same_version(&commented, &journaled));
    assert_eq!(journaled.clone().with_comment_list(), commented);
    assert!(
        !same_version(&opened, &journaled),
        "a new event is a new version"
    );
}

#[test]
fn texts_the_other_party_reads_refuse_control_characters_by_field() {
    let osc = "\u{1b}]0;pwned\u{7}";
    fn named<T: std::fmt::Debug>(result: Result<T, Refused>) -> String {
        match result {
            Err(Refused::Invalid { field, message }) => {
                assert_eq!(message, "must not contain control characters");
                field
            }
            other => panic!("{other:?}"),
        }
    }
    let request = |summary: &str, description: &str| pb::OpenIncidentRequest {
        request_id: "r1".into(),
        offer_id: "rennes2.collab".into(),
        priority: pb::Priority::P3 as i32,
        summary: summary.into(),
        description: description.into(),
        ..Default::default()
    };
    assert_eq!(
        named(check_open(&request(&format!("Login {osc}fails"), ""))),
        "summary"
    );
    // A summary is one line; a description may have lines and tabs, nothing else.
    assert_eq!(named(check_open(&request("Login\nfails", ""))), "summary");
    assert!(check_open(&request("Login fails", "since 9:00\n\tevery user")).is_ok());
    assert_eq!(
        named(check_open(&request("Login fails", "rtl \u{202e}txt.exe"))),
        "description"
    );

    let at = paris(11, 23, 9, 0);
    let open = opened(pb::Priority::P3, at);
    let try_act = |party: Party, action: Action| act(&open, party, "x", "m", action, at, 86_400);
    for (party, action, field) in [
        (
            Party::Provider,
            Action::Assign {
                assignee: format!("desk{osc}"),
            },
            "assignee",
        ),
        (
            Party::Provider,
            Action::Acknowledge {
                comment: "on it \u{9b}2J".into(),
            },
            "comment",
        ),
        (
            Party::Subscriber,
            Action::Comment {
                body: format!("still down{osc}"),
                internal: false,
            },
            "body",
        ),
        (
            Party::Subscriber,
            Action::ChangePriority {
                priority: pb::Priority::P2,
                reason: "every\nuser".into(),
            },
            "reason",
        ),
    ] {
        assert_eq!(named(try_act(party, action)), field);
    }
    let multi_line = Action::Comment {
        body: "still down:\n\t- login\n\t- upload".into(),
        internal: false,
    };
    assert!(try_act(Party::Subscriber, multi_line).is_ok());
}
