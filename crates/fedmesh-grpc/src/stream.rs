//! Server streams backed by a task: the task produces items into a bounded channel (so a slow
//! client slows the task, not the server's memory) and ends when the client goes away.
//!
//! What a stream costs while open matters: one identity may hold
//! `limits.max_streams_per_identity` of them, every member and node some. Items travel boxed
//! (a channel reserves its slots in blocks of 32, and a `WatchCatalogueResponse` is about 1 KiB
//! inline: 64 unboxed slots held up to 100 KiB per stream), a few at a time, and producers
//! wait on [`Sink::closed`] so that a task ends when its client goes, not at its next item.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// Items in flight per stream before the producer waits for the client; HTTP/2 and the
/// socket buffer more behind them.
const BUFFER: usize = 8;

/// How long a quiet stream waits before it sends a heartbeat, so that both ends notice a
/// dead connection.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The response stream type of a streaming RPC (what the generated traits expect).
pub type ResponseStream<T> =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Sends stream items; `send` returns `false` once the client has gone.
#[derive(Debug)]
pub struct Sink<T> {
    tx: mpsc::Sender<Result<Box<T>, Status>>,
}

impl<T> Sink<T> {
    /// Sends one item; `false` when the client has gone away.
    pub async fn send(&self, item: T) -> bool {
        self.tx.send(Ok(Box::new(item))).await.is_ok()
    }

    /// Completes once the client has gone away (the stream was reset or its connection
    /// closed): a producer waiting for news selects on it too, so that it ends at once
    /// rather than at its next item.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    /// Ends the stream with an error status.
    pub async fn fail(&self, status: Status) {
        let _ = self.tx.send(Err(status)).await;
    }
}

/// Tells long-lived streams that the server is stopping, so that they end (with
/// `UNAVAILABLE`, which clients retry elsewhere or later) instead of holding the graceful
/// shutdown open.
#[derive(Debug, Clone)]
pub struct Stopping {
    rx: tokio::sync::watch::Receiver<bool>,
}

impl Stopping {
    /// A pair: the sender flips to `true` when the server stops.
    pub fn new() -> (tokio::sync::watch::Sender<bool>, Self) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Self { rx })
    }

    /// Completes once the server is stopping.
    pub async fn wait(&mut self) {
        if self.rx.wait_for(|stopping| *stopping).await.is_err() {
            // The server is gone without saying so: stop too.
        }
    }
}

/// The status a stream ends with when the server stops.
pub fn stopping_status() -> Status {
    Status::unavailable("the server is shutting down; reconnect")
}

/// Runs `produce` in its own task and returns the stream of what it sends.
pub fn spawn_stream<T, F, Fut>(produce: F) -> ResponseStream<T>
where
    T: Send + 'static,
    F: FnOnce(Sink<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(produce(Sink { tx }));
    Box::pin(tokio_stream::StreamExt::map(
        ReceiverStream::new(rx),
        |item| item.map(|boxed| *boxed),
    ))
}
