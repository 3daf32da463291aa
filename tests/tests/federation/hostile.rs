//! Hostile input over real mutual TLS, table-driven: every case is sent as raw bytes on a real
//! HTTP/2 connection by a real federation identity, and must get its expected status code
//! (with the offending field named where there is one), leave every node serving, and store
//! nothing on any node.

use std::path::PathBuf;
use std::time::Duration;

use fedmesh_core::Role;
use fedmesh_proto::pb;
use fedmesh_proto::pb::incident_service_client::IncidentServiceClient;
use fedmesh_proto::pb::journal_service_client::JournalServiceClient;
use fedmesh_proto::pb::subscription_service_client::SubscriptionServiceClient;
use fedmesh_tests::raw::RawConnection;
use fedmesh_tests::{TestFederation, example_offer, port_of, tls_client};
use prost::Message as _;
use tonic::Code;

const UNISTRA: usize = 0;
const RENNES2: usize = 1;
const ROUEN: usize = 2;
const OFFER: &str = "unistra.collab";

/// Who calls.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Node(usize),
    Admin(usize),
    Agent(usize),
    Coordinator,
}

/// Which server.
#[derive(Debug, Clone, Copy)]
enum Server {
    Member(usize),
    Coordinator,
}

struct World {
    fed: TestFederation,
    agents: Vec<(PathBuf, PathBuf)>,
    /// unistra's tenancy of rennes2.
    tenancy: String,
    /// rennes2's incident on it.
    incident: String,
}

impl World {
    async fn start() -> Self {
        let fed = TestFederation::start(3).await;
        fed.publish(UNISTRA, example_offer("collaboration")).await;
        let tenancy = SubscriptionServiceClient::new(fed.as_admin(fed.member(RENNES2)))
            .request_subscription(pb::RequestSubscriptionRequest {
                request_id: "req-1".into(),
                offer_id: OFFER.into(),
                user_count: 100,
                contact_email: "dsi@rennes2.example".into(),
                accepted_terms_version: example_offer("collaboration").terms_version,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .subscription
            .unwrap()
            .subscription_id;
        let incident = IncidentServiceClient::new(fed.as_admin(fed.member(RENNES2)))
            .open_incident(pb::OpenIncidentRequest {
                request_id: "inc-1".into(),
                offer_id: OFFER.into(),
                priority: pb::Priority::P3 as i32,
                summary: "Slow pages".into(),
                description: "Pages take 10 s to load.".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .incident
            .unwrap()
            .incident_id;
        let agents = ["unistra", "rennes2", "rouen"]
            .iter()
            .map(|m| {
                let issued = fed.issue(&fed.uri(&format!("member/{m}/agent/probe")));
                (issued.cert_path, issued.key_path)
            })
            .collect();
        let world = Self {
            fed,
            agents,
            tenancy,
            incident,
        };
        world.settle().await;
        world
    }

    /// Waits until the set-up's replication is over (rennes2 mirrors its tenancy and incident):
    /// from then on, any new journal entry would be the hostile input's doing.
    async fn settle(&self) {
        let mut last = self.revisions().await;
        let mut stable = 0;
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.revisions().await;
            let mirrored = IncidentServiceClient::new(self.fed.as_admin(self.fed.member(RENNES2)))
                .get_incident(pb::GetIncidentRequest {
                    incident_id: self.incident.clone(),
                })
                .await
                .is_ok();
            stable = if now == last && mirrored {
                stable + 1
            } else {
                0
            };
            // Longer than the subscriber node's provider-following period (1 s).
            if stable >= 5 {
                return;
            }
            last = now;
        }
        panic!("the set-up's replication did not settle");
    }

    fn files(&self, caller: Caller) -> (PathBuf, PathBuf) {
        match caller {
            Caller::Node(i) => (
                self.fed.member(i).node_cert.clone(),
                self.fed.member(i).node_key.clone(),
            ),
            Caller::Admin(i) => (
                self.fed.member(i).admin_cert.clone(),
                self.fed.member(i).admin_key.clone(),
            ),
            Caller::Agent(i) => self.agents[i].clone(),
            Caller::Coordinator => (
                self.fed.coordinator().node_cert.clone(),
                self.fed.coordinator().node_key.clone(),
            ),
        }
    }

    fn port(&self, server: Server) -> u16 {
        match server {
            Server::Member(i) => port_of(&self.fed.member(i).endpoint),
            Server::Coordinator => port_of(&self.fed.coordinator().endpoint),
        }
    }

    async fn connect(&self, caller: Caller, server: Server) -> RawConnection {
        let (cert, key) = self.files(caller);
        let config = tls_client(
            &self.fed.ca_pem(),
            Some((&cert, &key)),
            &[&rustls::version::TLS13],
        );
        RawConnection::open(self.port(server), config)
            .await
            .unwrap_or_else(|e| panic!("{caller:?} to {server:?}: {e}"))
    }

    /// Every node's last journal revision: what "nothing stored" is checked against.
    async fn revisions(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for i in [UNISTRA, RENNES2, ROUEN] {
            let info = JournalServiceClient::new(self.fed.as_admin(self.fed.member(i)))
                .get_journal_info(pb::GetJournalInfoRequest {})
                .await
                .unwrap()
                .into_inner();
            out.push(info.last_revision);
        }
        out
    }

    /// Every party answers its health check.
    async fn all_serving(&self) {
        let members = self.fed.running.manifest.members.len();
        for server in (0..members)
            .map(Server::Member)
            .chain([Server::Coordinator])
        {
            let caller = match server {
                Server::Member(i) => Caller::Admin(i),
                Server::Coordinator => Caller::Admin(members - 1),
            };
            let reply = self
                .connect(caller, server)
                .await
                .call("/grpc.health.v1.Health/Check", &[])
                .await
                .unwrap();
            assert_eq!(
                reply.code,
                Code::Ok,
                "{server:?} stopped serving: {reply:?}"
            );
        }
    }
}

/// One hostile call.
struct Case {
    name: &'static str,
    caller: Caller,
    server: Server,
    path: &'static str,
    body: Body,
    expect: Code,
    /// A word the status message must contain (the field named).
    mentions: &'static str,
}

enum Body {
    /// One message of these bytes.
    Message(Vec<u8>),
    /// The whole request body, framing included.
    Raw(Vec<u8>),
}

fn ts(seconds: i64, nanos: i32) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos })
}

fn usage(records: Vec<pb::UsageRecord>) -> Vec<u8> {
    pb::ReportUsageRequest { records }.encode_to_vec()
}

fn record(id: &str, tenancy: &str, start: Option<prost_types::Timestamp>) -> pb::UsageRecord {
    pb::UsageRecord {
        record_id: id.into(),
        offer_id: OFFER.into(),
        subscription_id: tenancy.into(),
        metric: "requests".into(),
        value: 1.0,
        period: Some(pb::Period {
            start_time: start,
            end_time: start.map(|s| prost_types::Timestamp {
                seconds: s.seconds.saturating_add(3600),
                nanos: 0,
            }),
        }),
        ..Default::default()
    }
}

/// An unknown field of group wire type, nested `depth` times.
fn deep_groups(depth: usize) -> Vec<u8> {
    let (start, end) = ((15u8 << 3) | 3, (15u8 << 3) | 4);
    let mut out = vec![start; depth];
    out.extend(std::iter::repeat_n(end, depth));
    out
}

fn cases(world: &World) -> Vec<Case> {
    use Body::{Message, Raw};
    use Caller::{Admin, Agent, Node};
    let tenancy = world.tenancy.clone();
    let mut cases = vec![
        Case {
            name: "a request over the message size limit",
            caller: Admin(UNISTRA),
            server: Server::Member(UNISTRA),
            path: "/fedmesh.v1.OfferService/GetOffer",
            body: Message(
                pb::GetOfferRequest {
                    offer_id: "x".repeat(5 * 1024 * 1024),
                }
                .encode_to_vec(),
            ),
            expect: Code::OutOfRange,
            mentions: "",
        },
        Case {
            name: "a huge repeated field (1001 usage records)",
            caller: Agent(UNISTRA),
            server: Server::Member(UNISTRA),
            path: "/fedmesh.v1.UsageService/ReportUsage",
            body: Message(usage(
                (0..1001)
                    .map(|i| record(&format!("r{i}"), &tenancy, ts(1_791_151_200, 0)))
                    .collect(),
            )),
            expect: Code::InvalidArgument,
            mentions: "records",
        },
        Case {
            name: "a huge repeated filter (100 000 statuses)",
            caller: Admin(UNISTRA),
            server: Server::Member(UNISTRA),
            path: "/fedmesh.v1.IncidentService/ListIncidents",
            body: Message(
                pb::ListIncidentsRequest {
                    statuses: vec![1; 100_000],
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            expect: Code::InvalidArgument,
            mentions: "statuses",
        },
        Case {
            name: "deeply nested unknown groups",
            caller: Admin(UNISTRA),
            server: Server::Member(UNISTRA),
            path: "/fedmesh.v1.OfferService/ListOffers",
            body: Message(deep_groups(200)),
            expect: Code::InvalidArgument,
            mentions: "",
        },
        Case {
            name: "invalid UTF-8 in a string",
            caller: Admin(UNISTRA),
            server: Server::Member(UNISTRA),
            path: "/fedmesh.v1.OfferService/GetOffer",
            body: Message(vec![0x0A, 0x02, 0xFF, 0xFE]),
            expect: Code::InvalidArgument,
            mentions: "",
        },
        Case {
            name: "a truncated message",
            caller: Admin(UNISTRA),
            server: Server::Member(UNISTRA),
            path: "/fedmesh.v1.OfferService/GetOffer",
            body: Message(vec![0x0A, 0x20, b'a']),
            expect: Code::InvalidArgument,
            mentions: "",
        },
        Case {
            name: "a frame announcing more bytes than sent",
            caller: Admin(UNISTRA),
            server: Server::Member(UNISTRA),
            path: "/fedmesh.v1.OfferService/GetOffer",
            body: Raw(vec![0, 0, 0, 1, 0, 0x0A]),
            expect: Code::Internal,
            mentions: "",
        },
        Case {
            name: "a compressed frame without an encoding",
            caller: Admin(UNISTRA),
            server: Server::Member(UNISTRA),
            path: "/fedmesh.v1.OfferService/GetOffer",
            body: Raw(vec![1, 0, 0, 0, 0]),
            expect: Code::Internal,
            mentions: "",
        },
        Case {
            name: "an out-of-range enum (priority 99)",
            caller: Admin(RENNES2),
            server: Server::Member(RENNES2),
            path: "/fedmesh.v1.IncidentService/OpenIncident",
            body: Message(
                pb::OpenIncidentRequest {
                    request_id: "hostile-1".into(),
                    offer_id: OFFER.into(),
                    priority: 99,
                    summary: "x".into(),
                    description: "x".into(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            expect: Code::InvalidArgument,
            mentions: "priority",
        },
        Case {
            name: "an incident summary that would set the provider's terminal title",
            caller: Admin(RENNES2),
            server: Server::Member(RENNES2),
            path: "/fedmesh.v1.IncidentService/OpenIncident",
            body: Message(
                pb::OpenIncidentRequest {
                    request_id: "hostile-osc".into(),
                    offer_id: OFFER.into(),
                    priority: pb::Priority::P3 as i32,
                    summary: "Slow pages\x1b]0;pwned\x07".into(),
                    description: "x".into(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            expect: Code::InvalidArgument,
            // As grpc-message carries it, percent-encoded.
            mentions: "summary:%20must%20not%20contain%20control%20characters",
        },
        Case {
            name: "a maintenance summary that would clear its tenants' screens (C1 CSI)",
            caller: Admin(UNISTRA),
            server: Server::Member(UNISTRA),
            path: "/fedmesh.v1.OfferService/AnnounceMaintenance",
            body: Message(
                pb::AnnounceMaintenanceRequest {
                    request_id: "hostile-csi".into(),
                    offer_id: OFFER.into(),
                    period: Some(pb::Period {
                        start_time: ts(4_102_444_800, 0),
                        end_time: ts(4_102_448_400, 0),
                    }),
                    summary: "Upgrade\u{9b}2J".into(),
                    description: "Two lines:\n\tfine here.".into(),
                }
                .encode_to_vec(),
            ),
            expect: Code::InvalidArgument,
            // As grpc-message carries it, percent-encoded.
            mentions: "summary:%20must%20not%20contain%20control%20characters",
        },
        Case {
            name: "an out-of-range enum in a filter (offer status 42)",
            caller: Admin(UNISTRA),
            server: Server::Member(UNISTRA),
            path: "/fedmesh.v1.OfferService/ListOffers",
            body: Message(
                pb::ListOffersRequest {
                    statuses: vec![42],
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            expect: Code::InvalidArgument,
            mentions: "statuses",
        },
        Case {
            name: "a timestamp in year 1",
            caller: Agent(UNISTRA),
            server: Server::Member(UNISTRA),
            path: "/fedmesh.v1.UsageService/ReportUsage",
            body: Message(usage(vec![record(
                "past",
                &tenancy,
                ts(-62_135_596_800, 0),
            )])),
            expect: Code::Ok,
            mentions: "records[0].period.start_time",
        },
        Case {
            name: "a timestamp in year 9999",
            caller: Agent(UNISTRA),
            server: Server::Member(UNISTRA),
            path: "/fedmesh.v1.UsageService/ReportUsage",
            body: Message(usage(vec![record(
                "future",
                &tenancy,
                ts(253_402_207_200, 0),
            )])),
            expect: Code::Ok,
            mentions: "records[0].period.start_time",
        },
        Case {
            name: "a timestamp with nanos out of range",
            caller: Agent(UNISTRA),
            server: Server::Member(UNISTRA),
            path: "/fedmesh.v1.UsageService/ReportUsage",
            body: Message(usage(vec![record(
                "nanos",
                &tenancy,
                ts(1_791_151_200, 2_000_000_000),
            )])),
            expect: Code::Ok,
            mentions: "records[0].period.start_time",
        },
    ];
    for (path, name, body) in [
        (
            "/fedmesh.v1.SubscriptionService/ListSubscriptions",
            "subscriptions",
            pb::ListSubscriptionsRequest {
                page_token: "\u{0}forged".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/fedmesh.v1.IncidentService/ListIncidents",
            "incidents",
            pb::ListIncidentsRequest {
                page_token: "not-a-token".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/fedmesh.v1.OfferService/ListOffers",
            "offers",
            pb::ListOffersRequest {
                page_token: "../../etc".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/fedmesh.v1.JournalService/ListEntries",
            "journal entries",
            pb::ListEntriesRequest {
                page_token: "18446744073709551616".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    ] {
        cases.push(Case {
            name: Box::leak(format!("a tampered page token ({name})").into_boxed_str()),
            caller: Admin(UNISTRA),
            server: Server::Member(UNISTRA),
            path,
            body: Message(body),
            expect: Code::InvalidArgument,
            mentions: "page_token",
        });
    }
    // A well-formed page token naming another member's tenancy pages on from there, but still
    // only through what the caller may see: nothing of rennes2's.
    cases.push(Case {
        name: "a page token naming another member's tenancy",
        caller: Node(ROUEN),
        server: Server::Member(UNISTRA),
        path: "/fedmesh.v1.SubscriptionService/ListSubscriptions",
        body: Message(
            pb::ListSubscriptionsRequest {
                page_token: "unistra.0".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        expect: Code::Ok,
        mentions: "",
    });
    // Other members' objects: answered as if they did not exist.
    let other = |name, caller, server, path, body: Vec<u8>| Case {
        name,
        caller,
        server,
        path,
        body: Message(body),
        expect: Code::NotFound,
        mentions: "",
    };
    cases.extend([
        other(
            "another member's tenancy, by a third member's node",
            Node(ROUEN),
            Server::Member(UNISTRA),
            "/fedmesh.v1.SubscriptionService/GetSubscription",
            pb::GetSubscriptionRequest {
                subscription_id: world.tenancy.clone(),
            }
            .encode_to_vec(),
        ),
        other(
            "another member's tenancy, cancelled by a third member's node",
            Node(ROUEN),
            Server::Member(UNISTRA),
            "/fedmesh.v1.SubscriptionService/CancelSubscription",
            pb::CancelSubscriptionRequest {
                request_id: "hostile-cancel".into(),
                subscription_id: world.tenancy.clone(),
                reason: "x".into(),
            }
            .encode_to_vec(),
        ),
        other(
            "another member's incident, by a third member's node",
            Node(ROUEN),
            Server::Member(UNISTRA),
            "/fedmesh.v1.IncidentService/GetIncident",
            pb::GetIncidentRequest {
                incident_id: world.incident.clone(),
            }
            .encode_to_vec(),
        ),
        other(
            "another member's incident, commented by a third member's node",
            Node(ROUEN),
            Server::Member(UNISTRA),
            "/fedmesh.v1.IncidentService/CommentIncident",
            pb::CommentIncidentRequest {
                request_id: "hostile-comment".into(),
                incident_id: world.incident.clone(),
                body: "x".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        other(
            "another member's incident, on the third member's own node",
            Admin(ROUEN),
            Server::Member(ROUEN),
            "/fedmesh.v1.IncidentService/GetIncident",
            pb::GetIncidentRequest {
                incident_id: world.incident.clone(),
            }
            .encode_to_vec(),
        ),
    ]);
    cases.push(Case {
        name: "usage reported for another member's offer",
        caller: Agent(RENNES2),
        server: Server::Member(UNISTRA),
        path: "/fedmesh.v1.UsageService/ReportUsage",
        body: Message(usage(vec![record("other", &tenancy, ts(1_791_151_200, 0))])),
        expect: Code::PermissionDenied,
        mentions: "",
    });
    cases
}

#[tokio::test]
async fn hostile_requests_get_their_status_and_change_nothing() {
    let world = World::start().await;
    let before = world.revisions().await;
    let mut failures = Vec::new();
    for case in cases(&world) {
        let leaks = case.name.contains("page token naming");
        let connection = world.connect(case.caller, case.server).await;
        let reply = match &case.body {
            Body::Message(bytes) => connection.call(case.path, bytes).await,
            Body::Raw(bytes) => {
                connection
                    .call_body(case.path, bytes::Bytes::from(bytes.clone()))
                    .await
            }
        };
        // An accepted call's answer carries its refusals (per-record), with the field named.
        let says = |reply: &fedmesh_tests::raw::RawReply| {
            if reply.code == Code::Ok {
                let body: Vec<u8> = reply.messages.concat();
                String::from_utf8_lossy(&body).contains(case.mentions)
            } else {
                reply.message.contains(case.mentions)
            }
        };
        if leaks && let Ok(reply) = &reply {
            assert!(
                !String::from_utf8_lossy(&reply.messages.concat()).contains("rennes2"),
                "{}: another member's tenancy leaked",
                case.name
            );
        }
        match reply {
            Ok(reply) if reply.code == case.expect && says(&reply) => {}
            other => failures.push(format!(
                "{}: expected {:?} mentioning {:?}, got {other:?}",
                case.name, case.expect, case.mentions
            )),
        }
        world.all_serving().await;
        assert_eq!(
            world.revisions().await,
            before,
            "{} stored something",
            case.name
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every RPC of the contract, called by every role the table does not allow, with an empty
/// request: PERMISSION_DENIED before anything is read.
#[tokio::test]
async fn every_wrong_role_is_refused_on_every_rpc() {
    let world = World::start().await;
    let before = world.revisions().await;
    let coordinator_services = ["fedmesh.v1.RegistryService", "fedmesh.v1.MetricsService"];
    let mut refused = 0;
    let mut failures = Vec::new();
    let mut connections = std::collections::HashMap::new();
    for rule in fedmesh_core::authz::RULES {
        let server = if coordinator_services.contains(&rule.service) {
            Server::Coordinator
        } else {
            Server::Member(UNISTRA)
        };
        for (role, caller) in [
            (Role::Node, Caller::Node(RENNES2)),
            (Role::Admin, Caller::Admin(UNISTRA)),
            (Role::Agent, Caller::Agent(UNISTRA)),
            (Role::Coordinator, Caller::Coordinator),
        ] {
            if rule.roles.contains(&role) {
                continue;
            }
            let key = format!("{caller:?}{server:?}");
            if !connections.contains_key(&key) {
                connections.insert(key.clone(), world.connect(caller, server).await);
            }
            let path = format!("/{}/{}", rule.service, rule.method);
            let reply = connections[&key].call(&path, &[]).await.unwrap();
            if reply.code == Code::PermissionDenied {
                refused += 1;
            } else {
                failures.push(format!("{path} by {role:?}: {reply:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(refused > 60, "the table was walked: {refused} refusals");
    world.all_serving().await;
    assert_eq!(world.revisions().await, before);
}

/// HTTP/2 abuse on one connection: streams opened and reset at once, in a burst (the "rapid
/// reset" attack), and more concurrent streams than the server allows. Other clients are served
/// throughout; the abuser is shed (its connection ended, or its calls refused with
/// RESOURCE_EXHAUSTED once its rate is spent); the stream limit holds.
#[tokio::test]
async fn http2_abuse_leaves_the_node_serving() {
    let world = World::start_with_limits().await;
    // Rapid reset: 2000 streams, each reset as soon as it is sent, while another client calls.
    let abuser = world
        .connect(Caller::Admin(UNISTRA), Server::Member(UNISTRA))
        .await;
    let bystander = world
        .connect(Caller::Node(UNISTRA), Server::Member(UNISTRA))
        .await;
    let abuse = async {
        let mut send = abuser.sender();
        let mut sent = 0;
        for _ in 0..2000 {
            let Ok(ready) = send.clone().ready().await else {
                break;
            };
            send = ready;
            let Ok((_, mut stream)) = send.send_request(
                RawConnection::request("/fedmesh.v1.JournalService/Watch"),
                false,
            ) else {
                break;
            };
            stream.send_reset(h2::Reason::CANCEL);
            sent += 1;
        }
        sent
    };
    let served = async {
        let mut served = 0;
        for _ in 0..20 {
            let reply = bystander
                .call("/grpc.health.v1.Health/Check", &[])
                .await
                .unwrap();
            assert_eq!(reply.code, Code::Ok, "{reply:?}");
            served += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        served
    };
    let (sent, served) = tokio::join!(abuse, served);
    assert_eq!(served, 20);
    assert!(sent > 0);
    let shed = if abuser.is_closed() {
        true
    } else {
        abuser
            .call("/grpc.health.v1.Health/Check", &[])
            .await
            .map_or(true, |reply| reply.code == Code::ResourceExhausted)
    };
    assert!(
        shed,
        "the rapid-reset abuser is still served as if nothing happened"
    );
    world.all_serving().await;

    // Many streams: the server's concurrent stream limit holds; a stream beyond it waits for
    // a slot, and the node answers others meanwhile.
    let greedy = world
        .connect(Caller::Node(UNISTRA), Server::Member(UNISTRA))
        .await;
    // (After one call, the server's SETTINGS have arrived.)
    greedy
        .call("/grpc.health.v1.Health/Check", &[])
        .await
        .unwrap();
    let advertised = greedy.sender().ready().await.unwrap();
    assert_eq!(
        advertised.current_max_send_streams(),
        LIMIT_STREAMS as usize
    );
    let mut open = Vec::new();
    for _ in 0..LIMIT_STREAMS {
        let mut send = greedy.sender().ready().await.unwrap();
        let (response, stream) = send
            .send_request(
                RawConnection::request("/fedmesh.v1.JournalService/Watch"),
                false,
            )
            .unwrap();
        open.push((response, stream));
    }
    // One more call on that connection waits for a slot; the node serves others meanwhile.
    let one_more = greedy.call("/grpc.health.v1.Health/Check", &[]);
    tokio::pin!(one_more);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut one_more)
            .await
            .is_err(),
        "a stream beyond max_concurrent_streams ({LIMIT_STREAMS}) was served at once"
    );
    world.all_serving().await;
    drop(open);
    let reply = tokio::time::timeout(Duration::from_secs(5), one_more)
        .await
        .expect("the waiting call got no slot once streams closed")
        .unwrap();
    assert_eq!(reply.code, Code::Ok);
}

/// The stream limit of the abuse test's federation.
const LIMIT_STREAMS: u32 = 16;

impl World {
    async fn start_with_limits() -> Self {
        let fed = TestFederation::start_with(
            1,
            &[],
            &[&format!("limits.max_concurrent_streams={LIMIT_STREAMS}")],
        )
        .await;
        Self {
            fed,
            agents: Vec::new(),
            tenancy: String::new(),
            incident: String::new(),
        }
    }
}
