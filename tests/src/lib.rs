//! The fedmesh test kit: a federation of a coordinator and N member nodes started in-process on
//! `127.0.0.1:0`, over real mutual TLS with a fresh PKI in a temporary directory, and the
//! helpers the integration tests share.
#![forbid(unsafe_code)]

pub mod bench;
pub mod hostile;
pub mod proxy;
pub mod raw;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use fedmesh::federation::{FederationSpec, PartyManifest, RunningFederation};
use fedmesh_core::Identity;
use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_grpc::{ClientOptions, ClientPem};
use fedmesh_tls::pki::{Issued, Validity};

/// A running test federation; its directory is removed when it is dropped.
#[derive(Debug)]
pub struct TestFederation {
    /// The running parties.
    pub running: RunningFederation,
    dir: tempfile::TempDir,
}

/// Fast registry timings so that liveness tests take a second, not a minute.
pub const HEARTBEAT_MS: u64 = 100;
/// A node is stale after this long without a heartbeat.
pub const STALE_AFTER_MS: u64 = 800;

impl TestFederation {
    /// A coordinator and `members` nodes, with fast heartbeats.
    pub async fn start(members: usize) -> Self {
        Self::start_with(members, &[], &[]).await
    }

    /// Like [`Self::start`], with extra `key=value` settings for the coordinator and the nodes.
    pub async fn start_with(members: usize, coordinator: &[&str], nodes: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut spec = FederationSpec::new(dir.path(), members);
        spec.coordinator_settings = [
            format!("registry.heartbeat_interval_ms={HEARTBEAT_MS}"),
            format!("registry.stale_after_ms={STALE_AFTER_MS}"),
        ]
        .into_iter()
        .chain(coordinator.iter().map(|s| (*s).to_owned()))
        .collect();
        spec.node_settings = [
            "coordinator.retry_initial_ms=50",
            "coordinator.retry_max_ms=200",
        ]
        .into_iter()
        .chain(nodes.iter().copied())
        .map(str::to_owned)
        .collect();
        let running = RunningFederation::start(spec)
            .await
            .unwrap_or_else(|e| panic!("federation did not start: {e:#}"));
        let federation = Self { running, dir };
        federation.wait_registered().await;
        federation
    }

    /// Waits until every member's node is in the coordinator's registry (nodes find each
    /// other there).
    pub async fn wait_registered(&self) {
        let expected = self.running.manifest.members.len();
        if expected == 0 {
            return;
        }
        let coordinator = self.as_admin(self.coordinator());
        wait_for(
            "every node registered with the coordinator",
            Duration::from_secs(10),
            || {
                let coordinator = coordinator.clone();
                async move {
                    let nodes =
                        fedmesh_proto::pb::registry_service_client::RegistryServiceClient::new(
                            coordinator,
                        )
                        .list_nodes(fedmesh_proto::pb::ListNodesRequest::default())
                        .await
                        .ok()?
                        .into_inner()
                        .nodes;
                    (nodes.len() == expected).then_some(())
                }
            },
        )
        .await;
    }

    /// Splits into the running parties and the directory guard, to stop the parties and then
    /// inspect what they left on disk.
    pub fn into_parts(self) -> (RunningFederation, tempfile::TempDir) {
        (self.running, self.dir)
    }

    /// The federation's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Member node `index`.
    pub fn member(&self, index: usize) -> &PartyManifest {
        &self.running.manifest.members[index]
    }

    /// The coordinator.
    pub fn coordinator(&self) -> &PartyManifest {
        &self.running.manifest.coordinator
    }

    /// The federation CA certificate, PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        read(&self.running.manifest.ca)
    }

    /// A channel to `endpoint` presenting the certificate and key in the given files.
    pub fn channel(&self, endpoint: &str, cert: &Path, key: &Path) -> Channel {
        self.channel_pem(endpoint, read(cert), read(key))
    }

    /// A channel to `endpoint` presenting an in-memory certificate and key.
    pub fn channel_pem(&self, endpoint: &str, cert: Vec<u8>, key: Vec<u8>) -> Channel {
        let pem = ClientPem {
            ca: self.ca_pem(),
            cert,
            key,
        };
        let options = ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            server_name: None,
        };
        fedmesh_grpc::connect_pem(endpoint, &pem, options)
            .unwrap_or_else(|e| panic!("channel to {endpoint}: {e}"))
    }

    /// A channel to `party` as its own admin.
    pub fn as_admin(&self, party: &PartyManifest) -> Channel {
        self.channel(&party.endpoint, &party.admin_cert, &party.admin_key)
    }

    /// Publishes `offer` (new) on member `index`'s node as its admin; the offer as stored.
    pub async fn publish(
        &self,
        index: usize,
        offer: fedmesh_proto::pb::Offer,
    ) -> fedmesh_proto::pb::Offer {
        fedmesh_proto::pb::offer_service_client::OfferServiceClient::new(
            self.as_admin(self.member(index)),
        )
        .publish_offer(fedmesh_proto::pb::PublishOfferRequest {
            offer: Some(offer),
            etag: String::new(),
        })
        .await
        .unwrap_or_else(|s| panic!("publishing an offer: {s:?}"))
        .into_inner()
        .offer
        .unwrap_or_else(|| panic!("the published offer is missing from the answer"))
    }

    /// Asks, as member `subscriber`'s admin on its own node, for a tenancy of `offer` (100 users,
    /// its terms accepted, request id `req-1`); the subscription's id.
    pub async fn subscribe(&self, subscriber: usize, offer: &fedmesh_proto::pb::Offer) -> String {
        use fedmesh_proto::pb;
        pb::subscription_service_client::SubscriptionServiceClient::new(
            self.as_admin(self.member(subscriber)),
        )
        .request_subscription(pb::RequestSubscriptionRequest {
            request_id: "req-1".into(),
            offer_id: offer.offer_id.clone(),
            user_count: 100,
            contact_email: "dsi@example.org".into(),
            accepted_terms_version: offer.terms_version.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("requesting a tenancy: {s:?}"))
        .into_inner()
        .subscription
        .unwrap_or_else(|| panic!("the subscription is missing from the answer"))
        .subscription_id
    }

    /// Issues a certificate for `identity` (a URI) valid for a day, with loopback names.
    pub fn issue(&self, identity: &str) -> Issued {
        self.issue_with(identity, Validity::days_from_now(1))
    }

    /// Issues a certificate for `identity` with the given validity.
    pub fn issue_with(&self, identity: &str, validity: Validity) -> Issued {
        let identity: Identity = identity
            .parse()
            .unwrap_or_else(|e| panic!("{identity}: {e}"));
        self.running
            .pki
            .issue(&identity, &["localhost".to_owned()], validity)
            .unwrap_or_else(|e| panic!("issuing {identity}: {e}"))
    }

    /// The identity URI of a principal of this federation, e.g. `member/unistra/agent/probe`.
    pub fn uri(&self, path: &str) -> String {
        format!("spiffe://{}/{path}", self.running.manifest.federation)
    }
}

/// An example offer of `examples/offers/` (`collaboration`, `video`, `otp`), as a provider's
/// admin would publish it.
pub fn example_offer(name: &str) -> fedmesh_proto::pb::Offer {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/offers/{name}.toml"));
    let text = String::from_utf8(read(&path)).unwrap_or_else(|e| panic!("{e}"));
    fedmesh::offer_file::parse_offer_file(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An incident as its node stores it: without what its SLA clocks compute at the time of
/// the read (elapsed, remaining, state), where two reads seconds apart of the same incident
/// differ.
pub fn without_live_clocks(
    mut incident: fedmesh_proto::pb::Incident,
) -> fedmesh_proto::pb::Incident {
    for clock in &mut incident.sla_clocks {
        clock.elapsed = None;
        clock.remaining = None;
        clock.state = 0;
    }
    incident
}

/// Reads a file the test needs, panicking with its path.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads every page of a list: `page(token)` returns one page's items and the next token
/// (empty after the last page), from an empty token on. Returns the items in order and the
/// number of pages; fails the test after 100 pages, or on an empty page before the last.
pub async fn all_pages<T, F, Fut>(mut page: F) -> (Vec<T>, usize)
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = (Vec<T>, String)>,
{
    let (mut all, mut pages, mut token) = (Vec::new(), 0, String::new());
    loop {
        let (items, next) = page(token).await;
        pages += 1;
        assert!(
            !items.is_empty() || next.is_empty(),
            "an empty page {pages} before the last"
        );
        all.extend(items);
        if next.is_empty() {
            return (all, pages);
        }
        assert!(pages < 100, "pages never end");
        token = next;
    }
}

/// Polls `probe` every 20 ms until it returns `Some`, for at most `timeout`; then fails the
/// test saying what did not happen.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs an external program and returns its stdout, failing the test with its stderr.
pub fn run_tool(program: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program}: {e}; install the test tools with scripts/test.sh (pip install -r tests/python/requirements.txt)")
        });
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// How a TLS client fared against a server: the error of its handshake or of its first read
/// (under TLS 1.3 the server's verdict on the client certificate arrives after the handshake).
pub async fn tls_outcome(port: u16, config: rustls::ClientConfig) -> Result<(), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    // The HTTP/2 preface, so that an accepting server answers with its SETTINGS.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buffer = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buffer)).await {
        Err(_) => Err("no answer".to_owned()),
        Ok(Ok(0)) => Err("closed".to_owned()),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("read: {e}")),
    }
}

/// A TLS client configuration trusting the federation CA and presenting `cert`/`key` (none
/// when `None`), restricted to the given protocol versions.
pub fn tls_client(
    ca_pem: &[u8],
    identity: Option<(&Path, &Path)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap_or_else(|e| panic!("{e}"))
    .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<_> = CertificateDer::pem_slice_iter(&read(cert))
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{e}"));
            let key = PrivateKeyDer::from_pem_slice(&read(key)).unwrap_or_else(|e| panic!("{e}"));
            builder
                .with_client_auth_cert(chain, key)
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

/// The certificate a TLS server on `port` presents to a new connection (DER), to a client
/// trusting `ca_pem` and speaking `alpn` (`h2` for gRPC, `http/1.1` for the dashboard).
#[allow(clippy::unwrap_used)]
pub async fn served_certificate(port: u16, ca_pem: &[u8], alpn: &[u8]) -> Vec<u8> {
    let mut config = tls_client(ca_pem, None, &[&rustls::version::TLS13]);
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// The port of an `https://host:port` endpoint.
pub fn port_of(endpoint: &str) -> u16 {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {endpoint}"))
}

/// Sends a `GET` of `path` on `stream` with `headers`; the status code, the response's head
/// (status line and headers) and the body.
async fn get_on<S>(
    mut stream: S,
    authority: &str,
    path: &str,
    headers: &str,
) -> (u16, String, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n{headers}Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{authority}{path}: {e}"));
    let mut response = Vec::new();
    // A TLS peer may close without close_notify once the response is sent.
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // The body of a chunked response, unchunked.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 || tail.len() < size {
                break;
            }
            out.push_str(&tail[..size]);
            rest = tail[size..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_owned()
    };
    (status, head.to_owned(), body)
}

fn split_url<'a>(url: &'a str, scheme: &str) -> (&'a str, &'a str) {
    let rest = url
        .strip_prefix(scheme)
        .unwrap_or_else(|| panic!("{url}: not {scheme}"));
    rest.split_at(rest.find('/').unwrap_or(rest.len()))
}

/// Copies the directory `from` (files and subdirectories) to `to` (test code: any failure
/// panics).
#[allow(clippy::unwrap_used)]
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A plain-HTTP `GET` of `url` (`http://host:port/path`): the status code and the body.
pub async fn http_get(url: &str) -> (u16, String) {
    let (authority, path) = split_url(url, "http://");
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let (status, _, body) = get_on(stream, authority, path, "").await;
    (status, body)
}

/// An HTTPS `GET` of `url` (test code: any failure panics) trusting the federation CA `ca_pem`, presenting `client` (a
/// certificate and key file) when given, with extra request `headers` (`Name: value\r\n`).
/// A server that ends the connection without answering (a refused client certificate) gives
/// status 0.
pub async fn https_get(
    url: &str,
    ca_pem: &[u8],
    client: Option<(&Path, &Path)>,
    headers: &str,
) -> (u16, String) {
    let (status, _, body) = https_get_with_head(url, ca_pem, client, headers).await;
    (status, body)
}

/// Like [`https_get`], with the response's head (status line and headers) too.
#[allow(clippy::unwrap_used)]
pub async fn https_get_with_head(
    url: &str,
    ca_pem: &[u8],
    client: Option<(&Path, &Path)>,
    headers: &str,
) -> (u16, String, String) {
    use rustls::pki_types::pem::PemObject as _;
    let (authority, path) = split_url(url, "https://");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                rustls::pki_types::CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
    };
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_owned();
    let tcp = tokio::net::TcpStream::connect(authority)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(rustls::pki_types::ServerName::try_from(host).unwrap(), tcp)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    get_on(tls, authority, path, headers).await
}

/// A small seeded pseudo-random generator (SplitMix64), so that fault schedules are
/// reproducible from a printed seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

/// The bytes of the files under `dir`, recursively (what a federation keeps on disk).
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
