//! Mutual TLS for fedmesh: the federation PKI, rustls configurations, identities read from
//! certificates, and the TLS listener that every gRPC server sits behind.
//!
//! - [`pki`]: create the federation CA, issue certificates whose single URI SAN is an
//!   identity, revoke them into a CRL (`fedmesh certs`).
//! - [`identity`]: read and check the identity in a peer certificate.
//! - [`config`]: rustls server (TLS 1.3, client certificate required, CRL enforced) and client
//!   configurations, reloadable from disk.
//! - [`listener`]: accepts TCP connections, runs handshakes under timeouts and a bounded pool
//!   of pending handshakes (`pending`, which idle connections cannot hold), and hands
//!   established TLS streams to the gRPC server.
//! - [`owner_only`]: files created readable by their owner only (keys, tokens, backups).
#![forbid(unsafe_code)]

pub mod config;
pub mod identity;
pub mod listener;
pub mod owner_only;
mod pending;
pub mod pki;

pub use config::{ReloadableServerConfig, TlsError, TlsFiles};
pub use identity::{CertIdentityError, identity_from_der};
pub use listener::{ListenerLimits, tls_incoming};
