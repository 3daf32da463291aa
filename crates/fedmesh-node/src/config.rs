//! A member node's configuration (`fedmesh node --config node.toml`).
//!
//! Layers: defaults → file → `FEDMESH_NODE_*` variables → `--set key=value`. Every key and its
//! default is listed in `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::PathBuf;

use fedmesh_core::config::{ConfigError, LogConfig, TelemetryConfig};
use fedmesh_core::{FederationName, MemberId};
use fedmesh_grpc::ServerLimits;
use fedmesh_tls::TlsFiles;
use serde::{Deserialize, Serialize};

/// The prefix of the node's environment variables.
pub const ENV_PREFIX: &str = "FEDMESH_NODE_";

/// The whole node configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The member institution running this node (`unistra`). Required; must match the node
    /// certificate.
    pub member_id: String,
    /// The federation's name. Required; must match the certificates.
    pub federation: String,
    /// Address the gRPC server listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The `https://host:port` URL other members use to reach this node; defaults to
    /// `https://localhost:<listen port>`.
    #[serde(default)]
    pub advertise: Option<String>,
    /// Directory of the node's sled database.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `[storage]`: how the database is opened.
    #[serde(default)]
    pub storage: fedmesh_grpc::server::StorageConfig,
    /// `[clock]`: the federation's clock (accelerated for soaks only).
    #[serde(default)]
    pub clock: fedmesh_grpc::server::ClockConfig,
    /// The node's certificate, key, the federation CA and CRL. Required.
    pub tls: TlsFiles,
    /// How to reach the coordinator.
    #[serde(default)]
    pub coordinator: CoordinatorLink,
    /// Server limits.
    #[serde(default)]
    pub limits: ServerLimits,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Span export.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Prometheus `/metrics`.
    #[serde(default)]
    pub metrics: fedmesh_grpc::metrics::MetricsConfig,
    /// Incident handling.
    #[serde(default)]
    pub incidents: IncidentSettings,
    /// Incident and maintenance events posted to the institution's helpdesk.
    #[serde(default)]
    pub notifications: Notifications,
    /// How long client request ids are remembered.
    #[serde(default)]
    pub idempotency: Idempotency,
    /// `[journal]`: how the journal (and the node's catalogue cache log) compacts.
    #[serde(default)]
    pub journal: fedmesh_grpc::compaction::CompactionConfig,
    /// `[retention]`: when ended entities leave the hot trees for the archive.
    #[serde(default)]
    pub retention: fedmesh_grpc::retention::RetentionConfig,
    /// When the months of this node's offers close.
    #[serde(default)]
    pub usage: UsageSettings,
}

/// Section `[usage]`: closing months (docs/usage.md, "Closed months").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageSettings {
    /// Days after an offer's month ends (on its calendar) before it closes: records of it are
    /// taken until then, and refused after (0–366).
    pub close_after_days: u32,
    /// How often the node closes the months that are due, in milliseconds (also once at
    /// start).
    pub close_check_interval_ms: u64,
}

impl Default for UsageSettings {
    fn default() -> Self {
        Self {
            close_after_days: fedmesh_core::closing::DEFAULT_CLOSE_AFTER_DAYS,
            close_check_interval_ms: 3_600_000,
        }
    }
}

/// Section `[idempotency]`: the records that make a repeated client request (same
/// `request_id`) answer with what the first one made instead of applying it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Idempotency {
    /// Days a record is kept (1–3650). A request repeated later is applied again: keep it
    /// longer than any client's or outbox's retries.
    pub retention_days: u32,
    /// How often expired records are removed, in milliseconds (also once at start).
    pub sweep_interval_ms: u64,
}

impl Default for Idempotency {
    fn default() -> Self {
        Self {
            retention_days: 90,
            sweep_interval_ms: 3_600_000,
        }
    }
}

/// Section `[incidents]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentSettings {
    /// Share of an SLA allowance after which a running clock is "at risk" (0 < share < 1).
    pub at_risk_share: f64,
    /// How many days after resolution a subscriber may reopen an incident of this node's
    /// offers.
    pub reopen_within_days: u32,
    /// How often this node checks the clocks of open incidents on its offers, raising
    /// at-risk and breach events (a breach escalates to the coordinator), in milliseconds.
    pub clock_check_interval_ms: u64,
}

impl Default for IncidentSettings {
    fn default() -> Self {
        Self {
            at_risk_share: 0.75,
            reopen_within_days: 10,
            clock_check_interval_ms: 30_000,
        }
    }
}

/// Section `[notifications]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notifications {
    /// URL (`http://` or `https://`) that receives a JSON `POST` for every incident event and
    /// maintenance announcement concerning this member (a GLPI or iTop webhook); none by
    /// default.
    pub webhook_url: Option<String>,
    /// CA certificates (PEM) trusted for an `https://` webhook.
    pub ca_file: PathBuf,
    /// Time allowed for one delivery, in milliseconds.
    pub timeout_ms: u64,
    /// First delay before retrying a failed delivery, in milliseconds.
    pub retry_initial_ms: u64,
    /// Longest delay between retries, in milliseconds; events wait (in order) until the
    /// helpdesk accepts them.
    pub retry_max_ms: u64,
}

impl Default for Notifications {
    fn default() -> Self {
        Self {
            webhook_url: None,
            ca_file: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
            timeout_ms: 10_000,
            retry_initial_ms: 1_000,
            retry_max_ms: 300_000,
        }
    }
}

/// Section `[coordinator]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoordinatorLink {
    /// The coordinator's `https://host:port` URL; without it the node runs alone and does not
    /// register.
    pub endpoint: Option<String>,
    /// First delay before retrying a failed registration or heartbeat, in milliseconds.
    pub retry_initial_ms: u64,
    /// Longest delay between retries, in milliseconds (exponential backoff with jitter).
    pub retry_max_ms: u64,
    /// How often the node fetches the federation CRL from the coordinator, in milliseconds: a
    /// certificate revoked there is refused here within this delay.
    pub crl_refresh_ms: u64,
}

impl Default for CoordinatorLink {
    fn default() -> Self {
        Self {
            endpoint: None,
            retry_initial_ms: 500,
            retry_max_ms: 30_000,
            crl_refresh_ms: 10_000,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7443))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("node-data")
}

/// The parts of a configuration that `validate` turned into domain types.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The member id.
    pub member: MemberId,
    /// The federation name.
    pub federation: FederationName,
}

impl NodeConfig {
    /// Checks every rule the types cannot express; errors name the key.
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_owned(),
            message,
        };
        let member = self
            .member_id
            .parse()
            .map_err(|e: fedmesh_core::IdentityError| invalid("member_id", e.to_string()))?;
        let federation = self
            .federation
            .parse()
            .map_err(|e: fedmesh_core::IdentityError| invalid("federation", e.to_string()))?;
        for (key, url) in [
            ("advertise", &self.advertise),
            ("coordinator.endpoint", &self.coordinator.endpoint),
        ] {
            if let Some(url) = url {
                fedmesh_core::endpoint::validate(url).map_err(|message| invalid(key, message))?;
            }
        }
        if self.coordinator.endpoint.is_some()
            && self.advertise.is_none()
            && !self.listen.ip().is_loopback()
        {
            return Err(invalid(
                "advertise",
                format!(
                    "required when the node listens on {} and registers with a coordinator: other members need the URL that reaches it",
                    self.listen
                ),
            ));
        }
        if self.coordinator.crl_refresh_ms == 0 {
            return Err(invalid(
                "coordinator.crl_refresh_ms",
                "must be positive".into(),
            ));
        }
        if self.coordinator.retry_initial_ms == 0
            || self.coordinator.retry_max_ms < self.coordinator.retry_initial_ms
        {
            return Err(invalid(
                "coordinator.retry_max_ms",
                "retry delays must be positive, the maximum at least the initial one".into(),
            ));
        }
        self.limits
            .validate()
            .map_err(|(key, message)| invalid(&key, message))?;
        self.storage
            .validate()
            .map_err(|(key, message)| invalid(&key, message))?;
        self.clock
            .validate()
            .map_err(|(key, message)| invalid(&key, message))?;
        let share = self.incidents.at_risk_share;
        if !(share > 0.0 && share < 1.0) {
            return Err(invalid(
                "incidents.at_risk_share",
                format!("{share} is not between 0 and 1 (exclusive)"),
            ));
        }
        if !(1..=3650).contains(&self.idempotency.retention_days) {
            return Err(invalid(
                "idempotency.retention_days",
                format!(
                    "{} is not between 1 and 3650",
                    self.idempotency.retention_days
                ),
            ));
        }
        self.journal
            .validate("journal")
            .map_err(|(key, message)| invalid(&key, message))?;
        self.retention
            .validate()
            .map_err(|(key, message)| invalid(&key, message))?;
        // A closed incident may be reopened within that delay: it must still be here.
        if self.retention.ended_days < self.incidents.reopen_within_days {
            return Err(invalid(
                "retention.ended_days",
                format!(
                    "{} is less than incidents.reopen_within_days ({})",
                    self.retention.ended_days, self.incidents.reopen_within_days
                ),
            ));
        }
        if self.idempotency.sweep_interval_ms == 0 {
            return Err(invalid(
                "idempotency.sweep_interval_ms",
                "must be positive".into(),
            ));
        }
        if self.usage.close_after_days > fedmesh_core::closing::MAX_CLOSE_AFTER_DAYS {
            return Err(invalid(
                "usage.close_after_days",
                format!(
                    "{} is not between 0 and {}",
                    self.usage.close_after_days,
                    fedmesh_core::closing::MAX_CLOSE_AFTER_DAYS
                ),
            ));
        }
        if self.usage.close_check_interval_ms == 0 {
            return Err(invalid(
                "usage.close_check_interval_ms",
                "must be positive".into(),
            ));
        }
        if self.incidents.clock_check_interval_ms == 0 {
            return Err(invalid(
                "incidents.clock_check_interval_ms",
                "must be positive".into(),
            ));
        }
        if let Some(url) = &self.notifications.webhook_url {
            crate::notify::Target::parse(url)
                .map_err(|message| invalid("notifications.webhook_url", message))?;
        }
        if self.notifications.retry_initial_ms == 0
            || self.notifications.retry_max_ms < self.notifications.retry_initial_ms
            || self.notifications.timeout_ms == 0
        {
            return Err(invalid(
                "notifications.retry_max_ms",
                "delays must be positive, the maximum at least the initial one".into(),
            ));
        }
        Ok(Validated { member, federation })
    }
}

#[cfg(test)]
mod tests {
    use fedmesh_core::config::Layers;

    use super::*;

    #[test]
    fn the_example_parses_and_every_key_is_documented() {
        let example = include_str!("../../../deploy/examples/node.toml");
        let config: NodeConfig = Layers::new().file("node.toml", example).load().unwrap();
        config.validate().unwrap();
        assert_eq!(config.member_id, "unistra");
        let docs = include_str!("../../../docs/configuration.md");
        let all = fedmesh_core::config::dotted_keys(&toml::Table::try_from(&config).unwrap());
        assert!(all.len() > 20, "{all:?}");
        for key in all {
            assert!(
                docs.contains(&format!("| `{key}` |")),
                "{key} is not documented in docs/configuration.md"
            );
        }
    }

    #[test]
    fn validation_names_the_key() {
        let example = include_str!("../../../deploy/examples/node.toml");
        for (setting, key) in [
            ("member_id=Unistra", "member_id"),
            ("federation=bad_name", "federation"),
            ("advertise=http://x:1", "advertise"),
            ("advertise=https://x", "advertise"),
            ("coordinator.endpoint=x:1", "coordinator.endpoint"),
            ("coordinator.retry_max_ms=1", "coordinator.retry_max_ms"),
            ("storage.cache_mb=0", "storage.cache_mb"),
            ("storage.cache_mb=70000", "storage.cache_mb"),
            ("storage.clean_interval_ms=0", "storage.clean_interval_ms"),
            (
                "storage.clean_interval_ms=60001",
                "storage.clean_interval_ms",
            ),
            ("clock.speed=0.5", "clock.speed"),
            ("clock.speed=2000000", "clock.speed"),
            (
                "limits.max_concurrent_streams=0",
                "limits.max_concurrent_streams",
            ),
            ("incidents.at_risk_share=1.5", "incidents.at_risk_share"),
            ("idempotency.retention_days=0", "idempotency.retention_days"),
            ("retention.ended_days=5", "retention.ended_days"),
            ("retention.ended_days=36501", "retention.ended_days"),
            ("retention.interval_ms=0", "retention.interval_ms"),
            ("usage.close_after_days=367", "usage.close_after_days"),
            (
                "usage.close_check_interval_ms=0",
                "usage.close_check_interval_ms",
            ),
            (
                "idempotency.sweep_interval_ms=0",
                "idempotency.sweep_interval_ms",
            ),
            (
                "notifications.webhook_url=ftp://helpdesk",
                "notifications.webhook_url",
            ),
        ] {
            let config: NodeConfig = Layers::new()
                .file("node.toml", example)
                .set_args([setting])
                .unwrap()
                .load()
                .unwrap();
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{setting}: {err}");
        }
    }
}
