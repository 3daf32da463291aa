//! An offer in full, as a subscriber reads it before subscribing (`fedmesh catalogue show`)
//! and as its provider checks what it published (`fedmesh offer show`): the service
//! engagement (service window, holidays, closures, deadlines per priority), capacity and
//! what is left of it, pricing, GDPR facts, contact, terms and how tenancies are approved.

use fedmesh_proto::pb;

use crate::say;

/// The money amount of `micros` in `currency`, e.g. `1 250.00 EUR`.
fn money(micros: i64, currency: &str) -> String {
    let cents = micros / 10_000;
    let (units, cents) = (cents / 100, (cents % 100).abs());
    let mut grouped = String::new();
    let digits = units.abs().to_string();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(' ');
        }
        grouped.push(c);
    }
    let sign = if micros < 0 { "-" } else { "" };
    format!("{sign}{grouped}.{cents:02} {currency}")
}

/// `90 min`, `4 h`, `2 days 12 h` for a deadline.
pub fn span(seconds: i64) -> String {
    let (days, hours, minutes) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    match (days, hours, minutes) {
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m:02}"),
        (d, 0, _) => format!("{d} day{}", if d == 1 { "" } else { "s" }),
        (d, h, _) => format!("{d} day{} {h} h", if d == 1 { "" } else { "s" }),
    }
}

fn day_name(day: i32) -> &'static str {
    match pb::DayOfWeek::try_from(day) {
        Ok(pb::DayOfWeek::Monday) => "Mon",
        Ok(pb::DayOfWeek::Tuesday) => "Tue",
        Ok(pb::DayOfWeek::Wednesday) => "Wed",
        Ok(pb::DayOfWeek::Thursday) => "Thu",
        Ok(pb::DayOfWeek::Friday) => "Fri",
        Ok(pb::DayOfWeek::Saturday) => "Sat",
        Ok(pb::DayOfWeek::Sunday) => "Sun",
        _ => "?",
    }
}

fn clock(minute: i32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

fn date(d: Option<&pb::LocalDate>) -> String {
    d.map_or("?".to_owned(), |d| {
        format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
    })
}

/// The weekly windows, days with the same hours grouped: `Mon–Fri 07:00–19:00, Sat 08:00–12:00`.
fn windows(calendar: &pb::ServiceCalendar) -> String {
    let mut groups: Vec<(i32, i32, i32, i32)> = Vec::new(); // first day, last day, start, end
    for w in &calendar.weekly_windows {
        match groups.last_mut() {
            Some(g) if g.1 + 1 == w.day_of_week && (g.2, g.3) == (w.start_minute, w.end_minute) => {
                g.1 = w.day_of_week;
            }
            _ => groups.push((w.day_of_week, w.day_of_week, w.start_minute, w.end_minute)),
        }
    }
    if groups.is_empty() {
        return "none (every hour counts as outside the window)".to_owned();
    }
    groups
        .iter()
        .map(|(first, last, start, end)| {
            let days = if first == last {
                day_name(*first).to_owned()
            } else {
                format!("{}–{}", day_name(*first), day_name(*last))
            };
            format!("{days} {}–{}", clock(*start), clock(*end))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn holidays(set: i32) -> &'static str {
    match pb::HolidaySet::try_from(set) {
        Ok(pb::HolidaySet::Fr) => "French public holidays excluded",
        Ok(pb::HolidaySet::FrAlsaceMoselle) => {
            "French public holidays, with Alsace-Moselle's, excluded"
        }
        _ => "none excluded",
    }
}

fn approval(offer: &pb::Offer) -> String {
    match offer.approval_policy() {
        pb::SubscriptionApprovalPolicy::AutoListedMembers => format!(
            "automatic for {}, manual for others",
            offer.auto_approved_member_ids.join(", ")
        ),
        pb::SubscriptionApprovalPolicy::AutoWithinCapacity => {
            "automatic while capacity lasts".to_owned()
        }
        _ => "manual, by the provider's admin".to_owned(),
    }
}

/// Prints `offer` in full; `catalogue`, when the offer was read from the catalogue, adds the
/// provider's liveness and the capacity left.
pub fn print(offer: &pb::Offer, catalogue: Option<&pb::CatalogueOffer>) {
    say!("{}  ({})", offer.service_name, offer.offer_id);
    let provider = match catalogue {
        Some(c)
            if !c.provider_display_name.is_empty()
                && c.provider_display_name != offer.provider_member_id =>
        {
            format!("{} ({})", c.provider_display_name, offer.provider_member_id)
        }
        _ => offer.provider_member_id.clone(),
    };
    say!("  provider      {provider}");
    if let Some(c) = catalogue
        && !c.provider_node_up
    {
        say!("                its node is unreachable now");
    }
    let status = pb::OfferStatus::try_from(offer.status).map_or("unknown".to_owned(), |s| {
        s.as_str_name()
            .trim_start_matches("OFFER_STATUS_")
            .to_lowercase()
    });
    say!("  status        {status}, version {}", offer.version);
    say!("  category      {}", offer.category);
    if let Some(d) = &offer.description {
        say!("  fr            {}", d.fr);
        say!("  en            {}", d.en);
    }
    if let Some(e) = &offer.engagement {
        say!("engagement");
        if let Some(cal) = &e.calendar {
            say!("  time zone     {}", cal.time_zone);
            say!("  window        {}", windows(cal));
            say!("  holidays      {}", holidays(cal.holiday_set));
            let closures: Vec<String> = cal
                .annual_closures
                .iter()
                .map(|r| {
                    let (from, to) = (date(r.start_date.as_ref()), date(r.end_date.as_ref()));
                    if from == to {
                        from
                    } else {
                        format!("{from} to {to}")
                    }
                })
                .collect();
            say!(
                "  closures      {}",
                if closures.is_empty() {
                    "none".to_owned()
                } else {
                    closures.join(", ")
                }
            );
        }
        say!(
            "  availability  SLA {}% in the window, SLO {}% outside (maintenance excluded)",
            e.availability_sla_percent,
            e.availability_slo_percent
        );
        say!(
            "  requests      {}% handled within their deadlines",
            e.request_handling_target_percent
        );
        for t in &e.priority_targets {
            let priority = pb::Priority::try_from(t.priority)
                .map_or("?", |p| p.as_str_name().trim_start_matches("PRIORITY_"));
            let within =
                |d: Option<&prost_types::Duration>| d.map_or("-".to_owned(), |d| span(d.seconds));
            let clock = if priority == "P1" && e.p1_round_the_clock {
                "round the clock"
            } else {
                "in window hours"
            };
            say!(
                "  {priority}            acknowledge within {}, resolve within {} ({clock})",
                within(t.acknowledge_within.as_ref()),
                within(t.resolve_within.as_ref())
            );
        }
    }
    if let Some(c) = &offer.capacity {
        let left = catalogue.map(|cat| (c.max_tenants - cat.tenant_count).max(0));
        say!(
            "capacity        {} tenants{}, up to {} users each",
            c.max_tenants,
            left.map_or(String::new(), |l| format!(" ({l} left)")),
            c.max_users_per_tenant
        );
    }
    if let Some(p) = &offer.pricing {
        let currency = &p.currency_code;
        say!("pricing");
        say!("  setup         {}", money(p.setup_fee_micros, currency));
        say!(
            "  per tenant    {} a year",
            money(p.per_tenant_per_year_micros, currency)
        );
        say!(
            "  per user      {} a year",
            money(p.per_user_per_year_micros, currency)
        );
        if !p.notes.is_empty() {
            say!("  notes         {}", p.notes);
        }
    }
    if let Some(g) = &offer.gdpr {
        say!("GDPR");
        say!(
            "  hosting       {} ({})",
            g.datacentre,
            g.hosting_country_code
        );
        if !g.processing_purposes.is_empty() {
            say!("  purposes      {}", g.processing_purposes.join("; "));
        }
        if let Some(r) = &g.retention_period {
            say!("  retention     {} days", r.seconds / 86_400);
        }
        if let Some(dpo) = &g.dpo_contact {
            say!("  DPO           {} <{}>", dpo.name, dpo.email);
        }
        for s in &g.sub_processors {
            say!(
                "  sub-processor {} ({}): {}",
                s.name,
                s.country_code,
                s.purpose
            );
        }
    }
    if let Some(s) = &offer.support {
        say!("support");
        if let Some(c) = &s.single_point_of_contact {
            let phone = if c.phone.is_empty() {
                String::new()
            } else {
                format!(", {}", c.phone)
            };
            say!("  contact       {} <{}>{phone}", c.name, c.email);
        }
        if !s.documentation_url.is_empty() {
            say!("  documentation {}", s.documentation_url);
        }
        if let Some(l1) = &s.level1_responsibility {
            say!("  level 1       {}", l1.en);
        }
    }
    say!("subscribing");
    say!("  terms         version {}", offer.terms_version);
    say!("  approval      {}", approval(offer));
    say!(
        "  pilots        {}",
        if offer.pilot_tenants_accepted {
            "accepted"
        } else {
            "not accepted"
        }
    );
    say!("  etag          {}", offer.etag);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_deadlines_read_as_people_write_them() {
        assert_eq!(money(1_250_000_000, "EUR"), "1 250.00 EUR");
        assert_eq!(money(1_500_000, "EUR"), "1.50 EUR");
        assert_eq!(money(0, "EUR"), "0.00 EUR");
        assert_eq!(span(5_400), "1 h 30");
        assert_eq!(span(14_400), "4 h");
        assert_eq!(span(1_800), "30 min");
        assert_eq!(span(180_000), "2 days 2 h");
    }

    #[test]
    fn weekly_windows_are_grouped_by_hours() {
        let window = |day: pb::DayOfWeek, start: i32, end: i32| pb::WeeklyWindow {
            day_of_week: day as i32,
            start_minute: start,
            end_minute: end,
        };
        let calendar = pb::ServiceCalendar {
            weekly_windows: vec![
                window(pb::DayOfWeek::Monday, 420, 1140),
                window(pb::DayOfWeek::Tuesday, 420, 1140),
                window(pb::DayOfWeek::Wednesday, 420, 1140),
                window(pb::DayOfWeek::Saturday, 480, 720),
            ],
            ..Default::default()
        };
        assert_eq!(windows(&calendar), "Mon–Wed 07:00–19:00, Sat 08:00–12:00");
    }
}
