//! What the benchmarks under `tests/benches/` share: their command-line options, the
//! percentiles they report, the bare TLS server and plain clients the call path is compared
//! with, and catalogue watches.

use std::time::Duration;

/// The value after `name` on the command line (`--batches 50`), or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `command` with the allocator settings the deployment files give every party (systemd
/// units, container image): two malloc arenas, unless the caller's environment says otherwise.
pub fn as_deployed(command: &mut std::process::Command) {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        command.env("MALLOC_ARENA_MAX", "2");
    }
}

/// The `p` percentile (0 to 1) of `sorted` latencies; zero for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// A channel to `endpoint` of a federation described by `manifest` (one a benchmark runs in a
/// child process), presenting the certificate and key in the given files.
#[allow(clippy::unwrap_used)]
pub fn channel(
    manifest: &fedmesh::federation::Manifest,
    endpoint: &str,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> fedmesh_grpc::GrpcChannel {
    let pem = fedmesh_grpc::ClientPem {
        ca: std::fs::read(&manifest.ca).unwrap(),
        cert: std::fs::read(cert).unwrap(),
        key: std::fs::read(key).unwrap(),
    };
    fedmesh_grpc::connect_pem(endpoint, &pem, fedmesh_grpc::ClientOptions::default()).unwrap()
}

/// A TLS listener on an ephemeral loopback port with fedmesh's own listener and the TLS files
/// of a party, for a bare tonic server to serve on (what the call path is compared with); its
/// port and its connections.
#[allow(clippy::unwrap_used)]
pub async fn bare_tls_listener(
    files: fedmesh_tls::TlsFiles,
) -> (
    u16,
    impl tokio_stream::Stream<
        Item = Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, std::io::Error>,
    >,
) {
    let tls = fedmesh_tls::ReloadableServerConfig::load(files).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let incoming = fedmesh_tls::listener::tls_incoming(
        listener,
        tls,
        fedmesh_tls::listener::ListenerLimits {
            handshake_timeout: Duration::from_secs(10),
            client_hello_timeout: Duration::from_secs(2),
            max_pending_handshakes: 128,
            max_pending_handshakes_per_address: 32,
        },
    );
    (port, incoming)
}

/// `count` plain tonic channels (the same client stack for every server compared) to
/// `localhost:port`, presenting `cert`.
#[allow(clippy::unwrap_used)]
pub fn plain_channels(
    port: u16,
    ca: &[u8],
    cert: &std::path::Path,
    key: &std::path::Path,
    count: usize,
) -> Vec<tonic::transport::Channel> {
    (0..count)
        .map(|_| {
            let tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                .identity(tonic::transport::Identity::from_pem(
                    std::fs::read(cert).unwrap(),
                    std::fs::read(key).unwrap(),
                ))
                .domain_name("localhost");
            tonic::transport::Endpoint::from_shared(format!("https://localhost:{port}"))
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect_lazy()
        })
        .collect()
}

/// A catalogue watch on `channel`, read past its snapshot.
#[allow(clippy::unwrap_used)]
pub async fn catalogue_watch(
    channel: fedmesh_grpc::GrpcChannel,
) -> tonic::Streaming<fedmesh_proto::pb::WatchCatalogueResponse> {
    let mut stream =
        fedmesh_proto::pb::catalogue_service_client::CatalogueServiceClient::new(channel)
            .watch_catalogue(fedmesh_proto::pb::WatchCatalogueRequest::default())
            .await
            .unwrap()
            .into_inner();
    while !stream.message().await.unwrap().unwrap().caught_up {}
    stream
}

/// Reads a catalogue watch until an offer shows `version`; when it arrived.
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub async fn until_version(
    stream: &mut tonic::Streaming<fedmesh_proto::pb::WatchCatalogueResponse>,
    version: &str,
) -> std::time::Instant {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .expect("no change within 60 s")
            .unwrap()
            .expect("the watch ended");
        if message
            .change
            .and_then(|c| c.offer)
            .and_then(|o| o.offer)
            .is_some_and(|o| o.version == version)
        {
            return std::time::Instant::now();
        }
    }
}
