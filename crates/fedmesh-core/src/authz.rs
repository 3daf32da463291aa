//! The authorization table: which roles may call which RPC. Anything not listed is denied.
//!
//! The table answers by role only. Scoping by member (an admin manages only its own member's
//! node; a subscriber sees only its own tenancies) is checked on top of it: by the server for
//! the node's own member, by the handlers for the data they return.

use crate::identity::Role;

use Role::{Admin, Agent, Coordinator, Node, Operator};

const ANYONE: &[Role] = &[Node, Admin, Agent, Coordinator, Operator];
const READERS: &[Role] = &[Node, Admin, Coordinator];
/// The federation-wide reads of the coordinator (registry, catalogue, figures): members read
/// them (each what concerns it, `docs/security.md`), and so do the consortium's operators.
const OBSERVERS: &[Role] = &[Node, Admin, Coordinator, Operator];
const ADMIN: &[Role] = &[Admin];
/// Calls a subscriber makes on a provider: its admin through its own node, or its node.
const PEER: &[Role] = &[Node, Admin];
const REPORTERS: &[Role] = &[Agent];

/// One row of the table: a fully qualified gRPC service, a method, and the roles allowed.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Fully qualified service name, e.g. `fedmesh.v1.OfferService`.
    pub service: &'static str,
    /// Method name, e.g. `PublishOffer`.
    pub method: &'static str,
    /// The roles allowed to call it.
    pub roles: &'static [Role],
}

const fn rule(service: &'static str, method: &'static str, roles: &'static [Role]) -> Rule {
    Rule {
        service,
        method,
        roles,
    }
}

const NODE: &str = "fedmesh.v1.NodeService";
const OFFER: &str = "fedmesh.v1.OfferService";
const SUBSCRIPTION: &str = "fedmesh.v1.SubscriptionService";
const USAGE: &str = "fedmesh.v1.UsageService";
const INCIDENT: &str = "fedmesh.v1.IncidentService";
const JOURNAL: &str = "fedmesh.v1.JournalService";
const REGISTRY: &str = "fedmesh.v1.RegistryService";
const CATALOGUE: &str = "fedmesh.v1.CatalogueService";
const METRICS: &str = "fedmesh.v1.MetricsService";
const ADMIN_SERVICE: &str = "fedmesh.v1.AdminService";
const REPORT: &str = "fedmesh.v1.ReportService";

/// The table (design section 2). Health and reflection are open to every authenticated caller.
pub const RULES: &[Rule] = &[
    rule("grpc.health.v1.Health", "Check", ANYONE),
    rule("grpc.health.v1.Health", "Watch", ANYONE),
    rule(
        "grpc.reflection.v1.ServerReflection",
        "ServerReflectionInfo",
        ANYONE,
    ),
    rule(
        "grpc.reflection.v1alpha.ServerReflection",
        "ServerReflectionInfo",
        ANYONE,
    ),
    // Node and coordinator self-description.
    rule(NODE, "WhoAmI", ANYONE),
    rule(NODE, "GetNodeInfo", ANYONE),
    rule(NODE, "GetNodeStatus", ADMIN),
    // Offers: the member's admin publishes; nodes, admins and the coordinator read.
    rule(OFFER, "PublishOffer", ADMIN),
    rule(OFFER, "GetOffer", READERS),
    rule(OFFER, "ListOffers", READERS),
    rule(OFFER, "WithdrawOffer", ADMIN),
    rule(OFFER, "AnnounceMaintenance", ADMIN),
    rule(OFFER, "ListMaintenance", READERS),
    rule(OFFER, "RescheduleMaintenance", ADMIN),
    rule(OFFER, "CancelMaintenance", ADMIN),
    // Subscriptions: subscribers (node or admin) request and manage their own; the provider's
    // admin decides.
    rule(SUBSCRIPTION, "RequestSubscription", PEER),
    rule(SUBSCRIPTION, "GetSubscription", PEER),
    rule(SUBSCRIPTION, "ListSubscriptions", PEER),
    rule(SUBSCRIPTION, "ApproveSubscription", ADMIN),
    rule(SUBSCRIPTION, "RejectSubscription", ADMIN),
    rule(SUBSCRIPTION, "SuspendSubscription", ADMIN),
    rule(SUBSCRIPTION, "ResumeSubscription", ADMIN),
    rule(SUBSCRIPTION, "TerminateSubscription", ADMIN),
    rule(SUBSCRIPTION, "CancelSubscription", PEER),
    rule(SUBSCRIPTION, "ChangeUsers", PEER),
    // Usage: agents report; parties read what concerns them.
    rule(USAGE, "ReportUsage", REPORTERS),
    rule(USAGE, "ReportAvailability", REPORTERS),
    rule(USAGE, "GetUsage", READERS),
    rule(USAGE, "GetAvailability", READERS),
    rule(USAGE, "GetCapacity", ADMIN),
    rule(USAGE, "GetCostStatement", PEER),
    // Incidents: subscribers open, comment, answer, close and reopen; the provider's admin
    // acknowledges, assigns and moves the status.
    rule(INCIDENT, "OpenIncident", PEER),
    rule(INCIDENT, "GetIncident", READERS),
    rule(INCIDENT, "ListIncidents", READERS),
    rule(INCIDENT, "AcknowledgeIncident", ADMIN),
    rule(INCIDENT, "AssignIncident", ADMIN),
    rule(INCIDENT, "SetIncidentStatus", ADMIN),
    rule(INCIDENT, "CommentIncident", PEER),
    rule(INCIDENT, "AnswerIncident", PEER),
    rule(INCIDENT, "CloseIncident", PEER),
    rule(INCIDENT, "ReopenIncident", PEER),
    rule(INCIDENT, "ChangePriority", PEER),
    rule(INCIDENT, "WatchIncident", PEER),
    // Monthly reports: a node's own admins read those it holds (a subscriber's, its own
    // tenancies' reports, mirrored from the providers).
    rule(REPORT, "ListReports", ADMIN),
    rule(REPORT, "GetReport", ADMIN),
    // Corrections: the provider's admin adjusts and answers; the subscriber contests (its
    // admin on its own node, which delivers it as itself to the provider's node).
    rule(REPORT, "IssueAdjustment", ADMIN),
    rule(REPORT, "ContestReport", PEER),
    rule(REPORT, "AnswerContestation", ADMIN),
    // Journal: replication by the coordinator and subscriber nodes; admins for diagnosis.
    rule(JOURNAL, "Watch", READERS),
    rule(JOURNAL, "ListEntries", READERS),
    rule(JOURNAL, "GetJournalInfo", READERS),
    rule(JOURNAL, "GetSnapshot", READERS),
    // Coordinator: nodes register and heartbeat; nodes, admins, the coordinator and the
    // consortium's operators read the directory (agents only report, design section 2).
    rule(REGISTRY, "RegisterNode", &[Node]),
    rule(REGISTRY, "Heartbeat", &[Node]),
    rule(REGISTRY, "GetNode", OBSERVERS),
    rule(REGISTRY, "ListNodes", OBSERVERS),
    rule(REGISTRY, "GetCrl", OBSERVERS),
    // Offboarding is the consortium's act: the coordinator's own certificate, on its host.
    rule(REGISTRY, "RemoveMember", &[Coordinator]),
    // Backups: a member's admins on its node, the coordinator's own identity on the
    // coordinator (each server accepts only its own of the two).
    rule(ADMIN_SERVICE, "Backup", &[Admin, Coordinator]),
    rule(CATALOGUE, "SearchOffers", OBSERVERS),
    rule(CATALOGUE, "GetCatalogueOffer", OBSERVERS),
    rule(CATALOGUE, "WatchCatalogue", OBSERVERS),
    rule(METRICS, "GetFederationSummary", OBSERVERS),
    rule(METRICS, "GetOfferMetrics", OBSERVERS),
    rule(METRICS, "GetMemberMetrics", OBSERVERS),
    rule(METRICS, "GetSlaCompliance", OBSERVERS),
    rule(METRICS, "GetIncidentStatistics", OBSERVERS),
    rule(METRICS, "ListOpenIncidents", OBSERVERS),
];

/// The outcome of looking a call up in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The role may call the method.
    Allow,
    /// The method is in the table, but not for this role.
    DenyRole,
    /// The method is not in the table at all: denied by default.
    DenyUnknown,
}

/// The calls every identity of the federation may make on any node, whatever member it
/// belongs to: diagnosis (health, reflection, who am I, what is this node), which shows
/// nothing of a member's data. Every other call of an admin or agent is for its own member's
/// node only.
pub const DIAGNOSTIC: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/fedmesh.v1.NodeService/WhoAmI",
    "/fedmesh.v1.NodeService/GetNodeInfo",
];

/// Whether `path` is one of the [`DIAGNOSTIC`] calls.
pub fn is_diagnostic(path: &str) -> bool {
    DIAGNOSTIC.contains(&path)
}

/// Looks up a call by its HTTP/2 path (`/fedmesh.v1.OfferService/PublishOffer`).
pub fn decide(role: Role, path: &str) -> Decision {
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return Decision::DenyUnknown;
    };
    match RULES
        .iter()
        .find(|r| r.service == service && r.method == method)
    {
        None => Decision::DenyUnknown,
        Some(r) if r.roles.contains(&role) => Decision::Allow,
        Some(_) => Decision::DenyRole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diagnostic_calls_are_open_to_every_role_and_only_they_are() {
        for path in DIAGNOSTIC {
            for role in ANYONE {
                assert_eq!(decide(*role, path), Decision::Allow, "{role} {path}");
            }
        }
        for rule in RULES {
            let path = format!("/{}/{}", rule.service, rule.method);
            assert_eq!(
                is_diagnostic(&path),
                rule.roles == ANYONE,
                "{path}: open to every role exactly when diagnostic"
            );
        }
    }

    #[test]
    fn agent_may_report_but_not_administer() {
        assert_eq!(
            decide(Agent, "/fedmesh.v1.UsageService/ReportUsage"),
            Decision::Allow
        );
        assert_eq!(
            decide(Agent, "/fedmesh.v1.OfferService/PublishOffer"),
            Decision::DenyRole
        );
        assert_eq!(
            decide(Agent, "/fedmesh.v1.SubscriptionService/ApproveSubscription"),
            Decision::DenyRole
        );
    }

    #[test]
    fn only_nodes_register() {
        for role in Role::ALL {
            let expected = if role == Node {
                Decision::Allow
            } else {
                Decision::DenyRole
            };
            assert_eq!(
                decide(role, "/fedmesh.v1.RegistryService/RegisterNode"),
                expected
            );
        }
    }

    #[test]
    fn unknown_and_malformed_paths_are_denied() {
        for path in [
            "/fedmesh.v1.OfferService/DropEverything",
            "/fedmesh.v2.OfferService/GetOffer",
            "fedmesh.v1.OfferService/GetOffer",
            "/",
            "",
        ] {
            for role in Role::ALL {
                assert_eq!(decide(role, path), Decision::DenyUnknown, "{role} {path}");
            }
        }
    }

    #[test]
    fn no_rule_is_listed_twice() {
        for (i, a) in RULES.iter().enumerate() {
            for b in &RULES[i + 1..] {
                assert!(
                    !(a.service == b.service && a.method == b.method),
                    "{}/{} listed twice",
                    a.service,
                    a.method
                );
            }
        }
    }
}
