//! Conventions of every admin subcommand: how it reaches a node, and how it reports failure.

use std::path::PathBuf;

use clap::Args;
use fedmesh_grpc::ClientOptions;
use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_tls::TlsFiles;
use tonic::Code;

/// Where the admin CLI connects and with which certificate.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// The node's (or coordinator's) gRPC endpoint, `https://host:port`.
    #[arg(long, env = "FEDMESH_ENDPOINT")]
    pub endpoint: String,
    /// The federation CA certificate (PEM).
    #[arg(long, env = "FEDMESH_CA")]
    pub ca: PathBuf,
    /// Your certificate (PEM), usually an admin certificate of your member.
    #[arg(long, env = "FEDMESH_CERT")]
    pub cert: PathBuf,
    /// Your private key (PEM).
    #[arg(long, env = "FEDMESH_KEY")]
    pub key: PathBuf,
}

impl ConnectArgs {
    /// A channel to the endpoint.
    pub fn channel(&self) -> anyhow::Result<Channel> {
        let files = TlsFiles {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            crl: None,
        };
        Ok(fedmesh_grpc::connect(
            &self.endpoint,
            &files,
            ClientOptions::default(),
        )?)
    }
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
        write!(f, "{}", explain(code, &self.endpoint))
    }
}

impl std::error::Error for CallFailed {}

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
