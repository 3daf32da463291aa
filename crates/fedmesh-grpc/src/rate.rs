//! Per-peer rate limiting: each caller identity (from its certificate) gets a token bucket of
//! `limits.max_calls_per_second_per_peer` calls per second with a burst of
//! `limits.max_call_burst_per_peer`. A call over the limit is answered `RESOURCE_EXHAUSTED`
//! at once (load shedding), without reaching the handler; other peers are not affected.
//!
//! Placed after authentication (it needs the identity) and before the deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use fedmesh_core::Identity;
use futures_util::future::{Either, Ready, ready};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

/// Peers remembered at most; the least recently seen are forgotten beyond it.
const MAX_PEERS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every peer.
#[derive(Debug, Clone)]
pub struct RateLayer {
    per_second: f64,
    burst: f64,
    buckets: Arc<Mutex<HashMap<Arc<Identity>, Bucket>>>,
}

impl RateLayer {
    /// `per_second` calls per second and peer, bursts of `burst`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            buckets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes a token for `peer` at `now`; false when its bucket is empty.
    fn admit(&self, peer: &Arc<Identity>, now: Instant) -> bool {
        let mut buckets = match self.buckets.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() >= MAX_PEERS && !buckets.contains_key(peer) {
            // Forget the peer seen longest ago.
            if let Some(oldest) = buckets
                .iter()
                .min_by_key(|(_, b)| b.at)
                .map(|(k, _)| Arc::clone(k))
            {
                buckets.remove(&oldest);
            }
        }
        // The key shares the connection's identity: a new peer costs no copy either.
        let bucket = buckets.entry(Arc::clone(peer)).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl<S> Layer<S> for RateLayer {
    type Service = RateLimited<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service built by [`RateLayer`].
#[derive(Debug, Clone)]
pub struct RateLimited<S> {
    inner: S,
    layer: RateLayer,
}

impl<S, B> Service<http::Request<B>> for RateLimited<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Self::Response, Self::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // Authentication, before this layer, gave every call it lets through an identity.
        let Some(peer) = request.extensions().get::<Arc<Identity>>().cloned() else {
            return Either::Right(self.inner.call(request));
        };
        if self.layer.admit(&peer, Instant::now()) {
            Either::Right(self.inner.call(request))
        } else {
            tracing::warn!(peer = %peer, path = request.uri().path(), "rate limit exceeded: call shed");
            Either::Left(ready(Ok(Status::resource_exhausted(format!(
                "rate limit of {} calls per second exceeded for {peer}; retry later",
                self.layer.per_second
            ))
            .into_http())))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_peer_gets_its_burst_then_its_rate_and_others_are_unaffected() {
        let layer = RateLayer::new(10, 5);
        let fed: fedmesh_core::FederationName = "fed".parse().unwrap();
        let a = Arc::new(Identity::node(fed.clone(), "a".parse().unwrap()));
        let b = Arc::new(Identity::node(fed, "b".parse().unwrap()));
        let start = Instant::now();
        let admitted = (0..20).filter(|_| layer.admit(&a, start)).count();
        assert_eq!(admitted, 5, "the burst");
        assert!(layer.admit(&b, start), "another peer has its own bucket");
        // 100 ms later, one more token (10 per second).
        let later = start + Duration::from_millis(100);
        assert!(layer.admit(&a, later));
        assert!(!layer.admit(&a, later));
        // A long pause refills up to the burst, not beyond.
        let much_later = start + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| layer.admit(&a, much_later)).count(), 5);
    }
}
