//! Offers from publication on a provider's node to the coordinator's catalogue and other
//! members' cached catalogues, through the journal.

use std::time::Duration;

use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_proto::pb;
use fedmesh_proto::pb::catalogue_service_client::CatalogueServiceClient;
use fedmesh_proto::pb::journal_service_client::JournalServiceClient;
use fedmesh_proto::pb::offer_service_client::OfferServiceClient;
use fedmesh_tests::{TestFederation, all_pages, example_offer, wait_for};
use tonic::Code;

const PATIENCE: Duration = Duration::from_secs(10);
// Members: 0 unistra (provides otp), 1 rennes2 (collaboration), 2 rouen (video).
const UNISTRA: usize = 0;
const RENNES2: usize = 1;

async fn publish(
    channel: Channel,
    offer: pb::Offer,
    etag: &str,
) -> Result<pb::PublishOfferResponse, tonic::Status> {
    OfferServiceClient::new(channel)
        .publish_offer(pb::PublishOfferRequest {
            offer: Some(offer),
            etag: etag.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn catalogue_entry(channel: Channel, offer_id: &str) -> Option<pb::CatalogueOffer> {
    CatalogueServiceClient::new(channel)
        .get_catalogue_offer(pb::GetCatalogueOfferRequest {
            offer_id: offer_id.into(),
        })
        .await
        .ok()?
        .into_inner()
        .offer
}

/// Waits until `channel`'s catalogue holds `offer_id` in a state `accept` likes.
async fn wait_catalogue(
    what: &str,
    channel: &Channel,
    offer_id: &str,
    accept: impl Fn(&pb::CatalogueOffer) -> bool,
) -> pb::CatalogueOffer {
    wait_for(what, PATIENCE, || {
        let channel = channel.clone();
        let accept = &accept;
        async move {
            catalogue_entry(channel, offer_id)
                .await
                .filter(|e| accept(e))
        }
    })
    .await
}

fn version(entry: &pb::CatalogueOffer) -> &str {
    entry.offer.as_ref().map_or("", |o| o.version.as_str())
}

#[tokio::test]
async fn publish_update_withdraw_reaches_the_coordinator_and_other_members() {
    let fed = TestFederation::start(2).await;
    let provider = fed.as_admin(fed.member(UNISTRA));
    let coordinator = fed.as_admin(fed.coordinator());
    let other_member = fed.as_admin(fed.member(RENNES2));

    // Another member watches its node's catalogue from the start.
    let mut watch = CatalogueServiceClient::new(other_member.clone())
        .watch_catalogue(pb::WatchCatalogueRequest::default())
        .await
        .unwrap()
        .into_inner();

    let created = publish(provider.clone(), example_offer("otp"), "")
        .await
        .unwrap();
    assert!(created.created);
    let offer = created.offer.unwrap();
    assert_eq!(offer.offer_id, "unistra.otp");
    assert_eq!(offer.provider_member_id, "unistra");
    assert!(!offer.etag.is_empty());

    let at_coordinator = wait_catalogue(
        "the offer at the coordinator",
        &coordinator,
        "unistra.otp",
        |_| true,
    )
    .await;
    assert!(at_coordinator.provider_node_up);
    assert_eq!(at_coordinator.offer.as_ref().unwrap().etag, offer.etag);
    wait_catalogue(
        "the offer in rennes2's cached catalogue",
        &other_member,
        "unistra.otp",
        |_| true,
    )
    .await;
    let seen = tokio::time::timeout(PATIENCE, async {
        loop {
            let message = watch.message().await.unwrap().expect("the watch ended");
            if let Some(change) = message.change.filter(|c| c.offer_id == "unistra.otp") {
                return change;
            }
        }
    })
    .await
    .expect("the offer never reached rennes2's catalogue watch");
    assert_eq!(version(seen.offer.as_ref().unwrap()), offer.version);

    // Update with the etag.
    let mut changed = example_offer("otp");
    changed.version = "9.9".into();
    let updated = publish(provider.clone(), changed.clone(), &offer.etag)
        .await
        .unwrap();
    assert!(!updated.created);
    let updated = updated.offer.unwrap();
    assert_ne!(updated.etag, offer.etag);
    wait_catalogue(
        "the update at the coordinator",
        &coordinator,
        "unistra.otp",
        |e| version(e) == "9.9",
    )
    .await;
    wait_catalogue("the update at rennes2", &other_member, "unistra.otp", |e| {
        version(e) == "9.9"
    })
    .await;

    // A stale etag, or none for an existing offer: ABORTED, nothing changes.
    let status = publish(provider.clone(), changed.clone(), &offer.etag)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(
        status.message().contains(&updated.etag),
        "{}",
        status.message()
    );
    let status = publish(provider.clone(), changed, "").await.unwrap_err();
    assert_eq!(status.code(), Code::Aborted, "{status:?}");

    // Withdraw.
    let withdrawn = OfferServiceClient::new(provider.clone())
        .withdraw_offer(pb::WithdrawOfferRequest {
            offer_id: "unistra.otp".into(),
            etag: updated.etag.clone(),
            reason: "replaced".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .offer
        .unwrap();
    assert_eq!(withdrawn.status(), pb::OfferStatus::Withdrawn);
    wait_catalogue(
        "the withdrawal at rennes2",
        &other_member,
        "unistra.otp",
        |e| {
            e.offer
                .as_ref()
                .is_some_and(|o| o.status() == pb::OfferStatus::Withdrawn)
        },
    )
    .await;
    let visible = CatalogueServiceClient::new(coordinator.clone())
        .search_offers(pb::SearchOffersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        visible.offers.is_empty(),
        "withdrawn offers are not listed by default"
    );
    // A withdrawn offer is final.
    let status = publish(provider, example_offer("otp"), &withdrawn.etag)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
}

#[tokio::test]
async fn bad_offers_and_impersonation_are_refused() {
    let fed = TestFederation::start(2).await;
    let provider = fed.as_admin(fed.member(UNISTRA));

    let mut bad = example_offer("otp");
    bad.capacity.as_mut().unwrap().max_tenants = 0;
    let status = publish(provider.clone(), bad, "").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("offer.capacity.max_tenants:"),
        "{}",
        status.message()
    );

    let mut bad = example_offer("otp");
    bad.engagement.as_mut().unwrap().availability_sla_percent = 120.0;
    let status = publish(provider.clone(), bad, "").await.unwrap_err();
    assert!(
        status
            .message()
            .starts_with("offer.engagement.availability_sla_percent:"),
        "{}",
        status.message()
    );

    let status = OfferServiceClient::new(provider.clone())
        .publish_offer(pb::PublishOfferRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("offer:"),
        "{}",
        status.message()
    );

    // Publishing as another member.
    let mut forged = example_offer("otp");
    forged.provider_member_id = "rennes2".into();
    let status = publish(provider.clone(), forged, "").await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let mut forged = example_offer("otp");
    forged.offer_id = "rennes2.otp".into();
    let status = publish(provider.clone(), forged, "").await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // Another member's admin cannot publish on this node at all.
    let intruder = fed.channel(
        &fed.member(UNISTRA).endpoint,
        &fed.member(RENNES2).admin_cert,
        &fed.member(RENNES2).admin_key,
    );
    let status = publish(intruder, example_offer("otp"), "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // Nothing was stored.
    let listed = OfferServiceClient::new(provider)
        .list_offers(pb::ListOffersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.offers.is_empty());
}

#[tokio::test]
async fn the_coordinator_resumes_from_its_cursor_without_loss_or_duplicates() {
    let mut fed = TestFederation::start(1).await;
    let provider = fed.as_admin(fed.member(UNISTRA));
    let coordinator = fed.as_admin(fed.coordinator());
    let mut etag = publish(provider.clone(), example_offer("otp"), "")
        .await
        .unwrap()
        .offer
        .unwrap()
        .etag;
    wait_catalogue("the first version", &coordinator, "unistra.otp", |_| true).await;

    // Updates while the coordinator is down...
    fed.running.stop_coordinator().await.unwrap();
    for i in 0..5 {
        let mut offer = example_offer("otp");
        offer.version = format!("2.{i}");
        etag = publish(provider.clone(), offer, &etag)
            .await
            .unwrap()
            .offer
            .unwrap()
            .etag;
    }
    // ...and after it is back, mid-stream.
    fed.running.restart_coordinator().await.unwrap();
    for i in 5..10 {
        let mut offer = example_offer("otp");
        offer.version = format!("2.{i}");
        etag = publish(provider.clone(), offer, &etag)
            .await
            .unwrap()
            .offer
            .unwrap()
            .etag;
    }
    let coordinator = fed.as_admin(fed.coordinator());
    wait_catalogue(
        "the last version after the restart",
        &coordinator,
        "unistra.otp",
        |e| version(e) == "2.9",
    )
    .await;

    // Every journal revision was applied exactly once. The catalogue's change log (replayed
    // from after its first change, which was version 1) lists each source revision of the
    // offer; an entry applied twice would appear twice in a row with the same reachability.
    let mut log = CatalogueServiceClient::new(coordinator)
        .watch_catalogue(pb::WatchCatalogueRequest {
            since_revision: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen: Vec<(u64, bool)> = Vec::new();
    loop {
        let message = log.message().await.unwrap().unwrap();
        if let Some(change) = message.change {
            let entry = change.offer.unwrap();
            seen.push((entry.source_revision, entry.provider_node_up));
        }
        if message.caught_up {
            break;
        }
    }
    for pair in seen.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "a journal entry was applied twice: {seen:?}"
        );
    }
    let mut revisions: Vec<u64> = seen.iter().map(|(r, _)| *r).collect();
    revisions.dedup();
    assert_eq!(
        revisions,
        (2..=11).collect::<Vec<_>>(),
        "no loss, in order: {seen:?}"
    );
    let journal = JournalServiceClient::new(provider)
        .list_entries(pb::ListEntriesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(journal.entries.len(), 11, "one journal entry per publish");
}

#[tokio::test]
async fn a_down_provider_is_marked_unreachable_and_a_restarted_one_keeps_its_journal() {
    let mut fed = TestFederation::start(2).await;
    let provider = fed.as_admin(fed.member(UNISTRA));
    let coordinator = fed.as_admin(fed.coordinator());
    publish(provider.clone(), example_offer("otp"), "")
        .await
        .unwrap();
    wait_catalogue("the offer, provider up", &coordinator, "unistra.otp", |e| {
        e.provider_node_up
    })
    .await;
    let info_before = JournalServiceClient::new(provider)
        .get_journal_info(pb::GetJournalInfoRequest {})
        .await
        .unwrap()
        .into_inner();

    fed.running.stop_member(UNISTRA).await.unwrap();
    let down = wait_catalogue(
        "the offer marked unreachable",
        &coordinator,
        "unistra.otp",
        |e| !e.provider_node_up,
    )
    .await;
    assert_eq!(
        version(&down),
        example_offer("otp").version,
        "the offer stays in the catalogue"
    );
    // Other members see it too, through their cached catalogue.
    let other = fed.as_admin(fed.member(RENNES2));
    wait_catalogue(
        "rennes2 sees the provider unreachable",
        &other,
        "unistra.otp",
        |e| !e.provider_node_up,
    )
    .await;

    fed.running.restart_member(UNISTRA).await.unwrap();
    wait_catalogue(
        "the offer marked reachable again",
        &coordinator,
        "unistra.otp",
        |e| e.provider_node_up,
    )
    .await;
    let provider = fed.as_admin(fed.member(UNISTRA));
    let info_after = JournalServiceClient::new(provider.clone())
        .get_journal_info(pb::GetJournalInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info_after.journal_id, info_before.journal_id);
    assert_eq!(info_after.last_revision, info_before.last_revision);
    let offer = OfferServiceClient::new(provider)
        .get_offer(pb::GetOfferRequest {
            offer_id: "unistra.otp".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .offer
        .unwrap();
    assert_eq!(offer.service_id, "otp");
}

/// Pages of offers end before they would outgrow a response: with a 64 KiB message limit,
/// twelve offers with full-length descriptions (4,000 characters in French and in English)
/// come in several pages, from the provider's node and from the coordinator's catalogue, each
/// once, none refused.
#[tokio::test]
async fn pages_of_long_offers_fit_one_response() {
    let fed = TestFederation::start_with(
        2,
        &["limits.max_encoding_message_bytes=65536"],
        &["limits.max_encoding_message_bytes=65536"],
    )
    .await;
    let provider = fed.as_admin(fed.member(UNISTRA));
    let mut published = Vec::new();
    for n in 0..12 {
        let mut offer = example_offer("otp");
        offer.service_id = format!("long{n}");
        offer.description = Some(pb::LocalizedText {
            fr: "é".repeat(3990) + &format!("{n:04}"),
            en: "e".repeat(3990) + &format!("{n:04}"),
        });
        let stored = publish(provider.clone(), offer, "").await.unwrap();
        published.push(stored.offer.unwrap().offer_id);
    }
    published.sort();

    let (listed, pages) = all_pages(|token| {
        let provider = provider.clone();
        async move {
            let page = OfferServiceClient::new(provider)
                .list_offers(pb::ListOffersRequest {
                    page_size: 500,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let ids = page.offers.into_iter().map(|o| o.offer_id).collect();
            (ids, page.next_page_token)
        }
    })
    .await;
    assert!(pages > 1, "one page of {} offers", listed.len());
    assert_eq!(listed, published);

    let coordinator = fed.as_admin(fed.coordinator());
    let search = |token: String| {
        let coordinator = coordinator.clone();
        async move {
            CatalogueServiceClient::new(coordinator)
                .search_offers(pb::SearchOffersRequest {
                    page_size: 500,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    wait_for("twelve offers in the catalogue", PATIENCE, || {
        let search = &search;
        async move { (search(String::new()).await.total_size == 12).then_some(()) }
    })
    .await;
    let (found, pages) = all_pages(|token| {
        let search = &search;
        async move {
            let page = search(token).await;
            let ids = page
                .offers
                .into_iter()
                .map(|o| o.offer.unwrap().offer_id)
                .collect();
            (ids, page.next_page_token)
        }
    })
    .await;
    assert!(pages > 1, "one page of {} offers", found.len());
    assert_eq!(found, published);
}

#[tokio::test]
async fn the_catalogue_searches_by_text_category_provider_status_and_capacity() {
    let fed = TestFederation::start(3).await;
    for (member, name) in [(0, "otp"), (1, "collaboration"), (2, "video")] {
        publish(fed.as_admin(fed.member(member)), example_offer(name), "")
            .await
            .unwrap();
    }
    let coordinator = fed.as_admin(fed.coordinator());
    let search = |request: pb::SearchOffersRequest| {
        let coordinator = coordinator.clone();
        async move {
            let response = CatalogueServiceClient::new(coordinator)
                .search_offers(request)
                .await
                .unwrap()
                .into_inner();
            response
                .offers
                .into_iter()
                .map(|o| o.offer.unwrap().offer_id)
                .collect::<Vec<_>>()
        }
    };
    wait_for("three offers in the catalogue", PATIENCE, || {
        let search = &search;
        async move { (search(pb::SearchOffersRequest::default()).await.len() == 3).then_some(()) }
    })
    .await;
    let video = example_offer("video");
    assert_eq!(
        search(pb::SearchOffersRequest {
            text: "vidéo".into(),
            ..Default::default()
        })
        .await,
        ["rouen.pod"]
    );
    assert_eq!(
        search(pb::SearchOffersRequest {
            category: video.category.clone(),
            ..Default::default()
        })
        .await,
        ["rouen.pod"]
    );
    assert_eq!(
        search(pb::SearchOffersRequest {
            provider_member_id: "rennes2".into(),
            ..Default::default()
        })
        .await,
        ["rennes2.collab"]
    );
    assert_eq!(
        search(pb::SearchOffersRequest {
            statuses: vec![pb::OfferStatus::Pilot as i32],
            ..Default::default()
        })
        .await,
        ["unistra.otp"]
    );
    assert_eq!(
        search(pb::SearchOffersRequest {
            has_free_capacity: true,
            ..Default::default()
        })
        .await
        .len(),
        3,
        "no tenants yet: every offer has room"
    );
    let first = CatalogueServiceClient::new(coordinator.clone())
        .search_offers(pb::SearchOffersRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.offers.len(), 2);
    assert_eq!(first.total_size, 3);
    let second = search(pb::SearchOffersRequest {
        page_size: 2,
        page_token: first.next_page_token,
        ..Default::default()
    })
    .await;
    assert_eq!(second.len(), 1);
    let status = CatalogueServiceClient::new(coordinator)
        .search_offers(pb::SearchOffersRequest {
            provider_member_id: "Not Valid".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("provider_member_id:"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn members_browse_their_cached_catalogue_while_the_coordinator_is_down() {
    let mut fed = TestFederation::start(2).await;
    publish(fed.as_admin(fed.member(UNISTRA)), example_offer("otp"), "")
        .await
        .unwrap();
    let other = fed.as_admin(fed.member(RENNES2));
    wait_catalogue(
        "the offer in rennes2's cache",
        &other,
        "unistra.otp",
        |_| true,
    )
    .await;

    fed.running.stop_coordinator().await.unwrap();
    let found = CatalogueServiceClient::new(other)
        .search_offers(pb::SearchOffersRequest {
            text: "otp".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.offers.len(), 1);
}
