//! The coordinator's configuration (`fedmesh coordinator --config coordinator.toml`).
//!
//! Layers: defaults → file → `FEDMESH_COORDINATOR_*` variables → `--set key=value`. Every key
//! and its default is listed in `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::PathBuf;

use fedmesh_core::FederationName;
use fedmesh_core::config::{ConfigError, LogConfig, TelemetryConfig};
use fedmesh_grpc::ServerLimits;
use fedmesh_tls::TlsFiles;
use serde::{Deserialize, Serialize};

/// The prefix of the coordinator's environment variables.
pub const ENV_PREFIX: &str = "FEDMESH_COORDINATOR_";

/// The whole coordinator configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// The federation's name (trust domain of every identity). Required.
    pub federation: String,
    /// Address the gRPC server listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory of the coordinator's sled database.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `[storage]`: how the database is opened.
    #[serde(default)]
    pub storage: fedmesh_grpc::server::StorageConfig,
    /// `[clock]`: the federation's clock (accelerated for soaks only).
    #[serde(default)]
    pub clock: fedmesh_grpc::server::ClockConfig,
    /// The coordinator's certificate, key, the federation CA and CRL. Required.
    pub tls: TlsFiles,
    /// Registry behaviour.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// Journal replication from the nodes.
    #[serde(default)]
    pub replication: ReplicationConfig,
    /// Server limits.
    #[serde(default)]
    pub limits: ServerLimits,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Span export.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The HTTPS dashboard for the federation's operators.
    #[serde(default)]
    pub dashboard: crate::dashboard::DashboardConfig,
    /// Prometheus `/metrics` (port 9465 by default).
    #[serde(default = "fedmesh_grpc::metrics::MetricsConfig::coordinator")]
    pub metrics: fedmesh_grpc::metrics::MetricsConfig,
    /// `[catalogue]`: how the catalogue change log compacts (its followers are the nodes'
    /// catalogue caches).
    #[serde(default)]
    pub catalogue: fedmesh_grpc::compaction::CompactionConfig,
    /// `[retention]`: when ended entities (closed incidents, tenancies in a final state,
    /// withdrawn catalogue offers) leave the hot trees for the archive.
    #[serde(default)]
    pub retention: fedmesh_grpc::retention::RetentionConfig,
}

/// Section `[registry]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// How often nodes are asked to heartbeat, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// After how long without a heartbeat a node is reported stale, in milliseconds.
    pub stale_after_ms: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 10_000,
            stale_after_ms: 30_000,
        }
    }
}

/// Section `[replication]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// First delay before reconnecting to a node's journal, in milliseconds.
    pub retry_initial_ms: u64,
    /// Longest delay between reconnections, in milliseconds (exponential, jittered).
    pub retry_max_ms: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            retry_initial_ms: 200,
            retry_max_ms: 10_000,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7400))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("coordinator-data")
}

/// The parts of a configuration that `validate` turned into domain types.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The federation name.
    pub federation: FederationName,
}

impl CoordinatorConfig {
    /// Checks every rule the types cannot express; errors name the key.
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_owned(),
            message,
        };
        let federation = self
            .federation
            .parse()
            .map_err(|e: fedmesh_core::IdentityError| invalid("federation", e.to_string()))?;
        self.limits
            .validate()
            .map_err(|(key, message)| invalid(&key, message))?;
        self.storage
            .validate()
            .map_err(|(key, message)| invalid(&key, message))?;
        self.clock
            .validate()
            .map_err(|(key, message)| invalid(&key, message))?;
        self.dashboard
            .validate()
            .map_err(|(key, message)| invalid(&key, message))?;
        self.catalogue
            .validate("catalogue")
            .map_err(|(key, message)| invalid(&key, message))?;
        self.retention
            .validate()
            .map_err(|(key, message)| invalid(&key, message))?;
        if self.registry.heartbeat_interval_ms == 0 {
            return Err(invalid(
                "registry.heartbeat_interval_ms",
                "must be greater than 0".into(),
            ));
        }
        if self.registry.stale_after_ms <= self.registry.heartbeat_interval_ms {
            return Err(invalid(
                "registry.stale_after_ms",
                format!(
                    "must be greater than registry.heartbeat_interval_ms ({})",
                    self.registry.heartbeat_interval_ms
                ),
            ));
        }
        if self.replication.retry_initial_ms == 0
            || self.replication.retry_max_ms < self.replication.retry_initial_ms
        {
            return Err(invalid(
                "replication.retry_max_ms",
                "retry delays must be positive, the maximum at least the initial one".into(),
            ));
        }
        Ok(Validated { federation })
    }
}

#[cfg(test)]
mod tests {
    use fedmesh_core::config::Layers;

    use super::*;

    #[test]
    fn the_example_parses_and_every_key_is_documented() {
        let example = include_str!("../../../deploy/examples/coordinator.toml");
        let config: CoordinatorConfig = Layers::new()
            .file("coordinator.toml", example)
            .load()
            .unwrap();
        config.validate().unwrap();
        let docs = include_str!("../../../docs/configuration.md");
        let all = fedmesh_core::config::dotted_keys(&toml::Table::try_from(&config).unwrap());
        assert!(all.len() > 15, "{all:?}");
        for key in all {
            assert!(
                docs.contains(&format!("| `{key}` |")),
                "{key} is not documented in docs/configuration.md"
            );
        }
    }

    #[test]
    fn staleness_must_exceed_the_heartbeat_interval() {
        let example = include_str!("../../../deploy/examples/coordinator.toml");
        let config: CoordinatorConfig = Layers::new()
            .file("coordinator.toml", example)
            .set_args(["registry.stale_after_ms=10000"])
            .unwrap()
            .load()
            .unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("`registry.stale_after_ms`"), "{err}");
    }
}
