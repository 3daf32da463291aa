//! A federation in one process: a PKI, a coordinator and N member nodes on loopback, each
//! started from a real configuration file written next to its data.
//!
//! Layout under the federation directory:
//!
//! ```text
//! pki/                      CA, CRL, every certificate and key
//! coordinator/coordinator.toml, coordinator/dashboard-token, coordinator/data/
//! <member>/node.toml,       <member>/data/
//! federation.json           who is where, and which files to use (see [`Manifest`])
//! ```
//!
//! What holds a secret is readable by its owner only: keys, the dashboard's token and the two
//! files that carry it (`coordinator.toml`, `federation.json`) are 0600, data directories 0700.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use fedmesh_coordinator::Coordinator;
use fedmesh_core::config::Layers;
use fedmesh_core::{FederationName, Identity, MemberId, Principal};
use fedmesh_node::Node;
use fedmesh_tls::pki::{Issued, Pki, Validity, file_stem};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Member ids given to demo members, from the seed's world; more members get `member-<n>`.
pub const DEMO_MEMBERS: &[&str] = &[
    "unistra", "rennes2", "rouen", "lorraine", "grenoble", "lille", "toulouse", "nantes",
];

/// The example offers the demo publishes, embedded in the binary: (provider member, file).
pub const EXAMPLE_OFFERS: &[(&str, &str)] = &[
    ("unistra", include_str!("../../../examples/offers/otp.toml")),
    (
        "rennes2",
        include_str!("../../../examples/offers/collaboration.toml"),
    ),
    ("rouen", include_str!("../../../examples/offers/video.toml")),
];

/// The admin name of each member's demo admin certificate.
pub const DEMO_ADMIN: &str = "ops";

/// What to start.
#[derive(Debug, Clone)]
pub struct FederationSpec {
    /// Where the PKI, configurations and databases live.
    pub dir: PathBuf,
    /// The federation's name.
    pub federation: String,
    /// How many member nodes.
    pub members: usize,
    /// The coordinator's port; member `i` gets `base_port + 1 + i`. 0: ephemeral ports.
    pub base_port: u16,
    /// Extra `key=value` settings for the coordinator (`registry.stale_after_ms=1000`).
    pub coordinator_settings: Vec<String>,
    /// Extra `key=value` settings for every node.
    pub node_settings: Vec<String>,
}

impl FederationSpec {
    /// A federation of `members` nodes in `dir` on ephemeral ports.
    pub fn new(dir: impl Into<PathBuf>, members: usize) -> Self {
        Self {
            dir: dir.into(),
            federation: "demo.fedmesh".to_owned(),
            members,
            base_port: 0,
            coordinator_settings: Vec::new(),
            node_settings: Vec::new(),
        }
    }
}

/// `federation.json`: where each party answers and which files act as it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The federation's name.
    pub federation: String,
    /// The federation CA certificate, trusted by everyone.
    pub ca: PathBuf,
    /// The federation CRL.
    pub crl: PathBuf,
    /// The coordinator.
    pub coordinator: PartyManifest,
    /// The member nodes.
    pub members: Vec<PartyManifest>,
}

/// One party of [`Manifest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartyManifest {
    /// The member id; `None` for the coordinator.
    pub member_id: Option<String>,
    /// Its gRPC endpoint.
    pub endpoint: String,
    /// The CA certificate to trust it with.
    pub ca: PathBuf,
    /// Its own (server and client) certificate.
    pub node_cert: PathBuf,
    /// Its own private key.
    pub node_key: PathBuf,
    /// An admin certificate to call it with: the member's admin; for the coordinator, the
    /// consortium operator `ops` (who reads every member's figures there).
    pub admin_cert: PathBuf,
    /// The admin's private key.
    pub admin_key: PathBuf,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its Prometheus endpoint, `http://127.0.0.1:<port>/metrics`.
    #[serde(default)]
    pub metrics: Option<String>,
    /// The coordinator's dashboard, with its access token: `https://localhost:<port>/?token=…`.
    #[serde(default)]
    pub dashboard: Option<String>,
}

/// Which server a party runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Coordinator,
    Node,
}

/// A running party and what it takes to start it again on the same address.
struct Running {
    kind: Kind,
    config: PathBuf,
    settings: Vec<String>,
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
    dashboard: Option<SocketAddr>,
    tls: fedmesh_tls::ReloadableServerConfig,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<()>>,
}

impl Running {
    /// Loads `config` with `settings`, binds and starts serving.
    async fn start(kind: Kind, config: PathBuf, settings: Vec<String>) -> Result<Self> {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let stop = async move {
            let _ = stop_rx.await;
        };
        let (addr, metrics, dashboard, tls, task) =
            match kind {
                Kind::Coordinator => {
                    let server = Coordinator::bind(load_config(&config, &settings)?).await?;
                    let (addr, metrics, dashboard, tls) = (
                        server.local_addr(),
                        server.metrics_addr(),
                        server.dashboard_addr(),
                        server.tls(),
                    );
                    let task = tokio::spawn(async move {
                        server.serve(stop).await.map_err(anyhow::Error::from)
                    });
                    (addr, metrics, dashboard, tls, task)
                }
                Kind::Node => {
                    let server = Node::bind(load_config(&config, &settings)?).await?;
                    let (addr, metrics, tls) =
                        (server.local_addr(), server.metrics_addr(), server.tls());
                    let task = tokio::spawn(async move {
                        server.serve(stop).await.map_err(anyhow::Error::from)
                    });
                    (addr, metrics, None, tls, task)
                }
            };
        Ok(Self {
            kind,
            config,
            settings,
            addr,
            metrics,
            dashboard,
            tls,
            stop: Some(stop_tx),
            task,
        })
    }

    /// Whether it is serving (not stopped by [`stop`]).
    fn is_running(&self) -> bool {
        self.stop.is_some()
    }

    /// Starts it again, on the address it had, with its data.
    async fn restart(&mut self) -> Result<()> {
        stop(self).await?;
        let mut settings = self.settings.clone();
        settings.push(format!("listen={}", self.addr));
        if let Some(metrics) = self.metrics {
            settings.push(format!("metrics.listen={metrics}"));
        }
        if let Some(dashboard) = self.dashboard {
            settings.push(format!("dashboard.listen={dashboard}"));
        }
        // The port was free while it was down: another socket on this machine may hold it for
        // a moment (an outgoing connection's ephemeral port, a test binding port 0). Wait for
        // it, for a while, as a process restarted by its supervisor would be retried.
        let deadline = tokio::time::Instant::now() + REBIND_WAIT;
        let again = loop {
            match Self::start(self.kind, self.config.clone(), settings.clone()).await {
                Err(e) if address_in_use(&e) && tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %format!("{e:#}"), "restart: address in use, retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other?,
            }
        };
        self.tls = again.tls;
        self.stop = again.stop;
        self.task = again.task;
        Ok(())
    }
}

/// How long [`Running::restart`] waits for its address to be free again.
const REBIND_WAIT: Duration = Duration::from_secs(15);

/// Whether `error` comes from an address that is already in use (the gRPC, metrics or
/// dashboard listener's).
fn address_in_use(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
    })
}

/// A started federation; dropping it stops every party.
pub struct RunningFederation {
    /// Who is where.
    pub manifest: Manifest,
    /// The PKI (for tests that issue or revoke more certificates).
    pub pki: Pki,
    coordinator: Running,
    members: Vec<Running>,
}

impl std::fmt::Debug for RunningFederation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningFederation")
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

fn member_ids(count: usize) -> Vec<MemberId> {
    (0..count)
        .map(|i| {
            DEMO_MEMBERS
                .get(i)
                .map_or_else(|| format!("member-{}", i + 1), |m| (*m).to_owned())
        })
        .filter_map(|m| m.parse().ok())
        .collect()
}

/// Issues a certificate unless one is already there (a demo restarted on the same directory
/// keeps its certificates, so printed commands stay valid).
/// Midnight UTC of the first day of the month before the one `now` is in.
fn previous_month_start(now: i64) -> i64 {
    use fedmesh_core::usage::Month;
    Month::of_day(now.div_euclid(86_400)).previous().first_day() * 86_400
}

/// Daily usage of each tenant from the start of the previous month to yesterday: a school-year
/// shape (fewer users at weekends), storage growing, requests following users.
fn demo_usage(
    tenants: &[fedmesh_proto::pb::Subscription],
    now: i64,
) -> Vec<fedmesh_proto::pb::UsageRecord> {
    use fedmesh_proto::pb;
    let mut records = Vec::new();
    let first = previous_month_start(now) / 86_400;
    let today = now.div_euclid(86_400);
    for (t, tenant) in tenants.iter().enumerate() {
        let base = 900.0 + 450.0 * t as f64;
        for day in first..today {
            let (y, m, d) = fedmesh_core::calendar::civil_from_days(day);
            let weekend = fedmesh_core::calendar::weekday(day) >= 5;
            let wobble = ((day * 7919 + t as i64 * 104_729) % 97) as f64 / 97.0;
            let users = (base * if weekend { 0.25 } else { 0.85 + 0.15 * wobble }).round();
            let values = [
                ("active_users", users),
                ("requests", (users * (38.0 + 10.0 * wobble)).round()),
                (
                    "storage_bytes",
                    (2.0e11 + 4.0e8 * (day - first) as f64) * (1.0 + t as f64),
                ),
                (
                    "documents",
                    (users * 3.0 + (day - first) as f64 * 11.0).round(),
                ),
            ];
            for (metric, value) in values {
                records.push(pb::UsageRecord {
                    record_id: format!("demo-{}-{y}-{m:02}-{d:02}-{metric}", tenant.tenant_id),
                    offer_id: tenant.offer_id.clone(),
                    subscription_id: tenant.subscription_id.clone(),
                    tenant_id: tenant.tenant_id.clone(),
                    metric: metric.to_owned(),
                    value,
                    period: Some(pb::Period {
                        start_time: Some(prost_types::Timestamp {
                            seconds: day * 86_400,
                            nanos: 0,
                        }),
                        end_time: Some(prost_types::Timestamp {
                            seconds: (day + 1) * 86_400,
                            nanos: 0,
                        }),
                    }),
                    ..Default::default()
                });
            }
        }
    }
    records
}

/// Two outages of the previous month: one across 18:00 Paris time on its 7th (15:30–18:00
/// UTC) and a planned maintenance on its 15th.
fn demo_outages(now: i64) -> Vec<fedmesh_proto::pb::AvailabilityRecord> {
    use fedmesh_proto::pb;
    let start = previous_month_start(now);
    let outage = |id: &str, from: i64, to: i64, planned: bool, what: &str| pb::AvailabilityRecord {
        record_id: format!("demo-{id}-{start}"),
        offer_id: "rennes2.collab".into(),
        observation: Some(pb::availability_record::Observation::Outage(pb::Outage {
            period: Some(pb::Period {
                start_time: Some(prost_types::Timestamp {
                    seconds: from,
                    nanos: 0,
                }),
                end_time: Some(prost_types::Timestamp {
                    seconds: to,
                    nanos: 0,
                }),
            }),
            description: what.to_owned(),
            incident_id: String::new(),
        })),
        planned_maintenance: planned,
        ..Default::default()
    };
    let day = |n: i64, hour: f64| start + (n - 1) * 86_400 + (hour * 3600.0) as i64;
    vec![
        outage(
            "storage",
            day(7, 15.5),
            day(7, 18.0),
            false,
            "storage controller failover",
        ),
        outage(
            "upgrade",
            day(15, 6.0),
            day(15, 7.0),
            true,
            "version upgrade",
        ),
    ]
}

fn ensure_cert(pki: &Pki, identity: &Identity) -> Result<Issued> {
    let stem = file_stem(identity);
    let cert_path = pki.dir().join(format!("{stem}.pem"));
    let key_path = pki.dir().join(format!("{stem}.key"));
    if cert_path.exists() && key_path.exists() {
        return Ok(Issued {
            identity: identity.clone(),
            cert_path,
            key_path,
        });
    }
    let dns = match identity.principal {
        Principal::Node { .. } | Principal::Coordinator => {
            vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ]
        }
        _ => Vec::new(),
    };
    pki.issue(identity, &dns, Validity::days_from_now(365))
        .with_context(|| format!("issuing a certificate for {identity}"))
}

/// Writes a file that holds a secret: 0600 from its first byte, replacing any older one.
fn secret(path: &Path, bytes: &[u8]) -> Result<()> {
    fedmesh_tls::owner_only::write(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

fn toml_string(path: &Path) -> String {
    toml_quote(&path.display().to_string())
}

fn toml_quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// How many members the demo makes tenants of rennes2's collaboration platform.
const DEMO_TENANTS: usize = 5;

impl RunningFederation {
    /// Creates (or reuses) the PKI, writes the configurations, starts the coordinator and the
    /// nodes, and writes `federation.json`. Returns once every party listens.
    pub async fn start(spec: FederationSpec) -> Result<Self> {
        let dir = absolute(&spec.dir)?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let federation: FederationName = spec.federation.parse()?;
        let pki_dir = dir.join("pki");
        let pki = if pki_dir.join("ca.pem").exists() {
            Pki::open(&pki_dir)?
        } else {
            Pki::init(&pki_dir, &federation, 3650)?
        };
        anyhow::ensure!(
            pki.federation() == &federation,
            "{} holds the PKI of federation {}, not {federation}",
            pki_dir.display(),
            pki.federation()
        );
        anyhow::ensure!(
            spec.base_port == 0
                || usize::from(spec.base_port) + 101 + spec.members <= usize::from(u16::MAX),
            "base port {} leaves no room for {} members below port {}",
            spec.base_port,
            spec.members,
            u16::MAX
        );
        let members = member_ids(spec.members);
        let admins: Vec<Issued> = members
            .iter()
            .map(|m| {
                ensure_cert(
                    &pki,
                    &Identity {
                        federation: federation.clone(),
                        principal: Principal::Admin {
                            member: m.clone(),
                            name: DEMO_ADMIN.to_owned(),
                        },
                    },
                )
            })
            .collect::<Result<_>>()?;

        // The coordinator first: nodes need its port.
        let coordinator_cert = ensure_cert(&pki, &Identity::coordinator(federation.clone()))?;
        let operator = ensure_cert(
            &pki,
            &Identity {
                federation: federation.clone(),
                principal: Principal::Operator {
                    name: DEMO_ADMIN.to_owned(),
                },
            },
        )?;
        let coordinator_dir = dir.join("coordinator");
        std::fs::create_dir_all(&coordinator_dir)?;
        let coordinator_config_path = coordinator_dir.join("coordinator.toml");
        // The dashboard's token is kept across restarts of the demo (printed links stay valid).
        // It is written again every time, so that a file from an older demo ends up 0600 too.
        let token_path = coordinator_dir.join("dashboard-token");
        let dashboard_token = match std::fs::read_to_string(&token_path) {
            // One the dashboard would refuse (an older demo's, too short) is replaced.
            Ok(token) if fedmesh_coordinator::dashboard::acceptable_token(token.trim()) => {
                token.trim().to_owned()
            }
            _ => crate::admin::new_request_id()?,
        };
        secret(&token_path, dashboard_token.as_bytes())?;
        let port = |offset: u16| {
            if spec.base_port == 0 {
                0
            } else {
                spec.base_port + offset
            }
        };
        // It holds the dashboard's token.
        secret(
            &coordinator_config_path,
            format!(
                "federation = {}\nlisten = \"127.0.0.1:{}\"\ndata_dir = {}\n\n[tls]\nca = {}\ncert = {}\nkey = {}\ncrl = {}\n\n[metrics]\nlisten = \"127.0.0.1:{}\"\n\n[dashboard]\nlisten = \"127.0.0.1:{}\"\ntoken = {}\n",
                toml_quote(federation.as_str()),
                port(0),
                toml_string(&coordinator_dir.join("data")),
                toml_string(&pki.ca_path()),
                toml_string(&coordinator_cert.cert_path),
                toml_string(&coordinator_cert.key_path),
                toml_string(&pki.crl_path()),
                port(100),
                port(90),
                toml_quote(&dashboard_token),
            )
            .as_bytes(),
        )?;
        let coordinator_running = Running::start(
            Kind::Coordinator,
            coordinator_config_path.clone(),
            spec.coordinator_settings.clone(),
        )
        .await?;
        let coordinator_endpoint = format!("https://localhost:{}", coordinator_running.addr.port());

        let mut running = Vec::new();
        let mut parties = Vec::new();
        for (i, (member, admin)) in members.iter().zip(&admins).enumerate() {
            let node_cert = ensure_cert(&pki, &Identity::node(federation.clone(), member.clone()))?;
            let member_dir = dir.join(member.as_str());
            std::fs::create_dir_all(&member_dir)?;
            let config_path = member_dir.join("node.toml");
            std::fs::write(
                &config_path,
                format!(
                    "member_id = {}\nfederation = {}\nlisten = \"127.0.0.1:{}\"\ndata_dir = {}\n\n[tls]\nca = {}\ncert = {}\nkey = {}\ncrl = {}\n\n[coordinator]\nendpoint = {}\n\n[metrics]\nlisten = \"127.0.0.1:{}\"\n\n# The example files (examples/usage/) report September 2026: the demo keeps months\n# open for a year. The default, 5 days, closes them as a production node would.\n[usage]\nclose_after_days = 366\n",
                    toml_quote(member.as_str()),
                    toml_quote(federation.as_str()),
                    port(1 + i as u16),
                    toml_string(&member_dir.join("data")),
                    toml_string(&pki.ca_path()),
                    toml_string(&node_cert.cert_path),
                    toml_string(&node_cert.key_path),
                    toml_string(&pki.crl_path()),
                    toml_quote(&coordinator_endpoint),
                    port(101 + i as u16),
                ),
            )?;
            let node =
                Running::start(Kind::Node, config_path.clone(), spec.node_settings.clone()).await?;
            let addr = node.addr;
            let metrics = node.metrics.map(|m| format!("http://{m}/metrics"));
            running.push(node);
            parties.push(PartyManifest {
                member_id: Some(member.to_string()),
                endpoint: format!("https://localhost:{}", addr.port()),
                ca: pki.ca_path(),
                node_cert: node_cert.cert_path,
                node_key: node_cert.key_path,
                admin_cert: admin.cert_path.clone(),
                admin_key: admin.key_path.clone(),
                config: config_path,
                metrics,
                dashboard: None,
            });
        }
        let manifest = Manifest {
            federation: federation.to_string(),
            ca: pki.ca_path(),
            crl: pki.crl_path(),
            coordinator: PartyManifest {
                member_id: None,
                endpoint: coordinator_endpoint,
                ca: pki.ca_path(),
                node_cert: coordinator_cert.cert_path.clone(),
                node_key: coordinator_cert.key_path.clone(),
                admin_cert: operator.cert_path,
                admin_key: operator.key_path,
                config: coordinator_config_path,
                metrics: coordinator_running
                    .metrics
                    .map(|m| format!("http://{m}/metrics")),
                dashboard: coordinator_running
                    .dashboard
                    .map(|d| format!("https://localhost:{}/?token={dashboard_token}", d.port())),
            },
            members: parties,
        };
        // Written whole then renamed (whoever polls for the file never reads half of it), 0600:
        // the dashboard's link in it carries the token.
        secret(
            &dir.join("federation.json"),
            serde_json::to_string_pretty(&manifest)?.as_bytes(),
        )?;
        Ok(Self {
            manifest,
            pki,
            coordinator: coordinator_running,
            members: running,
        })
    }

    /// Publishes each example offer on its provider's node, as that member's admin, through
    /// the real API. Offers already there (a demo restarted on its directory) are left alone.
    /// Returns the ids published now.
    pub async fn seed_example_offers(&self) -> Result<Vec<String>> {
        use fedmesh_proto::pb;
        let mut published = Vec::new();
        for (provider, text) in EXAMPLE_OFFERS {
            let Some(party) = self
                .manifest
                .members
                .iter()
                .find(|m| m.member_id.as_deref() == Some(*provider))
            else {
                continue;
            };
            let files = fedmesh_tls::TlsFiles {
                ca: party.ca.clone(),
                cert: party.admin_cert.clone(),
                key: party.admin_key.clone(),
                crl: None,
            };
            let channel = fedmesh_grpc::connect(
                &party.endpoint,
                &files,
                fedmesh_grpc::ClientOptions::default(),
            )?;
            let offer = crate::offer_file::parse_offer_file(text)?;
            let request = pb::PublishOfferRequest {
                offer: Some(offer),
                etag: String::new(),
            };
            match pb::offer_service_client::OfferServiceClient::new(channel)
                .publish_offer(request)
                .await
            {
                Ok(response) => published.extend(response.into_inner().offer.map(|o| o.offer_id)),
                Err(status) if status.code() == tonic::Code::Aborted => {}
                Err(status) => anyhow::bail!("publishing an example offer on {provider}: {status}"),
            }
        }
        Ok(published)
    }

    /// Gives the demo something to measure: the first other members (up to five) become tenants
    /// of rennes2's collaboration offer (through their own nodes), and rennes2's metering agent (`meter`)
    /// reports daily usage since the start of the previous month and two outages. Record ids
    /// are derived from the dates, so a demo restarted on its directory only adds new days.
    /// Returns the number of records stored now.
    pub async fn seed_example_usage(&self) -> Result<usize> {
        use fedmesh_proto::pb;
        const OFFER: &str = "rennes2.collab";
        let Some(provider) = self
            .manifest
            .members
            .iter()
            .find(|m| m.member_id.as_deref() == Some("rennes2"))
        else {
            return Ok(0);
        };
        let connect = |endpoint: &str, cert: &Path, key: &Path| {
            let files = fedmesh_tls::TlsFiles {
                ca: self.manifest.ca.clone(),
                cert: cert.to_owned(),
                key: key.to_owned(),
                crl: None,
            };
            fedmesh_grpc::connect(endpoint, &files, fedmesh_grpc::ClientOptions::default())
        };
        let terms = crate::offer_file::parse_offer_file(EXAMPLE_OFFERS[1].1)?.terms_version;
        let mut tenants = Vec::new();
        // The first members become tenants, within the offer's capacity whatever the size of
        // the demo federation.
        let subscribers = self
            .manifest
            .members
            .iter()
            .filter(|m| m.member_id.as_deref() != Some("rennes2"))
            .take(DEMO_TENANTS);
        for member in subscribers {
            let Some(id) = member.member_id.as_deref() else {
                continue;
            };
            let channel = connect(&member.endpoint, &member.admin_cert, &member.admin_key)?;
            let mut own_node =
                pb::subscription_service_client::SubscriptionServiceClient::new(channel);
            let request = pb::RequestSubscriptionRequest {
                request_id: format!("demo-{id}-collab"),
                offer_id: OFFER.into(),
                user_count: 2000,
                contact_email: format!("dsi@{id}.example"),
                accepted_terms_version: terms.clone(),
                ..Default::default()
            };
            // The provider's node may not be in the registry yet: the request is then queued,
            // and asked again until the tenancy is there.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let answer = own_node
                    .request_subscription(request.clone())
                    .await?
                    .into_inner();
                if let Some(s) = answer.subscription.filter(|_| !answer.queued) {
                    tenants.push(s);
                    break;
                }
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "{id}'s tenancy on {OFFER} was not delivered"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
        let agent = ensure_cert(
            &self.pki,
            &Identity {
                federation: self.pki.federation().clone(),
                principal: Principal::Agent {
                    member: "rennes2".parse()?,
                    name: "meter".to_owned(),
                },
            },
        )?;
        let mut client = pb::usage_service_client::UsageServiceClient::new(connect(
            &provider.endpoint,
            &agent.cert_path,
            &agent.key_path,
        )?);
        let records = demo_usage(&tenants, fedmesh_grpc::figures::now());
        let mut stored = 0;
        for batch in records.chunks(fedmesh_core::usage::MAX_BATCH) {
            let answer = client
                .report_usage(pb::ReportUsageRequest {
                    records: batch.to_vec(),
                })
                .await?
                .into_inner();
            anyhow::ensure!(
                answer.rejections.is_empty(),
                "demo usage refused: {:?}",
                answer.rejections
            );
            stored += answer.accepted_count as usize;
        }
        let answer = client
            .report_availability(pb::ReportAvailabilityRequest {
                records: demo_outages(fedmesh_grpc::figures::now()),
            })
            .await?
            .into_inner();
        Ok(stored + answer.accepted_count as usize)
    }

    /// Two example incidents from unistra's desk on rennes2's collaboration platform (once
    /// unistra is its tenant): a P2 that rennes2 acknowledged, and a P3 still new. Fixed
    /// request ids keep a restarted demo from opening them again. Returns the incident ids.
    pub async fn seed_example_incidents(&self) -> Result<Vec<String>> {
        use fedmesh_proto::pb;
        let find = |id: &str| {
            self.manifest
                .members
                .iter()
                .find(|m| m.member_id.as_deref() == Some(id))
        };
        let (Some(desk), Some(provider)) = (find("unistra"), find("rennes2")) else {
            return Ok(Vec::new());
        };
        let connect = |party: &PartyManifest| {
            let files = fedmesh_tls::TlsFiles {
                ca: self.manifest.ca.clone(),
                cert: party.admin_cert.clone(),
                key: party.admin_key.clone(),
                crl: None,
            };
            fedmesh_grpc::connect(
                &party.endpoint,
                &files,
                fedmesh_grpc::ClientOptions::default(),
            )
        };
        let mut desk = pb::incident_service_client::IncidentServiceClient::new(connect(desk)?);
        let mut provider =
            pb::incident_service_client::IncidentServiceClient::new(connect(provider)?);
        let mut ids = Vec::new();
        for (request_id, priority, summary) in [
            (
                "demo-incident-login",
                pb::Priority::P2,
                "Users of unistra cannot log in since 9:00",
            ),
            (
                "demo-incident-export",
                pb::Priority::P3,
                "Exporting a shared folder as ZIP fails above 2 GB",
            ),
        ] {
            let opened = desk
                .open_incident(pb::OpenIncidentRequest {
                    request_id: request_id.into(),
                    offer_id: "rennes2.collab".into(),
                    priority: priority as i32,
                    summary: summary.into(),
                    description: "Reported by the level-1 desk of unistra (demo).".into(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            if let Some(incident) = opened.incident.filter(|_| !opened.queued) {
                ids.push(incident.incident_id);
            }
        }
        if let Some(first) = ids.first() {
            let acknowledged = provider
                .acknowledge_incident(pb::AcknowledgeIncidentRequest {
                    request_id: "demo-ack-login".into(),
                    incident_id: first.clone(),
                    comment: "Looking into it: the identity provider rejects assertions.".into(),
                })
                .await;
            match acknowledged {
                Ok(_) => {}
                // Acknowledged by an earlier run of the demo.
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {}
                Err(status) => anyhow::bail!("acknowledging the example incident: {status}"),
            }
        }
        Ok(ids)
    }

    /// Stops member `index` (graceful: drains, flushes) and waits until it has stopped.
    pub async fn stop_member(&mut self, index: usize) -> Result<()> {
        let member = self
            .members
            .get_mut(index)
            .with_context(|| format!("no member #{index}"))?;
        stop(member).await
    }

    /// Starts member `index` again after [`Self::stop_member`] (or restarts it), on the same
    /// address and data.
    pub async fn restart_member(&mut self, index: usize) -> Result<()> {
        self.members
            .get_mut(index)
            .with_context(|| format!("no member #{index}"))?
            .restart()
            .await
    }

    /// Restarts member `index` with extra `key=value` settings, kept for later restarts
    /// (tests route a node through a proxy with `advertise=` and `coordinator.endpoint=`).
    pub async fn restart_member_with(&mut self, index: usize, settings: &[String]) -> Result<()> {
        let member = self
            .members
            .get_mut(index)
            .with_context(|| format!("no member #{index}"))?;
        member.settings.extend(settings.iter().cloned());
        member.restart().await
    }

    /// The address member `index` listens on.
    pub fn member_addr(&self, index: usize) -> Option<SocketAddr> {
        self.members.get(index).map(|m| m.addr)
    }

    /// The address the coordinator listens on.
    pub fn coordinator_addr(&self) -> SocketAddr {
        self.coordinator.addr
    }

    /// Stops the coordinator (graceful: drains, flushes).
    pub async fn stop_coordinator(&mut self) -> Result<()> {
        stop(&mut self.coordinator).await
    }

    /// Starts the coordinator again after [`Self::stop_coordinator`] (or restarts it), on the
    /// same address and data.
    pub async fn restart_coordinator(&mut self) -> Result<()> {
        self.coordinator.restart().await
    }

    /// Re-reads every running party's TLS files (certificates, keys, CRL) for new connections.
    pub fn reload_tls(&self) -> Result<()> {
        for party in self
            .members
            .iter()
            .chain([&self.coordinator])
            .filter(|p| p.is_running())
        {
            party.tls.reload()?;
        }
        Ok(())
    }

    /// Stops every party, members first, and reports the first error any of them had.
    pub async fn shutdown(mut self) -> Result<()> {
        let mut first_error = None;
        for member in &mut self.members {
            if let Err(e) = stop(member).await {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = stop(&mut self.coordinator).await {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for RunningFederation {
    fn drop(&mut self) {
        for party in self.members.iter_mut().chain([&mut self.coordinator]) {
            if let Some(stop) = party.stop.take() {
                let _ = stop.send(());
            }
        }
    }
}

async fn stop(party: &mut Running) -> Result<()> {
    if let Some(stop) = party.stop.take() {
        let _ = stop.send(());
        return (&mut party.task).await.context("party task panicked")?;
    }
    Ok(())
}

/// Loads a configuration file with extra `--set` style settings, the environment left out
/// (an in-process federation must not pick up the shell's `FEDMESH_*` variables). Benchmarks
/// use it to run one party of a federation in a process of its own.
pub fn load_config<T: serde::de::DeserializeOwned>(path: &Path, settings: &[String]) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Layers::new()
        .file(path.display().to_string(), text)
        .set_args(settings)?
        .load()?)
}
