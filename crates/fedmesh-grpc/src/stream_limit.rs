//! Concurrent server streams per caller identity.
//!
//! A stream (a watch, a backup, a reflection session) holds a task, a channel and HTTP/2
//! buffers on the server for as long as its client keeps it open; the per-peer call rate does
//! not bound how many a caller accumulates. Each identity (from its certificate) may have
//! `limits.max_streams_per_identity` open at once: past it a new one is refused with
//! `RESOURCE_EXHAUSTED` before its handler runs, and other identities are not affected. A
//! stream's place is given back when its response body is dropped: the stream ended, or its
//! client went away (a reset stream or a closed connection).
//!
//! Placed after authentication (it needs the identity) and the rate limit.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use fedmesh_core::Identity;
use futures_util::future::{Either, Ready, ready};
use parking_lot::Mutex;
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

/// The server-streaming and bidirectional methods a server may serve: every one holds a place
/// while open. Tested against the descriptor sets of the contract, health and reflection.
pub const STREAMING_METHODS: &[&str] = &[
    "/fedmesh.v1.AdminService/Backup",
    "/fedmesh.v1.CatalogueService/WatchCatalogue",
    "/fedmesh.v1.IncidentService/WatchIncident",
    "/fedmesh.v1.JournalService/GetSnapshot",
    "/fedmesh.v1.JournalService/Watch",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The open streams of every identity.
#[derive(Debug, Clone)]
pub struct StreamLimitLayer {
    max: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl StreamLimitLayer {
    /// At most `max` streams open at once per identity.
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            open: Arc::default(),
        }
    }

    /// Takes a place for `peer`; `None` when it holds all of its own.
    fn acquire(&self, peer: &str) -> Option<StreamPlace> {
        let mut open = self.open.lock();
        let count = open.entry(peer.to_owned()).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(StreamPlace {
            peer: peer.to_owned(),
            open: Arc::clone(&self.open),
        })
    }
}

/// One open stream's place, given back when dropped.
#[derive(Debug)]
struct StreamPlace {
    peer: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(count) = open.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

impl<S> Layer<S> for StreamLimitLayer {
    type Service = StreamLimited<S>;
    fn layer(&self, inner: S) -> Self::Service {
        StreamLimited {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service built by [`StreamLimitLayer`].
#[derive(Debug, Clone)]
pub struct StreamLimited<S> {
    inner: S,
    layer: StreamLimitLayer,
}

impl<S, B> Service<http::Request<B>> for StreamLimited<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Self::Response, Self::Error>>, HoldingPlace<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if !STREAMING_METHODS.contains(&request.uri().path()) {
            return Either::Right(HoldingPlace {
                inner: self.inner.call(request),
                place: None,
            });
        }
        let peer = request
            .extensions()
            .get::<std::sync::Arc<Identity>>()
            .map(|identity| identity.to_uri())
            .unwrap_or_default();
        match self.layer.acquire(&peer) {
            Some(place) => Either::Right(HoldingPlace {
                inner: self.inner.call(request),
                place: Some(place),
            }),
            None => {
                tracing::warn!(peer = %peer, path = request.uri().path(), limit = self.layer.max, "stream limit reached: stream refused");
                Either::Left(ready(Ok(Status::resource_exhausted(format!(
                    "{peer} already has {} streams open, the limit (limits.max_streams_per_identity); close one and retry",
                    self.layer.max
                ))
                .into_http())))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A call's future that hands its stream's place to the response body.
    #[derive(Debug)]
    pub struct HoldingPlace<F> {
        #[pin]
        inner: F,
        place: Option<StreamPlace>,
    }
}

impl<F, E> Future for HoldingPlace<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let Some(place) = this.place.take() else {
            return Poll::Ready(Ok(response));
        };
        Poll::Ready(Ok(response.map(|body| {
            Body::new(PlacedBody {
                body,
                _place: place,
            })
        })))
    }
}

pin_project_lite::pin_project! {
    /// A stream's response body with its place: dropping it (the stream ended or was reset)
    /// gives the place back.
    struct PlacedBody {
        #[pin]
        body: Body,
        _place: StreamPlace,
    }
}

impl http_body::Body for PlacedBody {
    type Data = <Body as http_body::Body>::Data;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn an_identity_gets_its_places_and_others_are_unaffected() {
        let layer = StreamLimitLayer::new(2);
        let first = layer.acquire("a").unwrap();
        let _second = layer.acquire("a").unwrap();
        assert!(layer.acquire("a").is_none());
        assert!(layer.acquire("b").is_some(), "another identity has its own");
        drop(first);
        assert!(
            layer.acquire("a").is_some(),
            "a closed stream frees its place"
        );
    }

    #[test]
    fn every_streaming_method_of_the_served_contracts_is_listed() {
        let sets = [
            fedmesh_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        let mut streaming = Vec::new();
        for set in sets {
            let set = prost_types::FileDescriptorSet::decode(set).unwrap();
            for file in set.file {
                for service in &file.service {
                    for method in &service.method {
                        if method.server_streaming() || method.client_streaming() {
                            streaming.push(format!(
                                "/{}.{}/{}",
                                file.package(),
                                service.name(),
                                method.name()
                            ));
                        }
                    }
                }
            }
        }
        streaming.sort();
        streaming.dedup();
        let mut listed: Vec<String> = STREAMING_METHODS.iter().map(|m| (*m).to_owned()).collect();
        listed.sort();
        assert_eq!(listed, streaming);
    }
}
