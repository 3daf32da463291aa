//! Member offboarding: the consortium removes a member on the coordinator, and the member
//! loses access everywhere, even with certificates that were never revoked; its offers leave
//! the catalogue and its tenancies end.

use std::time::Duration;

use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_proto::pb;
use fedmesh_proto::pb::catalogue_service_client::CatalogueServiceClient;
use fedmesh_proto::pb::node_service_client::NodeServiceClient;
use fedmesh_proto::pb::registry_service_client::RegistryServiceClient;
use fedmesh_proto::pb::subscription_service_client::SubscriptionServiceClient;
use fedmesh_tests::{TestFederation, example_offer, wait_for};
use tonic::Code;

// Members: 0 unistra (leaves), 1 rennes2, 2 rouen.
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

/// The coordinator's own certificate, as its operators use it.
fn operator(fed: &TestFederation) -> RegistryServiceClient<Channel> {
    let coordinator = fed.coordinator();
    RegistryServiceClient::new(fed.channel(
        &coordinator.endpoint,
        &coordinator.node_cert,
        &coordinator.node_key,
    ))
}

async fn offer_ids(channel: Channel) -> Option<Vec<String>> {
    let offers = CatalogueServiceClient::new(channel)
        .search_offers(pb::SearchOffersRequest::default())
        .await
        .ok()?
        .into_inner()
        .offers;
    Some(
        offers
            .into_iter()
            .filter_map(|o| o.offer.map(|o| o.offer_id))
            .collect(),
    )
}

async fn tenancy(channel: Channel, id: &str) -> Option<pb::Subscription> {
    SubscriptionServiceClient::new(channel)
        .get_subscription(pb::GetSubscriptionRequest {
            subscription_id: id.to_owned(),
        })
        .await
        .ok()?
        .into_inner()
        .subscription
}

#[tokio::test]
async fn a_removed_member_loses_access_everywhere_and_its_tenancies_end() {
    let mut fed = TestFederation::start_with(3, &[], &["coordinator.crl_refresh_ms=200"]).await;
    let video = fed.publish(ROUEN, example_offer("video")).await;
    let otp = fed.publish(UNISTRA, example_offer("otp")).await;
    // unistra is rouen's tenant, approved.
    let unistra_admin = fed.as_admin(fed.member(UNISTRA));
    let tenancy_id = SubscriptionServiceClient::new(unistra_admin.clone())
        .request_subscription(pb::RequestSubscriptionRequest {
            request_id: "ask-1".into(),
            offer_id: video.offer_id.clone(),
            user_count: 300,
            contact_email: "dsi@unistra.example".into(),
            accepted_terms_version: video.terms_version.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap()
        .subscription_id;
    let rouen_admin = fed.as_admin(fed.member(ROUEN));
    SubscriptionServiceClient::new(rouen_admin.clone())
        .approve_subscription(pb::ApproveSubscriptionRequest {
            request_id: "a1".into(),
            subscription_id: tenancy_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let rennes2_admin = fed.as_admin(fed.member(RENNES2));
    wait_for(
        "unistra's offer in rennes2's cached catalogue",
        Duration::from_secs(10),
        || {
            let channel = rennes2_admin.clone();
            let id = otp.offer_id.clone();
            async move { offer_ids(channel).await.filter(|ids| ids.contains(&id)) }
        },
    )
    .await;
    // A long-lived watch of unistra's node on rouen's node, open before the removal.
    let mut watch =
        pb::journal_service_client::JournalServiceClient::new(node_to_node(&fed, UNISTRA, ROUEN))
            .watch(pb::WatchRequest::default())
            .await
            .unwrap()
            .into_inner();
    while !matches!(
        watch.message().await.unwrap().unwrap().event,
        Some(pb::watch_response::Event::CaughtUp(_))
    ) {}

    // Only the coordinator's own identity may remove a member (not an admin, here unistra's
    // own); requests are checked.
    let as_admin = RegistryServiceClient::new(fed.as_admin(fed.coordinator()))
        .remove_member(pb::RemoveMemberRequest {
            member_id: "unistra".into(),
            reason: "left".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(as_admin.code(), Code::PermissionDenied, "{as_admin:?}");
    for (member, reason, field) in [
        ("Not A Member", "left", "member_id"),
        ("unistra", "  ", "reason"),
        ("unistra", &"x".repeat(501)[..], "reason"),
    ] {
        let status = operator(&fed)
            .remove_member(pb::RemoveMemberRequest {
                member_id: member.into(),
                reason: reason.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(field), "{status:?}");
    }
    // Nothing was removed by the refused calls.
    whoami(unistra_admin.clone()).await.unwrap();

    let removed = operator(&fed)
        .remove_member(pb::RemoveMemberRequest {
            member_id: "unistra".into(),
            reason: "left the consortium".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.withdrawn_offers, 1);
    let first = removed.removed.unwrap();
    // Removing again answers the first removal.
    let again = operator(&fed)
        .remove_member(pb::RemoveMemberRequest {
            member_id: "unistra".into(),
            reason: "another reason".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.removed.unwrap(), first);
    assert_eq!(again.withdrawn_offers, 0);

    // On the coordinator at once: unistra's identities are refused (its certificates are not
    // revoked), its node is gone from the registry, its offer from the catalogue.
    let heartbeat = RegistryServiceClient::new(fed.channel(
        &fed.coordinator().endpoint,
        &fed.member(UNISTRA).node_cert,
        &fed.member(UNISTRA).node_key,
    ))
    .heartbeat(pb::HeartbeatRequest::default())
    .await
    .unwrap_err();
    assert_eq!(heartbeat.code(), Code::PermissionDenied, "{heartbeat:?}");
    assert!(heartbeat.message().contains("removed"), "{heartbeat:?}");
    let nodes = operator(&fed)
        .list_nodes(pb::ListNodesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .nodes;
    assert!(nodes.iter().all(|n| n.member_id != "unistra"), "{nodes:?}");
    // (The coordinator is read with rennes2's admin: the first member's is unistra's.)
    let rennes2_at_coordinator = fed.channel(
        &fed.coordinator().endpoint,
        &fed.member(RENNES2).admin_cert,
        &fed.member(RENNES2).admin_key,
    );
    let at_coordinator = offer_ids(rennes2_at_coordinator).await.unwrap();
    assert!(
        !at_coordinator.contains(&otp.offer_id),
        "{at_coordinator:?}"
    );
    assert!(
        at_coordinator.contains(&video.offer_id),
        "{at_coordinator:?}"
    );

    // On every node within the CRL refresh: refused, open connections closed, tenancies ended,
    // the offer gone from the cached catalogue.
    let ended = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match watch.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the removed member's connection stayed open");
    assert!(ended.is_err(), "the stream should fail, got {ended:?}");
    let peer = SubscriptionServiceClient::new(node_to_node(&fed, UNISTRA, ROUEN))
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(peer.code(), Code::PermissionDenied, "{peer:?}");
    let ended = wait_for(
        "the tenancy of the removed member to be TERMINATING at its provider",
        Duration::from_secs(10),
        || {
            let channel = rouen_admin.clone();
            let id = tenancy_id.clone();
            async move {
                tenancy(channel, &id)
                    .await
                    .filter(|s| s.state() == pb::SubscriptionState::Terminating)
            }
        },
    )
    .await;
    assert!(
        ended.reason.contains("removed from the federation"),
        "{ended:?}"
    );
    assert!(ended.reason.contains("left the consortium"), "{ended:?}");
    assert!(ended.data_retention_deadline.is_some());
    wait_for(
        "unistra's offer to leave rennes2's cached catalogue",
        Duration::from_secs(10),
        || {
            let channel = rennes2_admin.clone();
            let id = otp.offer_id.clone();
            async move { offer_ids(channel).await.filter(|ids| !ids.contains(&id)) }
        },
    )
    .await;
    // The others go on.
    whoami(rennes2_admin.clone()).await.unwrap();
    assert!(
        offer_ids(rennes2_admin.clone())
            .await
            .unwrap()
            .contains(&video.offer_id)
    );
    // The removal survives a restart of rouen's node (kept in its database).
    fed.running.restart_member(ROUEN).await.unwrap();
    let peer = SubscriptionServiceClient::new(node_to_node(&fed, UNISTRA, ROUEN))
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(peer.code(), Code::PermissionDenied, "{peer:?}");
}

async fn whoami(channel: Channel) -> Result<pb::WhoAmIResponse, tonic::Status> {
    NodeServiceClient::new(channel)
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .map(tonic::Response::into_inner)
}
