//! fedmesh domain logic, free of I/O so that it is unit-tested directly.
//!
//! - [`clock`]: the instant business time is reckoned at (accelerated in soaks).
//! - [`identity`]: the SPIFFE-style identities of design section 2 and the member ids in them.
//! - [`authz`]: the role × RPC table, deny by default.
//! - [`liveness`]: when a registered node counts as stale.
//! - [`catalogue`]: catalogue queries.
//! - [`journal`]: who may read which journal entries.
//! - [`offer`]: validation and lifecycle of offers.
//! - [`endpoint`]: `https://host:port` endpoints.
//! - [`calendar`] and [`span`]: the service calendar (service time, deadlines) and interval
//!   arithmetic.
//! - [`usage`] and [`cost`]: usage and availability records, monthly figures, SLA
//!   availability and cost statements.
//! - [`closing`]: when an offer's month closes, and what a record of a closed month is told.
//! - [`maintenance`]: what a maintenance announcement must hold.
//! - [`incident`]: incidents between institutions and their SLA clocks in service time.
//! - [`subscription`]: request decisions and the tenancy lifecycle.
//! - [`retention`]: when an entity has ended, and may leave the hot state after a retention.
//! - [`trust`]: what a follower may apply from another member's journal.
//! - [`text`]: text that crosses members is inert: no control characters, no bidi overrides.
//! - [`config`]: layering of defaults, a TOML file and `FEDMESH_*` variables into typed
//!   configuration, with errors that name the key and where it came from.
#![forbid(unsafe_code)]

pub mod authz;
pub mod calendar;
pub mod catalogue;
pub mod clock;
pub mod closing;
pub mod config;
pub mod cost;
pub mod endpoint;
pub mod filter;
pub mod identity;
pub mod incident;
pub mod journal;
pub mod liveness;
pub mod maintenance;
pub mod offer;
pub mod retention;
pub mod span;
pub mod subscription;
pub mod text;
pub mod trust;
pub mod usage;

pub use identity::{FederationName, Identity, IdentityError, MemberId, Principal, Role};
