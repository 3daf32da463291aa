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

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for Malformed<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = self.inner.call(request);
        Box::pin(async move {
            let mut response = call.await?;
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
            Ok(response)
        })
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
