//! The dashboard's words in French and English. A template reads them as fields of
//! [`Words`]: a word missing from a language, or a template naming a word that does not exist,
//! fails to compile.

/// The language of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Fr,
    En,
}

impl Lang {
    /// From `?lang=`, else the browser's `Accept-Language`; English by default.
    pub(crate) fn pick(asked: Option<&str>) -> Self {
        match asked {
            Some(l) if l.starts_with("fr") => Lang::Fr,
            _ => Lang::En,
        }
    }

    /// The page's `lang` attribute and `?lang=` value.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    /// The other language: its code and its name in itself.
    pub(crate) fn other(self) -> (&'static str, &'static str) {
        match self {
            Lang::Fr => ("en", "English"),
            Lang::En => ("fr", "Français"),
        }
    }

    /// The words of this language.
    pub(crate) fn words(self) -> &'static Words {
        match self {
            Lang::Fr => &FR,
            Lang::En => &EN,
        }
    }
}

/// Every word the pages show.
#[derive(Debug)]
pub(crate) struct Words {
    pub(crate) federation: &'static str,
    pub(crate) members: &'static str,
    pub(crate) nodes_up: &'static str,
    pub(crate) offers: &'static str,
    pub(crate) tenants: &'static str,
    pub(crate) users: &'static str,
    pub(crate) member: &'static str,
    pub(crate) node: &'static str,
    pub(crate) version: &'static str,
    pub(crate) status: &'static str,
    pub(crate) heartbeat: &'static str,
    pub(crate) lag: &'static str,
    pub(crate) offer: &'static str,
    pub(crate) provider: &'static str,
    pub(crate) incidents: &'static str,
    pub(crate) incident: &'static str,
    pub(crate) priority: &'static str,
    pub(crate) sla: &'static str,
    pub(crate) escalation: &'static str,
    pub(crate) subscriber: &'static str,
    pub(crate) engagement: &'static str,
    pub(crate) availability: &'static str,
    pub(crate) in_window: &'static str,
    pub(crate) outside: &'static str,
    pub(crate) trend: &'static str,
    pub(crate) maintenance: &'static str,
    pub(crate) none: &'static str,
    pub(crate) provides: &'static str,
    pub(crate) subscribes: &'static str,
    pub(crate) incident_stats: &'static str,
    pub(crate) in_time: &'static str,
    pub(crate) target: &'static str,
    pub(crate) month: &'static str,
    pub(crate) up: &'static str,
    pub(crate) stale: &'static str,
    pub(crate) refreshed: &'static str,
    pub(crate) on_time: &'static str,
    pub(crate) at_risk: &'static str,
    pub(crate) breached: &'static str,
    pub(crate) last_closed: &'static str,
    /// "12 s ago" in this language, with `{}` for the amount and unit.
    pub(crate) ago: &'static str,
    /// The unit of days after a number ("3 d").
    pub(crate) days: &'static str,
    /// The words of lifecycle states, by the name the views and `/api/` give them
    /// (`available`, `in_progress`, `terminating`, ...).
    pub(crate) states: &'static [(&'static str, &'static str)],
}

const FR: Words = Words {
    federation: "Fédération",
    members: "Membres",
    nodes_up: "nœuds actifs",
    offers: "Offres",
    tenants: "Abonnés",
    users: "Utilisateurs",
    member: "Membre",
    node: "Nœud",
    version: "Version",
    status: "État",
    heartbeat: "Dernier signe de vie",
    lag: "Retard de réplication",
    offer: "Offre",
    provider: "Fournisseur",
    incidents: "Incidents en cours",
    incident: "Incident",
    priority: "Priorité",
    sla: "État SLA",
    escalation: "Escalade",
    subscriber: "Abonné",
    engagement: "Engagement de service",
    availability: "Disponibilité",
    in_window: "dans la plage",
    outside: "hors plage",
    trend: "Utilisateurs par mois",
    maintenance: "Maintenances à venir",
    none: "aucun",
    provides: "Fournit",
    subscribes: "Est abonné à",
    incident_stats: "Incidents du mois",
    in_time: "traités dans les délais",
    target: "objectif",
    month: "Mois",
    up: "actif",
    stale: "muet",
    refreshed: "actualisé automatiquement",
    on_time: "dans les délais",
    at_risk: "menacé",
    breached: "dépassé",
    last_closed: "Dernier mois clos (SLA)",
    ago: "il y a {}",
    days: "j",
    states: &[
        ("pilot", "pilote"),
        ("available", "disponible"),
        ("deprecated", "en fin de vie"),
        ("withdrawn", "retirée"),
        ("new", "nouveau"),
        ("acknowledged", "pris en compte"),
        ("in_progress", "en cours"),
        ("waiting_on_subscriber", "en attente de l'abonné"),
        ("resolved", "résolu"),
        ("closed", "clos"),
        ("requested", "demandé"),
        ("active", "actif"),
        ("rejected", "refusé"),
        ("suspended", "suspendu"),
        ("terminating", "en cours de résiliation"),
        ("terminated", "résilié"),
    ],
};

const EN: Words = Words {
    federation: "Federation",
    members: "Members",
    nodes_up: "nodes up",
    offers: "Offers",
    tenants: "Tenants",
    users: "Users",
    member: "Member",
    node: "Node",
    version: "Version",
    status: "Status",
    heartbeat: "Last heartbeat",
    lag: "Replication lag",
    offer: "Offer",
    provider: "Provider",
    incidents: "Incidents in progress",
    incident: "Incident",
    priority: "Priority",
    sla: "SLA state",
    escalation: "Escalation",
    subscriber: "Subscriber",
    engagement: "Service engagement",
    availability: "Availability",
    in_window: "in the window",
    outside: "outside",
    trend: "Users per month",
    maintenance: "Upcoming maintenance",
    none: "none",
    provides: "Provides",
    subscribes: "Subscribes to",
    incident_stats: "Incidents this month",
    in_time: "handled in time",
    target: "target",
    month: "Month",
    up: "up",
    stale: "stale",
    refreshed: "refreshed automatically",
    on_time: "on time",
    at_risk: "at risk",
    breached: "breached",
    last_closed: "Last closed month (SLA)",
    ago: "{} ago",
    days: "d",
    states: &[
        ("in_progress", "in progress"),
        ("waiting_on_subscriber", "waiting on the subscriber"),
    ],
};

impl Words {
    /// How long ago, from seconds: "12 s ago", "il y a 3 min".
    pub(crate) fn ago(&self, seconds: &i64) -> String {
        let s = (*seconds).max(0);
        let amount = match s {
            0..120 => format!("{s} s"),
            120..7200 => format!("{} min", s / 60),
            7200..172_800 => format!("{} h", s / 3600),
            _ => format!("{} {}", s / 86_400, self.days),
        };
        self.ago.replace("{}", &amount)
    }

    /// The word of a lifecycle state (`available` → "disponible" in French); a state without
    /// a word of its own is shown by its name, underscores as spaces.
    pub(crate) fn state_word(&self, state: &str) -> String {
        self.states
            .iter()
            .find(|(name, _)| *name == state)
            .map_or_else(|| state.replace('_', " "), |(_, word)| (*word).to_owned())
    }

    /// The word of an SLA clock state (`on_time`, `at_risk`, `breached`).
    pub(crate) fn sla_state(&self, state: &str) -> &'static str {
        match state {
            "breached" => self.breached,
            "at_risk" => self.at_risk,
            _ => self.on_time,
        }
    }
}
