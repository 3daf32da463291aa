//! The `fedmesh` binary's library: what the subcommands share with the integration tests.
//!
//! - [`federation`]: a whole federation (PKI, coordinator, member nodes) started in one process
//!   on loopback: `fedmesh demo`, and the test kit.
//! - [`cli`]: the admin CLI's connection options and error reporting.
//! - [`offer_file`]: the TOML file an admin publishes an offer from.
//! - [`telemetry`]: logs and OTLP span export.
#![forbid(unsafe_code)]

pub mod cli;
pub mod federation;
pub mod offer_file;
pub mod telemetry;
