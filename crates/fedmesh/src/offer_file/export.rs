//! The reverse of [`super::parse_offer_file`]: a published offer written back as the TOML that
//! publishes it (`fedmesh offer export`), so that an admin edits the offer as it stands rather
//! than an old file. What the node sets (offer id, provider, times, etag) is left out; a
//! withdrawn offer is written as deprecated, the last status an admin may publish.

use fedmesh_proto::pb;
use toml::{Table, Value};

fn text(value: &str) -> Value {
    Value::String(value.to_owned())
}

fn texts(values: &[String]) -> Value {
    Value::Array(values.iter().map(|v| text(v)).collect())
}

fn table(entries: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    Value::Table(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

fn localized(t: &pb::LocalizedText) -> Value {
    table([("fr", text(&t.fr)), ("en", text(&t.en))])
}

fn contact(c: &pb::Contact) -> Value {
    table([
        ("name", text(&c.name)),
        ("email", text(&c.email)),
        ("phone", text(&c.phone)),
    ])
}

/// Micros as the exact decimal the file takes: `1500.00`, `0.50`, `0.000001`.
fn decimal(micros: i64) -> Value {
    let (units, fraction) = (micros / 1_000_000, micros % 1_000_000);
    let mut digits = format!("{fraction:06}");
    while digits.len() > 2 && digits.ends_with('0') {
        digits.pop();
    }
    text(&format!("{units}.{digits}"))
}

fn clock(minute: i32) -> Value {
    text(&format!("{:02}:{:02}", minute / 60, minute % 60))
}

fn date(d: Option<&pb::LocalDate>) -> Value {
    let d = d.copied().unwrap_or_default();
    text(&format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
}

fn day(d: i32) -> &'static str {
    match pb::DayOfWeek::try_from(d) {
        Ok(pb::DayOfWeek::Tuesday) => "tue",
        Ok(pb::DayOfWeek::Wednesday) => "wed",
        Ok(pb::DayOfWeek::Thursday) => "thu",
        Ok(pb::DayOfWeek::Friday) => "fri",
        Ok(pb::DayOfWeek::Saturday) => "sat",
        Ok(pb::DayOfWeek::Sunday) => "sun",
        _ => "mon",
    }
}

fn hours(d: Option<&prost_types::Duration>) -> Option<Value> {
    d.map(|d| Value::Float(d.seconds as f64 / 3600.0))
}

fn engagement(e: &pb::ServiceEngagement) -> Value {
    let mut t = Table::new();
    let calendar = e.calendar.clone().unwrap_or_default();
    t.insert("time_zone".into(), text(&calendar.time_zone));
    let holidays = match calendar.holiday_set() {
        pb::HolidaySet::Fr => "fr",
        pb::HolidaySet::FrAlsaceMoselle => "fr-alsace-moselle",
        _ => "none",
    };
    t.insert("holidays".into(), text(holidays));
    // Days with the same hours in one window, in the order they come.
    let mut windows: Vec<(i32, i32, Vec<String>)> = Vec::new();
    for w in &calendar.weekly_windows {
        match windows
            .iter_mut()
            .find(|(from, to, _)| (*from, *to) == (w.start_minute, w.end_minute))
        {
            Some((_, _, days)) => days.push(day(w.day_of_week).to_owned()),
            None => windows.push((
                w.start_minute,
                w.end_minute,
                vec![day(w.day_of_week).to_owned()],
            )),
        }
    }
    t.insert(
        "windows".into(),
        Value::Array(
            windows
                .iter()
                .map(|(from, to, days)| {
                    table([
                        ("days", texts(days)),
                        ("from", clock(*from)),
                        ("to", clock(*to)),
                    ])
                })
                .collect(),
        ),
    );
    t.insert(
        "closures".into(),
        Value::Array(
            calendar
                .annual_closures
                .iter()
                .map(|c| {
                    table([
                        ("from", date(c.start_date.as_ref())),
                        ("to", date(c.end_date.as_ref())),
                    ])
                })
                .collect(),
        ),
    );
    t.insert(
        "availability_sla_percent".into(),
        Value::Float(e.availability_sla_percent),
    );
    t.insert(
        "availability_slo_percent".into(),
        Value::Float(e.availability_slo_percent),
    );
    t.insert(
        "request_handling_target_percent".into(),
        Value::Float(e.request_handling_target_percent),
    );
    t.insert(
        "p1_round_the_clock".into(),
        Value::Boolean(e.p1_round_the_clock),
    );
    let priorities = e
        .priority_targets
        .iter()
        .map(|p| {
            let mut row = Table::new();
            let name = p.priority().as_str_name().trim_start_matches("PRIORITY_");
            row.insert("priority".into(), text(name));
            if let Some(h) = hours(p.acknowledge_within.as_ref()) {
                row.insert("acknowledge_hours".into(), h);
            }
            if let Some(h) = hours(p.resolve_within.as_ref()) {
                row.insert("resolve_hours".into(), h);
            }
            Value::Table(row)
        })
        .collect();
    t.insert("priorities".into(), Value::Array(priorities));
    Value::Table(t)
}

/// The TOML file that publishes `offer` as it stands.
pub fn to_toml(offer: &pb::Offer) -> Result<String, toml::ser::Error> {
    let mut t = Table::new();
    t.insert("service_id".into(), text(&offer.service_id));
    t.insert("service_name".into(), text(&offer.service_name));
    t.insert("version".into(), text(&offer.version));
    t.insert("category".into(), text(&offer.category));
    let status = match offer.status() {
        pb::OfferStatus::Pilot => "pilot",
        pb::OfferStatus::Available => "available",
        _ => "deprecated",
    };
    t.insert("status".into(), text(status));
    t.insert("terms_version".into(), text(&offer.terms_version));
    t.insert(
        "tenant_url_template".into(),
        text(&offer.tenant_url_template),
    );
    t.insert(
        "pilot_tenants_accepted".into(),
        Value::Boolean(offer.pilot_tenants_accepted),
    );
    t.insert("custom_metrics".into(), texts(&offer.custom_metrics));
    let policy = match offer.approval_policy() {
        pb::SubscriptionApprovalPolicy::AutoListedMembers => "auto-listed-members",
        pb::SubscriptionApprovalPolicy::AutoWithinCapacity => "auto-within-capacity",
        _ => "manual",
    };
    let mut approval = Table::new();
    approval.insert("policy".into(), text(policy));
    if !offer.auto_approved_member_ids.is_empty() {
        approval.insert("members".into(), texts(&offer.auto_approved_member_ids));
    }
    t.insert("approval".into(), Value::Table(approval));
    if let Some(d) = &offer.description {
        t.insert("description".into(), localized(d));
    }
    if let Some(e) = &offer.engagement {
        t.insert("engagement".into(), engagement(e));
    }
    if let Some(c) = &offer.capacity {
        t.insert(
            "capacity".into(),
            table([
                ("max_tenants", Value::Integer(c.max_tenants.into())),
                (
                    "max_users_per_tenant",
                    Value::Integer(c.max_users_per_tenant.into()),
                ),
            ]),
        );
    }
    if let Some(p) = &offer.pricing {
        t.insert(
            "pricing".into(),
            table([
                ("currency", text(&p.currency_code)),
                ("setup_fee", decimal(p.setup_fee_micros)),
                ("per_tenant_per_year", decimal(p.per_tenant_per_year_micros)),
                ("per_user_per_year", decimal(p.per_user_per_year_micros)),
                ("notes", text(&p.notes)),
            ]),
        );
    }
    if let Some(g) = &offer.gdpr {
        let mut gdpr = Table::new();
        gdpr.insert("hosting_country".into(), text(&g.hosting_country_code));
        gdpr.insert("datacentre".into(), text(&g.datacentre));
        gdpr.insert("purposes".into(), texts(&g.processing_purposes));
        if let Some(r) = &g.retention_period {
            gdpr.insert("retention_days".into(), Value::Integer(r.seconds / 86_400));
        }
        if let Some(dpo) = &g.dpo_contact {
            gdpr.insert("dpo".into(), contact(dpo));
        }
        let subs = g
            .sub_processors
            .iter()
            .map(|s| {
                table([
                    ("name", text(&s.name)),
                    ("country", text(&s.country_code)),
                    ("purpose", text(&s.purpose)),
                ])
            })
            .collect();
        gdpr.insert("sub_processors".into(), Value::Array(subs));
        t.insert("gdpr".into(), Value::Table(gdpr));
    }
    if let Some(s) = &offer.support {
        let mut support = Table::new();
        if let Some(c) = &s.single_point_of_contact {
            support.insert("contact".into(), contact(c));
        }
        support.insert("documentation_url".into(), text(&s.documentation_url));
        if let Some(l1) = &s.level1_responsibility {
            support.insert("level1".into(), localized(l1));
        }
        t.insert("support".into(), Value::Table(support));
    }
    let body = toml::to_string_pretty(&t)?;
    Ok(format!(
        "# {} ({}), exported from {}'s node at etag {}.\n# Edit, then: fedmesh offer publish --file <this file> --etag {}\n# Reference of every key: docs/offers.md\n\n{body}",
        offer.service_name, offer.offer_id, offer.provider_member_id, offer.etag, offer.etag
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example offer, parsed, exported and parsed again, is the same offer.
    #[test]
    fn an_exported_offer_publishes_the_same_offer() {
        for name in ["collaboration", "video", "otp"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../../examples/offers/{name}.toml"));
            let original = std::fs::read_to_string(&path).unwrap();
            let offer = super::super::parse_offer_file(&original).unwrap();
            let exported = to_toml(&offer).unwrap();
            let again = super::super::parse_offer_file(&exported)
                .unwrap_or_else(|e| panic!("{name}: {e}\n{exported}"));
            assert_eq!(again, offer, "{name}:\n{exported}");
        }
    }

    #[test]
    fn amounts_are_written_as_exact_decimals() {
        assert_eq!(decimal(1_500_000_000), text("1500.00"));
        assert_eq!(decimal(500_000), text("0.50"));
        assert_eq!(decimal(1), text("0.000001"));
    }
}
