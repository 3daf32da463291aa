//! A node's journal as other parties read it: backlog then live entries in revision order,
//! pages, and what each caller may see.

use std::time::Duration;

use fedmesh_proto::pb;
use fedmesh_proto::pb::journal_service_client::JournalServiceClient;
use fedmesh_proto::pb::offer_service_client::OfferServiceClient;
use fedmesh_proto::pb::watch_response::Event;
use fedmesh_tests::{TestFederation, example_offer};
use tonic::Code;

async fn publish_versions(fed: &TestFederation, versions: std::ops::Range<u32>, etag: &mut String) {
    let mut offers = OfferServiceClient::new(fed.as_admin(fed.member(0)));
    for v in versions {
        let mut offer = example_offer("otp");
        offer.version = format!("1.{v}");
        *etag = offers
            .publish_offer(pb::PublishOfferRequest {
                offer: Some(offer),
                etag: etag.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .offer
            .unwrap()
            .etag;
    }
}

#[tokio::test]
async fn a_peer_node_watches_the_backlog_then_live_entries_in_order() {
    let fed = TestFederation::start(2).await;
    let mut etag = String::new();
    publish_versions(&fed, 0..3, &mut etag).await;

    // rennes2's node follows unistra's journal from revision 1.
    let peer = fed.channel(
        &fed.member(0).endpoint,
        &fed.member(1).node_cert,
        &fed.member(1).node_key,
    );
    let mut watch = JournalServiceClient::new(peer.clone())
        .watch(pb::WatchRequest {
            since_revision: 1,
            entity_kinds: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let mut revisions = Vec::new();
    let mut caught_up = None;
    while revisions.len() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .expect("the watch stalled")
            .unwrap()
            .unwrap();
        match message.event {
            Some(Event::Entry(entry)) => {
                assert_eq!(entry.member_id, "unistra");
                assert_eq!(entry.entity_kind(), pb::EntityKind::Offer);
                revisions.push(entry.revision);
            }
            Some(Event::CaughtUp(marker)) => {
                caught_up = Some(marker.last_revision);
                // Live from here: one more publish.
                publish_versions(&fed, 3..4, &mut etag).await;
            }
            _ => {}
        }
    }
    assert_eq!(caught_up, Some(3));
    assert_eq!(
        revisions,
        [2, 3, 4],
        "after revision 1, in order, backlog then live"
    );

    // Paging through the journal.
    let mut journal = JournalServiceClient::new(peer);
    let first = journal
        .list_entries(pb::ListEntriesRequest {
            page_size: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.entries.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(first.last_revision, 4);
    let second = journal
        .list_entries(pb::ListEntriesRequest {
            page_size: 3,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        second
            .entries
            .iter()
            .map(|e| e.revision)
            .collect::<Vec<_>>(),
        [4]
    );
    assert!(second.next_page_token.is_empty());
    // Filters by kind: no usage records yet.
    let usage = journal
        .list_entries(pb::ListEntriesRequest {
            entity_kinds: vec![pb::EntityKind::UsageRecord as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(usage.entries.is_empty());
    let status = journal
        .list_entries(pb::ListEntriesRequest {
            entity_kinds: vec![99],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("entity_kinds[0]:"),
        "{}",
        status.message()
    );
    let status = journal
        .list_entries(pb::ListEntriesRequest {
            page_token: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        status.message().starts_with("page_token:"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn agents_may_not_read_a_journal() {
    let fed = TestFederation::start(1).await;
    let agent = fed.issue(&fed.uri("member/unistra/agent/probe"));
    let channel = fed.channel(&fed.member(0).endpoint, &agent.cert_path, &agent.key_path);
    let status = JournalServiceClient::new(channel)
        .get_journal_info(pb::GetJournalInfoRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
}
