//! A fault-injecting TCP proxy, to put between any two parties of a test federation: TLS and
//! HTTP/2 pass through untouched, and the link between them misbehaves on demand with the
//! classic toxics (latency with jitter, bandwidth limit, slow close, blackhole, reset peer,
//! data limit) or a full partition that can be healed.
//!
//! A partition behaves like a cut WAN link, not like a stopped process: nothing is refused and
//! nothing is closed, bytes simply vanish in both directions, so each side only notices through
//! its own timeouts and keepalives. Healing lets new connections through and resets the ones
//! that lost bytes during the partition (their TLS streams cannot resume), as a peer's TCP
//! stack would after its retransmissions gave up.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How a link misbehaves. The default passes everything through at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toxics {
    /// Added to every chunk, each direction.
    pub latency: Duration,
    /// Up to this much more, drawn per chunk.
    pub jitter: Duration,
    /// Bytes per second, each direction; `None`: unlimited.
    pub bandwidth: Option<u64>,
    /// How long to wait before passing on a close (FIN).
    pub slow_close: Option<Duration>,
    /// Timeout: bytes are accepted and dropped, nothing comes back, nothing is closed.
    pub blackhole: bool,
    /// New connections are reset (RST) as soon as they are accepted.
    pub reset_peer: bool,
    /// A connection is closed once this many bytes have passed (both directions together).
    pub data_limit: Option<u64>,
}

/// Counters, for tests that check the link was really used or cut.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    target: Mutex<SocketAddr>,
    toxics: Mutex<Toxics>,
    /// Bumped to make connections re-check whether they must be reset.
    generation: watch::Sender<u64>,
    /// Reset every connection at the next generation, not only those that lost bytes.
    reset_all: AtomicBool,
    counters: Counters,
    rng: Mutex<crate::SplitMix64>,
}

impl Shared {
    fn toxics(&self) -> Toxics {
        match self.toxics.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn jitter(&self, max: Duration) -> Duration {
        if max.is_zero() {
            return Duration::ZERO;
        }
        let draw = match self.rng.lock() {
            Ok(mut rng) => rng.next_u64(),
            Err(poisoned) => poisoned.into_inner().next_u64(),
        };
        Duration::from_nanos(draw % (max.as_nanos() as u64).max(1))
    }
}

/// A running proxy; dropping it stops accepting (open connections end with their peers).
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FaultProxy {
    /// A proxy on an ephemeral loopback port forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("proxy bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy addr: {e}"));
        let shared = Arc::new(Shared {
            target: Mutex::new(target),
            toxics: Mutex::new(Toxics::default()),
            generation: watch::channel(0).0,
            reset_all: AtomicBool::new(false),
            counters: Counters::default(),
            rng: Mutex::new(crate::SplitMix64::new(u64::from(addr.port()))),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Self {
            addr,
            shared,
            accept,
        }
    }

    /// Forwards new connections to `target` from now on (a party that moved, or was not
    /// started yet when the proxy was).
    pub fn retarget(&self, target: SocketAddr) {
        match self.shared.target.lock() {
            Ok(mut guard) => *guard = target,
            Err(poisoned) => *poisoned.into_inner() = target,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy as an endpoint URL (`https://localhost:<port>`), for configurations.
    pub fn endpoint(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// Sets the toxics, for new chunks of every connection and for new connections.
    pub fn set(&self, toxics: Toxics) {
        match self.shared.toxics.lock() {
            Ok(mut guard) => *guard = toxics,
            Err(poisoned) => *poisoned.into_inner() = toxics,
        }
    }

    /// Cuts the link: every byte, on open and new connections, is dropped.
    pub fn partition(&self) {
        self.set(Toxics {
            blackhole: true,
            ..Toxics::default()
        });
    }

    /// Restores the link: toxics cleared, connections that lost bytes reset.
    pub fn heal(&self) {
        self.set(Toxics::default());
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// Resets every open connection now (the peer sees a connection reset).
    pub async fn reset_connections(&self) {
        self.shared.reset_all.store(true, Ordering::SeqCst);
        self.shared.generation.send_modify(|g| *g += 1);
        // Every connection task sees the flag before it is lowered.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.shared.reset_all.store(false, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.counters.accepted.load(Ordering::SeqCst)
    }

    /// Bytes passed through so far.
    pub fn forwarded(&self) -> u64 {
        self.shared.counters.forwarded.load(Ordering::SeqCst)
    }

    /// Bytes dropped by a blackhole or a partition so far.
    pub fn dropped(&self) -> u64 {
        self.shared.counters.dropped.load(Ordering::SeqCst)
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        shared.counters.accepted.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(connection(client, shared.clone()));
    }
}

/// One proxied connection: two pumps, and a reset when asked.
async fn connection(client: TcpStream, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    if shared.toxics().reset_peer {
        reset(client);
        return;
    }
    let target = match shared.target.lock() {
        Ok(guard) => *guard,
        Err(poisoned) => *poisoned.into_inner(),
    };
    let Ok(upstream) = TcpStream::connect(target).await else {
        reset(client);
        return;
    };
    let _ = upstream.set_nodelay(true);
    // Whatever ends a connection early ends it as a crash or a cut would: with resets.
    for socket in [&client, &upstream] {
        let _ = socket.set_zero_linger();
    }
    let tainted = Arc::new(AtomicBool::new(false));
    let passed = Arc::new(AtomicU64::new(0));
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let mut up = tokio::spawn(pump(
        client_read,
        upstream_write,
        shared.clone(),
        tainted.clone(),
        passed.clone(),
    ));
    let mut down = tokio::spawn(pump(
        upstream_read,
        client_write,
        shared.clone(),
        tainted.clone(),
        passed,
    ));
    let mut generation = shared.generation.subscribe();
    let (mut up_done, mut down_done) = (false, false);
    loop {
        tokio::select! {
            result = &mut up, if !up_done => {
                up_done = true;
                if matches!(result, Ok(Ended::Limit)) { break; }
            }
            result = &mut down, if !down_done => {
                down_done = true;
                if matches!(result, Ok(Ended::Limit)) { break; }
            }
            changed = generation.changed() => {
                if changed.is_err()
                    || tainted.load(Ordering::SeqCst)
                    || shared.reset_all.load(Ordering::SeqCst)
                {
                    break;
                }
            }
        }
        if up_done && down_done {
            return;
        }
    }
    // The pumps drop their halves: the sockets close with resets (zero linger).
    up.abort();
    down.abort();
}

/// Closes `stream` with a TCP reset rather than a FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

enum Ended {
    /// The reading side closed; the close was passed on.
    Closed,
    /// The data limit was reached.
    Limit,
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
    tainted: Arc<AtomicBool>,
    passed: Arc<AtomicU64>,
) -> Ended {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                if let Some(delay) = shared.toxics().slow_close {
                    tokio::time::sleep(delay).await;
                }
                let _ = to.shutdown().await;
                return Ended::Closed;
            }
            Ok(n) => n,
        };
        let toxics = shared.toxics();
        if toxics.blackhole {
            tainted.store(true, Ordering::SeqCst);
            shared
                .counters
                .dropped
                .fetch_add(n as u64, Ordering::SeqCst);
            continue;
        }
        let mut chunk = &buf[..n];
        if let Some(limit) = toxics.data_limit {
            let before = passed.fetch_add(n as u64, Ordering::SeqCst);
            if before + n as u64 > limit {
                let allowed = limit.saturating_sub(before) as usize;
                chunk = &buf[..allowed.min(n)];
                let _ = to.write_all(chunk).await;
                return Ended::Limit;
            }
        }
        let delay = toxics.latency + shared.jitter(toxics.jitter);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(rate) = toxics.bandwidth.filter(|r| *r > 0) {
            tokio::time::sleep(Duration::from_secs_f64(chunk.len() as f64 / rate as f64)).await;
        }
        if to.write_all(chunk).await.is_err() {
            return Ended::Closed;
        }
        shared
            .counters
            .forwarded
            .fetch_add(chunk.len() as u64, Ordering::SeqCst);
    }
}
