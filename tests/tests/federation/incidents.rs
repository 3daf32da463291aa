//! Incident escalation across institutions over real mTLS: a subscriber's desk opens through
//! its own node, the provider's admins work the incident, both copies converge; delivery
//! waits for a provider that is down; a missed deadline escalates to the coordinator;
//! maintenance announcements reach tenants only; the helpdesk webhook receives the events.

use std::time::Duration;

use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_proto::pb;
use fedmesh_proto::pb::incident_service_client::IncidentServiceClient as Client;
use fedmesh_proto::pb::journal_service_client::JournalServiceClient;
use fedmesh_proto::pb::metrics_service_client::MetricsServiceClient;
use fedmesh_proto::pb::offer_service_client::OfferServiceClient;
use fedmesh_proto::pb::subscription_service_client::SubscriptionServiceClient;
use fedmesh_tests::{TestFederation, all_pages, example_offer, wait_for};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::Code;

const UNISTRA: usize = 0;
const RENNES2: usize = 1;
const ROUEN: usize = 2;
const OFFER: &str = "unistra.collab";

/// unistra's collaboration offer, optionally with a P1 that runs around the clock and must be
/// acknowledged within `p1_acknowledge_within` seconds.
fn offer(p1_acknowledge_within: Option<i64>) -> pb::Offer {
    let mut offer = example_offer("collaboration");
    if let Some(seconds) = p1_acknowledge_within {
        let engagement = offer.engagement.as_mut().unwrap();
        engagement.p1_round_the_clock = true;
        let p1 = engagement
            .priority_targets
            .iter_mut()
            .find(|t| t.priority == pb::Priority::P1 as i32)
            .unwrap();
        p1.acknowledge_within = Some(prost_types::Duration { seconds, nanos: 0 });
    }
    offer
}

/// A federation of three where rennes2 is a tenant of unistra's collaboration offer.
async fn federation(nodes: &[&str], p1_acknowledge_within: Option<i64>) -> TestFederation {
    let fed = TestFederation::start_with(3, &[], nodes).await;
    OfferServiceClient::new(fed.as_admin(fed.member(UNISTRA)))
        .publish_offer(pb::PublishOfferRequest {
            offer: Some(offer(p1_acknowledge_within)),
            etag: String::new(),
        })
        .await
        .unwrap();
    let mut own = SubscriptionServiceClient::new(fed.as_admin(fed.member(RENNES2)));
    let subscription = own
        .request_subscription(pb::RequestSubscriptionRequest {
            request_id: "collab".into(),
            offer_id: OFFER.into(),
            user_count: 300,
            contact_email: "dsi@rennes2.example".into(),
            accepted_terms_version: offer(None).terms_version,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    assert_eq!(subscription.state(), pb::SubscriptionState::Active);
    fed
}

fn desk(fed: &TestFederation) -> Client<Channel> {
    Client::new(fed.as_admin(fed.member(RENNES2)))
}

fn provider(fed: &TestFederation) -> Client<Channel> {
    Client::new(fed.as_admin(fed.member(UNISTRA)))
}

fn open_request(request_id: &str, priority: pb::Priority) -> pb::OpenIncidentRequest {
    pb::OpenIncidentRequest {
        request_id: request_id.into(),
        offer_id: OFFER.into(),
        priority: priority as i32,
        summary: "Users cannot log in".into(),
        description: "Since 9:00, every login ends on an error page.".into(),
        ..Default::default()
    }
}

async fn get(client: &mut Client<Channel>, id: &str) -> Result<pb::Incident, tonic::Status> {
    client
        .get_incident(pb::GetIncidentRequest {
            incident_id: id.into(),
        })
        .await
        .map(|r| r.into_inner().incident.unwrap())
}

#[tokio::test]
async fn an_incident_travels_between_the_desk_and_the_provider() {
    let fed = federation(&[], None).await;
    let opened = desk(&fed)
        .open_incident(open_request("inc-1", pb::Priority::P2))
        .await
        .unwrap()
        .into_inner();
    assert!(!opened.queued);
    let incident = opened.incident.unwrap();
    let id = incident.incident_id.clone();
    assert!(id.starts_with("INC-") && id.contains("-unistra-"), "{id}");
    assert_eq!(incident.subscriber_member_id, "rennes2");
    assert_eq!(incident.sla_clocks.len(), 2, "both clocks are shown");

    // A retry of the same request opens nothing new.
    let again = desk(&fed)
        .open_incident(open_request("inc-1", pb::Priority::P2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.incident.unwrap().incident_id, id);

    // The provider works it.
    let mut provider = provider(&fed);
    provider
        .acknowledge_incident(pb::AcknowledgeIncidentRequest {
            request_id: "ack".into(),
            incident_id: id.clone(),
            comment: "Looking into it".into(),
        })
        .await
        .unwrap();
    provider
        .assign_incident(pb::AssignIncidentRequest {
            request_id: "assign".into(),
            incident_id: id.clone(),
            assignee: "Camille (IdP team)".into(),
        })
        .await
        .unwrap();
    provider
        .comment_incident(pb::CommentIncidentRequest {
            request_id: "note".into(),
            incident_id: id.clone(),
            body: "probably the certificate renewal".into(),
            internal: true,
        })
        .await
        .unwrap();
    let waiting = provider
        .set_incident_status(pb::SetIncidentStatusRequest {
            request_id: "ask".into(),
            incident_id: id.clone(),
            status: pb::IncidentStatus::WaitingOnSubscriber as i32,
            comment: "Which browser?".into(),
            resolution: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert!(waiting.sla_clocks[1].paused, "the resolve clock pauses");
    // The provider cannot answer for the subscriber, nor the desk acknowledge.
    let status = provider
        .answer_incident(pb::AnswerIncidentRequest {
            request_id: "x".into(),
            incident_id: id.clone(),
            body: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // The desk answers through its node; its copy follows.
    let mut desk = desk(&fed);
    let answered = desk
        .answer_incident(pb::AnswerIncidentRequest {
            request_id: "answer".into(),
            incident_id: id.clone(),
            body: "Firefox and Chrome".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!answered.queued);
    assert_eq!(
        answered.incident.unwrap().status(),
        pb::IncidentStatus::InProgress
    );
    // Both sides name the person who opened and answered: the desk's admin, whom its node
    // acted for, not the node.
    let desk_admin =
        pb::node_service_client::NodeServiceClient::new(fed.as_admin(fed.member(RENNES2)))
            .who_am_i(pb::WhoAmIRequest {})
            .await
            .unwrap()
            .into_inner()
            .identity;
    assert!(
        desk_admin.contains("/member/rennes2/admin/"),
        "{desk_admin}"
    );
    let named = |incident: &pb::Incident| {
        incident.reporter == desk_admin
            && incident
                .comments
                .iter()
                .any(|c| c.body == "Firefox and Chrome" && c.author == desk_admin)
    };
    let at_provider = get(&mut provider, &id).await.unwrap();
    assert!(named(&at_provider), "{at_provider:?}");
    wait_for(
        "the desk's copy to name its admin",
        Duration::from_secs(10),
        || {
            let mut desk = desk.clone();
            let id = id.clone();
            async move { get(&mut desk, &id).await.ok().filter(|i| named(i)) }
        },
    )
    .await;
    // A node naming someone of another member as the person it acts for is refused.
    let rouen_admin = desk_admin.replace("/member/rennes2/", "/member/rouen/");
    let status = Client::new(fed.channel(
        &fed.member(UNISTRA).endpoint,
        &fed.member(RENNES2).node_cert,
        &fed.member(RENNES2).node_key,
    ))
    .comment_incident(fedmesh_grpc::acting::request_for(
        pb::CommentIncidentRequest {
            request_id: "forged".into(),
            incident_id: id.clone(),
            body: "not me".into(),
            internal: false,
        },
        &rouen_admin,
    ))
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("fedmesh-acting-for"),
        "{status:?}"
    );
    let status = desk
        .acknowledge_incident(pb::AcknowledgeIncidentRequest {
            request_id: "x".into(),
            incident_id: id.clone(),
            comment: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    provider
        .set_incident_status(pb::SetIncidentStatusRequest {
            request_id: "fix".into(),
            incident_id: id.clone(),
            status: pb::IncidentStatus::Resolved as i32,
            comment: String::new(),
            resolution: "Renewed the IdP signing certificate".into(),
        })
        .await
        .unwrap();
    let closed = desk
        .close_incident(pb::CloseIncidentRequest {
            request_id: "close".into(),
            incident_id: id.clone(),
            comment: "Confirmed, thanks".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(closed.status(), pb::IncidentStatus::Closed);

    // Both copies agree, and the internal note never reached the subscriber.
    let theirs = get(&mut provider, &id).await.unwrap();
    let ours = wait_for(
        "the desk's copy to converge",
        Duration::from_secs(10),
        || {
            let mut desk = desk.clone();
            let id = id.clone();
            let expected = theirs.events.len();
            async move {
                get(&mut desk, &id)
                    .await
                    .ok()
                    .filter(|i| i.events.len() == expected)
            }
        },
    )
    .await;
    assert_eq!(ours.status(), pb::IncidentStatus::Closed);
    assert_eq!(ours.resolution, "Renewed the IdP signing certificate");
    assert!(theirs.comments.iter().any(|c| c.internal));
    // Each comment of an event is in the list (the nodes keep them once, in the events), on
    // both copies; the desk's without the internal ones.
    let commented = |i: &pb::Incident| i.events.iter().filter(|e| e.comment.is_some()).count();
    assert_eq!(theirs.comments.len(), commented(&theirs));
    assert_eq!(ours.comments.len(), commented(&ours));
    assert!(!ours.comments.is_empty());
    assert!(
        ours.comments.iter().all(|c| !c.internal),
        "{:?}",
        ours.comments
    );
    // A journal reader gets the list too.
    let entries = JournalServiceClient::new(fed.as_admin(fed.member(UNISTRA)))
        .list_entries(pb::ListEntriesRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let journaled = entries
        .into_iter()
        .filter_map(|e| match e.payload {
            Some(pb::journal_entry::Payload::Incident(i)) if i.incident_id == id => Some(i),
            _ => None,
        })
        .next_back()
        .unwrap();
    assert_eq!(journaled.comments, theirs.comments);
    let kinds: Vec<pb::IncidentEventKind> = ours.events.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [
            pb::IncidentEventKind::Opened,
            pb::IncidentEventKind::Acknowledged,
            pb::IncidentEventKind::Assigned,
            pb::IncidentEventKind::Commented,
            pb::IncidentEventKind::StatusChanged,
            pb::IncidentEventKind::Answered,
            pb::IncidentEventKind::StatusChanged,
            pb::IncidentEventKind::Closed,
        ]
    );
    let listed = desk
        .list_incidents(pb::ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn another_member_cannot_see_or_touch_the_incident() {
    let fed = federation(&[], None).await;
    let id = desk(&fed)
        .open_incident(open_request("inc-1", pb::Priority::P3))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap()
        .incident_id;
    // rouen's node calling unistra's node, and rouen's admin on its own node.
    let rouen_node = Client::new(fed.channel(
        &fed.member(UNISTRA).endpoint,
        &fed.member(ROUEN).node_cert,
        &fed.member(ROUEN).node_key,
    ));
    let rouen_admin = Client::new(fed.as_admin(fed.member(ROUEN)));
    for mut client in [rouen_node, rouen_admin] {
        let status = get(&mut client, &id).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let status = client
            .comment_incident(pb::CommentIncidentRequest {
                request_id: "c".into(),
                incident_id: id.clone(),
                body: "me too".into(),
                internal: false,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let listed = client
            .list_incidents(pb::ListIncidentsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(listed.incidents.is_empty());
    }
    // A member that is no tenant cannot open one either.
    let status = Client::new(fed.as_admin(fed.member(ROUEN)))
        .open_incident(open_request("rouen-1", pb::Priority::P3))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
}

#[tokio::test]
async fn an_incident_opened_while_the_provider_is_down_is_delivered_once_it_is_back() {
    let mut fed = federation(&[], None).await;
    fed.running.stop_member(UNISTRA).await.unwrap();
    let queued = desk(&fed)
        .open_incident(open_request("while-down", pb::Priority::P2))
        .await
        .unwrap()
        .into_inner();
    assert!(queued.queued, "{queued:?}");
    // Asked again while still down: still queued, not twice.
    let again = desk(&fed)
        .open_incident(open_request("while-down", pb::Priority::P2))
        .await
        .unwrap()
        .into_inner();
    assert!(again.queued);
    // The desk's list shows it at once, marked queued, with its opening time, once.
    let listed = desk(&fed)
        .list_incidents(pb::ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].queued && listed[0].incident_id.is_empty());
    assert_eq!(listed[0].request_id, "while-down");
    assert_eq!(listed[0].priority(), pb::Priority::P2);
    assert!(listed[0].create_time.is_some());
    // Filters apply to it as to any incident.
    let resolved_only = desk(&fed)
        .list_incidents(pb::ListIncidentsRequest {
            statuses: vec![pb::IncidentStatus::Resolved as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert!(resolved_only.is_empty(), "{resolved_only:?}");
    fed.running.restart_member(UNISTRA).await.unwrap();
    let delivered = wait_for(
        "the queued incident at the provider",
        Duration::from_secs(20),
        || {
            let mut provider = provider(&fed);
            async move {
                provider
                    .list_incidents(pb::ListIncidentsRequest::default())
                    .await
                    .ok()
                    .map(|r| r.into_inner().incidents)
                    .filter(|list| !list.is_empty())
            }
        },
    )
    .await;
    assert_eq!(delivered.len(), 1, "delivered once");
    let id = delivered[0].incident_id.clone();
    // The desk's node mirrors it, and a retry of the request now returns it.
    let answer = wait_for("the desk's copy", Duration::from_secs(10), || {
        let mut desk = desk(&fed);
        async move {
            desk.open_incident(open_request("while-down", pb::Priority::P2))
                .await
                .ok()
                .map(|r| r.into_inner())
                .filter(|r| !r.queued)
        }
    })
    .await;
    assert_eq!(answer.incident.unwrap().incident_id, id);
    // Delivered, it is listed as the provider's incident, not queued any more.
    let listed = desk(&fed)
        .list_incidents(pb::ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(!listed[0].queued);
    assert_eq!(listed[0].incident_id, id);
}

/// More open incidents than the clock check decodes at a time (a page of 100): every one
/// of them is escalated, once.
#[tokio::test]
async fn every_open_incident_is_checked_however_many_there_are() {
    let fed = federation(&["incidents.clock_check_interval_ms=100"], Some(1)).await;
    let mut desk = desk(&fed);
    const OPEN: usize = 150;
    for n in 0..OPEN {
        desk.open_incident(open_request(&format!("p1-{n}"), pb::Priority::P1))
            .await
            .unwrap();
    }
    let escalated = |list: &[pb::Incident]| list.iter().filter(|i| i.escalation_level == 1).count();
    let all = wait_for("every incident escalated", Duration::from_secs(20), || {
        let mut provider = provider(&fed);
        async move {
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = provider
                    .list_incidents(pb::ListIncidentsRequest {
                        page_size: 100,
                        page_token: page_token.clone(),
                        ..Default::default()
                    })
                    .await
                    .ok()?
                    .into_inner();
                all.extend(page.incidents);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            Some(all).filter(|all| all.len() == OPEN && escalated(all) == OPEN)
        }
    })
    .await;
    // Raised once each (the list shows no events: each is read whole).
    let mut provider = provider(&fed);
    for listed in &all {
        let incident = get(&mut provider, &listed.incident_id).await.unwrap();
        let breaches = incident
            .events
            .iter()
            .filter(|e| e.kind() == pb::IncidentEventKind::SlaBreached)
            .count();
        assert_eq!(breaches, 1, "{}", incident.incident_id);
    }
    // The coordinator lists them all, escalated, in pages of 40: each once, in id order.
    let mut ids: Vec<String> = all.iter().map(|i| i.incident_id.clone()).collect();
    ids.sort();
    let metrics = MetricsServiceClient::new(fed.as_admin(fed.coordinator()));
    let listed = wait_for(
        "every escalation at the coordinator",
        Duration::from_secs(20),
        || {
            let metrics = metrics.clone();
            async move {
                let (listed, pages) = all_pages(|token| {
                    let mut metrics = metrics.clone();
                    async move {
                        let page = metrics
                            .list_open_incidents(pb::ListOpenIncidentsRequest {
                                min_escalation_level: 1,
                                page_size: 40,
                                page_token: token,
                                ..Default::default()
                            })
                            .await
                            .unwrap()
                            .into_inner();
                        assert!(page.incidents.len() <= 40);
                        let ids = page.incidents.into_iter().map(|i| i.incident_id).collect();
                        (ids, page.next_page_token)
                    }
                })
                .await;
                (listed.len() == OPEN).then_some((listed, pages))
            }
        },
    )
    .await;
    assert_eq!(listed, (ids, 4));
}

#[tokio::test]
async fn a_missed_deadline_escalates_to_the_coordinator() {
    let fed = federation(&["incidents.clock_check_interval_ms=100"], Some(1)).await;
    let id = desk(&fed)
        .open_incident(open_request("p1", pb::Priority::P1))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap()
        .incident_id;
    // The P1 runs around the clock and must be acknowledged within a second: nobody does.
    let escalated = wait_for(
        "the escalation at the provider",
        Duration::from_secs(10),
        || {
            let mut provider = provider(&fed);
            let id = id.clone();
            async move {
                get(&mut provider, &id)
                    .await
                    .ok()
                    .filter(|i| i.escalation_level == 1)
            }
        },
    )
    .await;
    let kinds: Vec<pb::IncidentEventKind> = escalated.events.iter().map(|e| e.kind()).collect();
    assert!(
        kinds.contains(&pb::IncidentEventKind::SlaBreached),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&pb::IncidentEventKind::Escalated),
        "{kinds:?}"
    );
    assert_eq!(escalated.sla_clocks[0].state(), pb::SlaClockState::Breached);
    // Raised once, not at every check.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let later = get(&mut provider(&fed), &id).await.unwrap();
    assert_eq!(later.escalation_level, 1);
    assert_eq!(later.events.len(), escalated.events.len());

    let mut metrics = MetricsServiceClient::new(fed.as_admin(fed.coordinator()));
    let seen = wait_for(
        "the escalation at the coordinator",
        Duration::from_secs(10),
        || {
            let mut metrics = metrics.clone();
            async move {
                metrics
                    .list_open_incidents(pb::ListOpenIncidentsRequest {
                        min_escalation_level: 1,
                        ..Default::default()
                    })
                    .await
                    .ok()
                    .map(|r| r.into_inner().incidents)
                    .filter(|list| !list.is_empty())
            }
        },
    )
    .await;
    assert_eq!(seen[0].incident_id, id);
    assert!(seen[0].summary.is_empty(), "the coordinator gets no texts");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (year, month, _) = fedmesh_core::calendar::civil_from_days(now / 86_400);
    let stats = metrics
        .get_incident_statistics(pb::GetIncidentStatisticsRequest {
            offer_id: OFFER.into(),
            month: Some(pb::YearMonth {
                year,
                month: month as i32,
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .offers;
    let p1 = &stats[0].by_priority[0];
    assert_eq!((stats[0].opened_count, p1.opened_count), (1, 1));
    assert_eq!(p1.acknowledged_in_time_percent, 0.0);
}

/// An incident's history is bounded: with a 64 KiB message limit (journal entries of at most
/// 64 KiB, so a history of at most 48 KiB once the room kept for ending it is set aside), 4 KiB
/// comments fill it after a few (a response carries each twice: in its event and in the
/// comment list). Then comments, priority and status changes
/// are refused with `FAILED_PRECONDITION`, from the desk (through its node) and from the
/// provider alike, and nothing is added; what ends the incident still goes through, with
/// short texts: the node's clock alerts, acknowledging, resolving and closing.
#[tokio::test]
async fn a_full_incident_takes_no_more_comments_but_still_ends() {
    let fed = federation(
        &[
            "incidents.clock_check_interval_ms=100",
            "limits.max_encoding_message_bytes=65536",
        ],
        Some(8),
    )
    .await;
    let opened = desk(&fed)
        .open_incident(open_request("full", pb::Priority::P1))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    let id = opened.incident_id;
    let comment = |n: usize| pb::CommentIncidentRequest {
        request_id: format!("comment-{n}"),
        incident_id: id.clone(),
        body: format!("{n}: {}", "log line ".repeat(450)),
        internal: false,
    };
    let mut sent = 0;
    let refused = loop {
        match desk(&fed).comment_incident(comment(sent)).await {
            Ok(_) => sent += 1,
            Err(status) => break status,
        }
        assert!(sent < 10, "no comment was refused after {sent}");
    };
    assert!(sent >= 3, "refused after {sent} comments: {refused:?}");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("history is full"), "{refused:?}");
    // A short comment still fits; short ones go on until not even those do.
    let mut short = 0;
    let refused = loop {
        let request = pb::CommentIncidentRequest {
            request_id: format!("short-{short}"),
            incident_id: id.clone(),
            body: "Still down.".into(),
            internal: false,
        };
        match desk(&fed).comment_incident(request).await {
            Ok(_) => short += 1,
            Err(status) => break status,
        }
        assert!(short < 100, "short comments never refused");
    };
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let full = get(&mut provider(&fed), &id).await.unwrap();
    let comments = |i: &pb::Incident| {
        i.events
            .iter()
            .filter(|e| e.kind() == pb::IncidentEventKind::Commented)
            .count()
    };
    assert_eq!(
        comments(&full),
        sent + short,
        "the refused comments are not stored"
    );
    // The provider is refused too, and so are priority and status changes.
    let own = provider(&fed)
        .comment_incident(pb::CommentIncidentRequest {
            request_id: "provider-comment".into(),
            incident_id: id.clone(),
            body: "Looking.".into(),
            internal: true,
        })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(own.code(), Code::FailedPrecondition, "{own:?}");
    let priority = provider(&fed)
        .change_priority(pb::ChangePriorityRequest {
            request_id: "lower".into(),
            incident_id: id.clone(),
            priority: pb::Priority::P2 as i32,
            reason: "Only some users are affected.".into(),
        })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(priority.code(), Code::FailedPrecondition, "{priority:?}");
    let waiting = provider(&fed)
        .set_incident_status(pb::SetIncidentStatusRequest {
            request_id: "ask".into(),
            incident_id: id.clone(),
            status: pb::IncidentStatus::WaitingOnSubscriber as i32,
            comment: "Which browser?".into(),
            resolution: String::new(),
        })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(waiting.code(), Code::FailedPrecondition, "{waiting:?}");

    // Nobody acknowledges within 8 s: the node's clock alerts are still recorded, after the
    // comments that filled the history.
    let breached = wait_for(
        "the breach of the full incident",
        Duration::from_secs(20),
        || {
            let mut provider = provider(&fed);
            let id = id.clone();
            async move {
                get(&mut provider, &id)
                    .await
                    .ok()
                    .filter(|i| i.escalation_level == 1)
            }
        },
    )
    .await;
    let sequence_of = |kind: pb::IncidentEventKind| {
        breached
            .events
            .iter()
            .filter(|e| e.kind() == kind)
            .map(|e| e.sequence)
            .max()
            .unwrap()
    };
    assert!(
        sequence_of(pb::IncidentEventKind::SlaBreached)
            > sequence_of(pb::IncidentEventKind::Commented),
        "the breach was recorded before the history was full: {:?}",
        breached.events
    );
    assert_eq!(comments(&breached), sent + short);

    // The provider acknowledges and resolves it, with short texts; the desk closes it.
    let mut admin = provider(&fed);
    admin
        .acknowledge_incident(pb::AcknowledgeIncidentRequest {
            request_id: "ack".into(),
            incident_id: id.clone(),
            comment: "Looking at it.".into(),
        })
        .await
        .unwrap();
    let resolve = |resolution: String| pb::SetIncidentStatusRequest {
        request_id: format!("resolve-{}", resolution.len()),
        incident_id: id.clone(),
        status: pb::IncidentStatus::Resolved as i32,
        comment: String::new(),
        resolution,
    };
    let long = admin
        .set_incident_status(resolve("renewed ".repeat(200)))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(long.code(), Code::InvalidArgument, "{long:?}");
    assert!(long.message().contains("resolution"), "{long:?}");
    admin
        .set_incident_status(resolve(
            "The identity provider's certificate was renewed.".into(),
        ))
        .await
        .unwrap();
    let closed = desk(&fed)
        .close_incident(pb::CloseIncidentRequest {
            request_id: "close".into(),
            incident_id: id.clone(),
            comment: "Confirmed, thank you.".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(closed.status(), pb::IncidentStatus::Closed);
    // Reopening a full incident is refused: a new one is opened instead.
    let reopen = desk(&fed)
        .reopen_incident(pb::ReopenIncidentRequest {
            request_id: "reopen".into(),
            incident_id: id.clone(),
            reason: "It happened again.".into(),
        })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(reopen.code(), Code::FailedPrecondition, "{reopen:?}");
    assert!(
        reopen.message().contains("open a new incident"),
        "{reopen:?}"
    );
}

/// A page of incidents ends before it would outgrow a response: with a 64 KiB message limit,
/// eight incidents with 15 KiB descriptions come in several pages, each once, none refused.
#[tokio::test]
async fn a_list_page_fits_one_response() {
    let fed = federation(&["limits.max_encoding_message_bytes=65536"], None).await;
    let mut opened = Vec::new();
    for n in 0..8 {
        let request = pb::OpenIncidentRequest {
            description: format!("{n}: {}", "stack trace line\n".repeat(900)),
            ..open_request(&format!("long-{n}"), pb::Priority::P3)
        };
        let incident = desk(&fed)
            .open_incident(request)
            .await
            .unwrap()
            .into_inner()
            .incident
            .unwrap();
        opened.push(incident.incident_id);
    }
    let (mut listed, pages) = all_pages(|token| {
        let mut provider = provider(&fed);
        async move {
            let page = provider
                .list_incidents(pb::ListIncidentsRequest {
                    page_size: 50,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            for incident in &page.incidents {
                assert!(incident.events.is_empty() && incident.comments.is_empty());
                assert!(incident.description.len() > 14_000);
            }
            let ids = page.incidents.into_iter().map(|i| i.incident_id).collect();
            (ids, page.next_page_token)
        }
    })
    .await;
    assert!(pages > 1, "one page of {} incidents", listed.len());
    // Each once (ids sort by opening time to the second, then by their revision's digits).
    listed.sort();
    opened.sort();
    assert_eq!(listed, opened);
}

#[tokio::test]
async fn maintenance_reaches_tenants_only_and_marks_incidents() {
    let fed = federation(&[], None).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let window = OfferServiceClient::new(fed.as_admin(fed.member(UNISTRA)))
        .announce_maintenance(pb::AnnounceMaintenanceRequest {
            request_id: "upgrade".into(),
            offer_id: OFFER.into(),
            period: Some(pb::Period {
                start_time: Some(prost_types::Timestamp {
                    seconds: now - 30,
                    nanos: 0,
                }),
                end_time: Some(prost_types::Timestamp {
                    seconds: now + 3600,
                    nanos: 0,
                }),
            }),
            summary: "Upgrade to version 31".into(),
            description: "The service is read-only during the upgrade.".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .maintenance_window
        .unwrap();
    assert!(window.maintenance_id.starts_with("MW-"));
    // The offer's calendar lists it (availability excludes it).
    let offer = OfferServiceClient::new(fed.as_admin(fed.member(UNISTRA)))
        .get_offer(pb::GetOfferRequest {
            offer_id: OFFER.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .offer
        .unwrap();
    let listed = &offer
        .engagement
        .unwrap()
        .calendar
        .unwrap()
        .maintenance_windows;
    assert_eq!(listed[0].maintenance_id, window.maintenance_id);

    let list = |member: usize| {
        let channel = fed.as_admin(fed.member(member));
        async move {
            OfferServiceClient::new(channel)
                .list_maintenance(pb::ListMaintenanceRequest::default())
                .await
                .unwrap()
                .into_inner()
                .maintenance_windows
        }
    };
    let seen = wait_for(
        "the tenant's node to receive it",
        Duration::from_secs(10),
        || {
            let listed = list(RENNES2);
            async move { Some(listed.await).filter(|l| !l.is_empty()) }
        },
    )
    .await;
    assert_eq!(seen[0].maintenance_id, window.maintenance_id);
    assert!(list(ROUEN).await.is_empty(), "rouen is no tenant");
    let rouen_node = OfferServiceClient::new(fed.channel(
        &fed.member(UNISTRA).endpoint,
        &fed.member(ROUEN).node_cert,
        &fed.member(ROUEN).node_key,
    ))
    .list_maintenance(pb::ListMaintenanceRequest::default())
    .await
    .unwrap()
    .into_inner();
    assert!(rouen_node.maintenance_windows.is_empty());

    // An incident opened during the window says so.
    let incident = desk(&fed)
        .open_incident(open_request("during", pb::Priority::P3))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(incident.maintenance_id, window.maintenance_id);
    // A window already over is refused.
    let status = OfferServiceClient::new(fed.as_admin(fed.member(UNISTRA)))
        .announce_maintenance(pb::AnnounceMaintenanceRequest {
            request_id: "late".into(),
            offer_id: OFFER.into(),
            period: Some(pb::Period {
                start_time: Some(prost_types::Timestamp {
                    seconds: now - 7200,
                    nanos: 0,
                }),
                end_time: Some(prost_types::Timestamp {
                    seconds: now - 3600,
                    nanos: 0,
                }),
            }),
            summary: "x".into(),
            description: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("period.end_time"),
        "{}",
        status.message()
    );
}

fn period(start: i64, end: i64) -> Option<pb::Period> {
    let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
    Some(pb::Period {
        start_time: at(start),
        end_time: at(end),
    })
}

#[tokio::test]
async fn maintenance_is_rescheduled_and_cancelled_and_counts_as_it_finally_stood() {
    let fed = federation(&[], None).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let provider = || OfferServiceClient::new(fed.as_admin(fed.member(UNISTRA)));
    let announce = |request_id: &'static str, start: i64, end: i64| {
        let mut client = provider();
        async move {
            client
                .announce_maintenance(pb::AnnounceMaintenanceRequest {
                    request_id: request_id.into(),
                    offer_id: OFFER.into(),
                    period: period(start, end),
                    summary: "Upgrade".into(),
                    description: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .maintenance_window
                .unwrap()
        }
    };
    let to_come = announce("to-come", now + 3600, now + 7200).await;
    let running = announce("running", now - 30, now + 3600).await;
    let calendar = || {
        let mut client = provider();
        async move {
            client
                .get_offer(pb::GetOfferRequest {
                    offer_id: OFFER.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .offer
                .unwrap()
                .engagement
                .unwrap()
                .calendar
                .unwrap()
                .maintenance_windows
        }
    };
    let tenant_copy = |id: String| {
        let channel = fed.as_admin(fed.member(RENNES2));
        async move {
            OfferServiceClient::new(channel)
                .list_maintenance(pb::ListMaintenanceRequest::default())
                .await
                .unwrap()
                .into_inner()
                .maintenance_windows
                .into_iter()
                .find(|w| w.maintenance_id == id)
        }
    };

    // A window to come moves anywhere in the future; the offer and the tenant follow.
    let moved = provider()
        .reschedule_maintenance(pb::RescheduleMaintenanceRequest {
            request_id: "move".into(),
            maintenance_id: to_come.maintenance_id.clone(),
            period: period(now + 86_400, now + 86_400 + 7200),
            reason: "the vendor's patch is late".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .maintenance_window
        .unwrap();
    assert_eq!(moved.period, period(now + 86_400, now + 86_400 + 7200));
    assert_eq!(moved.changes.len(), 1);
    assert_eq!(moved.changes[0].previous_period, to_come.period);
    assert_eq!(moved.changes[0].reason, "the vendor's patch is late");
    assert!(
        moved.changes[0].changed_by.contains("admin"),
        "{:?}",
        moved.changes[0]
    );
    let listed = calendar().await;
    let in_offer = listed
        .iter()
        .find(|w| w.maintenance_id == to_come.maintenance_id)
        .unwrap();
    assert_eq!(in_offer.period, moved.period);
    let seen = wait_for(
        "the tenant's node to receive the new period",
        Duration::from_secs(10),
        || {
            let copy = tenant_copy(to_come.maintenance_id.clone());
            let expected = moved.period;
            async move { copy.await.filter(|w| w.period == expected) }
        },
    )
    .await;
    assert_eq!(seen.changes, moved.changes);

    // Cancelled, it leaves the offer's calendar: availability excludes nothing of it.
    let cancelled = provider()
        .cancel_maintenance(pb::CancelMaintenanceRequest {
            request_id: "cancel".into(),
            maintenance_id: to_come.maintenance_id.clone(),
            reason: "not needed after all".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .maintenance_window
        .unwrap();
    assert_eq!(cancelled.status(), pb::MaintenanceStatus::Cancelled);
    assert_eq!(cancelled.changes.len(), 2);
    let listed = calendar().await;
    assert!(
        listed
            .iter()
            .all(|w| w.maintenance_id != to_come.maintenance_id),
        "{listed:?}"
    );
    assert!(
        listed
            .iter()
            .any(|w| w.maintenance_id == running.maintenance_id)
    );
    wait_for(
        "the tenant's node to receive the cancellation",
        Duration::from_secs(10),
        || {
            let copy = tenant_copy(to_come.maintenance_id.clone());
            async move {
                copy.await
                    .filter(|w| w.status() == pb::MaintenanceStatus::Cancelled)
            }
        },
    )
    .await;
    // A retry of the same request answers the window as it stands, once.
    let again = provider()
        .cancel_maintenance(pb::CancelMaintenanceRequest {
            request_id: "cancel".into(),
            maintenance_id: to_come.maintenance_id.clone(),
            reason: "not needed after all".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .maintenance_window
        .unwrap();
    assert_eq!(again.changes.len(), 2);

    // What already happened stays: a window in progress is not cancelled, and keeps its start.
    let status = provider()
        .cancel_maintenance(pb::CancelMaintenanceRequest {
            request_id: "cancel-running".into(),
            maintenance_id: running.maintenance_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("reschedule"),
        "{}",
        status.message()
    );
    let status = provider()
        .reschedule_maintenance(pb::RescheduleMaintenanceRequest {
            request_id: "stretch-back".into(),
            maintenance_id: running.maintenance_id.clone(),
            period: period(now - 7200, now + 3600),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("period.start_time"),
        "{}",
        status.message()
    );
    let ended_early = provider()
        .reschedule_maintenance(pb::RescheduleMaintenanceRequest {
            request_id: "done-early".into(),
            maintenance_id: running.maintenance_id.clone(),
            period: period(now - 30, now + 5),
            reason: "done early".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .maintenance_window
        .unwrap();
    assert_eq!(ended_early.period, period(now - 30, now + 5));

    // Nor can a window be announced over what already happened.
    let status = provider()
        .announce_maintenance(pb::AnnounceMaintenanceRequest {
            request_id: "after-the-fact".into(),
            offer_id: OFFER.into(),
            period: period(now - 3600, now + 3600),
            summary: "Upgrade".into(),
            description: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("period.start_time"),
        "{}",
        status.message()
    );

    // A tenant cannot change its provider's window, not even its own node's copy.
    let status = OfferServiceClient::new(fed.as_admin(fed.member(RENNES2)))
        .cancel_maintenance(pb::CancelMaintenanceRequest {
            request_id: "not-mine".into(),
            maintenance_id: running.maintenance_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{}", status.message());
}

/// A helpdesk stand-in: answers 500 to the first request, 200 to the others, and hands over
/// every body.
async fn helpdesk() -> (u16, tokio::sync::mpsc::Receiver<serde_json::Value>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut served = 0;
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then the body announced by Content-Length.
            let body = loop {
                let n = socket.read(&mut buf).await.unwrap();
                if n == 0 {
                    break None;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).into_owned();
                if let Some(split) = text.find("\r\n\r\n") {
                    let length: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if request.len() >= split + 4 + length {
                        break Some(request[split + 4..split + 4 + length].to_vec());
                    }
                }
            };
            served += 1;
            let status = if served == 1 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = socket
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .await;
            if served > 1
                && let Some(body) = body
            {
                let _ = tx.send(serde_json::from_slice(&body).unwrap()).await;
            }
        }
    });
    (port, rx)
}

#[tokio::test]
async fn the_helpdesk_webhook_receives_tenancy_and_incident_events_after_a_failure() {
    let (port, mut received) = helpdesk().await;
    let url = format!("notifications.webhook_url=http://127.0.0.1:{port}/front/webhook.php");
    let fed = federation(
        &[
            &url,
            "notifications.retry_initial_ms=50",
            "notifications.retry_max_ms=200",
        ],
        None,
    )
    .await;
    let id = desk(&fed)
        .open_incident(open_request("hook", pb::Priority::P2))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap()
        .incident_id;
    // Both nodes post the opening: the provider's and the subscriber's (its mirror); before
    // it, both posted the tenancy the federation was set up with.
    let mut roles = Vec::new();
    let mut tenancy_roles = Vec::new();
    while roles.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .expect("no notification within 10 s")
            .unwrap();
        if event["type"] == "fedmesh.subscription" {
            assert_eq!(event["offer_id"], OFFER, "{event}");
            assert_eq!(event["subscriber_member_id"], "rennes2", "{event}");
            assert_eq!(event["state"], "ACTIVE", "{event}");
            assert_eq!(event["change"]["to_state"], "ACTIVE", "{event}");
            tenancy_roles.push(event["role"].as_str().unwrap().to_owned());
            continue;
        }
        assert_eq!(event["type"], "fedmesh.incident", "{event}");
        assert_eq!(event["incident_id"], id.as_str());
        assert_eq!(event["event"]["kind"], "OPENED");
        assert_eq!(event["priority"], "P2");
        roles.push(event["role"].as_str().unwrap().to_owned());
    }
    roles.sort();
    assert_eq!(roles, ["provider", "subscriber"]);
    tenancy_roles.sort();
    tenancy_roles.dedup();
    assert_eq!(tenancy_roles, ["provider", "subscriber"]);
}

#[tokio::test]
async fn both_parties_watch_the_incident_live() {
    let fed = federation(&[], None).await;
    let id = desk(&fed)
        .open_incident(open_request("watched", pb::Priority::P3))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap()
        .incident_id;
    let watch = |mut client: Client<Channel>, id: String| async move {
        client
            .watch_incident(pb::WatchIncidentRequest {
                incident_id: id,
                since_sequence: 0,
            })
            .await
            .unwrap()
            .into_inner()
    };
    let mut at_provider = watch(provider(&fed), id.clone()).await;
    let mut at_desk = watch(desk(&fed), id.clone()).await;
    for stream in [&mut at_provider, &mut at_desk] {
        let first = stream.message().await.unwrap().unwrap().event.unwrap();
        assert_eq!(first.kind(), pb::IncidentEventKind::Opened);
    }
    provider(&fed)
        .acknowledge_incident(pb::AcknowledgeIncidentRequest {
            request_id: "ack".into(),
            incident_id: id.clone(),
            comment: "On it".into(),
        })
        .await
        .unwrap();
    for stream in [&mut at_provider, &mut at_desk] {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("no live event within 10 s")
            .unwrap()
            .unwrap()
            .event
            .unwrap();
        assert_eq!(next.kind(), pb::IncidentEventKind::Acknowledged);
        assert_eq!(next.comment.unwrap().body, "On it");
    }
    // An unknown id is NOT_FOUND, not an empty stream.
    let status = desk(&fed)
        .watch_incident(pb::WatchIncidentRequest {
            incident_id: "INC-nothing".into(),
            since_sequence: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}
