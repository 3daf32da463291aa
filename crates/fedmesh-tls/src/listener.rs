//! The TLS side of every gRPC listener.
//!
//! The accept loop runs in its own task: each TCP connection gets its handshake under a
//! timeout, with at most `max_pending_handshakes` in flight (a slow-loris of half-open
//! handshakes cannot exhaust the server), and only established TLS streams reach the gRPC
//! server. Failed handshakes are logged with the peer address and the reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::ReloadableServerConfig;

/// Limits of the TLS accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// How long a client has to complete its TLS handshake.
    pub handshake_timeout: Duration,
    /// How many handshakes may be in progress at once; further connections wait.
    pub max_pending_handshakes: usize,
}

/// A stream of established TLS connections for `tonic`'s `serve_with_incoming`.
pub type Incoming = tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsStream<TcpStream>>>;

/// Starts accepting on `listener`; the loop ends when the returned stream is dropped.
pub fn tls_incoming(
    listener: TcpListener,
    config: ReloadableServerConfig,
    limits: ListenerLimits,
) -> Incoming {
    let (tx, rx) = mpsc::channel(limits.max_pending_handshakes.max(1));
    tokio::spawn(accept_loop(listener, config, limits, tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    config: ReloadableServerConfig,
    limits: ListenerLimits,
    tx: mpsc::Sender<std::io::Result<TlsStream<TcpStream>>>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_pending_handshakes.max(1)));
    loop {
        let permit = tokio::select! {
            _ = tx.closed() => return,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // EMFILE and friends: back off a little instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(config.current());
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(stream) = handshake(acceptor, tcp, peer, limits.handshake_timeout).await {
                let _ = tx.send(Ok(stream)).await;
            }
        });
    }
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::info!(%peer, %error, "tls handshake refused");
            None
        }
        Err(_) => {
            tracing::info!(%peer, timeout_ms = timeout.as_millis() as u64, "tls handshake timed out");
            None
        }
    }
}
