//! The TLS side of every gRPC listener.
//!
//! The accept loop runs in its own task. Each TCP connection takes a place in the
//! pending-handshake pool ([`crate::pending`]: `max_pending_handshakes` places, at most
//! `max_pending_handshakes_per_address` for one source address), has `client_hello_timeout`
//! to send its ClientHello and `handshake_timeout` in all to complete its handshake. A
//! connection still silent when the pool is full is closed to make room, so a flood of idle
//! connections cannot keep legitimate peers waiting. Only established TLS streams reach the
//! gRPC server. Failed handshakes are logged with the peer address and the reason.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::ReloadableServerConfig;
use crate::pending::{Pool, PoolLimits, Refused, Slot};

/// Limits of the TLS accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// How long a client has to complete its TLS handshake.
    pub handshake_timeout: Duration,
    /// How long a client has to send its ClientHello once connected (capped by
    /// `handshake_timeout`): a legitimate client sends it at once, an idle connection only
    /// holds a place.
    pub client_hello_timeout: Duration,
    /// How many handshakes may be in progress at once. When the pool is full the oldest
    /// connection that has not sent its ClientHello is closed for a new one; if every one has,
    /// further connections wait.
    pub max_pending_handshakes: usize,
    /// How many of those places one source address may hold.
    pub max_pending_handshakes_per_address: usize,
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
    let pool = Pool::new(PoolLimits {
        total: limits.max_pending_handshakes,
        per_address: limits.max_pending_handshakes_per_address,
    });
    loop {
        // Every place is held by a connection past its ClientHello: leave new connections
        // in the kernel's accept queue until one is given back.
        tokio::select! {
            _ = tx.closed() => return,
            () = pool.room() => {}
        }
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
        let admitted = tokio::select! {
            _ = tx.closed() => return,
            admitted = admit(&pool, peer) => admitted,
        };
        // Refused: dropping the socket closes it.
        let Some((slot, evicted)) = admitted else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let config = config.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let established = handshake(tcp, peer, &config, limits, &slot, evicted).await;
            // The place is given back before the server takes the stream.
            drop(slot);
            if let Some(stream) = established {
                let _ = tx.send(Ok(stream)).await;
            }
        });
    }
}

/// A place in `pool` for a connection from `peer`, waiting for one if every place is past its
/// ClientHello; `None` when `peer`'s address holds all of its own.
async fn admit(pool: &Pool, peer: SocketAddr) -> Option<(Slot, oneshot::Receiver<()>)> {
    loop {
        match pool.admit(peer.ip().to_canonical()) {
            Ok(admitted) => return Some(admitted),
            // The idle connections seen before `accept` have sent their ClientHello since:
            // this one waits for a place, as the next ones do in the kernel's queue.
            Err(Refused::PoolFull) => pool.room().await,
            Err(Refused::AddressFull) => {
                tracing::debug!(%peer, "connection closed: its address holds all its pending-handshake places");
                return None;
            }
        }
    }
}

async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    config: &ReloadableServerConfig,
    limits: ListenerLimits,
    slot: &Slot,
    evicted: oneshot::Receiver<()>,
) -> Option<TlsStream<TcpStream>> {
    let deadline = tokio::time::Instant::now() + limits.handshake_timeout;
    let hello_timeout = limits.client_hello_timeout.min(limits.handshake_timeout);
    let lazy = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
    let start = tokio::select! {
        _ = evicted => {
            tracing::debug!(%peer, "idle connection closed to make room for another");
            return None;
        }
        hello = tokio::time::timeout(hello_timeout, lazy) => match hello {
            Ok(Ok(start)) => start,
            Ok(Err(error)) => {
                tracing::info!(%peer, %error, "tls handshake refused");
                return None;
            }
            Err(_) => {
                tracing::info!(%peer, timeout_ms = hello_timeout.as_millis() as u64, "no tls client hello in time");
                return None;
            }
        },
    };
    slot.hello_received();
    match tokio::time::timeout_at(deadline, start.into_stream(config.current())).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::info!(%peer, %error, "tls handshake refused");
            None
        }
        Err(_) => {
            tracing::info!(
                %peer,
                timeout_ms = limits.handshake_timeout.as_millis() as u64,
                "tls handshake timed out"
            );
            None
        }
    }
}
