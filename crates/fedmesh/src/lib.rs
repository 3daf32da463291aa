//! The `fedmesh` binary's library: what the subcommands share with the integration tests.
//!
//! - [`federation`]: a whole federation (PKI, coordinator, member nodes) started in one process
//!   on loopback: `fedmesh demo`, and the test kit.
//! - [`cli`]: the admin CLI's connection options and error reporting.
//! - [`admin`]: `fedmesh offer ...` and `fedmesh catalogue ...`.
//! - [`incidents_cli`]: `fedmesh incident ...` and `fedmesh maintenance ...`.
//! - [`reports`]: `fedmesh usage`, `availability`, `statement` and `metrics`.
//! - [`report_cli`]: `fedmesh report ...`, the monthly reports of closed months and their corrections.
//! - [`status`]: `fedmesh status`.
//! - [`nodes_cli`]: `fedmesh nodes list|show`, the coordinator's registry.
//! - [`operations`]: `fedmesh admin backup|restore|inspect`.
//! - [`health`]: `fedmesh health`, the probe of containers and Kubernetes.
//! - [`inert`]: human output shows control characters instead of obeying them ([`say!`]).
//! - [`json`]: `--json` output of any message of the contract.
//! - [`offer_file`]: the TOML file an admin publishes an offer from.
//! - [`offer_view`]: an offer in full, as `offer show` and `catalogue show` print it.
//! - [`telemetry`]: logs and OTLP span export.
//! - [`times`]: instants in the reader's time zone (`--tz`).
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod federation;
pub mod health;
pub mod incidents_cli;
pub mod inert;
pub mod json;
pub mod nodes_cli;
pub mod offer_file;
pub mod offer_view;
pub mod operations;
pub mod report_cli;
pub mod reports;
pub mod status;
pub mod telemetry;
pub mod times;
