//! The coordinator's dashboard for the federation's operators: HTML pages (French or English,
//! readable on a laptop and a phone, charts drawn server-side in SVG, refreshed in place every
//! 30 seconds by a few lines of inline script) and the JSON behind each page under `/api/`.
//!
//! HTTPS with the coordinator's certificate. Read access: a client certificate of the
//! federation, or the configured bearer token (`Authorization: Bearer`, or `?token=` once,
//! which sets a cookie). Bound to loopback unless configured otherwise.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Json, Response};
use fedmesh_core::liveness::{Liveness, liveness};
use fedmesh_grpc::figures;
use fedmesh_proto::pb;
use fedmesh_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Section `[dashboard]` of the coordinator's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Serve the dashboard at all.
    pub enabled: bool,
    /// HTTPS address of the dashboard.
    pub listen: SocketAddr,
    /// A bearer token granting read access; none by default.
    pub token: Option<String>,
    /// Whether a client certificate of the federation (any member's admin, ...) grants read
    /// access.
    pub client_certificates: bool,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9443)),
            token: None,
            client_certificates: true,
        }
    }
}

/// What the pages read.
#[derive(Clone)]
struct Ctx {
    store: Store,
    stale_after: Duration,
    token: Option<String>,
    client_certificates: bool,
}

/// Whether the connection presented a federation certificate.
#[derive(Clone, Copy)]
struct CertPresented(bool);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    Fr,
    En,
}

fn lang(query: &BTreeMap<String, String>, headers: &HeaderMap) -> Lang {
    let asked = query.get("lang").map(String::as_str).or_else(|| {
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
    });
    match asked {
        Some(l) if l.starts_with("fr") => Lang::Fr,
        _ => Lang::En,
    }
}

/// The dashboard's words.
fn t(lang: Lang, key: &'static str) -> &'static str {
    let fr = match key {
        "federation" => "Fédération",
        "members" => "Membres",
        "nodes_up" => "nœuds actifs",
        "offers" => "Offres",
        "tenants" => "Tenants",
        "users" => "Utilisateurs",
        "member" => "Membre",
        "node" => "Nœud",
        "version" => "Version",
        "status" => "État",
        "heartbeat" => "Dernier signe de vie",
        "lag" => "Retard de réplication",
        "offer" => "Offre",
        "provider" => "Fournisseur",
        "incidents" => "Incidents en cours",
        "priority" => "Priorité",
        "sla" => "État SLA",
        "escalation" => "Escalade",
        "subscriber" => "Abonné",
        "engagement" => "Engagement de service",
        "availability" => "Disponibilité",
        "in_window" => "dans la plage",
        "outside" => "hors plage",
        "trend" => "Utilisateurs par mois",
        "maintenance" => "Maintenances à venir",
        "none" => "aucun",
        "provides" => "Fournit",
        "subscribes" => "Est abonné à",
        "incident_stats" => "Incidents du mois",
        "in_time" => "traités dans les délais",
        "target" => "objectif",
        "month" => "Mois",
        "up" => "actif",
        "stale" => "muet",
        "refreshed" => "actualisé automatiquement",
        _ => key,
    };
    let en = match key {
        "federation" => "Federation",
        "members" => "Members",
        "nodes_up" => "nodes up",
        "offers" => "Offers",
        "tenants" => "Tenants",
        "users" => "Users",
        "member" => "Member",
        "node" => "Node",
        "version" => "Version",
        "status" => "Status",
        "heartbeat" => "Last heartbeat",
        "lag" => "Replication lag",
        "offer" => "Offer",
        "provider" => "Provider",
        "incidents" => "Incidents in progress",
        "priority" => "Priority",
        "sla" => "SLA state",
        "escalation" => "Escalation",
        "subscriber" => "Subscriber",
        "engagement" => "Service engagement",
        "availability" => "Availability",
        "in_window" => "in the window",
        "outside" => "outside",
        "trend" => "Users per month",
        "maintenance" => "Upcoming maintenance",
        "none" => "none",
        "provides" => "Provides",
        "subscribes" => "Subscribes to",
        "incident_stats" => "Incidents this month",
        "in_time" => "handled in time",
        "target" => "target",
        "month" => "Month",
        "up" => "up",
        "stale" => "stale",
        "refreshed" => "refreshed automatically",
        _ => key,
    };
    if lang == Lang::Fr { fr } else { en }
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn ts(t: Option<&prost_types::Timestamp>) -> String {
    t.map(ToString::to_string).unwrap_or_default()
}

// ------------------------------------------------------------------------------------------
// Data (the JSON API; the pages render it).

fn overview(ctx: &Ctx) -> Value {
    let now = SystemTime::now();
    let nodes: Vec<Value> = ctx
        .store
        .list_nodes("", usize::MAX)
        .unwrap_or_default()
        .into_iter()
        .map(|n| {
            let last = n
                .last_heartbeat_at
                .and_then(|t| SystemTime::try_from(t).ok())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let up = liveness(last, now, ctx.stale_after) == Liveness::Active;
            let applied = ctx
                .store
                .cursor(&n.member_id)
                .ok()
                .flatten()
                .map_or(0, |c| c.revision);
            json!({
                "member_id": n.member_id,
                "endpoint": n.endpoint,
                "software_version": n.software_version,
                "up": up,
                "last_heartbeat": ts(n.last_heartbeat_at.as_ref()),
                "journal_revision": n.journal_revision,
                "replication_lag": n.journal_revision.saturating_sub(applied),
            })
        })
        .collect();
    let offers = offer_rows(ctx);
    let tenants: i64 = offers
        .iter()
        .map(|o| o["tenants"].as_i64().unwrap_or(0))
        .sum();
    let users: i64 = offers
        .iter()
        .map(|o| o["users"].as_i64().unwrap_or(0))
        .sum();
    json!({
        "members": nodes.len(),
        "nodes_up": nodes.iter().filter(|n| n["up"] == true).count(),
        "nodes": nodes,
        "offers": offers,
        "tenants": tenants,
        "users": users,
        "generated": ts(Some(&SystemTime::now().into())),
    })
}

fn live_offers(ctx: &Ctx) -> Vec<pb::Offer> {
    ctx.store
        .catalogue_offers()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.offer)
        .filter(|o| o.status != pb::OfferStatus::Withdrawn as i32)
        .collect()
}

fn offer_rows(ctx: &Ctx) -> Vec<Value> {
    live_offers(ctx)
        .iter()
        .map(|o| {
            json!({
                "offer_id": o.offer_id,
                "service_name": o.service_name,
                "provider_member_id": o.provider_member_id,
                "status": o.status().as_str_name().trim_start_matches("OFFER_STATUS_").to_lowercase(),
                "tenants": ctx.store.tenancy_counts(&o.offer_id).map_or(0, |(t, _)| t),
                "users": figures::latest_active_users(&ctx.store, o).map_or(0, |u| u.round() as i64),
            })
        })
        .collect()
}

fn incident_rows(ctx: &Ctx, offers: &[pb::Offer]) -> Vec<Value> {
    let at = figures::now();
    let mut rows = Vec::new();
    for offer in offers {
        for i in figures::offer_incidents(&ctx.store, offer, at).unwrap_or_default() {
            if !fedmesh_core::incident::is_open(&i) {
                continue;
            }
            rows.push(json!({
                "incident_id": i.incident_id,
                "offer_id": i.offer_id,
                "provider_member_id": i.provider_member_id,
                "subscriber_member_id": i.subscriber_member_id,
                "priority": i.priority().as_str_name().trim_start_matches("PRIORITY_"),
                "status": i.status().as_str_name().trim_start_matches("INCIDENT_STATUS_").to_lowercase(),
                "sla": fedmesh_core::incident::worst_clock_state(&i),
                "escalation_level": i.escalation_level,
                "deadlines": i.sla_clocks.iter().map(|c| json!({
                    "target": c.target().as_str_name().trim_start_matches("SLA_TARGET_").to_lowercase(),
                    "deadline": ts(c.deadline.as_ref()),
                    "state": c.state().as_str_name().trim_start_matches("SLA_CLOCK_STATE_").to_lowercase(),
                })).collect::<Vec<_>>(),
            }));
        }
    }
    rows.sort_by(|a, b| a["incident_id"].as_str().cmp(&b["incident_id"].as_str()));
    rows
}

fn offer_detail(ctx: &Ctx, offer_id: &str) -> Option<Value> {
    let offer = ctx.store.catalogue_offer(offer_id).ok()??.offer?;
    let cal = figures::calendar_of(&offer);
    let current = figures::current_month(&cal);
    let tenancies: Vec<pb::Subscription> = ctx
        .store
        .tenancies(offer_id)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.subscription)
        .collect();
    let mut month = current;
    for _ in 0..5 {
        month = month.previous();
    }
    let mut trend = Vec::new();
    for _ in 0..6 {
        let records = figures::month_usage(&ctx.store, offer_id, month).unwrap_or_default();
        let m = figures::month_metrics(&records, &tenancies, month, &cal);
        trend.push(json!({"month": month.to_string(), "users": m.user_count, "tenants": m.tenant_count, "requests": m.request_count}));
        month = month.next();
    }
    let mut availability = Vec::new();
    let mut month = current.previous().previous();
    for _ in 0..3 {
        if let Ok(c) = figures::sla_compliance(&ctx.store, &offer, month) {
            let a = c.availability.unwrap_or_default();
            availability.push(json!({
                "month": month.to_string(),
                "in_window_percent": a.in_window_availability_percent,
                "out_of_window_percent": a.out_of_window_availability_percent,
                "sla_percent": c.availability_sla_percent,
                "slo_percent": c.availability_slo_percent,
                "sla_met": c.sla_met,
                "slo_met": c.slo_met,
                "requests_in_time_percent": c.requests_in_time_percent,
                "request_target_percent": c.request_handling_target_percent,
            }));
        }
        month = month.next();
    }
    let stats = figures::incident_statistics(&ctx.store, &offer, current).ok();
    let now = figures::now();
    let engagement = offer.engagement.clone().unwrap_or_default();
    let upcoming: Vec<Value> = engagement
        .calendar
        .as_ref()
        .map(|c| c.maintenance_windows.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|w| {
            w.period
                .as_ref()
                .and_then(|p| p.end_time.as_ref())
                .is_some_and(|t| t.seconds > now)
        })
        .map(|w| {
            json!({
                "maintenance_id": w.maintenance_id,
                "start": ts(w.period.as_ref().and_then(|p| p.start_time.as_ref())),
                "end": ts(w.period.as_ref().and_then(|p| p.end_time.as_ref())),
                "summary": w.summary,
            })
        })
        .collect();
    Some(json!({
        "offer_id": offer.offer_id,
        "service_name": offer.service_name,
        "provider_member_id": offer.provider_member_id,
        "engagement": {
            "availability_sla_percent": engagement.availability_sla_percent,
            "availability_slo_percent": engagement.availability_slo_percent,
            "request_handling_target_percent": engagement.request_handling_target_percent,
            "time_zone": engagement.calendar.as_ref().map(|c| c.time_zone.clone()).unwrap_or_default(),
        },
        "tenants": ctx.store.tenancy_counts(offer_id).map_or(0, |(t, _)| t),
        "trend": trend,
        "availability": availability,
        "incidents": stats.map(|s| json!({
            "opened": s.opened_count,
            "open_at_month_end": s.open_at_month_end,
            "resolved_in_time_percent": s.by_priority.iter().filter(|p| p.opened_count > 0).map(|p| p.resolved_in_time_percent).fold(100.0f64, f64::min),
        })),
        "open_incidents": incident_rows(ctx, std::slice::from_ref(&offer)),
        "upcoming_maintenance": upcoming,
    }))
}

fn member_detail(ctx: &Ctx, member: &str) -> Option<Value> {
    let node = ctx.store.get_node(member).ok()??;
    let last = node
        .last_heartbeat_at
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let offers = live_offers(ctx);
    let provides: Vec<Value> = offer_rows(ctx)
        .into_iter()
        .filter(|o| o["provider_member_id"] == member)
        .collect();
    let mut subscribes = Vec::new();
    for offer in &offers {
        for t in ctx.store.tenancies(&offer.offer_id).unwrap_or_default() {
            if let Some(s) = t.subscription.filter(|s| s.subscriber_member_id == member) {
                subscribes.push(json!({
                    "offer_id": offer.offer_id,
                    "service_name": offer.service_name,
                    "provider_member_id": offer.provider_member_id,
                    "state": s.state().as_str_name().trim_start_matches("SUBSCRIPTION_STATE_").to_lowercase(),
                }));
            }
        }
    }
    Some(json!({
        "member_id": member,
        "node": {
            "endpoint": node.endpoint,
            "software_version": node.software_version,
            "up": liveness(last, SystemTime::now(), ctx.stale_after) == Liveness::Active,
            "last_heartbeat": ts(node.last_heartbeat_at.as_ref()),
        },
        "provides": provides,
        "subscribes": subscribes,
    }))
}

// ------------------------------------------------------------------------------------------
// Pages.

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1d2733;background:#f6f7f9}\
header{background:#123c69;color:#fff;padding:.8rem 1rem;display:flex;flex-wrap:wrap;gap:1rem;align-items:center}\
header a{color:#fff;text-decoration:none;margin-right:1rem}main{padding:1rem;max-width:72rem;margin:auto}\
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:1.5rem}\
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #e3e6ea;font-size:.95rem}\
.cards{display:flex;flex-wrap:wrap;gap:1rem;margin-bottom:1.5rem}.card{background:#fff;padding:.8rem 1.2rem;border-radius:.4rem;min-width:8rem}\
.card b{display:block;font-size:1.6rem}.ok{color:#1b7f3b}.warn{color:#b26b00}.bad{color:#b3261e;font-weight:600}\
.wrap{overflow-x:auto}small{color:#5b6673}@media(max-width:40rem){th,td{font-size:.85rem;padding:.3rem}}";

const REFRESH: &str = "<script>setInterval(function(){fetch(location.href,{headers:{'X-Fragment':'1'}})\
.then(function(r){return r.ok?r.text():null}).then(function(h){if(h){document.querySelector('main').innerHTML=h}})},30000)</script>";

fn page(lang: Lang, title: &str, body: String, fragment: bool) -> Response {
    if fragment {
        return Html(body).into_response();
    }
    let code = if lang == Lang::Fr { "fr" } else { "en" };
    let other = if lang == Lang::Fr {
        ("en", "English")
    } else {
        ("fr", "Français")
    };
    Html(format!(
        "<!doctype html><html lang=\"{code}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{title} — fedmesh</title>\
<style>{STYLE}</style></head><body><header><strong>fedmesh</strong>\
<a href=\"/?lang={code}\">{}</a><a href=\"/incidents?lang={code}\">{}</a>\
<a href=\"?lang={}\">{}</a><small>{}</small></header><main>{body}</main>{REFRESH}</body></html>",
        t(lang, "federation"),
        t(lang, "incidents"),
        other.0,
        other.1,
        t(lang, "refreshed"),
    ))
    .into_response()
}

fn sla_class(state: &str) -> &'static str {
    match state {
        "breached" => "bad",
        "at_risk" => "warn",
        _ => "ok",
    }
}

/// A bar chart of `(label, value)` in SVG.
fn bars(title: &str, points: &[(String, i64)]) -> String {
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let width = 70 * points.len().max(1);
    let mut svg = format!(
        "<svg role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {width} 170\" width=\"100%\" style=\"max-width:{width}px;background:#fff\">",
        esc(title)
    );
    for (i, (label, value)) in points.iter().enumerate() {
        let h = (*value as f64 / max * 120.0).round();
        let x = i * 70 + 10;
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"50\" height=\"{h}\" fill=\"#2f6db5\"><title>{label}: {value}</title></rect>\
<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{value}</text>\
<text x=\"{}\" y=\"165\" font-size=\"11\" text-anchor=\"middle\">{label}</text>",
            140.0 - h,
            x + 25,
            135.0 - h,
            x + 25
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn overview_html(lang: Lang, data: &Value) -> String {
    let code = if lang == Lang::Fr { "fr" } else { "en" };
    let mut out = format!(
        "<h1>{}</h1><div class=\"cards\"><div class=\"card\"><b>{}</b>{}</div><div class=\"card\"><b>{}/{}</b>{}</div>\
<div class=\"card\"><b>{}</b>{}</div><div class=\"card\"><b>{}</b>{}</div><div class=\"card\"><b>{}</b>{}</div></div>",
        t(lang, "federation"),
        data["members"],
        t(lang, "members"),
        data["nodes_up"],
        data["members"],
        t(lang, "nodes_up"),
        data["offers"].as_array().map_or(0, Vec::len),
        t(lang, "offers"),
        data["tenants"],
        t(lang, "tenants"),
        data["users"],
        t(lang, "users"),
    );
    out.push_str(&format!(
        "<h2>{}</h2><div class=\"wrap\"><table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        t(lang, "members"), t(lang, "member"), t(lang, "node"), t(lang, "version"), t(lang, "status"), t(lang, "heartbeat"), t(lang, "lag")
    ));
    for n in data["nodes"].as_array().into_iter().flatten() {
        let member = n["member_id"].as_str().unwrap_or_default();
        let (class, word) = if n["up"] == true {
            ("ok", t(lang, "up"))
        } else {
            ("bad", t(lang, "stale"))
        };
        out.push_str(&format!(
            "<tr><td><a href=\"/members/{m}?lang={code}\">{m}</a></td><td>{}</td><td>{}</td><td class=\"{class}\">{word}</td><td>{}</td><td>{}</td></tr>",
            esc(n["endpoint"].as_str().unwrap_or_default()),
            esc(n["software_version"].as_str().unwrap_or_default()),
            esc(n["last_heartbeat"].as_str().unwrap_or_default()),
            n["replication_lag"],
            m = esc(member),
        ));
    }
    out.push_str("</table></div>");
    out.push_str(&format!(
        "<h2>{}</h2><div class=\"wrap\"><table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        t(lang, "offers"), t(lang, "offer"), t(lang, "provider"), t(lang, "status"), t(lang, "tenants"), t(lang, "users")
    ));
    for o in data["offers"].as_array().into_iter().flatten() {
        let id = esc(o["offer_id"].as_str().unwrap_or_default());
        out.push_str(&format!(
            "<tr><td><a href=\"/offers/{id}?lang={code}\">{}</a> <small>{id}</small></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(o["service_name"].as_str().unwrap_or_default()),
            esc(o["provider_member_id"].as_str().unwrap_or_default()),
            esc(o["status"].as_str().unwrap_or_default()),
            o["tenants"], o["users"],
        ));
    }
    out.push_str("</table></div>");
    out
}

fn incidents_table(lang: Lang, rows: &[Value]) -> String {
    if rows.is_empty() {
        return format!("<p>{}</p>", t(lang, "none"));
    }
    let mut out = format!(
        "<div class=\"wrap\"><table><tr><th>Incident</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        t(lang, "offer"),
        t(lang, "subscriber"),
        t(lang, "priority"),
        t(lang, "status"),
        t(lang, "sla"),
        t(lang, "escalation")
    );
    for r in rows {
        let sla = r["sla"].as_str().unwrap_or_default();
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            esc(r["incident_id"].as_str().unwrap_or_default()),
            esc(r["offer_id"].as_str().unwrap_or_default()),
            esc(r["subscriber_member_id"].as_str().unwrap_or_default()),
            esc(r["priority"].as_str().unwrap_or_default()),
            esc(r["status"].as_str().unwrap_or_default()),
            sla_class(sla),
            sla.replace('_', " "),
            r["escalation_level"],
        ));
    }
    out.push_str("</table></div>");
    out
}

fn offer_html(lang: Lang, d: &Value) -> String {
    let e = &d["engagement"];
    let mut out = format!(
        "<h1>{} <small>{}</small></h1><p>{}: {} · {}: {} · {}: {}</p>\
<h2>{}</h2><p>SLA {}% {} · SLO {}% {} · {} {}% · {}</p>",
        esc(d["service_name"].as_str().unwrap_or_default()),
        esc(d["offer_id"].as_str().unwrap_or_default()),
        t(lang, "provider"),
        esc(d["provider_member_id"].as_str().unwrap_or_default()),
        t(lang, "tenants"),
        d["tenants"],
        t(lang, "incident_stats"),
        d["incidents"]["opened"],
        t(lang, "engagement"),
        e["availability_sla_percent"],
        t(lang, "in_window"),
        e["availability_slo_percent"],
        t(lang, "outside"),
        t(lang, "target"),
        e["request_handling_target_percent"],
        esc(e["time_zone"].as_str().unwrap_or_default()),
    );
    let points: Vec<(String, i64)> = d["trend"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["month"].as_str().unwrap_or_default().to_owned(),
                p["users"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    out.push_str(&format!(
        "<h2>{}</h2>{}",
        t(lang, "trend"),
        bars(t(lang, "trend"), &points)
    ));
    out.push_str(&format!(
        "<h2>{}</h2><div class=\"wrap\"><table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        t(lang, "availability"), t(lang, "month"), t(lang, "in_window"), t(lang, "outside"), t(lang, "in_time")
    ));
    for a in d["availability"].as_array().into_iter().flatten() {
        let class = |met: &Value| if met == true { "ok" } else { "bad" };
        out.push_str(&format!(
            "<tr><td>{}</td><td class=\"{}\">{:.3}% / {}%</td><td class=\"{}\">{:.3}% / {}%</td><td>{:.0}% / {}%</td></tr>",
            esc(a["month"].as_str().unwrap_or_default()),
            class(&a["sla_met"]), a["in_window_percent"].as_f64().unwrap_or(0.0), a["sla_percent"],
            class(&a["slo_met"]), a["out_of_window_percent"].as_f64().unwrap_or(0.0), a["slo_percent"],
            a["requests_in_time_percent"].as_f64().unwrap_or(0.0), a["request_target_percent"],
        ));
    }
    out.push_str("</table></div>");
    out.push_str(&format!("<h2>{}</h2>", t(lang, "incidents")));
    out.push_str(&incidents_table(
        lang,
        d["open_incidents"]
            .as_array()
            .map_or(&[][..], Vec::as_slice),
    ));
    out.push_str(&format!("<h2>{}</h2>", t(lang, "maintenance")));
    let upcoming = d["upcoming_maintenance"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if upcoming.is_empty() {
        out.push_str(&format!("<p>{}</p>", t(lang, "none")));
    }
    for w in upcoming {
        out.push_str(&format!(
            "<p>{} → {} : {}</p>",
            esc(w["start"].as_str().unwrap_or_default()),
            esc(w["end"].as_str().unwrap_or_default()),
            esc(w["summary"].as_str().unwrap_or_default())
        ));
    }
    out
}

fn member_html(lang: Lang, d: &Value) -> String {
    let code = if lang == Lang::Fr { "fr" } else { "en" };
    let node = &d["node"];
    let (class, word) = if node["up"] == true {
        ("ok", t(lang, "up"))
    } else {
        ("bad", t(lang, "stale"))
    };
    let mut out = format!(
        "<h1>{}</h1><p>{}: {} · <span class=\"{class}\">{word}</span> · {} {}</p><h2>{}</h2><ul>",
        esc(d["member_id"].as_str().unwrap_or_default()),
        t(lang, "node"),
        esc(node["endpoint"].as_str().unwrap_or_default()),
        t(lang, "heartbeat"),
        esc(node["last_heartbeat"].as_str().unwrap_or_default()),
        t(lang, "provides"),
    );
    for o in d["provides"].as_array().into_iter().flatten() {
        let id = esc(o["offer_id"].as_str().unwrap_or_default());
        out.push_str(&format!(
            "<li><a href=\"/offers/{id}?lang={code}\">{}</a> — {} {}</li>",
            esc(o["service_name"].as_str().unwrap_or_default()),
            o["tenants"],
            t(lang, "tenants")
        ));
    }
    out.push_str(&format!("</ul><h2>{}</h2><ul>", t(lang, "subscribes")));
    for s in d["subscribes"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "<li>{} ({}) — {}</li>",
            esc(s["service_name"].as_str().unwrap_or_default()),
            esc(s["provider_member_id"].as_str().unwrap_or_default()),
            esc(s["state"].as_str().unwrap_or_default())
        ));
    }
    out.push_str("</ul>");
    out
}

// ------------------------------------------------------------------------------------------
// Routes.

type Q = Query<BTreeMap<String, String>>;

fn fragment(headers: &HeaderMap) -> bool {
    headers.contains_key("x-fragment")
}

async fn index(State(ctx): State<Arc<Ctx>>, Query(q): Q, headers: HeaderMap) -> Response {
    let lang = lang(&q, &headers);
    page(
        lang,
        t(lang, "federation"),
        overview_html(lang, &overview(&ctx)),
        fragment(&headers),
    )
}

async fn incidents(State(ctx): State<Arc<Ctx>>, Query(q): Q, headers: HeaderMap) -> Response {
    let lang = lang(&q, &headers);
    let rows = incident_rows(&ctx, &live_offers(&ctx));
    let body = format!(
        "<h1>{}</h1>{}",
        t(lang, "incidents"),
        incidents_table(lang, &rows)
    );
    page(lang, t(lang, "incidents"), body, fragment(&headers))
}

async fn offer(
    State(ctx): State<Arc<Ctx>>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let lang = lang(&q, &headers);
    match offer_detail(&ctx, &id) {
        Some(d) => page(lang, &id, offer_html(lang, &d), fragment(&headers)),
        None => (StatusCode::NOT_FOUND, "no such offer").into_response(),
    }
}

async fn member(
    State(ctx): State<Arc<Ctx>>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let lang = lang(&q, &headers);
    match member_detail(&ctx, &id) {
        Some(d) => page(lang, &id, member_html(lang, &d), fragment(&headers)),
        None => (StatusCode::NOT_FOUND, "no such member").into_response(),
    }
}

async fn api_overview(State(ctx): State<Arc<Ctx>>) -> Json<Value> {
    Json(overview(&ctx))
}

async fn api_incidents(State(ctx): State<Arc<Ctx>>) -> Json<Value> {
    Json(json!({ "incidents": incident_rows(&ctx, &live_offers(&ctx)) }))
}

async fn api_offer(State(ctx): State<Arc<Ctx>>, Path(id): Path<String>) -> Response {
    offer_detail(&ctx, &id).map_or_else(
        || {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such offer"})),
            )
                .into_response()
        },
        |d| Json(d).into_response(),
    )
}

async fn api_member(State(ctx): State<Arc<Ctx>>, Path(id): Path<String>) -> Response {
    member_detail(&ctx, &id).map_or_else(
        || {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such member"})),
            )
                .into_response()
        },
        |d| Json(d).into_response(),
    )
}

/// Lets in a federation certificate (when allowed) or the token; `?token=` sets a cookie.
async fn authorize(State(ctx): State<Arc<Ctx>>, request: Request, next: Next) -> Response {
    let cert = request
        .extensions()
        .get::<CertPresented>()
        .is_some_and(|c| c.0);
    if cert && ctx.client_certificates {
        return next.run(request).await;
    }
    let Some(token) = ctx.token.clone() else {
        return (
            StatusCode::UNAUTHORIZED,
            "present a client certificate of the federation",
        )
            .into_response();
    };
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|v| v == token);
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| {
            c.split(';')
                .any(|kv| kv.trim() == format!("fedmesh_dashboard={token}"))
        });
    let query = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == format!("token={token}")));
    if !(bearer || cookie || query) {
        return (
            StatusCode::UNAUTHORIZED,
            "a bearer token or a client certificate of the federation is required",
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    if query
        && let Ok(value) =
            format!("fedmesh_dashboard={token}; Path=/; Secure; HttpOnly; SameSite=Strict").parse()
    {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The dashboard server, bound.
pub struct Dashboard {
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ctx: Arc<Ctx>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").finish_non_exhaustive()
    }
}

impl Dashboard {
    /// Binds the dashboard of `store` per `config`, with the coordinator's TLS files.
    pub async fn bind(
        config: &DashboardConfig,
        tls: &fedmesh_tls::TlsFiles,
        store: Store,
        stale_after: Duration,
    ) -> Result<Self, fedmesh_grpc::StartError> {
        let server = fedmesh_tls::config::web_server_config(tls)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| fedmesh_grpc::StartError::BindOther {
                key: "dashboard.listen",
                addr: config.listen,
                source,
            })?;
        Ok(Self {
            listener,
            tls: Arc::new(server),
            ctx: Arc::new(Ctx {
                store,
                stale_after,
                token: config.token.clone(),
                client_certificates: config.client_certificates,
            }),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `stop` turns true.
    pub async fn serve(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let app = axum::Router::new()
            .route("/", axum::routing::get(index))
            .route("/incidents", axum::routing::get(incidents))
            .route("/offers/{id}", axum::routing::get(offer))
            .route("/members/{id}", axum::routing::get(member))
            .route("/api/overview", axum::routing::get(api_overview))
            .route("/api/incidents", axum::routing::get(api_incidents))
            .route("/api/offers/{id}", axum::routing::get(api_offer))
            .route("/api/members/{id}", axum::routing::get(api_member))
            .route_layer(axum::middleware::from_fn_with_state(
                self.ctx.clone(),
                authorize,
            ))
            .with_state(self.ctx.clone());
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.clone());
        loop {
            let (tcp, _) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "dashboard accept failed");
                        continue;
                    }
                },
                _ = stop.wait_for(|s| *s) => return,
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                else {
                    return;
                };
                let cert = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty());
                let app = app.layer(axum::Extension(CertPresented(cert)));
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    }
}
