//! W3C trace context in gRPC metadata: clients inject the current span's context
//! ([`TraceContext`], an interceptor on every channel of [`crate::client`]); servers extract it
//! and make it the parent of the call's span ([`crate::auth`]). Both use the global
//! propagator, a no-op until the binary installs one, so nothing is sent or read unless
//! tracing is configured.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Puts the current span's trace context into each outgoing call's metadata.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContext;

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

impl tonic::service::Interceptor for TraceContext {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let context = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut MetadataInjector(request.metadata_mut()));
        });
        Ok(request)
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Makes the trace context carried by `headers`, if any, the parent of `span`.
pub fn adopt_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    let _ = span.set_parent(parent);
}

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Says that spans are exported (an OTLP endpoint is configured): servers then give each
/// call's span what OTLP reads (its name, kind and parent trace). The binary calls it once, when
/// it installs its subscriber.
pub fn set_exporting(exporting: bool) {
    EXPORTING.store(exporting, Ordering::Relaxed);
}

/// Whether spans are exported; see [`set_exporting`].
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}
