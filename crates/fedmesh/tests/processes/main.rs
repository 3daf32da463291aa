//! Process-level tests: the `fedmesh` binary run as an operator runs it, with real processes,
//! files and signals. One test binary rather than one per file, so that the tests link once
//! (CI's disk and time); run one module with `cargo nextest run -p fedmesh crash_runs::`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod cli;
mod crash_runs;
mod full_disk;
mod guide;
mod operations;
mod operator_cli;
mod otlp;
mod report_cli;
mod traces;
mod usage_processes;
