//! `NOT_FOUND` is no oracle: for every RPC of a member node that takes an id, an entity that
//! exists but that the caller may not see answers exactly what an id that does not exist
//! answers — same code, same message byte for byte once the caller's own id is put back in
//! it — from every point of view that may not see it: another member's node on the provider's
//! copy and on the subscriber's mirror, another member's admin through its own node (which
//! asks the provider's as itself) or on the provider's.
//!
//! The table is [`Rpc`]: to cover a new RPC, add a variant to the list of its entity kind and
//! an arm to [`Rpc::call`] that puts the id in its request.
//!
//! Offers themselves are public to the federation, withdrawn ones included (the catalogue
//! lists them on request), so `GetOffer` is not in the table; what concerns an offer's tenants
//! (its usage, availability and capacity) is. The coordinator is no member: it replicates
//! every tenancy, incident and usage record, and what its own identity may read on a node is
//! the authorization table's question, not this one's. The coordinator's RPCs show every
//! member the same things today (its disclosure rules are issue 16, item 3): nothing there
//! exists that a caller may not see.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_proto::pb;
use fedmesh_proto::pb::incident_service_client::IncidentServiceClient as Incidents;
use fedmesh_proto::pb::subscription_service_client::SubscriptionServiceClient as Subscriptions;
use fedmesh_proto::pb::usage_service_client::UsageServiceClient as Usage;
use fedmesh_tests::{TestFederation, wait_for};
use tonic::Code;

const UNISTRA: usize = 0;
const RENNES2: usize = 1;
const ROUEN: usize = 2;
/// rennes2's offer: unistra and rouen are its tenants, unistra has opened incidents on it.
const COLLAB: &str = "rennes2.collab";
/// unistra's offer: nobody is its tenant.
const OTP: &str = "unistra.otp";

/// Who calls: a member's node or admin.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Node(usize),
    Admin(usize),
}

/// A caller on a member's node that may not see the entity probed.
#[derive(Debug, Clone, Copy)]
struct Viewpoint {
    caller: Caller,
    server: usize,
    who: &'static str,
}

const fn view(caller: Caller, server: usize, who: &'static str) -> Viewpoint {
    Viewpoint {
        caller,
        server,
        who,
    }
}

/// Who may not see unistra's tenancy on rennes2's offer, or unistra's incident on it: the
/// provider's node holds them, unistra's node mirrors them.
const OTHERS_OF_UNISTRA: &[Viewpoint] = &[
    view(
        Caller::Node(ROUEN),
        RENNES2,
        "rouen's node on the provider's",
    ),
    view(Caller::Node(ROUEN), UNISTRA, "rouen's node on unistra's"),
    view(Caller::Admin(ROUEN), ROUEN, "rouen's admin on its own node"),
    view(
        Caller::Admin(ROUEN),
        RENNES2,
        "rouen's admin on the provider's",
    ),
];

/// Who may not see the figures of unistra's offer, having no tenancy on it.
const NO_TENANT_OF_OTP: &[Viewpoint] = &[
    view(
        Caller::Node(ROUEN),
        UNISTRA,
        "rouen's node on the provider's",
    ),
    view(Caller::Node(ROUEN), RENNES2, "rouen's node on rennes2's"),
    view(Caller::Admin(ROUEN), ROUEN, "rouen's admin on its own node"),
];

/// The RPCs that take an id, by the kind of entity the id names.
#[derive(Debug, Clone, Copy)]
enum Rpc {
    GetSubscription,
    ApproveSubscription,
    RejectSubscription,
    SuspendSubscription,
    ResumeSubscription,
    TerminateSubscription,
    CancelSubscription,
    ChangeUsers,
    GetCostStatement,
    /// `GetUsage` of rennes2's offer filtered on the tenancy.
    GetUsageOfTenancy,
    /// `ListIncidents` filtered on the tenancy.
    ListIncidentsOfTenancy,
    /// `OpenIncident` on rennes2's offer naming the tenancy.
    OpenIncidentOnTenancy,
    GetIncident,
    AcknowledgeIncident,
    AssignIncident,
    SetIncidentStatus,
    CommentIncident,
    AnswerIncident,
    CloseIncident,
    ReopenIncident,
    ChangePriority,
    WatchIncident,
    GetUsage,
    GetAvailability,
    GetCapacity,
}

/// Ids of tenancies (`<member>.s<n>`).
const TENANCY_RPCS: &[Rpc] = &[
    Rpc::GetSubscription,
    Rpc::ApproveSubscription,
    Rpc::RejectSubscription,
    Rpc::SuspendSubscription,
    Rpc::ResumeSubscription,
    Rpc::TerminateSubscription,
    Rpc::CancelSubscription,
    Rpc::ChangeUsers,
    Rpc::GetCostStatement,
    Rpc::GetUsageOfTenancy,
    Rpc::ListIncidentsOfTenancy,
    Rpc::OpenIncidentOnTenancy,
];

/// Ids of incidents (`INC-<date>-<time>-<member>-<n>`).
const INCIDENT_RPCS: &[Rpc] = &[
    Rpc::GetIncident,
    Rpc::AcknowledgeIncident,
    Rpc::AssignIncident,
    Rpc::SetIncidentStatus,
    Rpc::CommentIncident,
    Rpc::AnswerIncident,
    Rpc::CloseIncident,
    Rpc::ReopenIncident,
    Rpc::ChangePriority,
    Rpc::WatchIncident,
];

/// Ids of offers, for what concerns their tenants.
const OFFER_FIGURE_RPCS: &[Rpc] = &[Rpc::GetUsage, Rpc::GetAvailability, Rpc::GetCapacity];

/// What a call answered: the response (as text) or the status code and message.
type Outcome = Result<String, (Code, String)>;

fn outcome<T: std::fmt::Debug>(answer: Result<tonic::Response<T>, tonic::Status>) -> Outcome {
    answer
        .map(|r| format!("{:?}", r.into_inner()))
        .map_err(|s| (s.code(), s.message().to_owned()))
}

/// A request id never used before, so that no answer is a repeat of an earlier one.
fn request_id() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("probe-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// This month, for the RPCs that need one.
fn this_month() -> pb::YearMonth {
    let day = fedmesh_grpc::figures::now().div_euclid(86_400);
    let (year, month, _) = fedmesh_core::calendar::civil_from_days(day);
    pb::YearMonth {
        year,
        month: month as i32,
    }
}

fn this_year() -> pb::DateRange {
    let year = this_month().year;
    let date = |month, day| pb::LocalDate { year, month, day };
    pb::DateRange {
        start_date: Some(date(1, 1)),
        end_date: Some(date(12, 31)),
    }
}

impl Rpc {
    /// Calls the RPC on `channel` with `id` where its request takes the id.
    async fn call(self, channel: Channel, id: &str) -> Outcome {
        let id = id.to_owned();
        match self {
            Self::GetSubscription => outcome(
                Subscriptions::new(channel)
                    .get_subscription(pb::GetSubscriptionRequest {
                        subscription_id: id,
                    })
                    .await,
            ),
            Self::ApproveSubscription => outcome(
                Subscriptions::new(channel)
                    .approve_subscription(pb::ApproveSubscriptionRequest {
                        request_id: request_id(),
                        subscription_id: id,
                        ..Default::default()
                    })
                    .await,
            ),
            Self::RejectSubscription => outcome(
                Subscriptions::new(channel)
                    .reject_subscription(pb::RejectSubscriptionRequest {
                        request_id: request_id(),
                        subscription_id: id,
                        reason: "probe".into(),
                    })
                    .await,
            ),
            Self::SuspendSubscription => outcome(
                Subscriptions::new(channel)
                    .suspend_subscription(pb::SuspendSubscriptionRequest {
                        request_id: request_id(),
                        subscription_id: id,
                        reason: "probe".into(),
                    })
                    .await,
            ),
            Self::ResumeSubscription => outcome(
                Subscriptions::new(channel)
                    .resume_subscription(pb::ResumeSubscriptionRequest {
                        request_id: request_id(),
                        subscription_id: id,
                        reason: "probe".into(),
                    })
                    .await,
            ),
            Self::TerminateSubscription => outcome(
                Subscriptions::new(channel)
                    .terminate_subscription(pb::TerminateSubscriptionRequest {
                        request_id: request_id(),
                        subscription_id: id,
                        reason: "probe".into(),
                        ..Default::default()
                    })
                    .await,
            ),
            Self::CancelSubscription => outcome(
                Subscriptions::new(channel)
                    .cancel_subscription(pb::CancelSubscriptionRequest {
                        request_id: request_id(),
                        subscription_id: id,
                        reason: "probe".into(),
                    })
                    .await,
            ),
            Self::ChangeUsers => outcome(
                Subscriptions::new(channel)
                    .change_users(pb::ChangeUsersRequest {
                        request_id: request_id(),
                        subscription_id: id,
                        user_count: 10,
                        reason: "probe".into(),
                    })
                    .await,
            ),
            Self::GetCostStatement => outcome(
                Usage::new(channel)
                    .get_cost_statement(pb::GetCostStatementRequest {
                        subscription_id: id,
                        period: Some(this_year()),
                    })
                    .await,
            ),
            Self::GetUsageOfTenancy => outcome(
                Usage::new(channel)
                    .get_usage(pb::GetUsageRequest {
                        offer_id: COLLAB.into(),
                        subscription_id: id,
                        month: Some(this_month()),
                        metrics: Vec::new(),
                    })
                    .await,
            ),
            Self::ListIncidentsOfTenancy => outcome(
                Incidents::new(channel)
                    .list_incidents(pb::ListIncidentsRequest {
                        subscription_id: id,
                        ..Default::default()
                    })
                    .await,
            ),
            Self::OpenIncidentOnTenancy => outcome(
                Incidents::new(channel)
                    .open_incident(pb::OpenIncidentRequest {
                        request_id: request_id(),
                        offer_id: COLLAB.into(),
                        subscription_id: id,
                        priority: pb::Priority::P3 as i32,
                        summary: "probe".into(),
                        description: "probe".into(),
                        ..Default::default()
                    })
                    .await,
            ),
            Self::GetIncident => outcome(
                Incidents::new(channel)
                    .get_incident(pb::GetIncidentRequest { incident_id: id })
                    .await,
            ),
            Self::AcknowledgeIncident => outcome(
                Incidents::new(channel)
                    .acknowledge_incident(pb::AcknowledgeIncidentRequest {
                        request_id: request_id(),
                        incident_id: id,
                        comment: "probe".into(),
                    })
                    .await,
            ),
            Self::AssignIncident => outcome(
                Incidents::new(channel)
                    .assign_incident(pb::AssignIncidentRequest {
                        request_id: request_id(),
                        incident_id: id,
                        assignee: "probe".into(),
                    })
                    .await,
            ),
            Self::SetIncidentStatus => outcome(
                Incidents::new(channel)
                    .set_incident_status(pb::SetIncidentStatusRequest {
                        request_id: request_id(),
                        incident_id: id,
                        status: pb::IncidentStatus::InProgress as i32,
                        comment: "probe".into(),
                        ..Default::default()
                    })
                    .await,
            ),
            Self::CommentIncident => outcome(
                Incidents::new(channel)
                    .comment_incident(pb::CommentIncidentRequest {
                        request_id: request_id(),
                        incident_id: id,
                        body: "probe".into(),
                        ..Default::default()
                    })
                    .await,
            ),
            Self::AnswerIncident => outcome(
                Incidents::new(channel)
                    .answer_incident(pb::AnswerIncidentRequest {
                        request_id: request_id(),
                        incident_id: id,
                        body: "probe".into(),
                    })
                    .await,
            ),
            Self::CloseIncident => outcome(
                Incidents::new(channel)
                    .close_incident(pb::CloseIncidentRequest {
                        request_id: request_id(),
                        incident_id: id,
                        comment: "probe".into(),
                    })
                    .await,
            ),
            Self::ReopenIncident => outcome(
                Incidents::new(channel)
                    .reopen_incident(pb::ReopenIncidentRequest {
                        request_id: request_id(),
                        incident_id: id,
                        reason: "probe".into(),
                    })
                    .await,
            ),
            Self::ChangePriority => outcome(
                Incidents::new(channel)
                    .change_priority(pb::ChangePriorityRequest {
                        request_id: request_id(),
                        incident_id: id,
                        priority: pb::Priority::P1 as i32,
                        reason: "probe".into(),
                    })
                    .await,
            ),
            // A stream the server agreed to open counts as an answer; its events are not read.
            Self::WatchIncident => Incidents::new(channel)
                .watch_incident(pb::WatchIncidentRequest {
                    incident_id: id,
                    since_sequence: 0,
                })
                .await
                .map(|_| "a stream".to_owned())
                .map_err(|s| (s.code(), s.message().to_owned())),
            Self::GetUsage => outcome(
                Usage::new(channel)
                    .get_usage(pb::GetUsageRequest {
                        offer_id: id,
                        month: Some(this_month()),
                        ..Default::default()
                    })
                    .await,
            ),
            Self::GetAvailability => outcome(
                Usage::new(channel)
                    .get_availability(pb::GetAvailabilityRequest {
                        offer_id: id,
                        month: Some(this_month()),
                    })
                    .await,
            ),
            Self::GetCapacity => outcome(
                Usage::new(channel)
                    .get_capacity(pb::GetCapacityRequest {
                        offer_id: id,
                        trend_months: 0,
                    })
                    .await,
            ),
        }
    }
}

/// An id of the same shape as `id` that does not exist: its last number replaced.
fn unknown_like(id: &str) -> String {
    let stem = id.trim_end_matches(|c: char| c.is_ascii_digit());
    assert!(stem.len() < id.len(), "{id} does not end with a number");
    format!("{stem}999999")
}

struct World {
    fed: TestFederation,
    /// unistra's tenancy on rennes2's offer.
    tenancy: String,
    /// An incident unistra opened on it.
    incident: String,
}

impl World {
    async fn start() -> Self {
        let fed = TestFederation::start(3).await;
        fed.running.seed_example_offers().await.unwrap();
        fed.running.seed_example_usage().await.unwrap();
        let incidents = fed.running.seed_example_incidents().await.unwrap();
        let incident = incidents.first().cloned().expect("an example incident");
        let tenancy = Subscriptions::new(fed.as_admin(fed.member(RENNES2)))
            .list_subscriptions(pb::ListSubscriptionsRequest {
                offer_id: COLLAB.into(),
                subscriber_member_id: "unistra".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .subscriptions
            .pop()
            .expect("unistra's tenancy on rennes2's offer")
            .subscription_id;
        let world = Self {
            fed,
            tenancy,
            incident,
        };
        world.wait_mirrored().await;
        world
    }

    /// Waits until unistra's node mirrors its tenancy and incident: the probes must find
    /// them there, or the test would prove nothing on the mirror.
    async fn wait_mirrored(&self) {
        let channel = self.fed.as_admin(self.fed.member(UNISTRA));
        wait_for(
            "unistra's node mirrors its tenancy and its incident",
            Duration::from_secs(20),
            || {
                let channel = channel.clone();
                let (tenancy, incident) = (self.tenancy.clone(), self.incident.clone());
                async move {
                    Subscriptions::new(channel.clone())
                        .get_subscription(pb::GetSubscriptionRequest {
                            subscription_id: tenancy,
                        })
                        .await
                        .ok()?;
                    Incidents::new(channel)
                        .get_incident(pb::GetIncidentRequest {
                            incident_id: incident,
                        })
                        .await
                        .ok()
                }
            },
        )
        .await;
    }

    fn channel(&self, caller: Caller, server: usize) -> Channel {
        let endpoint = &self.fed.member(server).endpoint;
        match caller {
            Caller::Node(i) => {
                let party = self.fed.member(i);
                self.fed
                    .channel(endpoint, &party.node_cert, &party.node_key)
            }
            Caller::Admin(i) => {
                let party = self.fed.member(i);
                self.fed
                    .channel(endpoint, &party.admin_cert, &party.admin_key)
            }
        }
    }
}

/// Calls `rpc` from `viewpoint` with the hidden id and with an unknown id of the same shape;
/// a description of the difference if the answers differ.
async fn probe(
    world: &World,
    rpc: Rpc,
    viewpoint: Viewpoint,
    hidden: &str,
    unknown: &str,
) -> Option<String> {
    let channel = world.channel(viewpoint.caller, viewpoint.server);
    let seen = rpc.call(channel.clone(), hidden).await;
    // The unknown id's answer, with the caller's id put back where it named the unknown one.
    let expected = match rpc.call(channel, unknown).await {
        Ok(text) => Ok(text.replace(unknown, hidden)),
        Err((code, message)) => Err((code, message.replace(unknown, hidden))),
    };
    (seen != expected).then(|| {
        format!(
            "{rpc:?} as {}: {hidden} (exists) answered {seen:?}; {unknown} (does not exist) answered, its id put back, {expected:?}",
            viewpoint.who
        )
    })
}

#[tokio::test]
async fn an_entity_the_caller_may_not_see_answers_as_one_that_does_not_exist() {
    let world = World::start().await;
    let tables: [(&[Rpc], &[Viewpoint], &str, String); 3] = [
        (
            TENANCY_RPCS,
            OTHERS_OF_UNISTRA,
            &world.tenancy,
            unknown_like(&world.tenancy),
        ),
        (
            INCIDENT_RPCS,
            OTHERS_OF_UNISTRA,
            &world.incident,
            unknown_like(&world.incident),
        ),
        (
            OFFER_FIGURE_RPCS,
            NO_TENANT_OF_OTP,
            OTP,
            "unistra.unknown".into(),
        ),
    ];
    let mut leaks = Vec::new();
    let mut probes = 0;
    for (rpcs, viewpoints, hidden, unknown) in tables {
        for &rpc in rpcs {
            for &viewpoint in viewpoints {
                probes += 1;
                leaks.extend(probe(&world, rpc, viewpoint, hidden, &unknown).await);
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} of {probes} probes tell an existing entity from an unknown id:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    // The entities probed were there all along, for those who may see them.
    for (party, name) in [(RENNES2, "rennes2"), (UNISTRA, "unistra")] {
        let channel = world.channel(Caller::Admin(party), party);
        Rpc::GetSubscription
            .call(channel.clone(), &world.tenancy)
            .await
            .unwrap_or_else(|e| panic!("{name}'s admin no longer sees the tenancy: {e:?}"));
        Rpc::GetIncident
            .call(channel, &world.incident)
            .await
            .unwrap_or_else(|e| panic!("{name}'s admin no longer sees the incident: {e:?}"));
    }
}
