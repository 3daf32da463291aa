//! A raw gRPC client over HTTP/2 and mutual TLS, for hostile-input tests: it sends whatever
//! bytes it is given as a request message (or as the whole request body), on any path, and can
//! misuse HTTP/2 itself (many streams, streams reset at once).

use std::time::Duration;

use bytes::{Buf as _, Bytes};
use tonic::Code;

/// One HTTP/2 connection to a server.
#[derive(Debug)]
pub struct RawConnection {
    send: h2::client::SendRequest<Bytes>,
    driver: tokio::task::JoinHandle<Result<(), h2::Error>>,
}

/// What a call got back.
#[derive(Debug, Clone)]
pub struct RawReply {
    /// The gRPC status.
    pub code: Code,
    /// Its message.
    pub message: String,
    /// The response messages' bytes.
    pub messages: Vec<Bytes>,
}

impl RawConnection {
    /// Connects to `127.0.0.1:port` (as `localhost`) with `config` (ALPN h2).
    pub async fn open(port: u16, config: rustls::ClientConfig) -> Result<Self, String> {
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name =
            rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (send, connection) = h2::client::handshake(tls)
            .await
            .map_err(|e| format!("h2: {e}"))?;
        let driver = tokio::spawn(connection);
        Ok(Self { send, driver })
    }

    /// A request on `path` (`/package.Service/Method`) with gRPC headers.
    pub fn request(path: &str) -> http::Request<()> {
        http::Request::builder()
            .method("POST")
            .uri(format!("https://localhost{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap_or_else(|e| panic!("request: {e}"))
    }

    /// Sends `message` as the one request message of a call on `path`.
    pub async fn call(&self, path: &str, message: &[u8]) -> Result<RawReply, String> {
        let mut body = Vec::with_capacity(5 + message.len());
        body.push(0);
        body.extend_from_slice(&(message.len() as u32).to_be_bytes());
        body.extend_from_slice(message);
        self.call_body(path, Bytes::from(body)).await
    }

    /// Sends `body` as the whole request body (framing included) of a call on `path`.
    pub async fn call_body(&self, path: &str, body: Bytes) -> Result<RawReply, String> {
        let mut send = self
            .send
            .clone()
            .ready()
            .await
            .map_err(|e| format!("ready: {e}"))?;
        let (response, mut stream) = send
            .send_request(Self::request(path), false)
            .map_err(|e| format!("send: {e}"))?;
        // A server may answer (and reset the stream) before it has read the whole body, as it
        // does with an oversized message: its answer is read all the same.
        let mut rest = body;
        while !rest.is_empty() {
            stream.reserve_capacity(rest.len());
            let granted = match std::future::poll_fn(|cx| stream.poll_capacity(cx)).await {
                Some(Ok(granted)) => granted,
                _ => break,
            };
            let chunk = rest.split_to(granted.min(rest.len()));
            if stream.send_data(chunk, false).is_err() {
                break;
            }
        }
        if rest.is_empty() {
            let _ = stream.send_data(Bytes::new(), true);
        }
        let response = tokio::time::timeout(Duration::from_secs(10), response)
            .await
            .map_err(|_| "no response headers".to_owned())?
            .map_err(|e| format!("response: {e}"))?;
        let (head, mut body) = response.into_parts();
        if let Some(reply) = status_in(&head.headers) {
            return Ok(reply);
        }
        let mut data = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| format!("body: {e}"))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = body
            .trailers()
            .await
            .map_err(|e| format!("trailers: {e}"))?
            .ok_or_else(|| "no trailers".to_owned())?;
        let mut reply = status_in(&trailers).ok_or_else(|| "no grpc-status".to_owned())?;
        let mut data = Bytes::from(data);
        while data.len() >= 5 {
            let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
            data.advance(5);
            let take = len.min(data.len());
            reply.messages.push(data.split_to(take));
        }
        Ok(reply)
    }

    /// The sender, for tests that drive HTTP/2 streams themselves.
    pub fn sender(&self) -> h2::client::SendRequest<Bytes> {
        self.send.clone()
    }

    /// Whether the server ended the connection.
    pub fn is_closed(&self) -> bool {
        self.driver.is_finished()
    }
}

fn status_in(headers: &http::HeaderMap) -> Option<RawReply> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Some(RawReply {
        code: Code::from_i32(code),
        message,
        messages: Vec::new(),
    })
}
