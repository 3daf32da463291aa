//! What each dashboard page shows, as typed view models read from the coordinator's store:
//! one struct per page, serialized as the page's JSON under `/api/` and rendered by its HTML
//! template. A store failure is an error (the page answers 503), never an empty page.

use std::time::SystemTime;

use fedmesh_core::liveness::Liveness;
use fedmesh_grpc::figures;
use fedmesh_proto::pb;
use fedmesh_store::{Store, StoreError};
use serde::Serialize;

/// An instant as RFC 3339 UTC to the second (`2026-12-02T14:05:43Z`), as `/api/` gives it.
fn ts(t: Option<&prost_types::Timestamp>) -> String {
    t.map(|t| {
        prost_types::Timestamp {
            seconds: t.seconds,
            nanos: 0,
        }
        .to_string()
    })
    .unwrap_or_default()
}

/// `t` in time zone `zone` (an IANA name; UTC when unknown), to the minute, with the offset:
/// `2026-12-05 07:00 +01:00`.
fn local(t: Option<&prost_types::Timestamp>, zone: &str) -> String {
    let zone = jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC);
    t.and_then(|t| jiff::Timestamp::from_second(t.seconds).ok())
        .map(|t| t.to_zoned(zone).strftime("%Y-%m-%d %H:%M %:z").to_string())
        .unwrap_or_default()
}

/// Seconds from `t` to `now` (0 when unset or ahead): what a page shows as "12 s ago".
fn age(t: Option<&prost_types::Timestamp>, now: SystemTime) -> i64 {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    t.map_or(0, |t| (now - t.seconds).max(0))
}

/// A protobuf enum's name without its prefix, in lowercase (`OFFER_STATUS_AVAILABLE` →
/// `available`).
fn short(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_lowercase()
}

/// Whether a node is up, by the coordinator's one rule ([`crate::liveness`]).
fn is_up(node: &pb::RegisteredNode, judged: &crate::liveness::Judgement) -> bool {
    judged.of(node) == Liveness::Active
}

/// A registered node on the overview.
#[derive(Debug, Serialize)]
pub(crate) struct NodeRow {
    pub(crate) member_id: String,
    pub(crate) endpoint: String,
    pub(crate) software_version: String,
    pub(crate) up: bool,
    pub(crate) last_heartbeat: String,
    /// Seconds since the last heartbeat.
    pub(crate) heartbeat_age_secs: i64,
    pub(crate) journal_revision: u64,
    pub(crate) replication_lag: u64,
}

/// An offer of the catalogue with its counts.
#[derive(Debug, Serialize)]
pub(crate) struct OfferRow {
    pub(crate) offer_id: String,
    pub(crate) service_name: String,
    pub(crate) provider_member_id: String,
    pub(crate) status: String,
    pub(crate) tenants: i32,
    pub(crate) users: i64,
    /// The compliance of its last closed month, from that month's offer report.
    pub(crate) last_closed: Option<ClosedMonth>,
}

/// An offer's compliance in a closed month, as its offer report says.
#[derive(Debug, Serialize)]
pub(crate) struct ClosedMonth {
    pub(crate) month: String,
    pub(crate) in_window_percent: f64,
    pub(crate) sla_percent: f64,
    pub(crate) sla_met: bool,
    pub(crate) requests_in_time_percent: f64,
    pub(crate) compliant: bool,
}

/// `/`: members, nodes, offers and totals.
#[derive(Debug, Serialize)]
pub(crate) struct Overview {
    pub(crate) members: usize,
    pub(crate) nodes_up: usize,
    pub(crate) nodes: Vec<NodeRow>,
    pub(crate) offers: Vec<OfferRow>,
    pub(crate) tenants: i64,
    pub(crate) users: i64,
    pub(crate) generated: String,
}

/// An SLA clock of an open incident.
#[derive(Debug, Serialize)]
pub(crate) struct Deadline {
    pub(crate) target: String,
    pub(crate) deadline: String,
    pub(crate) state: String,
}

/// An open incident: figures, no texts, no people.
#[derive(Debug, Serialize)]
pub(crate) struct IncidentRow {
    pub(crate) incident_id: String,
    pub(crate) offer_id: String,
    pub(crate) provider_member_id: String,
    pub(crate) subscriber_member_id: String,
    pub(crate) priority: String,
    pub(crate) status: String,
    pub(crate) sla: &'static str,
    pub(crate) escalation_level: i32,
    pub(crate) deadlines: Vec<Deadline>,
}

impl IncidentRow {
    /// The CSS class of its SLA state.
    pub(crate) fn sla_class(&self) -> &'static str {
        match self.sla {
            "breached" => "bad",
            "at_risk" => "warn",
            _ => "ok",
        }
    }
}

/// `/incidents`.
#[derive(Debug, Serialize)]
pub(crate) struct Incidents {
    pub(crate) incidents: Vec<IncidentRow>,
}

/// An offer's service engagement.
#[derive(Debug, Serialize)]
pub(crate) struct Engagement {
    pub(crate) availability_sla_percent: f64,
    pub(crate) availability_slo_percent: f64,
    pub(crate) request_handling_target_percent: f64,
    pub(crate) time_zone: String,
}

/// One month of an offer's trend.
#[derive(Debug, Serialize)]
pub(crate) struct TrendPoint {
    pub(crate) month: String,
    pub(crate) users: i64,
    pub(crate) tenants: i32,
    pub(crate) requests: i64,
}

/// One month of an offer's availability against its SLA and SLO.
#[derive(Debug, Serialize)]
pub(crate) struct AvailabilityRow {
    pub(crate) month: String,
    pub(crate) in_window_percent: f64,
    pub(crate) out_of_window_percent: f64,
    pub(crate) sla_percent: f64,
    pub(crate) slo_percent: f64,
    pub(crate) sla_met: bool,
    pub(crate) slo_met: bool,
    pub(crate) requests_in_time_percent: f64,
    pub(crate) request_target_percent: f64,
}

/// This month's incident counts of an offer.
#[derive(Debug, Serialize)]
pub(crate) struct IncidentCounts {
    pub(crate) opened: i32,
    pub(crate) open_at_month_end: i32,
    pub(crate) resolved_in_time_percent: f64,
}

/// An announced maintenance window still to come or in progress.
#[derive(Debug, Serialize)]
pub(crate) struct Window {
    pub(crate) maintenance_id: String,
    /// RFC 3339, UTC (the JSON API's form).
    pub(crate) start: String,
    pub(crate) end: String,
    /// In the offer's time zone, with its offset: what the page shows.
    #[serde(skip)]
    pub(crate) start_local: String,
    #[serde(skip)]
    pub(crate) end_local: String,
    pub(crate) summary: String,
}

/// `/offers/{id}`.
#[derive(Debug, Serialize)]
pub(crate) struct OfferDetail {
    pub(crate) offer_id: String,
    pub(crate) service_name: String,
    pub(crate) provider_member_id: String,
    pub(crate) engagement: Engagement,
    pub(crate) tenants: i32,
    pub(crate) trend: Vec<TrendPoint>,
    pub(crate) availability: Vec<AvailabilityRow>,
    pub(crate) incidents: Option<IncidentCounts>,
    pub(crate) open_incidents: Vec<IncidentRow>,
    pub(crate) upcoming_maintenance: Vec<Window>,
}

/// A node's health on a member's page.
#[derive(Debug, Serialize)]
pub(crate) struct NodeHealth {
    pub(crate) endpoint: String,
    pub(crate) software_version: String,
    pub(crate) up: bool,
    pub(crate) last_heartbeat: String,
    /// Seconds since the last heartbeat.
    pub(crate) heartbeat_age_secs: i64,
}

/// A tenancy of a member, as a state.
#[derive(Debug, Serialize)]
pub(crate) struct Subscribed {
    pub(crate) offer_id: String,
    pub(crate) service_name: String,
    pub(crate) provider_member_id: String,
    pub(crate) state: String,
}

/// `/members/{id}`.
#[derive(Debug, Serialize)]
pub(crate) struct MemberDetail {
    pub(crate) member_id: String,
    pub(crate) node: NodeHealth,
    pub(crate) provides: Vec<OfferRow>,
    pub(crate) subscribes: Vec<Subscribed>,
}

/// What the views read.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) store: Store,
    pub(crate) staleness: crate::liveness::Staleness,
}

impl Source {
    fn offer_row(&self, o: &pb::Offer) -> Result<OfferRow, StoreError> {
        Ok(OfferRow {
            offer_id: o.offer_id.clone(),
            service_name: o.service_name.clone(),
            provider_member_id: o.provider_member_id.clone(),
            status: short(o.status().as_str_name(), "OFFER_STATUS_"),
            tenants: self.store.tenancy_counts(&o.offer_id)?.0,
            users: figures::latest_active_users(&self.store, o)?.round() as i64,
            last_closed: self.last_closed(&o.offer_id)?,
        })
    }

    /// The compliance of `offer_id`'s last closed month: its latest offer report (report ids
    /// `<offer_id>/<yyyy-mm>` sort by month).
    fn last_closed(&self, offer_id: &str) -> Result<Option<ClosedMonth>, StoreError> {
        let latest = self
            .store
            .last_report_with_prefix(&format!("{offer_id}/"))?
            .filter(|r| r.offer_id == offer_id && r.scope == pb::ReportScope::Offer as i32);
        Ok(latest.map(|r| {
            let c = r.compliance.unwrap_or_default();
            let month = r
                .month
                .map(|m| format!("{}-{:02}", m.year, m.month))
                .unwrap_or_default();
            ClosedMonth {
                month,
                in_window_percent: c
                    .availability
                    .map_or(0.0, |a| a.in_window_availability_percent),
                sla_percent: c.availability_sla_percent,
                sla_met: c.sla_met,
                requests_in_time_percent: c.requests_in_time_percent,
                compliant: c.compliant,
            }
        }))
    }

    /// The offer report of `offer_id`'s `month`, once closed: its figures replace the
    /// records the coordinator dropped.
    fn report(
        &self,
        offer_id: &str,
        month: fedmesh_core::usage::Month,
    ) -> Result<Option<pb::MonthlyReport>, StoreError> {
        self.store.get_report(&format!("{offer_id}/{month}"))
    }

    fn offer_rows(&self) -> Result<Vec<OfferRow>, StoreError> {
        self.store
            .live_catalogue_offers()?
            .iter()
            .map(|o| self.offer_row(o))
            .collect()
    }

    /// `/` and `/api/overview`.
    pub(crate) fn overview(&self) -> Result<Overview, StoreError> {
        let now = SystemTime::now();
        let judged = self.staleness.at(now);
        let nodes = self
            .store
            .list_nodes("", usize::MAX)?
            .into_iter()
            .map(|n| {
                let applied = self.store.cursor(&n.member_id)?.map_or(0, |c| c.revision);
                Ok(NodeRow {
                    up: is_up(&n, &judged),
                    last_heartbeat: ts(n.last_heartbeat_at.as_ref()),
                    heartbeat_age_secs: age(n.last_heartbeat_at.as_ref(), now),
                    replication_lag: n.journal_revision.saturating_sub(applied),
                    journal_revision: n.journal_revision,
                    member_id: n.member_id,
                    endpoint: n.endpoint,
                    software_version: n.software_version,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let offers = self.offer_rows()?;
        Ok(Overview {
            members: nodes.len(),
            nodes_up: nodes.iter().filter(|n| n.up).count(),
            tenants: offers.iter().map(|o| i64::from(o.tenants)).sum(),
            users: offers.iter().map(|o| o.users).sum(),
            nodes,
            offers,
            generated: ts(Some(&now.into())),
        })
    }

    fn incident_rows(&self, offers: &[pb::Offer]) -> Result<Vec<IncidentRow>, StoreError> {
        let at = figures::now();
        let mut rows = Vec::new();
        for offer in offers {
            for i in figures::offer_incidents(&self.store, offer, at)? {
                if !fedmesh_core::incident::is_open(&i) {
                    continue;
                }
                rows.push(IncidentRow {
                    priority: i
                        .priority()
                        .as_str_name()
                        .trim_start_matches("PRIORITY_")
                        .to_owned(),
                    status: short(i.status().as_str_name(), "INCIDENT_STATUS_"),
                    sla: fedmesh_core::incident::worst_clock_state(&i),
                    escalation_level: i.escalation_level,
                    deadlines: i
                        .sla_clocks
                        .iter()
                        .map(|c| Deadline {
                            target: short(c.target().as_str_name(), "SLA_TARGET_"),
                            deadline: ts(c.deadline.as_ref()),
                            state: short(c.state().as_str_name(), "SLA_CLOCK_STATE_"),
                        })
                        .collect(),
                    incident_id: i.incident_id,
                    offer_id: i.offer_id,
                    provider_member_id: i.provider_member_id,
                    subscriber_member_id: i.subscriber_member_id,
                });
            }
        }
        rows.sort_by(|a, b| a.incident_id.cmp(&b.incident_id));
        Ok(rows)
    }

    /// `/incidents` and `/api/incidents`.
    pub(crate) fn incidents(&self) -> Result<Incidents, StoreError> {
        Ok(Incidents {
            incidents: self.incident_rows(&self.store.live_catalogue_offers()?)?,
        })
    }

    /// `/offers/{id}`; `None` for an offer not in the catalogue.
    pub(crate) fn offer(&self, offer_id: &str) -> Result<Option<OfferDetail>, StoreError> {
        let Some(offer) = self.store.catalogue_offer(offer_id)?.and_then(|c| c.offer) else {
            return Ok(None);
        };
        let cal = figures::calendar_of(&offer);
        let current = figures::current_month(&cal);
        let tenancies: Vec<pb::Subscription> = self
            .store
            .tenancies(offer_id)?
            .into_iter()
            .filter_map(|t| t.subscription)
            .collect();
        let mut month = current;
        for _ in 0..5 {
            month = month.previous();
        }
        let mut trend = Vec::new();
        for _ in 0..6 {
            let m = match self.report(offer_id, month)?.and_then(|r| r.metrics) {
                Some(closed) => closed,
                None => {
                    let records = figures::month_usage(&self.store, offer_id, month)?;
                    figures::month_metrics(&records, &tenancies, month, &cal)
                }
            };
            trend.push(TrendPoint {
                month: month.to_string(),
                users: m.user_count,
                tenants: m.tenant_count,
                requests: m.request_count,
            });
            month = month.next();
        }
        let mut availability = Vec::new();
        let mut month = current.previous().previous();
        for _ in 0..3 {
            let c = match self.report(offer_id, month)?.and_then(|r| r.compliance) {
                Some(closed) => closed,
                None => figures::sla_compliance(&self.store, &offer, month)?,
            };
            let a = c.availability.unwrap_or_default();
            availability.push(AvailabilityRow {
                month: month.to_string(),
                in_window_percent: a.in_window_availability_percent,
                out_of_window_percent: a.out_of_window_availability_percent,
                sla_percent: c.availability_sla_percent,
                slo_percent: c.availability_slo_percent,
                sla_met: c.sla_met,
                slo_met: c.slo_met,
                requests_in_time_percent: c.requests_in_time_percent,
                request_target_percent: c.request_handling_target_percent,
            });
            month = month.next();
        }
        let stats = figures::incident_statistics(&self.store, &offer, current)?;
        let now = figures::now();
        let engagement = offer.engagement.clone().unwrap_or_default();
        let calendar = engagement.calendar.clone().unwrap_or_default();
        let upcoming = calendar
            .maintenance_windows
            .into_iter()
            .filter(|w| {
                !fedmesh_core::maintenance::cancelled(w)
                    && w.period
                        .as_ref()
                        .and_then(|p| p.end_time.as_ref())
                        .is_some_and(|t| t.seconds > now)
            })
            .map(|w| Window {
                start: ts(w.period.as_ref().and_then(|p| p.start_time.as_ref())),
                end: ts(w.period.as_ref().and_then(|p| p.end_time.as_ref())),
                start_local: local(
                    w.period.as_ref().and_then(|p| p.start_time.as_ref()),
                    &calendar.time_zone,
                ),
                end_local: local(
                    w.period.as_ref().and_then(|p| p.end_time.as_ref()),
                    &calendar.time_zone,
                ),
                maintenance_id: w.maintenance_id,
                summary: w.summary,
            })
            .collect();
        Ok(Some(OfferDetail {
            engagement: Engagement {
                availability_sla_percent: engagement.availability_sla_percent,
                availability_slo_percent: engagement.availability_slo_percent,
                request_handling_target_percent: engagement.request_handling_target_percent,
                time_zone: calendar.time_zone,
            },
            tenants: self.store.tenancy_counts(offer_id)?.0,
            trend,
            availability,
            incidents: Some(IncidentCounts {
                opened: stats.opened_count,
                open_at_month_end: stats.open_at_month_end,
                resolved_in_time_percent: stats
                    .by_priority
                    .iter()
                    .filter(|p| p.opened_count > 0)
                    .map(|p| p.resolved_in_time_percent)
                    .fold(100.0f64, f64::min),
            }),
            open_incidents: self.incident_rows(std::slice::from_ref(&offer))?,
            upcoming_maintenance: upcoming,
            offer_id: offer.offer_id,
            service_name: offer.service_name,
            provider_member_id: offer.provider_member_id,
        }))
    }

    /// `/members/{id}`; `None` for a member not in the registry.
    pub(crate) fn member(&self, member: &str) -> Result<Option<MemberDetail>, StoreError> {
        let Some(node) = self.store.get_node(member)? else {
            return Ok(None);
        };
        let offers = self.store.live_catalogue_offers()?;
        let mut provides = Vec::new();
        let mut subscribes = Vec::new();
        for offer in &offers {
            if offer.provider_member_id == member {
                provides.push(self.offer_row(offer)?);
            }
            for t in self.store.tenancies(&offer.offer_id)? {
                if let Some(s) = t.subscription.filter(|s| s.subscriber_member_id == member) {
                    subscribes.push(Subscribed {
                        offer_id: offer.offer_id.clone(),
                        service_name: offer.service_name.clone(),
                        provider_member_id: offer.provider_member_id.clone(),
                        state: short(s.state().as_str_name(), "SUBSCRIPTION_STATE_"),
                    });
                }
            }
        }
        Ok(Some(MemberDetail {
            member_id: member.to_owned(),
            node: NodeHealth {
                up: is_up(&node, &self.staleness.at(SystemTime::now())),
                last_heartbeat: ts(node.last_heartbeat_at.as_ref()),
                heartbeat_age_secs: age(node.last_heartbeat_at.as_ref(), SystemTime::now()),
                endpoint: node.endpoint,
                software_version: node.software_version,
            },
            provides,
            subscribes,
        }))
    }
}
