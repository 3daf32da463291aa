//! fedmesh's integration tests: in-process federations over real mutual TLS, one module per
//! capability. They are one test binary rather than one per file: each binary links the whole
//! federation (about 70 MB in a debug build), and eighteen of them filled CI's disk and spent
//! minutes linking. Run one module with `cargo nextest run -p fedmesh-tests faults::`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod clock;
mod closing;
mod compaction;
mod dashboard;
mod deploy;
mod disclosure;
mod faults;
mod foreign_clients;
mod herd;
mod hostile;
mod hostile_member;
mod incidents;
mod journal;
mod limits;
mod metrics;
mod mtls;
mod not_found;
mod offboarding;
mod offers;
mod registry;
mod retention;
mod shutdown;
mod starvation;
mod subscriptions;
mod tls_alerts;
mod usage;
