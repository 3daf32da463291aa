//! WAN faults between real parties: a fault-injecting TCP proxy (the kit's `proxy`) sits between
//! two parties and cuts, slows or resets their link while the federation works. After healing,
//! nothing is lost, nothing is applied twice, and convergence resumes.

use std::time::{Duration, Instant};

use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_proto::pb;
use fedmesh_proto::pb::catalogue_service_client::CatalogueServiceClient;
use fedmesh_proto::pb::incident_service_client::IncidentServiceClient;
use fedmesh_proto::pb::metrics_service_client::MetricsServiceClient;
use fedmesh_proto::pb::offer_service_client::OfferServiceClient;
use fedmesh_proto::pb::subscription_service_client::SubscriptionServiceClient;
use fedmesh_proto::pb::usage_service_client::UsageServiceClient;
use fedmesh_tests::proxy::{FaultProxy, Toxics};
use fedmesh_tests::{TestFederation, example_offer, wait_for};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const UNISTRA: usize = 0;
const RENNES2: usize = 1;
const ROUEN: usize = 2;
const OFFER: &str = "unistra.collab";
/// 5 October 2026, 00:00 in Paris.
const OCT_5: i64 = 1_791_151_200;

// ---------------------------------------------------------------------------------------------
// The proxy itself, over a plain TCP echo server.

async fn echo_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Sends `len` bytes through `proxy` and reads them back; how long it took, or the error.
async fn round_trip(proxy: &FaultProxy, len: usize) -> std::io::Result<Duration> {
    let started = Instant::now();
    let mut socket = tokio::net::TcpStream::connect(proxy.addr()).await?;
    let data = vec![7u8; len];
    let (mut read, mut write) = socket.split();
    let send = async {
        write.write_all(&data).await?;
        Ok::<_, std::io::Error>(())
    };
    let receive = async {
        let mut got = vec![0u8; len];
        read.read_exact(&mut got).await?;
        Ok::<_, std::io::Error>(got)
    };
    let (sent, got) = tokio::join!(send, receive);
    sent?;
    assert_eq!(got?, data);
    Ok(started.elapsed())
}

#[tokio::test]
async fn the_proxy_applies_each_toxic() {
    let proxy = FaultProxy::start(echo_server().await).await;
    round_trip(&proxy, 1000).await.unwrap();
    assert!(proxy.forwarded() >= 2000);

    // Latency with jitter: every chunk waits at least the latency, each way.
    proxy.set(Toxics {
        latency: Duration::from_millis(100),
        jitter: Duration::from_millis(50),
        ..Toxics::default()
    });
    assert!(round_trip(&proxy, 100).await.unwrap() >= Duration::from_millis(200));

    // Bandwidth: 64 KiB at 128 KiB/s takes at least half a second (each way, pipelined).
    proxy.set(Toxics {
        bandwidth: Some(128 * 1024),
        ..Toxics::default()
    });
    assert!(round_trip(&proxy, 64 * 1024).await.unwrap() >= Duration::from_millis(450));

    // Data limit: the connection closes after 1000 bytes.
    proxy.set(Toxics {
        data_limit: Some(1000),
        ..Toxics::default()
    });
    assert!(round_trip(&proxy, 4000).await.is_err());

    // Reset peer: a new connection is reset at once.
    proxy.set(Toxics {
        reset_peer: true,
        ..Toxics::default()
    });
    assert!(round_trip(&proxy, 10).await.is_err());

    // Slow close: the FIN arrives late.
    proxy.set(Toxics {
        slow_close: Some(Duration::from_millis(300)),
        ..Toxics::default()
    });
    let mut socket = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    socket.write_all(b"bye").await.unwrap();
    socket.shutdown().await.unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    socket.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"bye");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Blackhole (timeout): nothing comes back and nothing closes.
    proxy.set(Toxics {
        blackhole: true,
        ..Toxics::default()
    });
    let outcome = tokio::time::timeout(Duration::from_millis(500), round_trip(&proxy, 10)).await;
    assert!(outcome.is_err(), "a blackholed link answered: {outcome:?}");
    assert!(proxy.dropped() >= 10);

    // Partition of an open connection, then heal: the connection that lost bytes is reset,
    // new ones go through.
    proxy.heal();
    let mut open = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    open.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    open.read_exact(&mut one).await.unwrap();
    proxy.partition();
    open.write_all(b"lost").await.unwrap();
    let lost = tokio::time::timeout(Duration::from_millis(300), open.read(&mut one)).await;
    assert!(lost.is_err(), "the partition let bytes through");
    proxy.heal();
    let after = tokio::time::timeout(Duration::from_secs(2), open.read(&mut one))
        .await
        .expect("the broken connection was not reset on heal");
    assert!(matches!(after, Ok(0) | Err(_)), "{after:?}");
    round_trip(&proxy, 1000).await.unwrap();

    // Reset of every open connection.
    let mut open = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    open.write_all(b"x").await.unwrap();
    open.read_exact(&mut one).await.unwrap();
    proxy.reset_connections().await;
    let after = tokio::time::timeout(Duration::from_secs(2), open.read(&mut one))
        .await
        .unwrap();
    assert!(matches!(after, Ok(0) | Err(_)), "{after:?}");
}

// ---------------------------------------------------------------------------------------------
// A federation with unistra's node behind proxies: one in front of it (its advertised
// endpoint: the coordinator and other members reach it there) and one on its way to the
// coordinator.

struct Routed {
    fed: TestFederation,
    /// In front of unistra's node.
    inbound: FaultProxy,
    /// Between unistra's node and the coordinator.
    to_coordinator: FaultProxy,
}

impl Routed {
    fn partition(&self) {
        self.inbound.partition();
        self.to_coordinator.partition();
    }

    fn heal(&self) {
        self.inbound.heal();
        self.to_coordinator.heal();
    }
}

async fn routed(members: usize, nodes: &[&str]) -> Routed {
    let mut fed = TestFederation::start_with(members, &[], nodes).await;
    let inbound = FaultProxy::start(fed.running.member_addr(UNISTRA).unwrap()).await;
    let to_coordinator = FaultProxy::start(fed.running.coordinator_addr()).await;
    fed.running
        .restart_member_with(
            UNISTRA,
            &[
                format!("advertise={}", inbound.endpoint()),
                format!("coordinator.endpoint={}", to_coordinator.endpoint()),
            ],
        )
        .await
        .unwrap();
    // The registry now sends everyone through the inbound proxy.
    let coordinator = fed.as_admin(fed.coordinator());
    let expected = inbound.endpoint();
    wait_for(
        "unistra registered at its proxied endpoint",
        Duration::from_secs(10),
        || {
            let coordinator = coordinator.clone();
            let expected = expected.clone();
            async move {
                pb::registry_service_client::RegistryServiceClient::new(coordinator)
                    .get_node(pb::GetNodeRequest {
                        member_id: "unistra".into(),
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .node
                    .filter(|n| n.endpoint == expected)
            }
        },
    )
    .await;
    Routed {
        fed,
        inbound,
        to_coordinator,
    }
}

fn agent(fed: &TestFederation) -> UsageServiceClient<Channel> {
    let agent = fed.issue(&fed.uri("member/unistra/agent/probe"));
    UsageServiceClient::new(fed.channel(
        &fed.member(UNISTRA).endpoint,
        &agent.cert_path,
        &agent.key_path,
    ))
}

async fn publish(admin: Channel, offer: pb::Offer, etag: String) -> pb::Offer {
    OfferServiceClient::new(admin)
        .publish_offer(pb::PublishOfferRequest {
            offer: Some(offer),
            etag,
        })
        .await
        .unwrap()
        .into_inner()
        .offer
        .unwrap()
}

async fn subscribe(admin: Channel, request_id: &str) -> pb::RequestSubscriptionResponse {
    SubscriptionServiceClient::new(admin)
        .request_subscription(pb::RequestSubscriptionRequest {
            request_id: request_id.into(),
            offer_id: OFFER.into(),
            user_count: 100,
            contact_email: "dsi@example.org".into(),
            accepted_terms_version: example_offer("collaboration").terms_version,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// A subscriber's desk opens an incident on the offer through `admin`'s node.
async fn escalate(admin: Channel, request_id: &str) -> pb::OpenIncidentResponse {
    IncidentServiceClient::new(admin)
        .open_incident(pb::OpenIncidentRequest {
            request_id: request_id.into(),
            offer_id: OFFER.into(),
            priority: pb::Priority::P2 as i32,
            summary: "Login fails".into(),
            description: "Every login ends on an error page.".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn october_requests(metrics: Channel) -> Option<i64> {
    let m = MetricsServiceClient::new(metrics)
        .get_offer_metrics(pb::GetOfferMetricsRequest {
            offer_id: OFFER.into(),
            from_month: Some(pb::YearMonth {
                year: 2026,
                month: 10,
            }),
            to_month: Some(pb::YearMonth {
                year: 2026,
                month: 10,
            }),
        })
        .await
        .ok()?
        .into_inner();
    m.months.into_iter().next().map(|m| m.request_count)
}

async fn catalogue_offer(channel: Channel) -> Option<pb::CatalogueOffer> {
    CatalogueServiceClient::new(channel)
        .get_catalogue_offer(pb::GetCatalogueOfferRequest {
            offer_id: OFFER.into(),
        })
        .await
        .ok()?
        .into_inner()
        .offer
}

/// The coordinator is cut off from a provider while its agent reports usage without pause and
/// its admin keeps changing the offer. After healing, the coordinator's totals equal exactly
/// what the provider acknowledged, and its catalogue holds the last version of the offer.
#[tokio::test]
async fn a_partition_between_coordinator_and_provider_loses_and_duplicates_nothing() {
    let routed = routed(2, &[]).await;
    let fed = &routed.fed;
    let admin = fed.as_admin(fed.member(UNISTRA));
    let mut offer = publish(admin.clone(), example_offer("collaboration"), String::new()).await;
    let tenancy = subscribe(fed.as_admin(fed.member(RENNES2)), "req-1")
        .await
        .subscription
        .unwrap()
        .subscription_id;
    let coordinator = fed.channel(
        &fed.coordinator().endpoint,
        &fed.member(RENNES2).admin_cert,
        &fed.member(RENNES2).admin_key,
    );
    wait_for(
        "the offer at the coordinator",
        Duration::from_secs(10),
        || catalogue_offer(coordinator.clone()),
    )
    .await;

    // The workload: 1 request per record, 20 records per batch, one batch every 20 ms, and a
    // new description every 10 batches; runs through the partition and the healing.
    let mut agent = agent(fed);
    let mut acknowledged = 0i64;
    let mut batch = 0u32;
    let mut description_version = 0u32;
    let phases = [
        (Duration::from_secs(1), "before"),
        (Duration::from_secs(3), "cut"),
        (Duration::from_secs(1), "healed"),
    ];
    for (length, phase) in phases {
        match phase {
            "cut" => routed.partition(),
            "healed" => routed.heal(),
            _ => {}
        }
        let until = Instant::now() + length;
        while Instant::now() < until {
            let records = (0..20)
                .map(|i| pb::UsageRecord {
                    record_id: format!("r{batch}-{i}"),
                    offer_id: OFFER.into(),
                    subscription_id: tenancy.clone(),
                    metric: "requests".into(),
                    value: 1.0,
                    period: Some(pb::Period {
                        start_time: Some(prost_types::Timestamp {
                            seconds: OCT_5 + i64::from(batch) * 60,
                            nanos: 0,
                        }),
                        end_time: Some(prost_types::Timestamp {
                            seconds: OCT_5 + i64::from(batch) * 60 + 60,
                            nanos: 0,
                        }),
                    }),
                    ..Default::default()
                })
                .collect();
            let report = agent
                .report_usage(pb::ReportUsageRequest { records })
                .await
                .unwrap()
                .into_inner();
            acknowledged += i64::from(report.accepted_count);
            if batch.is_multiple_of(10) {
                description_version += 1;
                let mut next = offer.clone();
                if let Some(description) = next.description.as_mut() {
                    description.en = format!("version {description_version}");
                }
                offer = publish(admin.clone(), next, offer.etag.clone()).await;
            }
            batch += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(acknowledged >= 1000, "the workload ran: {acknowledged}");
    assert!(
        routed.inbound.dropped() > 0,
        "the partition dropped traffic"
    );

    let expected_description = format!("version {description_version}");
    wait_for(
        "the coordinator's totals and catalogue to converge after healing",
        Duration::from_secs(30),
        || {
            let coordinator = coordinator.clone();
            let expected_description = expected_description.clone();
            async move {
                let requests = october_requests(coordinator.clone()).await?;
                let offer = catalogue_offer(coordinator).await?;
                let description = offer.offer?.description?.en;
                (requests == acknowledged && description == expected_description).then_some(())
            }
        },
    )
    .await;
    // And they stay exact: nothing arrives twice later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        october_requests(coordinator.clone()).await,
        Some(acknowledged)
    );
    assert!(
        catalogue_offer(coordinator).await.unwrap().provider_node_up,
        "the provider is seen up again"
    );
}

/// A subscriber's requests to a provider that is cut off wait in its outbox, and are each
/// delivered exactly once after healing: a new tenancy, an incident, a comment.
#[tokio::test]
async fn requests_queued_while_the_provider_is_cut_off_are_delivered_once() {
    let routed = routed(3, &[]).await;
    let fed = &routed.fed;
    publish(
        fed.as_admin(fed.member(UNISTRA)),
        example_offer("collaboration"),
        String::new(),
    )
    .await;
    let rennes2 = fed.as_admin(fed.member(RENNES2));
    let rouen = fed.as_admin(fed.member(ROUEN));
    let active = subscribe(rennes2.clone(), "req-rennes2").await;
    assert!(!active.queued);

    routed.partition();
    let queued = subscribe(rouen.clone(), "req-rouen").await;
    assert!(queued.queued, "the provider is cut off: {queued:?}");
    let opened = escalate(rennes2.clone(), "inc-1").await;
    assert!(opened.queued, "{opened:?}");
    let incident_id = opened.incident.unwrap().incident_id;
    // The partition lasts a while; the queue is retried meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    routed.heal();

    let provider = fed.as_admin(fed.member(UNISTRA));
    let (tenancies, incidents) = wait_for(
        "the queued requests at the provider",
        Duration::from_secs(30),
        || {
            let provider = provider.clone();
            async move {
                let tenancies = SubscriptionServiceClient::new(provider.clone())
                    .list_subscriptions(pb::ListSubscriptionsRequest::default())
                    .await
                    .ok()?
                    .into_inner()
                    .subscriptions;
                let incidents = IncidentServiceClient::new(provider)
                    .list_incidents(pb::ListIncidentsRequest::default())
                    .await
                    .ok()?
                    .into_inner()
                    .incidents;
                (tenancies.len() == 2 && incidents.len() == 1).then_some((tenancies, incidents))
            }
        },
    )
    .await;
    let rouen_tenancies: Vec<_> = tenancies
        .iter()
        .filter(|t| t.subscriber_member_id == "rouen")
        .collect();
    assert_eq!(rouen_tenancies.len(), 1, "{tenancies:?}");
    assert_eq!(incidents[0].subscriber_member_id, "rennes2");
    // The subscriber's copies follow, under the provider's ids.
    let rouen_copy = wait_for(
        "rouen's copy of its tenancy",
        Duration::from_secs(15),
        || {
            let rouen = rouen.clone();
            let id = rouen_tenancies[0].subscription_id.clone();
            async move {
                SubscriptionServiceClient::new(rouen)
                    .get_subscription(pb::GetSubscriptionRequest {
                        subscription_id: id,
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .subscription
                    .filter(|s| s.state() == pb::SubscriptionState::Active)
            }
        },
    )
    .await;
    assert_eq!(rouen_copy.subscriber_member_id, "rouen");
    // The subscriber's node holds exactly that incident once delivered (its queued view had
    // no id yet).
    assert!(incident_id.is_empty());
    let provider_id = incidents[0].incident_id.clone();
    wait_for(
        "the incident mirrored on the subscriber's node, once",
        Duration::from_secs(15),
        || {
            let rennes2 = rennes2.clone();
            let provider_id = provider_id.clone();
            async move {
                let mirrored = IncidentServiceClient::new(rennes2)
                    .list_incidents(pb::ListIncidentsRequest::default())
                    .await
                    .ok()?
                    .into_inner()
                    .incidents;
                (mirrored.len() == 1 && mirrored[0].incident_id == provider_id).then_some(())
            }
        },
    )
    .await;
    // Later retries change nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = SubscriptionServiceClient::new(provider.clone())
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .subscriptions;
    assert_eq!(again.len(), 2);
}

/// Waits until member `index`'s restarted node has registered (and copied the registry).
async fn linked_through_proxy(fed: &TestFederation, index: usize) {
    let restarted = std::time::SystemTime::now();
    let admin = fed.as_admin(fed.member(index));
    wait_for("the node registered again", Duration::from_secs(10), || {
        let admin = admin.clone();
        async move {
            let status = pb::node_service_client::NodeServiceClient::new(admin)
                .get_node_status(pb::GetNodeStatusRequest {})
                .await
                .ok()?
                .into_inner();
            let contact = std::time::SystemTime::try_from(status.coordinator_last_contact?).ok()?;
            (status.coordinator_reachable && contact >= restarted).then_some(())
        }
    })
    .await;
}

/// The coordinator is unreachable (its link cut, not refused) for everyone: members still
/// browse their cached catalogue, subscribe and escalate to each other, and catch up when it
/// is back.
#[tokio::test]
async fn members_keep_working_while_the_coordinator_is_unreachable() {
    let mut fed = TestFederation::start(3).await;
    // Every node's link to the coordinator goes through the proxy.
    let proxy = FaultProxy::start(fed.running.coordinator_addr()).await;
    for member in [UNISTRA, RENNES2, ROUEN] {
        fed.running
            .restart_member_with(
                member,
                &[format!("coordinator.endpoint={}", proxy.endpoint())],
            )
            .await
            .unwrap();
        linked_through_proxy(&fed, member).await;
    }
    publish(
        fed.as_admin(fed.member(UNISTRA)),
        example_offer("collaboration"),
        String::new(),
    )
    .await;
    let rennes2 = fed.as_admin(fed.member(RENNES2));
    let rouen = fed.as_admin(fed.member(ROUEN));
    for admin in [&rennes2, &rouen] {
        wait_for(
            "the offer in the cached catalogue",
            Duration::from_secs(10),
            || catalogue_offer(admin.clone()),
        )
        .await;
    }
    subscribe(rennes2.clone(), "before").await;

    proxy.partition();
    let cut_at = Instant::now();
    // 12 s: 15 times the test federation's staleness limit and 60 times its retry ceiling
    // (a production node's would be minutes). FEDMESH_COORDINATOR_OUTAGE_SECS=300 runs it
    // for real minutes.
    let outage = Duration::from_secs(
        std::env::var("FEDMESH_COORDINATOR_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(12),
    );
    // Browsing: from the cache.
    assert!(catalogue_offer(rouen.clone()).await.is_some());
    // Subscribing, for a member that never reached this provider before: its node finds the
    // provider in its cached registry.
    let answer = subscribe(rouen.clone(), "during").await;
    assert!(
        !answer.queued,
        "the provider is reachable; only the coordinator is not: {answer:?}"
    );
    assert_eq!(
        answer.subscription.unwrap().state(),
        pb::SubscriptionState::Active
    );
    // Escalating.
    let opened = escalate(rennes2.clone(), "inc-during").await;
    assert!(!opened.queued, "{opened:?}");
    // Still browsing at the end of the outage.
    tokio::time::sleep(outage.saturating_sub(cut_at.elapsed())).await;
    assert!(catalogue_offer(rennes2.clone()).await.is_some());
    assert!(proxy.dropped() > 0, "the coordinator link was used and cut");

    proxy.heal();
    // The coordinator catches up: both tenancies counted in its catalogue.
    let coordinator = fed.channel(
        &fed.coordinator().endpoint,
        &fed.member(RENNES2).admin_cert,
        &fed.member(RENNES2).admin_key,
    );
    wait_for(
        "the coordinator to count both tenancies",
        Duration::from_secs(30),
        || {
            let coordinator = coordinator.clone();
            async move {
                catalogue_offer(coordinator)
                    .await
                    .filter(|o| o.tenant_count == 2 && o.provider_node_up)
            }
        },
    )
    .await;
}
