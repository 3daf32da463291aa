//! mTLS channels from one fedmesh party to another. Every call made through them carries the
//! W3C trace context of the current span (`traceparent`), so that one operation crossing
//! institutions is one trace.

use std::time::Duration;

use fedmesh_tls::TlsFiles;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A channel whose calls carry the current trace context.
pub type GrpcChannel =
    tonic::service::interceptor::InterceptedService<Channel, crate::trace::TraceContext>;

fn traced(channel: Channel) -> GrpcChannel {
    tonic::service::interceptor::InterceptedService::new(channel, crate::trace::TraceContext)
}

/// How a client connects and how long it waits.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time to establish TCP and TLS.
    pub connect_timeout: Duration,
    /// Deadline of each call, sent to the server as `grpc-timeout`.
    pub request_timeout: Duration,
    /// The name the server's certificate must carry, when it is not the endpoint's host
    /// (grpcurl's `-servername`).
    pub server_name: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            server_name: None,
        }
    }
}

/// Why a channel could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not an `https://host:port` URL.
    #[error("endpoint `{endpoint}`: {message}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong.
        message: String,
    },
    /// A TLS file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::Io {
        path: path.to_owned(),
        source,
    })
}

/// A lazily connecting channel to `endpoint` (`https://host:port`) presenting the certificate
/// of `tls`. It connects on first use and reconnects after failures.
pub fn connect(
    endpoint: &str,
    tls: &TlsFiles,
    options: ClientOptions,
) -> Result<GrpcChannel, ClientError> {
    let pem = ClientPem {
        ca: read(&tls.ca)?,
        cert: read(&tls.cert)?,
        key: read(&tls.key)?,
    };
    connect_pem(endpoint, &pem, options)
}

/// A client's trust anchor and identity, as PEM bytes.
#[derive(Debug, Clone)]
pub struct ClientPem {
    /// The federation CA certificate.
    pub ca: Vec<u8>,
    /// The client's certificate.
    pub cert: Vec<u8>,
    /// The client's private key.
    pub key: Vec<u8>,
}

/// Like [`connect`], with the material already in memory.
pub fn connect_pem(
    endpoint: &str,
    pem: &ClientPem,
    options: ClientOptions,
) -> Result<GrpcChannel, ClientError> {
    let bad = |message: &str| ClientError::Endpoint {
        endpoint: endpoint.to_owned(),
        message: message.to_owned(),
    };
    let uri: http::Uri = endpoint.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad("must start with https://"));
    }
    let host = uri.host().ok_or_else(|| bad("has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let tls_config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pem.ca))
        .identity(Identity::from_pem(&pem.cert, &pem.key))
        .domain_name(options.server_name.as_deref().unwrap_or(host));
    let channel = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| bad(&e.to_string()))?
        .tls_config(tls_config)
        .map_err(|e| bad(&e.to_string()))?
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(false)
        .connect_lazy();
    Ok(traced(channel))
}

/// A lazily connecting channel to `endpoint` (`https://host:port`) that also checks the
/// server's identity: the connection fails unless the server's certificate is `expected`'s.
/// Used between institutions, where a host name alone is not proof enough.
pub fn connect_to(
    endpoint: &str,
    tls: &TlsFiles,
    options: ClientOptions,
    expected: fedmesh_core::Identity,
) -> Result<GrpcChannel, ClientError> {
    let bad = |message: &str| ClientError::Endpoint {
        endpoint: endpoint.to_owned(),
        message: message.to_owned(),
    };
    fedmesh_core::endpoint::validate(endpoint).map_err(|m| bad(&m))?;
    let uri: http::Uri = endpoint.parse().map_err(|_| bad("not a URL"))?;
    let host = uri.host().ok_or_else(|| bad("has no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().ok_or_else(|| bad("has no port"))?;
    dial(
        Dial::Host(host.clone(), port),
        &host,
        tls,
        options,
        expected,
    )
    .map_err(|m| bad(&m))
}

/// Like [`connect_to`], dialling `address` while verifying the server's certificate for
/// `server_name`: how a process reaches itself on loopback (`fedmesh health`) when its
/// certificate names only its public host.
pub fn connect_at(
    address: std::net::SocketAddr,
    server_name: &str,
    tls: &TlsFiles,
    options: ClientOptions,
    expected: fedmesh_core::Identity,
) -> Result<GrpcChannel, ClientError> {
    dial(Dial::Address(address), server_name, tls, options, expected).map_err(|message| {
        ClientError::Endpoint {
            endpoint: address.to_string(),
            message,
        }
    })
}

/// Where a connection goes: a host name (resolved at each connection) or an address.
#[derive(Clone)]
enum Dial {
    Host(String, u16),
    Address(std::net::SocketAddr),
}

fn dial(
    to: Dial,
    server_name: &str,
    tls: &TlsFiles,
    options: ClientOptions,
    expected: fedmesh_core::Identity,
) -> Result<GrpcChannel, String> {
    let server_name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
        .map_err(|e| e.to_string())?;
    let config =
        fedmesh_tls::config::client_config_expecting(tls, expected).map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let authority = match &to {
        Dial::Host(host, port) if host.contains(':') => format!("[{host}]:{port}"),
        Dial::Host(host, port) => format!("{host}:{port}"),
        Dial::Address(address) => address.to_string(),
    };
    // TLS is done by the connector below; tonic sees a plain stream.
    let channel = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(false)
        .connect_with_connector_lazy(tower::service_fn(move |_uri: http::Uri| {
            let connector = connector.clone();
            let server_name = server_name.clone();
            let to = to.clone();
            async move {
                let tcp = match to {
                    Dial::Host(host, port) => {
                        tokio::net::TcpStream::connect((host.as_str(), port)).await?
                    }
                    Dial::Address(address) => tokio::net::TcpStream::connect(address).await?,
                };
                let _ = tcp.set_nodelay(true);
                let tls = connector.connect(server_name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }));
    Ok(traced(channel))
}
