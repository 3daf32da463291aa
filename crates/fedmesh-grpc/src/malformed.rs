//! Malformed request messages are the client's fault: tonic answers a request it cannot decode
//! (invalid UTF-8 in a string, a truncated or too deeply nested message) with `INTERNAL`; this
//! layer turns those answers into `INVALID_ARGUMENT`, keeping tonic's message (which names the
//! field), so that clients and the `/metrics` counts tell them from server faults.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tower::{Layer, Service};

/// How tonic's decode failures start (`failed to decode Protobuf message: ...`), percent-encoded
/// as in the `grpc-message` header.
const DECODE_FAILURE: &str = "failed%20to%20decode%20Protobuf%20message";

/// The layer; see the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct MalformedLayer;

impl<S> Layer<S> for MalformedLayer {
    type Service = Malformed<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Malformed { inner }
    }
}

/// The service built by [`MalformedLayer`].
#[derive(Debug, Clone)]
pub struct Malformed<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for Malformed<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = MalformedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        MalformedFuture {
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`Malformed`] call: its response, a decoding failure's status changed
    /// to `INVALID_ARGUMENT`.
    pub struct MalformedFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, E> Future for MalformedFuture<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = match self.project().inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Ready(Ok(response)) => response,
        };
        {
            let headers = response.headers_mut();
            let internal = headers
                .get("grpc-status")
                .is_some_and(|s| s.as_bytes() == b"13");
            let undecodable = headers
                .get("grpc-message")
                .and_then(|m| m.to_str().ok())
                .is_some_and(|m| m.starts_with(DECODE_FAILURE));
            if internal && undecodable {
                headers.insert(
                    "grpc-status",
                    http::HeaderValue::from_static("3"), // INVALID_ARGUMENT
                );
            }
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt as _;

    use super::*;

    async fn answer(status: tonic::Status) -> tonic::Code {
        let inner = tower::service_fn(move |_: http::Request<()>| {
            let status = status.clone();
            async move { Ok::<_, Infallible>(status.into_http()) }
        });
        let response = MalformedLayer
            .layer(inner)
            .oneshot(http::Request::new(()))
            .await
            .unwrap();
        tonic::Status::from_header_map(response.headers()).map_or(tonic::Code::Ok, |s| s.code())
    }

    #[tokio::test]
    async fn only_decode_failures_become_invalid_argument() {
        assert_eq!(
            answer(tonic::Status::internal(
                "failed to decode Protobuf message: GetOfferRequest.offer_id: invalid string value"
            ))
            .await,
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            answer(tonic::Status::internal("the database failed")).await,
            tonic::Code::Internal
        );
        assert_eq!(
            answer(tonic::Status::not_found(
                "failed to decode Protobuf message"
            ))
            .await,
            tonic::Code::NotFound
        );
    }
}
