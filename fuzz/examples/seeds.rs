//! Writes the seed corpus, `fuzz/seeds/<target>/`: a few valid inputs of every target, built
//! from the project's examples (offer files, usage files, configurations) and the fixtures of
//! `fedmesh_fuzz`, so that fuzzing starts from requests that pass validation instead of
//! having to discover the protobuf shapes first.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds
//! ```
//!
//! It rewrites `fuzz/seeds/` whole; the files are named after what they hold.

use std::fs;
use std::path::{Path, PathBuf};

use fedmesh::offer_file::parse_offer_file;
use fedmesh_coordinator::config::CoordinatorConfig;
use fedmesh_core::calendar::{Calendar, default_proto};
use fedmesh_core::catalogue::Query;
use fedmesh_core::{FederationName, Identity};
use fedmesh_core::{incident, subscription, usage};
use fedmesh_fuzz::{
    FEDERATION, NOW, PROVIDER, SUBSCRIBER, admin_uri, config_layers, offer, selected, step,
    tenancies, ts,
};
use fedmesh_node::config::NodeConfig;
use fedmesh_proto::pb;
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = root.parent().ok_or("fuzz/ has a parent")?;
    let seeds = root.join("seeds");
    if seeds.exists() {
        fs::remove_dir_all(&seeds)?;
    }
    let mut out = Seeds { dir: seeds };
    let example = |path: &str| fs::read_to_string(project.join(path));
    let offer_files = ["collaboration", "otp", "video"]
        .map(|name| (name, format!("examples/offers/{name}.toml")));

    // identity
    for (name, text) in [
        ("coordinator", format!("spiffe://{FEDERATION}/coordinator")),
        ("node", fedmesh_fuzz::node_uri(PROVIDER)),
        ("admin", admin_uri(PROVIDER)),
        (
            "agent",
            format!("spiffe://{FEDERATION}/member/{PROVIDER}/agent/probe-1"),
        ),
        ("member", PROVIDER.to_owned()),
        ("federation", FEDERATION.to_owned()),
        ("offer-id", "rennes2.collab".to_owned()),
        (
            "endpoint",
            "https://node.univ-rennes2.example:7443".to_owned(),
        ),
        (
            "rpc-path",
            "/fedmesh.v1.OfferService/PublishOffer".to_owned(),
        ),
    ] {
        out.write("identity", name, text.as_bytes())?;
    }

    // cert_identity: certificates of every role from a throwaway PKI.
    let dir = tempfile::tempdir()?;
    let federation: FederationName = FEDERATION.parse()?;
    let pki = fedmesh_tls::pki::Pki::init(dir.path(), &federation, 30)?;
    let ca = fs::read_to_string(pki.ca_path())?;
    out.write("cert_identity", "ca", &der(&ca)?)?;
    for (name, uri) in [
        ("coordinator", format!("spiffe://{FEDERATION}/coordinator")),
        ("node", fedmesh_fuzz::node_uri(PROVIDER)),
        ("admin", admin_uri(PROVIDER)),
        (
            "agent",
            format!("spiffe://{FEDERATION}/member/{PROVIDER}/agent/probe-1"),
        ),
    ] {
        let identity: Identity = uri.parse()?;
        let issued = pki.issue(
            &identity,
            &["localhost".to_owned()],
            fedmesh_tls::pki::Validity::days_from_now(30),
        )?;
        let cert = der(&fs::read_to_string(issued.cert_path)?)?;
        accepted(
            name,
            fedmesh_tls::identity_from_der(&cert).as_ref() == Ok(&identity),
        )?;
        out.write("cert_identity", name, &cert)?;
    }

    // offer_file, offer_request, calendar, catalogue_query
    let mut offers = Vec::new();
    for (name, path) in &offer_files {
        let text = example(path)?;
        out.write("offer_file", name, text.as_bytes())?;
        let parsed = parse_offer_file(&text)?;
        fedmesh_core::offer::validate(parsed.clone(), &fedmesh_fuzz::provider())
            .map_err(|e| format!("{path}: {e}"))?;
        let request = pb::PublishOfferRequest {
            offer: Some(parsed.clone()),
            etag: String::new(),
        };
        out.write(
            "offer_request",
            &format!("publish-{name}"),
            &selected(0, &request),
        )?;
        let calendar = parsed
            .engagement
            .as_ref()
            .and_then(|e| e.calendar.clone())
            .ok_or("example offers have a calendar")?;
        Calendar::from_proto("calendar", &calendar).map_err(|e| format!("{path}: {e}"))?;
        let mut input = minutes(NOW).to_vec();
        input.extend(calendar.encode_to_vec());
        out.write("calendar", name, &input)?;
        offers.push(parsed);
    }
    let update = pb::PublishOfferRequest {
        offer: Some(offer().clone()),
        etag: offer().etag.clone(),
    };
    out.write("offer_request", "update", &selected(0, &update))?;
    let withdraw = pb::WithdrawOfferRequest {
        offer_id: offer().offer_id.clone(),
        etag: offer().etag.clone(),
        reason: "replaced by collab2".into(),
    };
    out.write("offer_request", "withdraw", &selected(1, &withdraw))?;
    let maintenance = pb::AnnounceMaintenanceRequest {
        request_id: "mw-1".into(),
        offer_id: offer().offer_id.clone(),
        period: Some(period(NOW + 86_400, NOW + 86_400 + 7_200)),
        summary: "storage upgrade".into(),
        description: "the service is read-only during the upgrade".into(),
    };
    out.write("offer_request", "announce", &selected(2, &maintenance))?;
    let mut input = minutes(NOW).to_vec();
    input.extend(default_proto().encode_to_vec());
    out.write("calendar", "default", &input)?;

    let search = pb::SearchOffersRequest {
        text: "Collaboratif ÉTANCHE".into(),
        statuses: vec![pb::OfferStatus::Available as i32],
        has_free_capacity: true,
        ..Default::default()
    };
    let watch = pb::WatchCatalogueRequest {
        since_revision: 0,
        category: "collaboration".into(),
        provider_member_id: PROVIDER.into(),
    };
    let entries: Vec<u8> = offers
        .iter()
        .flat_map(|o| {
            let mut published = o.clone();
            published.provider_member_id = PROVIDER.into();
            published.offer_id = format!("{PROVIDER}.{}", o.service_id);
            let entry = pb::CatalogueOffer {
                offer: Some(published),
                provider_display_name: "Université Rennes 2".into(),
                tenant_count: 3,
                ..Default::default()
            };
            step(0, &entry)
        })
        .collect();
    let query = Query::search(&search)?;
    accepted(
        "search",
        query.matches(&pb::CatalogueOffer {
            offer: Some(offer().clone()),
            tenant_count: 3,
            ..Default::default()
        }),
    )?;
    Query::watch(&watch)?;
    out.write(
        "catalogue_query",
        "search",
        &[step(0, &search), entries.clone()].concat(),
    )?;
    out.write(
        "catalogue_query",
        "watch",
        &[step(1, &watch), entries].concat(),
    )?;

    // usage_import and usage_request, from examples/usage.
    let usage_csv = project.join("examples/usage/usage.csv");
    let usage_jsonl = project.join("examples/usage/usage.jsonl");
    let availability_csv = project.join("examples/usage/availability.csv");
    for (name, selector, path) in [
        ("usage-csv", 0u8, &usage_csv),
        ("usage-jsonl", 1, &usage_jsonl),
        ("availability-csv", 2, &availability_csv),
    ] {
        let input = [vec![selector], fs::read(path)?].concat();
        out.write("usage_import", name, &input)?;
    }
    let records = |lines: Vec<fedmesh::reports::Line<pb::UsageRecord>>| {
        lines.into_iter().map(|l| l.record).collect::<Vec<_>>()
    };
    let usage = pb::ReportUsageRequest {
        records: records(fedmesh::reports::read_usage(&usage_csv, None)?),
    };
    check_usage("usage.csv", &usage)?;
    out.write("usage_request", "report-usage-csv", &selected(0, &usage))?;
    let usage = pb::ReportUsageRequest {
        records: records(fedmesh::reports::read_usage(&usage_jsonl, None)?),
    };
    check_usage("usage.jsonl", &usage)?;
    out.write("usage_request", "report-usage-jsonl", &selected(0, &usage))?;
    let availability = pb::ReportAvailabilityRequest {
        records: fedmesh::reports::read_availability(&availability_csv, None)?
            .into_iter()
            .map(|l| l.record)
            .collect(),
    };
    for (i, record) in availability.records.iter().enumerate() {
        usage::check_availability(i, record, NOW).map_err(|e| format!("availability.csv: {e}"))?;
    }
    out.write(
        "usage_request",
        "report-availability",
        &selected(1, &availability),
    )?;
    let september = pb::YearMonth {
        year: 2026,
        month: 9,
    };
    let get_usage = pb::GetUsageRequest {
        offer_id: offer().offer_id.clone(),
        month: Some(september),
        ..Default::default()
    };
    out.write("usage_request", "get-usage", &selected(2, &get_usage))?;
    let get_availability = pb::GetAvailabilityRequest {
        offer_id: offer().offer_id.clone(),
        month: Some(september),
    };
    out.write(
        "usage_request",
        "get-availability",
        &selected(3, &get_availability),
    )?;
    let statement = pb::GetCostStatementRequest {
        subscription_id: tenancies()[0].subscription_id.clone(),
        period: Some(pb::DateRange {
            start_date: Some(pb::LocalDate {
                year: 2026,
                month: 1,
                day: 1,
            }),
            end_date: Some(pb::LocalDate {
                year: 2026,
                month: 12,
                day: 31,
            }),
        }),
    };
    out.write("usage_request", "cost-statement", &selected(4, &statement))?;
    let metrics = pb::GetOfferMetricsRequest {
        offer_id: offer().offer_id.clone(),
        from_month: Some(pb::YearMonth {
            year: 2026,
            month: 1,
        }),
        to_month: Some(september),
    };
    out.write("usage_request", "offer-metrics", &selected(5, &metrics))?;

    // incident_request: a P2 incident through its whole life. Selector: rpc * 3 + party
    // (party 0 = provider's admin, 1 = subscriber, 2 = provider's node).
    let open = pb::OpenIncidentRequest {
        request_id: "inc-1".into(),
        offer_id: offer().offer_id.clone(),
        provider_member_id: PROVIDER.into(),
        subscription_id: tenancies()[0].subscription_id.clone(),
        r#type: pb::IncidentType::Incident as i32,
        priority: pb::Priority::P2 as i32,
        summary: "Synchronisation des fichiers en échec".into(),
        description: "Depuis 9h, les clients de synchronisation renvoient une erreur 503.".into(),
    };
    let id = incident::incident_id(PROVIDER, NOW, 1);
    let status = |status: pb::IncidentStatus, comment: &str, resolution: &str| {
        pb::SetIncidentStatusRequest {
            request_id: format!("st-{}", status as i32),
            incident_id: id.clone(),
            status: status as i32,
            comment: comment.into(),
            resolution: resolution.into(),
        }
    };
    let life = [
        step(0, &open),
        step(
            0,
            &pb::AcknowledgeIncidentRequest {
                request_id: "ack".into(),
                incident_id: id.clone(),
                comment: "pris en charge".into(),
            },
        ),
        step(
            3,
            &pb::AssignIncidentRequest {
                request_id: "as".into(),
                incident_id: id.clone(),
                assignee: "équipe stockage".into(),
            },
        ),
        step(6, &status(pb::IncidentStatus::InProgress, "", "")),
        step(
            9,
            &pb::CommentIncidentRequest {
                request_id: "c1".into(),
                incident_id: id.clone(),
                body: "note interne".into(),
                internal: true,
            },
        ),
        step(
            6,
            &status(pb::IncidentStatus::WaitingOnSubscriber, "quel client ?", ""),
        ),
        step(
            13,
            &pb::AnswerIncidentRequest {
                request_id: "an".into(),
                incident_id: id.clone(),
                body: "le client de bureau 3.12".into(),
            },
        ),
        // The node's own alert: the acknowledge clock at risk (no request message).
        vec![26],
        step(
            6,
            &status(
                pb::IncidentStatus::Resolved,
                "",
                "nœud de stockage redémarré",
            ),
        ),
        step(
            16,
            &pb::CloseIncidentRequest {
                request_id: "cl".into(),
                incident_id: id.clone(),
                comment: "merci".into(),
            },
        ),
        step(
            19,
            &pb::ReopenIncidentRequest {
                request_id: "re".into(),
                incident_id: id.clone(),
                reason: "l'erreur est revenue".into(),
            },
        ),
        step(
            22,
            &pb::ChangePriorityRequest {
                request_id: "pr".into(),
                incident_id: id.clone(),
                priority: pb::Priority::P1 as i32,
                reason: "tout l'établissement est touché".into(),
            },
        ),
    ]
    .concat();
    out.write("incident_request", "life", &life)?;
    incident::check_open(&open)?;
    out.write("incident_request", "open", &step(0, &open))?;

    // subscription_request: selector 0..=6 = approve, reject, suspend, resume, terminate,
    // cancel, change users.
    let request = pb::RequestSubscriptionRequest {
        request_id: "sub-1".into(),
        offer_id: offer().offer_id.clone(),
        provider_member_id: PROVIDER.into(),
        user_count: 1000,
        contact_email: format!("dsi@{SUBSCRIBER}.example"),
        accepted_terms_version: offer().terms_version.clone(),
        pilot: false,
    };
    let sub = "rennes2.s7".to_owned();
    let tenancy = [
        step(3, &request),
        step(
            2,
            &pb::SuspendSubscriptionRequest {
                request_id: "su".into(),
                subscription_id: sub.clone(),
                reason: "impayé".into(),
            },
        ),
        step(
            3,
            &pb::ResumeSubscriptionRequest {
                request_id: "re".into(),
                subscription_id: sub.clone(),
                reason: String::new(),
            },
        ),
        step(
            6,
            &pb::ChangeUsersRequest {
                request_id: "cu".into(),
                subscription_id: sub.clone(),
                user_count: 2000,
                reason: "rentrée".into(),
            },
        ),
        step(
            4,
            &pb::TerminateSubscriptionRequest {
                request_id: "te".into(),
                subscription_id: sub.clone(),
                reason: "fin de convention".into(),
                confirm_data_deleted: false,
            },
        ),
        step(
            4,
            &pb::TerminateSubscriptionRequest {
                request_id: "td".into(),
                subscription_id: sub.clone(),
                reason: String::new(),
                confirm_data_deleted: true,
            },
        ),
    ]
    .concat();
    accepted(
        "subscription request",
        subscription::decide(offer(), &fedmesh_fuzz::subscriber(), &request, 3)
            == Ok(subscription::Decision::Approve),
    )?;
    out.write("subscription_request", "life", &tenancy)?;
    // Full: the offer holds 18 tenants and approves within capacity only.
    out.write("subscription_request", "full", &step(18, &request))?;
    let cancelled = [
        step(3, &request),
        step(
            5,
            &pb::CancelSubscriptionRequest {
                request_id: "ca".into(),
                subscription_id: sub.clone(),
                reason: String::new(),
            },
        ),
        step(
            0,
            &pb::ApproveSubscriptionRequest {
                request_id: "ap".into(),
                subscription_id: sub,
                tenant_id: String::new(),
                tenant_url: String::new(),
                reason: "refused: it is terminating".into(),
            },
        ),
    ]
    .concat();
    out.write("subscription_request", "cancel", &cancelled)?;

    // span: the first byte splits the pairs between the two lists.
    let pairs: [(i64, i64); 4] = [
        (NOW, NOW + 3_600),
        (NOW + 1_800, NOW + 7_200),
        (NOW + 600, NOW + 900),
        (NOW + 5_000, NOW + 90_000),
    ];
    let mut input = vec![2u8];
    for (start, end) in pairs {
        input.extend((start as u64).to_le_bytes());
        input.extend((end as u64).to_le_bytes());
    }
    out.write("span", "overlapping", &input)?;

    // journal_entry: one entry of each kind a reader may receive.
    let mut opened = incident::open(
        &open,
        &tenancies()[0],
        id,
        &admin_uri(SUBSCRIBER),
        NOW,
        None,
    );
    opened.sla_clocks = incident::clocks(
        &opened,
        fedmesh_fuzz::engagement(),
        fedmesh_fuzz::calendar(),
        NOW + 3_600,
        0.75,
    );
    use pb::journal_entry::Payload;
    let window = pb::MaintenanceWindow {
        maintenance_id: format!("MW-20261117-{PROVIDER}-9"),
        offer_id: offer().offer_id.clone(),
        provider_member_id: PROVIDER.into(),
        period: maintenance.period,
        summary: maintenance.summary,
        description: maintenance.description,
        announce_time: Some(ts(NOW)),
        announced_by: admin_uri(PROVIDER),
    };
    for (name, kind, payload) in [
        (
            "offer",
            pb::EntityKind::Offer,
            Payload::Offer(offer().clone()),
        ),
        (
            "subscription",
            pb::EntityKind::Subscription,
            Payload::Subscription(tenancies()[0].clone()),
        ),
        (
            "incident",
            pb::EntityKind::Incident,
            Payload::Incident(opened),
        ),
        (
            "maintenance",
            pb::EntityKind::MaintenanceWindow,
            Payload::MaintenanceWindow(window),
        ),
    ] {
        let entry = pb::JournalEntry {
            revision: 42,
            record_time: Some(ts(NOW)),
            member_id: PROVIDER.into(),
            entity_kind: kind as i32,
            entity_id: name.into(),
            deleted: false,
            payload: Some(payload),
        };
        out.write("journal_entry", name, &entry.encode_to_vec())?;
    }

    // node_config, coordinator_config: the deployment examples, and with overrides.
    let node = example("deploy/examples/node.toml")?;
    out.write("node_config", "example", node.as_bytes())?;
    let overridden = format!(
        "{node}\0FEDMESH_NODE_LOG__FILTER=debug\nlimits.max_concurrent_streams=64\nincidents.at_risk_share=0.5"
    );
    out.write("node_config", "overrides", overridden.as_bytes())?;
    for (name, text) in [
        ("node.toml", &node),
        ("node.toml with overrides", &overridden),
    ] {
        let layers =
            config_layers(text.as_bytes(), name, fedmesh_node::config::ENV_PREFIX).ok_or(name)?;
        layers.load::<NodeConfig>()?.validate()?;
    }
    let coordinator = example("deploy/examples/coordinator.toml")?;
    out.write("coordinator_config", "example", coordinator.as_bytes())?;
    let overridden = format!(
        "{coordinator}\0FEDMESH_COORDINATOR_REGISTRY__STALE_AFTER_MS=90000\nreplication.retry_max_ms=60000"
    );
    out.write("coordinator_config", "overrides", overridden.as_bytes())?;
    for (name, text) in [
        ("coordinator.toml", &coordinator),
        ("coordinator.toml with overrides", &overridden),
    ] {
        let prefix = fedmesh_coordinator::config::ENV_PREFIX;
        let layers = config_layers(text.as_bytes(), name, prefix).ok_or(name)?;
        layers.load::<CoordinatorConfig>()?.validate()?;
    }

    println!("wrote {} seeds to {}", out.count(), out.dir.display());
    Ok(())
}

/// Where the seeds go, one folder per target.
struct Seeds {
    dir: PathBuf,
}

impl Seeds {
    fn write(&mut self, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let dir = self.dir.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(name), bytes)
    }

    fn count(&self) -> usize {
        fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|target| fs::read_dir(target.path()).ok())
            .map(|files| files.count())
            .sum()
    }
}

/// An error unless the seed `what` is accepted: a seed that fails validation would only
/// cover the refusal.
fn accepted(what: &str, ok: bool) -> Result<(), String> {
    ok.then_some(())
        .ok_or_else(|| format!("seed {what} is not accepted"))
}

/// Every record of `request` passes `check_usage` on the fixture offer.
fn check_usage(file: &str, request: &pb::ReportUsageRequest) -> Result<(), String> {
    for (i, record) in request.records.iter().enumerate() {
        let mut record = record.clone();
        usage::check_usage(i, &mut record, offer(), tenancies(), NOW)
            .map_err(|e| format!("{file}: {e}"))?;
    }
    Ok(())
}

/// The DER bytes of a PEM certificate.
fn der(pem: &str) -> Result<Vec<u8>, String> {
    fedmesh_tls::pki::pem_to_der(pem).ok_or_else(|| "no PEM certificate".to_owned())
}

/// The calendar target's instant prefix: minutes since 1970, little-endian.
fn minutes(t: i64) -> [u8; 4] {
    u32::try_from(t / 60).unwrap_or(u32::MAX).to_le_bytes()
}

fn period(start: i64, end: i64) -> pb::Period {
    pb::Period {
        start_time: Some(ts(start)),
        end_time: Some(ts(end)),
    }
}
