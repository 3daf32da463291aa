//! Authentication and authorization of every call, as one tower layer.
//!
//! The TLS handshake already proved that the peer holds a certificate issued by the federation
//! CA and not revoked. This layer reads the identity from that certificate (its single URI
//! SAN), checks the federation, looks the method up in the role table
//! ([`fedmesh_core::authz`]) and, on a member node, checks that admins and agents belong to
//! the node's member. The [`Identity`] then travels in the request's extensions: handlers read
//! it with [`caller`] and nowhere else.

use std::sync::Arc;
use std::task::{Context, Poll};

use fedmesh_core::authz::{Decision, decide};
use fedmesh_core::{FederationName, Identity, MemberId, Role};
use futures_util::future::{Either, Ready, ready};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing::instrument::Instrumented;

/// The members removed from the federation, whose identities are refused whatever
/// certificate they present. Shared: the registry (coordinator) or the CRL follower (node)
/// updates it while the server runs.
#[derive(Debug, Clone, Default)]
pub struct RemovedMembers(Arc<std::sync::RwLock<std::collections::BTreeSet<String>>>);

impl RemovedMembers {
    /// Replaces the set; returns the members that were not in it before.
    pub fn replace(&self, members: impl IntoIterator<Item = String>) -> Vec<String> {
        let new: std::collections::BTreeSet<String> = members.into_iter().collect();
        let mut guard = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let added = new.difference(&guard).cloned().collect();
        *guard = new;
        added
    }

    /// Adds one member.
    pub fn insert(&self, member: &str) {
        let mut guard = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.insert(member.to_owned());
    }

    /// Whether `member` was removed.
    pub fn contains(&self, member: &str) -> bool {
        match self.0.read() {
            Ok(guard) => guard.contains(member),
            Err(poisoned) => poisoned.into_inner().contains(member),
        }
    }
}

/// Who may call a server: its federation and, on a member node, its member; never a removed
/// member.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    federation: FederationName,
    local_member: Option<MemberId>,
    removed: RemovedMembers,
}

impl AccessPolicy {
    /// The policy of a member node: admins and agents of other members are refused.
    pub fn node(federation: FederationName, member: MemberId) -> Self {
        Self {
            federation,
            local_member: Some(member),
            removed: RemovedMembers::default(),
        }
    }

    /// The policy of the coordinator: every member's admins may read.
    pub fn coordinator(federation: FederationName) -> Self {
        Self {
            federation,
            local_member: None,
            removed: RemovedMembers::default(),
        }
    }

    /// The set of removed members this policy refuses, to update while serving.
    pub fn removed(&self) -> RemovedMembers {
        self.removed.clone()
    }

    /// Decides on a call from the peer certificates of its connection and its path.
    pub fn admit(&self, peer_certs: Option<&[Vec<u8>]>, path: &str) -> Result<Identity, Status> {
        let identity = self.identify(peer_certs)?;
        self.authorize(identity, path)
    }

    /// Who holds a connection's client certificate (the TLS layer checked its chain and the
    /// CRL): its identity, of this federation and not of a removed member. The gRPC layer and
    /// the coordinator's dashboard identify their callers with it.
    pub fn identify(&self, peer_certs: Option<&[Vec<u8>]>) -> Result<Identity, Status> {
        let leaf = peer_certs
            .and_then(|certs| certs.first())
            .ok_or_else(|| Status::unauthenticated("no client certificate was presented"))?;
        let identity = fedmesh_tls::identity_from_der(leaf)
            .map_err(|e| Status::unauthenticated(format!("client certificate: {e}")))?;
        self.check_member(&identity)?;
        Ok(identity)
    }

    fn check_member(&self, identity: &Identity) -> Result<(), Status> {
        if identity.federation != self.federation {
            return Err(Status::unauthenticated(format!(
                "client certificate: identity {identity} is not of federation {}",
                self.federation
            )));
        }
        if let Some(member) = identity.member()
            && self.removed.contains(member.as_str())
        {
            return Err(Status::permission_denied(format!(
                "member {member} was removed from the federation"
            )));
        }
        Ok(())
    }

    /// Decides on a call by `identity` (read from its connection's client certificate) on
    /// `path`; the identity back when the call may go on.
    pub fn authorize<I: std::borrow::Borrow<Identity>>(
        &self,
        identity: I,
        path: &str,
    ) -> Result<I, Status> {
        let caller = identity.borrow();
        self.check_member(caller)?;
        match decide(caller.role(), path) {
            Decision::Allow => {}
            Decision::DenyRole => {
                return Err(Status::permission_denied(format!(
                    "role {} may not call {path}",
                    caller.role()
                )));
            }
            Decision::DenyUnknown => {
                return Err(Status::permission_denied(format!(
                    "no authorization rule allows {path}"
                )));
            }
        }
        if let Some(local) = &self.local_member {
            let scoped = matches!(caller.role(), Role::Admin | Role::Agent)
                && !fedmesh_core::authz::is_diagnostic(path);
            if scoped && caller.member() != Some(local) {
                return Err(Status::permission_denied(format!(
                    "{caller} may only call its own member's node; this node belongs to {local}"
                )));
            }
        }
        Ok(identity)
    }
}

/// The caller's identity, put there by [`AuthLayer`] (as an `Arc<Identity>`). A request
/// without one never reaches a handler; the error is for handlers mounted without the layer (a
/// wiring bug).
pub fn caller<T>(request: &tonic::Request<T>) -> Result<&Identity, Status> {
    request
        .extensions()
        .get::<Arc<Identity>>()
        .map(|i| &**i)
        .ok_or_else(|| {
            Status::internal("caller identity missing: authentication layer not installed")
        })
}

/// The layer that admits or refuses each call; see the module documentation.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    policy: Arc<AccessPolicy>,
}

impl AuthLayer {
    /// A layer enforcing `policy`.
    pub fn new(policy: AccessPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            policy: Arc::clone(&self.policy),
        }
    }
}

/// The service built by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    policy: Arc<AccessPolicy>,
}

impl<S, B> Service<http::Request<B>> for Auth<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<
        Ready<Result<Self::Response, Self::Error>>,
        Instrumented<tokio::task::futures::TaskLocalFuture<Option<Identity>, S::Future>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The identity was read from the certificate once, when the connection was accepted.
        let identity = match request
            .extensions()
            .get::<crate::connections::PeerInfo>()
            .map(|peer| peer.identity.as_ref())
        {
            Some(Some(Ok(identity))) => Ok(Arc::clone(identity)),
            Some(Some(Err(message))) => Err(Status::unauthenticated(format!(
                "client certificate: {message}"
            ))),
            _ => Err(Status::unauthenticated(
                "no client certificate was presented",
            )),
        };
        let admitted = identity
            .and_then(|identity| self.policy.authorize(identity, request.uri().path()))
            .and_then(|identity| {
                let acting = crate::acting::admit(&identity, request.headers())?;
                Ok((identity, acting))
            });
        match admitted {
            Ok((identity, acting)) => {
                // One span per admitted call: the RPC and the caller on the lines logged
                // under it, and, when spans are exported over OTLP, a server span named after
                // the RPC that continues the caller's trace. Without export, what only OTLP
                // reads is left out: each field costs its formatting on every call.
                let rpc = request.uri().path().trim_start_matches('/');
                let span = if crate::trace::exporting() {
                    let span = tracing::info_span!(
                        "grpc.server",
                        otel.name = rpc,
                        otel.kind = "server",
                        rpc.system = "grpc",
                        caller = %identity,
                    );
                    crate::trace::adopt_parent(&span, request.headers());
                    span
                } else {
                    tracing::info_span!("grpc.server", rpc = %rpc, caller = %identity)
                };
                request.extensions_mut().insert(identity);
                Either::Right(
                    crate::acting::scope(acting, self.inner.call(request)).instrument(span),
                )
            }
            Err(status) => {
                tracing::info!(path = request.uri().path(), code = ?status.code(), reason = status.message(), "call refused");
                Either::Left(ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use fedmesh_core::authz::RULES;
    use prost::Message as _;

    /// Every RPC of the contract has a row in the authorization table, and every fedmesh row
    /// names an RPC that exists: a new RPC cannot ship unauthorized-by-accident (it would be
    /// denied to everyone) and a renamed one cannot leave a stale grant behind.
    #[test]
    fn the_authorization_table_covers_the_contract_exactly() {
        let set = prost_types::FileDescriptorSet::decode(fedmesh_proto::FILE_DESCRIPTOR_SET)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut methods = Vec::new();
        for file in set.file.iter().filter(|f| f.package() == "fedmesh.v1") {
            for service in &file.service {
                for method in &service.method {
                    methods.push((
                        format!("fedmesh.v1.{}", service.name()),
                        method.name().to_owned(),
                    ));
                }
            }
        }
        for (service, method) in &methods {
            assert!(
                RULES
                    .iter()
                    .any(|r| r.service == service && r.method == method),
                "{service}/{method} has no authorization rule"
            );
        }
        for rule in RULES.iter().filter(|r| r.service.starts_with("fedmesh.")) {
            assert!(
                methods
                    .iter()
                    .any(|(s, m)| s == rule.service && m == rule.method),
                "rule for {}/{} names no RPC of the contract",
                rule.service,
                rule.method
            );
        }
    }
}
