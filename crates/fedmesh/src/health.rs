//! `fedmesh health`: the process's own health, as container and Kubernetes probes ask it.
//!
//! It reads the same configuration as the server (file, environment, `--set`), then calls the
//! gRPC health service (`grpc.health.v1.Health/Check`) on the server's own listener over
//! loopback, with the server's own certificate: the call goes through the real TLS handshake,
//! authentication and routing, and the server must prove it is the identity of that
//! certificate. A kubelet's built-in gRPC probe cannot present a client certificate, hence
//! this command.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use fedmesh_tls::TlsFiles;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// How long a probe waits for the connection, then for the answer: 4 s in all, under the
/// 5 s that the image's health check and the Kubernetes probes give it, so that its own
/// message, not a kill, tells what failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// See [`CONNECT_TIMEOUT`].
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What a configuration says about where to ask.
#[derive(Debug, Clone)]
pub struct Target {
    /// `node` or `coordinator`.
    pub role: &'static str,
    /// The address to dial: the listen address, on loopback when it is a wildcard.
    pub address: SocketAddr,
    /// The TLS files of the server, presented as the client's.
    pub tls: TlsFiles,
}

impl Target {
    /// The target of a node's configuration.
    pub fn node(config: &fedmesh_node::NodeConfig) -> Self {
        Self {
            role: "node",
            address: loopback(config.listen),
            tls: config.tls.clone(),
        }
    }

    /// The target of the coordinator's configuration.
    pub fn coordinator(config: &fedmesh_coordinator::CoordinatorConfig) -> Self {
        Self {
            role: "coordinator",
            address: loopback(config.listen),
            tls: config.tls.clone(),
        }
    }
}

/// `0.0.0.0:7443` is reached at `127.0.0.1:7443`, `[::]:7443` at `[::1]:7443`; a specific
/// address as it is.
fn loopback(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

/// Asks the server's health service once. `Ok` with the status when it answers SERVING (or,
/// with `live`, when it answers at all); otherwise an error that says what failed
/// (connection, TLS, status).
pub async fn check(target: &Target, live: bool) -> Result<&'static str> {
    let cert = &target.tls.cert;
    let identity = fedmesh_tls::config::cert_identity(cert)?;
    let der = fedmesh_tls::config::load_certs(cert)?
        .into_iter()
        .next()
        .with_context(|| format!("{}: no certificate", cert.display()))?;
    let server_name = match fedmesh_tls::identity::dns_names(&der)?.into_iter().next() {
        Some(name) => name,
        None => target.address.ip().to_string(),
    };
    let channel = fedmesh_grpc::connect_at(
        target.address,
        &server_name,
        &target.tls,
        fedmesh_grpc::ClientOptions {
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: CHECK_TIMEOUT,
            server_name: None,
        },
        identity.clone(),
    )?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|status| {
            anyhow::anyhow!(
                "{} {identity} at {}: {:?} {}",
                target.role,
                target.address,
                status.code(),
                status.message()
            )
        })?
        .into_inner();
    match ServingStatus::try_from(answer.status) {
        Ok(ServingStatus::Serving) => Ok("SERVING"),
        Ok(other) if live => Ok(other.as_str_name()),
        Ok(other) => bail!(
            "{} {identity} at {}: {}",
            target.role,
            target.address,
            other.as_str_name()
        ),
        Err(_) => bail!(
            "{} at {}: unknown status {}",
            target.role,
            target.address,
            answer.status
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_reached_on_loopback() {
        let cases = [
            ("0.0.0.0:7443", "127.0.0.1:7443"),
            ("[::]:7400", "[::1]:7400"),
            ("10.0.0.5:7443", "10.0.0.5:7443"),
            ("127.0.0.1:9000", "127.0.0.1:9000"),
        ];
        for (listen, expected) in cases {
            assert_eq!(
                loopback(listen.parse().unwrap()).to_string(),
                expected,
                "{listen}"
            );
        }
    }
}
