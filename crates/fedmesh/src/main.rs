//! `fedmesh`: run a member node or the coordinator, manage the federation PKI, start a demo
//! federation, and administer a node.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use fedmesh::cli::{ConnectArgs, Connection, call};
use fedmesh::federation::{DEMO_ADMIN, FederationSpec, Manifest, RunningFederation};
use fedmesh::inert::{Lines, inert};
use fedmesh::say;
use fedmesh_core::config::{LogConfig, TelemetryConfig};
use fedmesh_core::{FederationName, Identity, MemberId, Principal};
use fedmesh_proto::pb;
use fedmesh_tls::pki::{Pki, Validity};

#[derive(Debug, Parser)]
#[command(
    name = "fedmesh",
    version,
    about = "A federated gRPC service mesh between member institutions"
)]
struct Cli {
    /// How the admin commands reach a node: options valid in any position.
    #[command(flatten)]
    connect: ConnectArgs,
    /// The time zone instants are shown in (an IANA name such as `Europe/Paris`, or `UTC`)
    /// [default: the system's]. `--json` stays RFC 3339 UTC.
    #[arg(long, env = "FEDMESH_TZ", global = true)]
    tz: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a member node.
    Node(ServeArgs),
    /// Run the federation's coordinator.
    Coordinator(ServeArgs),
    /// Manage the federation PKI.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Check that the node or coordinator of a configuration serves: calls its gRPC health
    /// service over loopback with its own certificate (the probe of the container image and
    /// the Kubernetes manifests). Exits 0 when SERVING, 1 otherwise (NOT_SERVING while its
    /// database refuses writes).
    Health(HealthArgs),
    /// Back up a running node's or coordinator's database, restore or inspect a backup.
    #[command(subcommand)]
    Admin(fedmesh::operations::AdminCommand),
    /// Start a demo federation (coordinator + members) on loopback, until Ctrl-C.
    Demo(DemoArgs),
    /// Publish, list, show and withdraw your member's offers (on your node).
    Offer {
        #[command(subcommand)]
        command: fedmesh::admin::OfferCommand,
    },
    /// Request and manage tenancies (on your node).
    Subscription {
        /// Print JSON (every subcommand).
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: fedmesh::admin::SubscriptionCommand,
    },
    /// Search and watch the federation catalogue (as your node sees it).
    Catalogue {
        #[command(subcommand)]
        command: fedmesh::admin::CatalogueCommand,
    },
    /// Open, follow and work incidents (on your node).
    Incident {
        /// Print JSON (every subcommand).
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: fedmesh::incidents_cli::IncidentCommand,
    },
    /// Announce and list maintenance windows (on your node).
    Maintenance {
        /// Print JSON (every subcommand).
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: fedmesh::incidents_cli::MaintenanceCommand,
    },
    /// Report usage (agents) and read usage, availability and capacity of an offer.
    Usage {
        #[command(subcommand)]
        command: fedmesh::reports::UsageCommand,
    },
    /// Report availability: probe results and outages (agents).
    Availability {
        #[command(subcommand)]
        command: fedmesh::reports::AvailabilityCommand,
    },
    /// Cost statements over a period (on your node): a member's tenancies, or your offer's
    /// tenants (what to invoice each), with a grand total.
    Statement {
        #[command(flatten)]
        scope: fedmesh::reports::StatementScope,
        /// The period: a month (2026-11), a year (2026) or a range (2026-01-01..2026-06-30).
        #[arg(long)]
        period: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: fedmesh::reports::StatementFormat,
    },
    /// Monthly reports of closed months (on your node: a provider's offers, a subscriber's
    /// tenancies).
    Report {
        /// Print JSON (every subcommand).
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: fedmesh::report_cli::ReportCommand,
    },
    /// Federation metrics and SLA compliance (on the coordinator).
    Metrics {
        #[command(subcommand)]
        command: fedmesh::reports::MetricsCommand,
    },
    /// Your node at a glance: serving, coordinator link, certificate expiry, outbox,
    /// tenancies, open incidents (exits 1 when something needs attention).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The registry of member nodes: endpoint, liveness, last heartbeat, version (on the
    /// coordinator).
    Nodes {
        #[command(subcommand)]
        command: fedmesh::nodes_cli::NodesCommand,
    },
    /// Offboard members (on the coordinator, with its certificate).
    Member {
        #[command(subcommand)]
        command: fedmesh::admin::MemberCommand,
    },
    /// Print the identity and role a node sees for your certificate.
    Whoami {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The TOML configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Override a configuration key, e.g. `--set limits.request_timeout_ms=5000` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct HealthArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// Only check that the process answers, whatever it answers (SERVING or NOT_SERVING):
    /// the liveness probe, which must not restart a process whose disk is full.
    #[arg(long)]
    live: bool,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Create the federation CA and an empty CRL in a directory.
    Init {
        /// The federation's name (trust domain), e.g. `esup.example`.
        #[arg(long)]
        federation: String,
        /// The PKI directory.
        #[arg(long)]
        dir: PathBuf,
        /// Validity of the CA, in days.
        #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(i64).range(1..=36500))]
        days: i64,
    },
    /// Issue a certificate (and key) for a member's node, admin or agent, the coordinator, or a
    /// consortium operator.
    Issue {
        /// The PKI directory.
        #[arg(long)]
        dir: PathBuf,
        /// The member the certificate is for.
        #[arg(
            long,
            required_unless_present_any = ["coordinator", "operator"],
            conflicts_with_all = ["coordinator", "operator"]
        )]
        member: Option<String>,
        /// The role: node, admin or agent.
        #[arg(long, requires = "member", value_parser = ["node", "admin", "agent"])]
        role: Option<String>,
        /// The admin's or agent's name.
        #[arg(long)]
        name: Option<String>,
        /// Issue the coordinator's certificate.
        #[arg(long, conflicts_with = "operator")]
        coordinator: bool,
        /// Issue a consortium operator's certificate, for this person's name (a label): it
        /// reads every member's figures on the coordinator and its dashboard.
        #[arg(long, value_name = "NAME")]
        operator: Option<String>,
        /// A DNS name or IP address the server answers on (repeatable).
        #[arg(long)]
        dns: Vec<String>,
        /// Validity, in days.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(i64).range(1..=3650))]
        days: i64,
        /// Replace an existing certificate and key of the same identity (rotation).
        #[arg(long)]
        force: bool,
    },
    /// Re-issue the CRL with the same entries and a new validity (it is valid 30 days).
    RenewCrl {
        /// The PKI directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Revoke a certificate: add it to the federation CRL.
    Revoke {
        /// The PKI directory.
        #[arg(long)]
        dir: PathBuf,
        /// The certificate files to revoke (a member's node, admins and agents at once).
        #[arg(required = true, value_name = "CERT")]
        certs: Vec<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Where the demo's PKI, configurations and data live (reused when it exists).
    #[arg(long, default_value = "demo-federation")]
    dir: PathBuf,
    /// How many member nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=50))]
    members: u16,
    /// The coordinator's port; members use the next ones. 0 picks free ports.
    #[arg(long, default_value_t = 7400)]
    base_port: u16,
}

/// The command line, every enumerated value accepted in any case (`--priority p1` as `P1`,
/// which is how every output writes it).
fn command_line() -> clap::Command {
    fn any_case(command: clap::Command) -> clap::Command {
        command
            .mut_args(|arg| {
                if arg.get_action().takes_values() {
                    arg.ignore_case(true)
                } else {
                    arg
                }
            })
            .mut_subcommands(any_case)
    }
    any_case(Cli::command())
}

fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&command_line().get_matches()) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The chain may quote a server's message: shown, not obeyed.
            eprintln!("error: {}", inert(&format!("{error:#}"), Lines::Many));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    fedmesh::times::set_zone(cli.tz.as_deref())?;
    let connect = || cli.connect.resolve();
    match cli.command {
        Command::Node(args) => run_node(args).await,
        Command::Coordinator(args) => run_coordinator(args).await,
        Command::Certs(command) => certs(command),
        Command::Demo(args) => demo(args).await,
        Command::Health(args) => health(&args).await,
        Command::Admin(command) => fedmesh::operations::admin(command, &cli.connect).await,
        Command::Whoami { json } => whoami(&connect()?, json).await,
        Command::Offer { command } => fedmesh::admin::offer(&connect()?, command).await,
        Command::Catalogue { command } => fedmesh::admin::catalogue(&connect()?, command).await,
        Command::Subscription { json, command } => {
            fedmesh::admin::subscription(&connect()?, command, json).await
        }
        Command::Incident { json, command } => {
            fedmesh::incidents_cli::incident(&connect()?, command, json).await
        }
        Command::Maintenance { json, command } => {
            fedmesh::incidents_cli::maintenance(&connect()?, command, json).await
        }
        Command::Status { json } => fedmesh::status::status(&connect()?, json).await,
        Command::Nodes { command } => fedmesh::nodes_cli::nodes(&connect()?, command).await,
        Command::Member { command } => fedmesh::admin::member(&connect()?, command).await,
        Command::Usage { command } => fedmesh::reports::usage(&connect()?, command).await,
        Command::Availability { command } => {
            fedmesh::reports::availability(&connect()?, command).await
        }
        Command::Statement {
            scope,
            period,
            format,
        } => fedmesh::reports::statement(&connect()?, &scope, &period, format).await,
        Command::Metrics { command } => fedmesh::reports::metrics(&connect()?, command).await,
        Command::Report { json, command } => {
            fedmesh::report_cli::report(&connect()?, command, json).await
        }
    }
}

/// `RUST_LOG`, read once here so that libraries never read the environment.
fn rust_log() -> Option<String> {
    std::env::var("RUST_LOG").ok()
}

fn load<T: serde::de::DeserializeOwned>(args: &ServeArgs, prefix: &str) -> Result<T> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading config file {}", args.config.display()))?;
    // Variables that are not UTF-8 cannot be configuration; skip them rather than panic.
    let env = std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)));
    Ok(fedmesh_core::config::Layers::new()
        .file(args.config.display().to_string(), text)
        .env(prefix, env)
        .set_args(&args.set)?
        .load()?)
}

/// `fedmesh health`: the configuration is a node's or the coordinator's, whichever loads.
async fn health(args: &HealthArgs) -> Result<()> {
    let live = args.live;
    let args = &args.serve;
    let target = match load::<fedmesh_node::NodeConfig>(args, fedmesh_node::config::ENV_PREFIX) {
        Ok(node) => fedmesh::health::Target::node(&node),
        Err(as_node) => match load::<fedmesh_coordinator::CoordinatorConfig>(
            args,
            fedmesh_coordinator::config::ENV_PREFIX,
        ) {
            Ok(coordinator) => fedmesh::health::Target::coordinator(&coordinator),
            Err(as_coordinator) => anyhow::bail!(
                "{} is neither a node's configuration ({as_node:#}) nor the coordinator's ({as_coordinator:#})",
                args.config.display()
            ),
        },
    };
    let status = fedmesh::health::check(&target, live).await?;
    say!("{status} ({} at {})", target.role, target.address);
    Ok(())
}

/// The process signals a server reacts to, registered before it binds so that a SIGTERM
/// arriving during start-up is handled, not fatal.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("registering SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("registering SIGTERM")?,
            hangup: signal(SignalKind::hangup()).context("registering SIGHUP")?,
        })
    }

    /// Completes on SIGINT or SIGTERM; SIGHUP reloads TLS files without stopping.
    async fn shutdown(mut self, tls: fedmesh_tls::ReloadableServerConfig) {
        loop {
            tokio::select! {
                _ = self.interrupt.recv() => return,
                _ = self.terminate.recv() => return,
                _ = self.hangup.recv() => match tls.reload() {
                    Ok(()) => tracing::info!("tls certificate, key and crl reloaded"),
                    Err(error) => tracing::error!(%error, "tls reload failed, keeping the previous configuration"),
                },
            }
        }
    }
}

async fn run_node(args: ServeArgs) -> Result<()> {
    let config: fedmesh_node::NodeConfig = load(&args, fedmesh_node::config::ENV_PREFIX)?;
    let telemetry = fedmesh::telemetry::init(
        &config.log,
        &config.telemetry,
        "fedmesh-node",
        Some(&config.member_id),
        rust_log().as_deref(),
    )?;
    let signals = Signals::register()?;
    let node = fedmesh_node::Node::bind(config).await?;
    let signal = signals.shutdown(node.tls());
    let result = node.serve(signal).await;
    telemetry.shutdown();
    Ok(result?)
}

async fn run_coordinator(args: ServeArgs) -> Result<()> {
    let config: fedmesh_coordinator::CoordinatorConfig =
        load(&args, fedmesh_coordinator::config::ENV_PREFIX)?;
    let telemetry = fedmesh::telemetry::init(
        &config.log,
        &config.telemetry,
        "fedmesh-coordinator",
        None,
        rust_log().as_deref(),
    )?;
    let signals = Signals::register()?;
    let coordinator = fedmesh_coordinator::Coordinator::bind(config).await?;
    let signal = signals.shutdown(coordinator.tls());
    let result = coordinator.serve(signal).await;
    telemetry.shutdown();
    Ok(result?)
}

fn certs(command: CertsCommand) -> Result<()> {
    match command {
        CertsCommand::Init {
            federation,
            dir,
            days,
        } => {
            let federation: FederationName = federation.parse()?;
            let pki = Pki::init(&dir, &federation, days)?;
            say!(
                "created the CA of federation {federation}: {}",
                pki.ca_path().display()
            );
            say!("empty CRL: {}", pki.crl_path().display());
        }
        CertsCommand::Issue {
            dir,
            member,
            role,
            name,
            coordinator,
            operator,
            dns,
            days,
            force,
        } => {
            let pki = Pki::open(&dir)?;
            let federation = pki.federation().clone();
            let identity = if coordinator {
                Identity::coordinator(federation)
            } else if let Some(name) = operator {
                // Through the parser so that the name follows the identity rules.
                format!("spiffe://{federation}/operator/{name}").parse::<Identity>()?
            } else {
                let member: MemberId = member.context("--member is required")?.parse()?;
                let principal = match (role.as_deref(), name) {
                    (Some("node"), None) => Principal::Node { member },
                    (Some("node"), Some(_)) => {
                        anyhow::bail!("--name is only for admins and agents")
                    }
                    (Some("admin"), Some(name)) => Principal::Admin { member, name },
                    (Some("agent"), Some(name)) => Principal::Agent { member, name },
                    (Some(_), None) => anyhow::bail!("--name is required for admins and agents"),
                    _ => anyhow::bail!("--role must be node, admin or agent"),
                };
                let identity = Identity {
                    federation,
                    principal,
                };
                // Round-trip through the parser so that names follow the identity rules.
                identity.to_uri().parse::<Identity>()?
            };
            let existing = dir.join(format!("{}.pem", fedmesh_tls::pki::file_stem(&identity)));
            anyhow::ensure!(
                force || !existing.exists(),
                "{} already exists; pass --force to replace it (certificate rotation)",
                existing.display()
            );
            let issued = pki.issue(&identity, &dns, Validity::days_from_now(days))?;
            say!("issued {identity}");
            say!("certificate: {}", issued.cert_path.display());
            say!("private key: {} (mode 0600)", issued.key_path.display());
        }
        CertsCommand::RenewCrl { dir } => {
            let pki = Pki::open(&dir)?;
            pki.renew_crl()?;
            say!("CRL re-issued, valid 30 days: {}", pki.crl_path().display());
        }
        CertsCommand::Revoke { dir, certs } => {
            let pki = Pki::open(&dir)?;
            for cert in &certs {
                let pem = std::fs::read_to_string(cert)
                    .with_context(|| format!("reading {}", cert.display()))?;
                let identity = pki.revoke(&pem)?;
                say!(
                    "revoked {identity}; CRL re-issued: {}",
                    pki.crl_path().display()
                );
            }
            say!("servers enforce it on new connections once they reload it (SIGHUP)");
        }
    }
    Ok(())
}

async fn whoami(connect: &Connection, json: bool) -> Result<()> {
    let mut client = pb::node_service_client::NodeServiceClient::new(connect.channel()?);
    let me = call(&connect.endpoint, client.who_am_i(pb::WhoAmIRequest {})).await?;
    let role = pb::Role::try_from(me.role)
        .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase())
        .unwrap_or_else(|_| "unknown".to_owned());
    if json {
        say!(
            "{}",
            serde_json::json!({
                "identity": me.identity,
                "federation": me.federation,
                "role": role,
                "member_id": me.member_id,
                "name": me.name,
                "server_member_id": me.server_member_id,
            })
        );
    } else {
        say!("identity:   {}", me.identity);
        say!("federation: {}", me.federation);
        say!("role:       {role}");
        if !me.member_id.is_empty() {
            say!("member:     {}", me.member_id);
        }
        if !me.name.is_empty() {
            say!("name:       {}", me.name);
        }
        let server = if me.server_member_id.is_empty() {
            "the coordinator".to_owned()
        } else {
            format!("{}'s node", me.server_member_id)
        };
        say!("answered by {server} at {}", connect.endpoint);
    }
    Ok(())
}

async fn demo(args: DemoArgs) -> Result<()> {
    let telemetry = fedmesh::telemetry::init(
        &LogConfig {
            filter: "warn,fedmesh_node=info,fedmesh_coordinator=info".to_owned(),
            ..LogConfig::default()
        },
        &TelemetryConfig::default(),
        "fedmesh-demo",
        None,
        rust_log().as_deref(),
    )?;
    let mut signals = Signals::register()?;
    let mut spec = FederationSpec::new(&args.dir, usize::from(args.members));
    spec.base_port = args.base_port;
    let federation = RunningFederation::start(spec).await?;
    let seeded = federation.seed_example_offers().await?;
    let records = federation.seed_example_usage().await?;
    let incidents = federation.seed_example_incidents().await?;
    print_demo(
        &federation.manifest,
        &args.dir.join("federation.json"),
        &seeded,
        records,
        &incidents,
    );
    tokio::select! {
        _ = signals.interrupt.recv() => {}
        _ = signals.terminate.recv() => {}
    }
    say!("\nstopping the demo federation");
    federation.shutdown().await?;
    telemetry.shutdown();
    Ok(())
}

fn host_port(endpoint: &str) -> &str {
    endpoint.trim_start_matches("https://")
}

fn print_demo(
    manifest: &Manifest,
    manifest_path: &Path,
    seeded: &[String],
    records: usize,
    incidents: &[String],
) {
    let coordinator = &manifest.coordinator;
    say!(
        "fedmesh demo federation `{}` is running",
        manifest.federation
    );
    say!("  coordinator   {}", coordinator.endpoint);
    for member in &manifest.members {
        say!(
            "  {:<13} {}",
            member.member_id.as_deref().unwrap_or("?"),
            member.endpoint
        );
    }
    say!("  manifest      {}", manifest_path.display());
    if let Some(dashboard) = &coordinator.dashboard {
        say!("  dashboard     {dashboard}");
    }
    if !seeded.is_empty() {
        say!("  offers        {} published now", seeded.join(", "));
    }
    if records > 0 {
        say!("  usage         {records} example records reported on rennes2.collab");
    }
    if !incidents.is_empty() {
        say!(
            "  incidents     {} (unistra's desk on rennes2.collab)",
            incidents.join(", ")
        );
    }
    let Some(first) = manifest.members.first() else {
        return;
    };
    let member_id = first.member_id.as_deref().unwrap_or("?");
    let grpcurl = |party: &fedmesh::federation::PartyManifest| {
        format!(
            "grpcurl -cacert {} -cert {} -key {} {}",
            party.ca.display(),
            party.admin_cert.display(),
            party.admin_key.display(),
            host_port(&party.endpoint)
        )
    };
    say!("\nWith grpcurl, as {member_id}'s admin `{DEMO_ADMIN}`:");
    say!("  {} list", grpcurl(first));
    say!(
        "  {} describe fedmesh.v1.NodeService.WhoAmI",
        grpcurl(first)
    );
    say!("  {} fedmesh.v1.NodeService/WhoAmI", grpcurl(first));
    say!("  {} grpc.health.v1.Health/Check", grpcurl(first));
    say!(
        "  {} fedmesh.v1.RegistryService/ListNodes   # as the consortium operator `{DEMO_ADMIN}`",
        grpcurl(coordinator)
    );
    // The variables that make the CLI act as the holder of `cert` on `endpoint`.
    let export = |endpoint: &str, ca: &Path, cert: &Path, key: &Path| {
        say!(
            "  export FEDMESH_ENDPOINT={endpoint} FEDMESH_CA={} FEDMESH_CERT={} FEDMESH_KEY={}",
            ca.display(),
            cert.display(),
            key.display()
        );
    };
    say!("\nWith the fedmesh CLI, act as a member's admin:");
    for member in &manifest.members {
        export(
            &member.endpoint,
            &member.ca,
            &member.admin_cert,
            &member.admin_key,
        );
    }
    say!("  fedmesh whoami");
    say!("  fedmesh catalogue search");
    say!("  fedmesh catalogue search vidéo --json");
    say!("  fedmesh offer list");
    say!("  fedmesh catalogue watch");
    say!("  fedmesh usage show --offer rennes2.collab");
    say!("  fedmesh statement --member unistra --period 2026");
    let agent_cert = manifest.ca.with_file_name("rennes2-agent-meter.pem");
    let rennes2 = manifest
        .members
        .iter()
        .find(|m| m.member_id.as_deref() == Some("rennes2"));
    if let Some(rennes2) = rennes2.filter(|_| agent_cert.exists()) {
        say!("\nAs rennes2's metering agent (usage reports, docs/usage.md):");
        export(
            &rennes2.endpoint,
            &rennes2.ca,
            &agent_cert,
            &agent_cert.with_extension("key"),
        );
        say!("  fedmesh usage report --file examples/usage/usage.csv");
    }
    say!(
        "\nOn the coordinator, as the consortium operator `{DEMO_ADMIN}` (every member's figures; a member's admin sees its own, docs/security.md):"
    );
    export(
        &coordinator.endpoint,
        &coordinator.ca,
        &coordinator.admin_cert,
        &coordinator.admin_key,
    );
    say!("  fedmesh metrics summary");
    say!("  fedmesh metrics open");
    say!("  fedmesh metrics sla --period <yyyy-mm>");
    say!("\nPress Ctrl-C to stop.");
}

#[cfg(test)]
mod tests {
    /// clap's own checks of the whole command line (names unique once global options
    /// propagate, settings that need values), which otherwise fail only when it runs.
    #[test]
    fn the_command_line_is_well_formed() {
        super::command_line().debug_assert();
    }
}
