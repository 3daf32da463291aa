//! The server's open connections, so that the connections of a peer whose certificate gets
//! revoked can be closed at once: a new CRL only stops new handshakes, while an HTTP/2
//! connection may stay open for days.
//!
//! Every accepted TLS stream is wrapped in a [`Tracked`] stream registered in
//! [`Connections`]; [`Connections::close_revoked`] marks those whose client certificate is in a
//! CRL, and their next read or write fails (a pending read is woken), which ends the
//! connection and every call on it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use x509_parser::prelude::FromDer as _;

/// What the server knows of a connection's peer, in each request's extensions.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The client's certificate chain, leaf first.
    pub certs: Option<Arc<Vec<CertificateDer<'static>>>>,
    /// The peer's address.
    pub remote: Option<std::net::SocketAddr>,
    /// The identity in the client's certificate, read once when the connection was accepted
    /// (`None` without a certificate; the error says why it has no valid identity).
    /// Shared, so that each call's copy of this record costs no allocation.
    pub identity: Option<Result<Arc<fedmesh_core::Identity>, String>>,
}

#[derive(Debug)]
struct State {
    closed: AtomicBool,
    waker: AtomicWaker,
    /// The serial number of the client's certificate.
    serial: Option<Vec<u8>>,
    /// The member of the client's identity, if it has one.
    member: Option<String>,
}

impl State {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// Registers the reading task (cheap when it is the same task as last time).
    fn remember(&self, cx: &Context<'_>) {
        self.waker.register(cx.waker());
    }

    fn check(&self) -> io::Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the peer's certificate was revoked or its member removed",
            ))
        } else {
            Ok(())
        }
    }
}

/// The registry of open connections.
#[derive(Debug, Clone, Default)]
pub struct Connections {
    open: Arc<Mutex<Vec<Weak<State>>>>,
}

fn serial_of(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    x509_parser::parse_x509_certificate(cert)
        .ok()
        .map(|(_, c)| c.raw_serial().to_vec())
}

impl Connections {
    /// Wraps and registers an accepted TLS stream.
    pub fn track(&self, stream: TlsStream<TcpStream>) -> Tracked {
        let certs = stream
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| Arc::new(c.iter().map(|c| c.clone().into_owned()).collect::<Vec<_>>()));
        let leaf = certs.as_ref().and_then(|c| c.first());
        let serial = leaf.and_then(serial_of);
        let identity = leaf.map(|c| {
            fedmesh_tls::identity_from_der(c)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        });
        let member = identity
            .as_ref()
            .and_then(|i| i.as_ref().ok())
            .and_then(|i| i.member().map(ToString::to_string));
        let state = Arc::new(State {
            closed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            serial,
            member,
        });
        let mut open = match self.open.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        open.retain(|w| w.strong_count() > 0);
        open.push(Arc::downgrade(&state));
        let remote = stream.get_ref().0.peer_addr().ok();
        Tracked {
            inner: stream,
            state,
            info: PeerInfo {
                certs,
                remote,
                identity,
            },
        }
    }

    /// Closes the open connections whose client certificate `crl_der` revokes; returns how
    /// many.
    pub fn close_revoked(&self, crl_der: &[u8]) -> usize {
        let Ok((_, crl)) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(crl_der)
        else {
            return 0;
        };
        let revoked: Vec<Vec<u8>> = crl
            .iter_revoked_certificates()
            .map(|r| r.raw_serial().to_vec())
            .collect();
        self.close_where(|state| state.serial.as_ref().is_some_and(|s| revoked.contains(s)))
    }

    /// Closes the open connections of every identity of `member` (a member removed from the
    /// federation); returns how many.
    pub fn close_member(&self, member: &str) -> usize {
        self.close_where(|state| state.member.as_deref() == Some(member))
    }

    fn close_where(&self, matches: impl Fn(&State) -> bool) -> usize {
        let open: Vec<Arc<State>> = match self.open.lock() {
            Ok(guard) => guard.iter().filter_map(Weak::upgrade).collect(),
            Err(poisoned) => poisoned
                .into_inner()
                .iter()
                .filter_map(Weak::upgrade)
                .collect(),
        };
        let mut closed = 0;
        for state in open {
            if matches(&state) && !state.closed.load(Ordering::SeqCst) {
                state.close();
                closed += 1;
            }
        }
        closed
    }
}

/// An accepted connection the registry can close.
#[derive(Debug)]
pub struct Tracked {
    inner: TlsStream<TcpStream>,
    state: Arc<State>,
    info: PeerInfo,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.state.check()?;
        self.state.remember(cx);
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.state.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.state.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Tracked {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

/// Puts `crl_der` in force on `tls` if it is newer (see
/// [`fedmesh_tls::ReloadableServerConfig::apply_crl`]) and closes the open connections it
/// revokes. `from` says where the CRL came from, for the log. Returns whether it changed
/// anything.
pub fn enforce_crl(
    tls: &fedmesh_tls::ReloadableServerConfig,
    connections: &Connections,
    crl_der: &[u8],
    from: &str,
) -> bool {
    match tls.apply_crl(crl_der) {
        Ok(true) => {
            let closed = connections.close_revoked(crl_der);
            tracing::info!(
                from,
                closed,
                "federation CRL updated: revoked certificates are refused from now on, their open connections closed"
            );
            true
        }
        Ok(false) => false,
        Err(error) => {
            tracing::warn!(%error, from, "ignoring a CRL");
            false
        }
    }
}
