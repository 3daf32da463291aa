//! The gRPC kit shared by member nodes and the coordinator, so that both enforce the same
//! transport rules.
//!
//! - [`auth`]: the tower layer that reads the caller's identity from its verified certificate,
//!   puts it in request extensions and applies the authorization table.
//! - [`deadline`]: the per-request deadline layer (`DEADLINE_EXCEEDED`, never `INTERNAL`).
//! - [`server`]: explicit limits, health, reflection (v1 and v1alpha), graceful shutdown.
//! - [`client`]: mTLS channels to other parties.
//! - [`compaction`]: how logs compact (settings, the periodic task, followers' progress).
//! - [`retention`]: when ended entities leave the hot trees (settings, the periodic task).
//! - [`catalogue`]: `CatalogueService` over a store's catalogue (coordinator and node caches).
//! - [`stream`]: server streams fed by a task, with backpressure.
//! - [`stream_limit`]: concurrent server streams capped per caller identity.
//! - [`error`]: service errors and their one mapping to gRPC statuses.
//! - [`node_info`]: `NodeService` (who am I, what is this server), served everywhere.
#![forbid(unsafe_code)]

pub mod acting;
pub mod auth;
pub mod backup;
pub mod catalogue;
pub mod client;
pub mod compaction;
pub mod connections;
pub mod deadline;
pub mod defrag;
pub mod error;
pub mod expiry;
pub mod figures;
pub mod malformed;
pub mod metrics;
pub mod node_info;
pub mod rate;
pub mod retention;
pub mod server;
pub mod store_probe;
pub mod stream;
pub mod stream_limit;
pub mod trace;

pub use auth::{AccessPolicy, AuthLayer, RemovedMembers, caller};
pub use client::{
    ClientOptions, ClientPem, GrpcChannel, connect, connect_at, connect_pem, connect_to,
};
pub use deadline::DeadlineLayer;
pub use error::ServiceError;
pub use node_info::{SOFTWARE_VERSION, ServerInfo};
pub use server::{Foundation, GrpcServer, ServeError, ServerLimits, StartError};
