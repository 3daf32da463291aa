//! Server streams backed by a task: the task produces items into a bounded channel (so a slow
//! client slows the task, not the server's memory) and ends when the client goes away.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// Items in flight per stream before the producer waits for the client.
const BUFFER: usize = 64;

/// How long a quiet stream waits before it sends a heartbeat, so that both ends notice a
/// dead connection.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The response stream type of a streaming RPC (what the generated traits expect).
pub type ResponseStream<T> =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Sends stream items; `send` returns `false` once the client has gone.
#[derive(Debug)]
pub struct Sink<T> {
    tx: mpsc::Sender<Result<T, Status>>,
}

impl<T> Sink<T> {
    /// Sends one item; `false` when the client has gone away.
    pub async fn send(&self, item: T) -> bool {
        self.tx.send(Ok(item)).await.is_ok()
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
    Box::pin(ReceiverStream::new(rx))
}
