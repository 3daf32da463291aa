//! Conventions of every admin subcommand: how it reaches a node, and how it reports failure.

use std::path::{Path, PathBuf};

use clap::Args;
use fedmesh_grpc::ClientOptions;
use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_tls::TlsFiles;
use tonic::Code;

/// Where the admin CLI connects and with which certificate. Every option works in any position
/// of the command line (they are global), or from its `FEDMESH_*` variable, or from a named
/// profile of the profiles file; an option or variable given wins over the profile.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectArgs {
    /// The node's (or coordinator's) gRPC endpoint, `https://host:port`.
    #[arg(long, env = "FEDMESH_ENDPOINT", global = true)]
    pub endpoint: Option<String>,
    /// The federation CA certificate (PEM).
    #[arg(long, env = "FEDMESH_CA", global = true)]
    pub ca: Option<PathBuf>,
    /// Your certificate (PEM), usually an admin certificate of your member.
    #[arg(long, env = "FEDMESH_CERT", global = true)]
    pub cert: Option<PathBuf>,
    /// Your private key (PEM).
    #[arg(long, env = "FEDMESH_KEY", global = true)]
    pub key: Option<PathBuf>,
    /// The name the server's certificate must carry, when it is not the endpoint's host
    /// (grpcurl's `-servername`): e.g. `localhost` through a tunnel.
    #[arg(long, env = "FEDMESH_SERVERNAME", global = true)]
    pub servername: Option<String>,
    /// A named connection of the profiles file (`[name]` with endpoint, ca, cert, key and
    /// optionally servername). Without it, the profile `default` is used when the file has one.
    #[arg(long, env = "FEDMESH_PROFILE", global = true)]
    pub profile: Option<String>,
    /// The profiles file [default: `$XDG_CONFIG_HOME/fedmesh/profiles.toml`, or
    /// `~/.config/fedmesh/profiles.toml`].
    #[arg(long, env = "FEDMESH_PROFILES", global = true)]
    pub profiles: Option<PathBuf>,
}

/// One profile of the profiles file. Relative paths are relative to the file's directory.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    endpoint: Option<String>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    servername: Option<String>,
}

impl ConnectArgs {
    /// The connection these options, their variables and the profile describe.
    pub fn resolve(&self) -> anyhow::Result<Connection> {
        let complete = self.endpoint.is_some()
            && self.ca.is_some()
            && self.cert.is_some()
            && self.key.is_some();
        // Given whole on the command line, the connection needs no profile: a profiles file
        // that is broken or elsewhere does not stand in the way.
        let default_file = if complete && self.profile.is_none() {
            None
        } else {
            default_profiles_file()
        };
        let file = self.profiles.as_deref().or(default_file.as_deref());
        let profile = match file {
            Some(file) => read_profile(file, self.profile.as_deref(), self.profiles.is_some())?,
            None => match &self.profile {
                Some(name) => anyhow::bail!(
                    "profile `{name}`: no profiles file (give --profiles or FEDMESH_PROFILES)"
                ),
                None => Profile::default(),
            },
        };
        let missing = |flag: &str, variable: &str| {
            anyhow::anyhow!("no {flag}: give --{flag} (or {variable}), or a --profile that sets it")
        };
        Ok(Connection {
            endpoint: self
                .endpoint
                .clone()
                .or(profile.endpoint)
                .ok_or_else(|| missing("endpoint", "FEDMESH_ENDPOINT"))?,
            ca: self
                .ca
                .clone()
                .or(profile.ca)
                .ok_or_else(|| missing("ca", "FEDMESH_CA"))?,
            cert: self
                .cert
                .clone()
                .or(profile.cert)
                .ok_or_else(|| missing("cert", "FEDMESH_CERT"))?,
            key: self
                .key
                .clone()
                .or(profile.key)
                .ok_or_else(|| missing("key", "FEDMESH_KEY"))?,
            servername: self.servername.clone().or(profile.servername),
        })
    }
}

/// `$XDG_CONFIG_HOME/fedmesh/profiles.toml`, or `~/.config/fedmesh/profiles.toml`.
fn default_profiles_file() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("fedmesh").join("profiles.toml"))
}

/// The profile `name` of `file` (or `default`, when no name is given and the file has it).
/// A file that does not exist is an error only when it was named or a profile asked for.
fn read_profile(file: &Path, name: Option<&str>, named_file: bool) -> anyhow::Result<Profile> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named_file && name.is_none() => {
            return Ok(Profile::default());
        }
        Err(e) => anyhow::bail!("profiles file {}: {e}", file.display()),
    };
    let mut profiles: std::collections::BTreeMap<String, Profile> = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("profiles file {}: {e}", file.display()))?;
    let mut profile = match name {
        Some(name) => profiles.remove(name).ok_or_else(|| {
            let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
            anyhow::anyhow!(
                "profile `{name}` is not in {} (it has: {})",
                file.display(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )
        })?,
        None => profiles.remove("default").unwrap_or_default(),
    };
    let base = file.parent().unwrap_or(Path::new("."));
    for path in [&mut profile.ca, &mut profile.cert, &mut profile.key]
        .into_iter()
        .flatten()
    {
        if path.is_relative() {
            *path = base.join(&*path);
        }
    }
    Ok(profile)
}

/// Where a command connects: the endpoint and the TLS files, resolved from the options, their
/// variables and the profile.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The node's (or coordinator's) gRPC endpoint, `https://host:port`.
    pub endpoint: String,
    /// The federation CA certificate (PEM).
    pub ca: PathBuf,
    /// The caller's certificate (PEM).
    pub cert: PathBuf,
    /// The caller's private key (PEM).
    pub key: PathBuf,
    /// The name the server's certificate must carry, when not the endpoint's host.
    pub servername: Option<String>,
}

impl Connection {
    /// A channel to the endpoint, once the caller's certificate is found valid today: a server
    /// refuses an expired one with nothing more than a failed handshake.
    pub fn channel(&self) -> anyhow::Result<Channel> {
        check_validity(&self.cert, unix_now())?;
        let files = TlsFiles {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            crl: None,
        };
        let options = ClientOptions {
            server_name: self.servername.clone(),
            ..ClientOptions::default()
        };
        Ok(fedmesh_grpc::connect(&self.endpoint, &files, options)?)
    }
}

/// The system's time (Unix seconds): certificates are checked against it, not against the
/// federation's business clock.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Refuses a certificate that is expired or not yet valid at `now` (Unix seconds), saying so.
fn check_validity(cert: &Path, now: i64) -> anyhow::Result<()> {
    let (not_before, not_after) = fedmesh_tls::config::cert_validity(cert)?;
    let date = |secs: i64| {
        jiff::Timestamp::from_second(secs)
            .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|_| secs.to_string())
    };
    if now > not_after {
        anyhow::bail!(
            "your certificate {} expired on {}: no node accepts it; ask your member's PKI admin for a new one (fedmesh certs issue ... --force)",
            cert.display(),
            date(not_after)
        );
    }
    if now < not_before {
        anyhow::bail!(
            "your certificate {} is valid only from {}: check this machine's clock",
            cert.display(),
            date(not_before)
        );
    }
    Ok(())
}

/// A failed call, printed as its gRPC status and a plain explanation.
#[derive(Debug)]
pub struct CallFailed {
    /// The endpoint called.
    pub endpoint: String,
    /// The status returned.
    pub status: tonic::Status,
}

impl std::fmt::Display for CallFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = self.status.code();
        writeln!(f, "{code:?} ({}): {}", code as i32, self.status.message())?;
        match refused_handshake(&self.status) {
            Some(explanation) => write!(f, "{explanation}"),
            None => write!(f, "{}", explain(code, &self.endpoint)),
        }
    }
}

impl std::error::Error for CallFailed {}

/// What lies under a status (the transport's own errors), outermost first.
fn causes(status: &tonic::Status) -> Vec<String> {
    let mut out = Vec::new();
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        out.push(error.to_string());
        source = error.source();
    }
    out
}

/// When a call failed in the TLS handshake, a plain explanation with the likely causes: this
/// client refused the server's certificate, or the server refused this one (it says so only
/// with an alert, which tonic reports as a transport error).
fn refused_handshake(status: &tonic::Status) -> Option<String> {
    // A refusal reaches the client as whatever broke first: the transport (Unknown), the
    // connection (Unavailable), or the request it cut (Cancelled, though nothing cancelled it).
    if !matches!(
        status.code(),
        Code::Unknown | Code::Unavailable | Code::Cancelled
    ) {
        return None;
    }
    let causes = causes(status);
    if let Some(refused) = causes
        .iter()
        .find(|c| c.contains("invalid peer certificate"))
    {
        return Some(format!(
            "this client refused the server's certificate ({refused}): check the endpoint's host name (or --servername) and --ca, the federation's CA certificate"
        ));
    }
    let alert = causes.iter().find(|c| {
        let c = c.to_lowercase();
        c.contains("alert") || c.contains("handshake") || c.contains("certificate")
    });
    let reason = match alert {
        Some(alert) => format!(" ({alert})"),
        None if status.code() == Code::Cancelled
            || (status.code() == Code::Unknown && status.message().contains("transport error")) =>
        {
            String::new()
        }
        None => return None,
    };
    Some(format!(
        "the server refused the TLS handshake with your certificate{reason}: it is likely revoked, expired, or issued by another CA than this server's federation; check it with `openssl x509 -in <cert> -noout -subject -dates -issuer`, and ask your member's PKI admin for a new one if needed"
    ))
}

/// What a status code means for someone at a terminal.
pub fn explain(code: Code, endpoint: &str) -> String {
    match code {
        Code::Unavailable => format!(
            "could not reach {endpoint}: check that the node runs there, that its certificate names that host, and that your certificate is issued by the federation CA and not revoked"
        ),
        Code::Unauthenticated => "the server did not accept your certificate's identity".to_owned(),
        Code::PermissionDenied => {
            "your identity is not allowed to do this (admins manage only their own member's node)"
                .to_owned()
        }
        Code::InvalidArgument => "the request has an invalid field (named above)".to_owned(),
        Code::NotFound => "no such item, or not visible to you".to_owned(),
        Code::AlreadyExists => {
            "something with this id is already stored with other content; use a new id".to_owned()
        }
        Code::DeadlineExceeded => {
            "the call took too long; retry, or check the server's load".to_owned()
        }
        Code::Unimplemented => "this server does not offer that call yet".to_owned(),
        _ => "the call failed".to_owned(),
    }
}

/// Runs one call and wraps its failure for printing.
pub async fn call<T>(
    endpoint: &str,
    future: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CallFailed> {
    future
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| CallFailed {
            endpoint: endpoint.to_owned(),
            status,
        })
}
