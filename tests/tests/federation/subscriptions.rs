//! Tenancies on the provider's node: a subscriber member's node requests, the provider's admins
//! decide and run the lifecycle, retries are idempotent, and each party sees only its own.

use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_proto::pb;
use fedmesh_proto::pb::subscription_service_client::SubscriptionServiceClient as Client;
use fedmesh_tests::{TestFederation, example_offer};
use pb::SubscriptionState as State;
use tonic::Code;

// Members: 0 unistra, 1 rennes2 (collaboration, automatic within capacity), 2 rouen (video,
// manual approval).
const UNISTRA: usize = 0;
const RENNES2: usize = 1;
const ROUEN: usize = 2;

/// The channel of member `from`'s node to member `to`'s node.
fn node_to_node(fed: &TestFederation, from: usize, to: usize) -> Channel {
    fed.channel(
        &fed.member(to).endpoint,
        &fed.member(from).node_cert,
        &fed.member(from).node_key,
    )
}

fn request(
    offer_id: &str,
    request_id: &str,
    users: i32,
    terms: &str,
) -> pb::RequestSubscriptionRequest {
    pb::RequestSubscriptionRequest {
        request_id: request_id.into(),
        offer_id: offer_id.into(),
        user_count: users,
        contact_email: "dsi@unistra.example".into(),
        accepted_terms_version: terms.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_full_lifecycle_with_manual_approval() {
    let fed = TestFederation::start(3).await;
    let video = fed.publish(ROUEN, example_offer("video")).await;
    let mut subscriber = Client::new(node_to_node(&fed, UNISTRA, ROUEN));
    let mut provider = Client::new(fed.as_admin(fed.member(ROUEN)));

    let requested = subscriber
        .request_subscription(request(&video.offer_id, "req-1", 500, &video.terms_version))
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    assert_eq!(requested.state(), State::Requested);
    assert_eq!(requested.subscriber_member_id, "unistra");
    assert_eq!(requested.provider_member_id, "rouen");
    let id = requested.subscription_id.clone();

    // A retry of the same request returns the same subscription, no second tenant.
    let again = subscriber
        .request_subscription(request(&video.offer_id, "req-1", 500, &video.terms_version))
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    assert_eq!(again.subscription_id, id);
    let all = provider
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.subscriptions.len(), 1);

    // Illegal transitions name the current state.
    let status = provider
        .suspend_subscription(pb::SuspendSubscriptionRequest {
            request_id: "s-0".into(),
            subscription_id: id.clone(),
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("is REQUESTED"),
        "{}",
        status.message()
    );

    let active = provider
        .approve_subscription(pb::ApproveSubscriptionRequest {
            request_id: "a-1".into(),
            subscription_id: id.clone(),
            tenant_id: "unistra-pod".into(),
            tenant_url: "https://pod.univ-rouen.example/unistra".into(),
            reason: "welcome".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    assert_eq!(active.state(), State::Active);
    assert_eq!(active.tenant_url, "https://pod.univ-rouen.example/unistra");

    let status = provider
        .suspend_subscription(pb::SuspendSubscriptionRequest {
            request_id: "s-1".into(),
            subscription_id: id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        status.message().starts_with("reason:"),
        "{}",
        status.message()
    );
    let suspended = provider
        .suspend_subscription(pb::SuspendSubscriptionRequest {
            request_id: "s-2".into(),
            subscription_id: id.clone(),
            reason: "unpaid invoice".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    assert_eq!(
        (suspended.state(), suspended.reason.as_str()),
        (State::Suspended, "unpaid invoice")
    );
    provider
        .resume_subscription(pb::ResumeSubscriptionRequest {
            request_id: "r-1".into(),
            subscription_id: id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();

    // The subscriber changes its quota within the offer's limit.
    let status = subscriber
        .change_users(pb::ChangeUsersRequest {
            request_id: "u-1".into(),
            subscription_id: id.clone(),
            user_count: 1_000_000,
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        status.message().starts_with("user_count:"),
        "{}",
        status.message()
    );
    let changed = subscriber
        .change_users(pb::ChangeUsersRequest {
            request_id: "u-2".into(),
            subscription_id: id.clone(),
            user_count: 800,
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    assert_eq!(changed.user_count, 800);

    // Termination sets the retention deadline; confirming deletion ends the tenancy.
    let terminating = provider
        .terminate_subscription(pb::TerminateSubscriptionRequest {
            request_id: "t-1".into(),
            subscription_id: id.clone(),
            reason: "end of contract".into(),
            confirm_data_deleted: false,
        })
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    assert_eq!(terminating.state(), State::Terminating);
    let deadline = terminating.data_retention_deadline.unwrap();
    let retention = video.gdpr.unwrap().retention_period.unwrap().seconds;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (deadline.seconds - now - retention).abs() < 60,
        "deadline {deadline:?} is not now + retention"
    );
    let terminated = provider
        .terminate_subscription(pb::TerminateSubscriptionRequest {
            request_id: "t-2".into(),
            subscription_id: id.clone(),
            reason: "data deleted".into(),
            confirm_data_deleted: true,
        })
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    assert_eq!(terminated.state(), State::Terminated);
    let trail: Vec<(State, State)> = terminated
        .history
        .iter()
        .map(|c| (c.from_state(), c.to_state()))
        .collect();
    assert_eq!(
        trail,
        [
            (State::Unspecified, State::Requested),
            (State::Requested, State::Active),
            (State::Active, State::Suspended),
            (State::Suspended, State::Active),
            (State::Active, State::Active),
            (State::Active, State::Terminating),
            (State::Terminating, State::Terminated),
        ],
        "the audit trail records every change"
    );
    assert!(terminated.history.iter().all(|c| !c.actor.is_empty()));
}

#[tokio::test]
async fn automatic_approval_stops_at_capacity() {
    let fed = TestFederation::start(3).await;
    let mut offer = example_offer("collaboration");
    offer.capacity.as_mut().unwrap().max_tenants = 1;
    let collab = fed.publish(RENNES2, offer).await;

    let first = Client::new(node_to_node(&fed, UNISTRA, RENNES2))
        .request_subscription(request(&collab.offer_id, "r1", 10, &collab.terms_version))
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    assert_eq!(
        first.state(),
        State::Active,
        "approved by the offer's policy"
    );
    let status = Client::new(node_to_node(&fed, ROUEN, RENNES2))
        .request_subscription(request(&collab.offer_id, "r1", 10, &collab.terms_version))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("is full"), "{}", status.message());

    // The coordinator's catalogue counts the tenant and its users, and no longer lists the
    // offer among those with room.
    let coordinator = fed.as_admin(fed.coordinator());
    let entry = fedmesh_tests::wait_for(
        "the tenant counted in the catalogue",
        std::time::Duration::from_secs(10),
        || {
            let coordinator = coordinator.clone();
            async move {
                pb::catalogue_service_client::CatalogueServiceClient::new(coordinator)
                    .get_catalogue_offer(pb::GetCatalogueOfferRequest {
                        offer_id: "rennes2.collab".into(),
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .offer
                    .filter(|o| o.tenant_count == 1)
            }
        },
    )
    .await;
    assert_eq!(entry.user_count, 10);
    let with_room = pb::catalogue_service_client::CatalogueServiceClient::new(coordinator)
        .search_offers(pb::SearchOffersRequest {
            has_free_capacity: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        with_room
            .offers
            .iter()
            .all(|o| o.offer.as_ref().unwrap().offer_id != "rennes2.collab")
    );

    let status = Client::new(node_to_node(&fed, ROUEN, RENNES2))
        .request_subscription(request(&collab.offer_id, "r2", 10, "1999-01"))
        .await
        .unwrap_err();
    assert!(
        status.message().starts_with("accepted_terms_version:"),
        "{}",
        status.message()
    );
    let status = Client::new(node_to_node(&fed, ROUEN, RENNES2))
        .request_subscription(request(&collab.offer_id, "", 10, &collab.terms_version))
        .await
        .unwrap_err();
    assert!(
        status.message().starts_with("request_id:"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn each_member_sees_only_its_own_tenancies() {
    let fed = TestFederation::start(3).await;
    let video = fed.publish(ROUEN, example_offer("video")).await;
    let id = Client::new(node_to_node(&fed, UNISTRA, ROUEN))
        .request_subscription(request(&video.offer_id, "r1", 10, &video.terms_version))
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap()
        .subscription_id;

    // The subscriber's node and the provider's admins see it...
    for channel in [
        node_to_node(&fed, UNISTRA, ROUEN),
        fed.as_admin(fed.member(ROUEN)),
    ] {
        let mut client = Client::new(channel);
        client
            .get_subscription(pb::GetSubscriptionRequest {
                subscription_id: id.clone(),
            })
            .await
            .unwrap();
        assert_eq!(
            client
                .list_subscriptions(pb::ListSubscriptionsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .subscriptions
                .len(),
            1
        );
    }
    // ...another member's node gets NOT_FOUND, exactly as for an id that does not exist, and
    // lists nothing.
    let mut other = Client::new(node_to_node(&fed, RENNES2, ROUEN));
    let hidden = other
        .get_subscription(pb::GetSubscriptionRequest {
            subscription_id: id.clone(),
        })
        .await
        .unwrap_err();
    let missing = other
        .get_subscription(pb::GetSubscriptionRequest {
            subscription_id: "rouen.s999".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (hidden.code(), missing.code()),
        (Code::NotFound, Code::NotFound)
    );
    assert_eq!(hidden.message(), format!("subscription {id} not found"));
    assert!(
        other
            .list_subscriptions(pb::ListSubscriptionsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .subscriptions
            .is_empty()
    );
    let status = other
        .cancel_subscription(pb::CancelSubscriptionRequest {
            request_id: "c1".into(),
            subscription_id: id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // A subscriber's node cannot decide for the provider.
    let status = Client::new(node_to_node(&fed, UNISTRA, ROUEN))
        .approve_subscription(pb::ApproveSubscriptionRequest {
            request_id: "a1".into(),
            subscription_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // The subscriber withdraws its pending request.
    let withdrawn = Client::new(node_to_node(&fed, UNISTRA, ROUEN))
        .cancel_subscription(pb::CancelSubscriptionRequest {
            request_id: "c1".into(),
            subscription_id: id,
            reason: "changed our mind".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    assert_eq!(withdrawn.state(), State::Terminated);
}

/// Polls `admin`'s node until subscription `id` is in state `state`.
async fn wait_state(admin: Channel, id: &str, state: State) -> pb::Subscription {
    fedmesh_tests::wait_for(
        &format!("{id} to be {state:?} on the subscriber's node"),
        std::time::Duration::from_secs(10),
        || {
            let admin = admin.clone();
            async move {
                Client::new(admin)
                    .get_subscription(pb::GetSubscriptionRequest {
                        subscription_id: id.to_owned(),
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .subscription
                    .filter(|s| s.state() == state)
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_subscriber_admin_works_through_its_own_node_and_both_copies_agree() {
    let mut fed = TestFederation::start(3).await;
    let video = fed.publish(ROUEN, example_offer("video")).await;

    let unistra_admin = fed.as_admin(fed.member(UNISTRA));
    let response = Client::new(unistra_admin.clone())
        .request_subscription(request(&video.offer_id, "ask-1", 300, &video.terms_version))
        .await
        .unwrap()
        .into_inner();
    assert!(!response.queued);
    let id = response.subscription.unwrap().subscription_id;
    assert!(id.starts_with("rouen."), "the provider's id: {id}");

    // The provider approves; the subscriber's copy follows.
    Client::new(fed.as_admin(fed.member(ROUEN)))
        .approve_subscription(pb::ApproveSubscriptionRequest {
            request_id: "a1".into(),
            subscription_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    wait_state(unistra_admin.clone(), &id, State::Active).await;
    // The subscriber cannot decide for the provider on its own copy.
    let status = Client::new(unistra_admin.clone())
        .suspend_subscription(pb::SuspendSubscriptionRequest {
            request_id: "s1".into(),
            subscription_id: id.clone(),
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    // Provider down: a quota change is queued, and delivered once it is back.
    fed.running.stop_member(ROUEN).await.unwrap();
    let queued = Client::new(unistra_admin.clone())
        .change_users(pb::ChangeUsersRequest {
            request_id: "u1".into(),
            subscription_id: id.clone(),
            user_count: 450,
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        queued.queued,
        "the provider is down: the change waits in the outbox"
    );
    // The subscriber's node restarts meanwhile: the outbox is durable.
    fed.running.restart_member(UNISTRA).await.unwrap();
    fed.running.restart_member(ROUEN).await.unwrap();
    let unistra_admin = fed.as_admin(fed.member(UNISTRA));
    fedmesh_tests::wait_for(
        "the queued change at the provider and in the subscriber's copy",
        std::time::Duration::from_secs(15),
        || {
            let channels = (fed.as_admin(fed.member(ROUEN)), unistra_admin.clone());
            let id = id.clone();
            async move {
                let at_provider = Client::new(channels.0)
                    .get_subscription(pb::GetSubscriptionRequest {
                        subscription_id: id.clone(),
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .subscription?;
                let at_subscriber = Client::new(channels.1)
                    .get_subscription(pb::GetSubscriptionRequest {
                        subscription_id: id,
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .subscription?;
                (at_provider.user_count == 450 && at_subscriber == at_provider).then_some(())
            }
        },
    )
    .await;
}

/// Every read RPC of subscriptions, by every kind of caller, on the provider's node and on the
/// subscriber's node: only the two parties see the tenancy; others get NOT_FOUND (or an empty
/// list) exactly as for a tenancy that does not exist, or are refused by role.
#[tokio::test]
async fn the_isolation_matrix() {
    let fed = TestFederation::start(3).await;
    let video = fed.publish(ROUEN, example_offer("video")).await;
    let id = Client::new(fed.as_admin(fed.member(UNISTRA)))
        .request_subscription(request(&video.offer_id, "m1", 10, &video.terms_version))
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap()
        .subscription_id;
    let agent = fed.issue(&fed.uri("member/rouen/agent/probe"));

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Sees {
        Yes,
        NotFound,
        Refused,
    }
    use Sees::*;
    let callers: Vec<(&str, std::path::PathBuf, std::path::PathBuf)> = vec![
        (
            "unistra node",
            fed.member(UNISTRA).node_cert.clone(),
            fed.member(UNISTRA).node_key.clone(),
        ),
        (
            "unistra admin",
            fed.member(UNISTRA).admin_cert.clone(),
            fed.member(UNISTRA).admin_key.clone(),
        ),
        (
            "rennes2 node",
            fed.member(RENNES2).node_cert.clone(),
            fed.member(RENNES2).node_key.clone(),
        ),
        (
            "rennes2 admin",
            fed.member(RENNES2).admin_cert.clone(),
            fed.member(RENNES2).admin_key.clone(),
        ),
        (
            "rouen node",
            fed.member(ROUEN).node_cert.clone(),
            fed.member(ROUEN).node_key.clone(),
        ),
        (
            "rouen admin",
            fed.member(ROUEN).admin_cert.clone(),
            fed.member(ROUEN).admin_key.clone(),
        ),
        (
            "rouen agent",
            agent.cert_path.clone(),
            agent.key_path.clone(),
        ),
        (
            "coordinator",
            fed.coordinator().node_cert.clone(),
            fed.coordinator().node_key.clone(),
        ),
    ];
    // (node, caller) -> what the caller sees.
    let expected = |node: usize, caller: &str| match (node, caller) {
        (ROUEN, "unistra node" | "rouen admin") => Yes,
        // The subscriber's own node identity is a party to its copy too.
        (UNISTRA, "unistra admin" | "unistra node") => Yes,
        (_, "rouen agent" | "coordinator") => Refused,
        (n, admin)
            if admin.ends_with("admin")
                && !admin.starts_with(["unistra", "rennes2", "rouen"][n]) =>
        {
            Refused
        }
        _ => NotFound,
    };
    for node in [UNISTRA, ROUEN] {
        for (name, cert, key) in &callers {
            let mut client = Client::new(fed.channel(&fed.member(node).endpoint, cert, key));
            let got = client
                .get_subscription(pb::GetSubscriptionRequest {
                    subscription_id: id.clone(),
                })
                .await;
            let listed = client
                .list_subscriptions(pb::ListSubscriptionsRequest::default())
                .await;
            let seen = match (&got, &listed) {
                (Ok(_), Ok(list)) => {
                    assert_eq!(
                        list.get_ref().subscriptions.len(),
                        1,
                        "{name} on node {node}"
                    );
                    Yes
                }
                (Err(status), Ok(list)) if status.code() == Code::NotFound => {
                    assert!(
                        list.get_ref().subscriptions.is_empty(),
                        "{name} on node {node} lists another's tenancy"
                    );
                    assert_eq!(status.message(), format!("subscription {id} not found"));
                    NotFound
                }
                (Err(a), Err(b))
                    if a.code() == Code::PermissionDenied && b.code() == Code::PermissionDenied =>
                {
                    Refused
                }
                other => panic!("{name} on node {node}: unexpected {other:?}"),
            };
            assert_eq!(seen, expected(node, name), "{name} on node {node}");
        }
    }
}

#[tokio::test]
async fn a_request_while_the_provider_is_down_is_queued_then_delivered_once() {
    let mut fed = TestFederation::start(3).await;
    let video = fed.publish(ROUEN, example_offer("video")).await;
    fed.running.stop_member(ROUEN).await.unwrap();

    let admin = fed.as_admin(fed.member(UNISTRA));
    let ask = request(&video.offer_id, "while-down", 40, &video.terms_version);
    let first = Client::new(admin.clone())
        .request_subscription(ask.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(first.queued, "the provider is down: queued");
    // The admin retries: still queued, not queued twice.
    let retry = Client::new(admin.clone())
        .request_subscription(ask.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(retry.queued);

    fed.running.restart_member(ROUEN).await.unwrap();
    let delivered = fedmesh_tests::wait_for(
        "the queued request delivered",
        std::time::Duration::from_secs(15),
        || {
            let admin = admin.clone();
            let ask = ask.clone();
            async move {
                let response = Client::new(admin)
                    .request_subscription(ask)
                    .await
                    .ok()?
                    .into_inner();
                (!response.queued).then_some(response.subscription?)
            }
        },
    )
    .await;
    assert_eq!(delivered.state(), State::Requested);
    assert_eq!(delivered.subscriber_member_id, "unistra");
    // Exactly one tenancy at the provider.
    let at_provider = Client::new(fed.as_admin(fed.member(ROUEN)))
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .subscriptions;
    assert_eq!(at_provider.len(), 1);
    assert_eq!(at_provider[0].subscription_id, delivered.subscription_id);
}

#[tokio::test]
async fn a_manual_approval_respects_capacity() {
    let fed = TestFederation::start(3).await;
    let mut offer = example_offer("video");
    offer.capacity.as_mut().unwrap().max_tenants = 1;
    let video = fed.publish(ROUEN, offer).await;
    let mut ids = Vec::new();
    for (member, request_id) in [(UNISTRA, "r1"), (RENNES2, "r2")] {
        let s = Client::new(node_to_node(&fed, member, ROUEN))
            .request_subscription(request(
                &video.offer_id,
                request_id,
                10,
                &video.terms_version,
            ))
            .await
            .unwrap()
            .into_inner()
            .subscription
            .unwrap();
        assert_eq!(
            s.state(),
            State::Requested,
            "manual approval: both requests wait"
        );
        ids.push(s.subscription_id);
    }
    let mut provider = Client::new(fed.as_admin(fed.member(ROUEN)));
    let approve = |id: &str, request_id: &str| pb::ApproveSubscriptionRequest {
        request_id: request_id.into(),
        subscription_id: id.into(),
        ..Default::default()
    };
    let first = provider
        .approve_subscription(approve(&ids[0], "a1"))
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap();
    assert_eq!(first.tenant_url, "https://pod.univ-rouen.example/unistra");
    let status = provider
        .approve_subscription(approve(&ids[1], "a2"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("is full"), "{}", status.message());
}

#[tokio::test]
async fn concurrent_attempts_of_one_request_make_one_tenancy() {
    let fed = TestFederation::start(3).await;
    let collab = fed.publish(RENNES2, example_offer("collaboration")).await;
    let attempts = (0..8).map(|_| {
        let channel = node_to_node(&fed, UNISTRA, RENNES2);
        let ask = request(&collab.offer_id, "same-request", 10, &collab.terms_version);
        tokio::spawn(async move { Client::new(channel).request_subscription(ask).await })
    });
    let mut ids = Vec::new();
    for attempt in attempts {
        let response = attempt.await.unwrap().unwrap().into_inner();
        ids.push(response.subscription.unwrap().subscription_id);
    }
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "every attempt answers with the first result: {ids:?}"
    );
    let all = Client::new(fed.as_admin(fed.member(RENNES2)))
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .subscriptions;
    assert_eq!(all.len(), 1, "one tenancy");
}

#[tokio::test]
async fn a_queued_request_the_provider_refuses_is_reported_on_retry() {
    let mut fed = TestFederation::start(3).await;
    let mut offer = example_offer("collaboration");
    offer.capacity.as_mut().unwrap().max_tenants = 1;
    let collab = fed.publish(RENNES2, offer).await;
    // rouen takes the only place.
    Client::new(node_to_node(&fed, ROUEN, RENNES2))
        .request_subscription(request(
            &collab.offer_id,
            "first",
            10,
            &collab.terms_version,
        ))
        .await
        .unwrap();
    fed.running.stop_member(RENNES2).await.unwrap();
    let admin = fed.as_admin(fed.member(UNISTRA));
    let ask = request(&collab.offer_id, "late", 10, &collab.terms_version);
    assert!(
        Client::new(admin.clone())
            .request_subscription(ask.clone())
            .await
            .unwrap()
            .into_inner()
            .queued
    );
    fed.running.restart_member(RENNES2).await.unwrap();
    let status = fedmesh_tests::wait_for(
        "the provider's refusal reported",
        std::time::Duration::from_secs(15),
        || {
            let admin = admin.clone();
            let ask = ask.clone();
            async move { Client::new(admin).request_subscription(ask).await.err() }
        },
    )
    .await;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().starts_with("rennes2's node:"),
        "{}",
        status.message()
    );
    assert!(status.message().contains("is full"), "{}", status.message());

    // And a member holds one tenancy per offer at a time (a pending request counts).
    let video = fed.publish(ROUEN, example_offer("video")).await;
    let mut rennes2 = Client::new(node_to_node(&fed, RENNES2, ROUEN));
    rennes2
        .request_subscription(request(&video.offer_id, "v1", 10, &video.terms_version))
        .await
        .unwrap();
    let again = rennes2
        .request_subscription(request(&video.offer_id, "v2", 10, &video.terms_version))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(
        again.message().contains("already has tenancy"),
        "{}",
        again.message()
    );
}
