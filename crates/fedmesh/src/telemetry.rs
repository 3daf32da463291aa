//! Logs (human or JSON lines on stderr) and, when an OTLP endpoint is configured, span export.

use anyhow::Result;
use fedmesh_core::config::{LogConfig, LogFormat, TelemetryConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Keeps the span exporter alive; flush it with [`Telemetry::shutdown`] before exiting.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops span export.
    pub fn shutdown(self) {
        if let Some(Err(error)) = self.provider.map(|p| p.shutdown()) {
            eprintln!("span export shutdown: {error}");
        }
    }
}

/// Installs the global subscriber; spans are exported as `service` (and `instance`, a
/// member id, for nodes). `rust_log` (the `RUST_LOG` variable, passed in by the
/// binary), when set, overrides the configured filter.
pub fn init(
    log: &LogConfig,
    telemetry: &TelemetryConfig,
    service: &str,
    instance: Option<&str>,
    rust_log: Option<&str>,
) -> Result<Telemetry> {
    // W3C trace context in gRPC metadata (crate fedmesh_grpc::trace): calls made while
    // serving a call continue its trace, across institutions.
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let filter = match rust_log {
        Some(value) if !value.is_empty() => EnvFilter::try_new(value)?,
        _ => EnvFilter::try_new(&log.filter)?,
    };
    let provider = match &telemetry.otlp_endpoint {
        None => None,
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()?;
            let mut resource =
                opentelemetry_sdk::Resource::builder().with_service_name(service.to_owned());
            // Which member's node, when several export to one collector.
            if let Some(instance) = instance {
                resource = resource.with_attribute(opentelemetry::KeyValue::new(
                    "service.instance.id",
                    instance.to_owned(),
                ));
            }
            let resource = resource.build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
    };
    fedmesh_grpc::trace::set_exporting(provider.is_some());
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("fedmesh")));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    // Colour only on a terminal: a log file or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let quiet_exporter = OnceEvery::new(EXPORT_ERROR_EVERY_SECS);
    // Dynamic: asked at every event, not once per call site.
    let exporter_events = tracing_subscriber::filter::dynamic_filter_fn(move |meta, _| {
        !(meta.is_event() && meta.target().starts_with("opentelemetry"))
            || quiet_exporter.admit(unix_now())
    });
    match log.format {
        LogFormat::Human => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr)
                    .with_filter(exporter_events),
            )
            .try_init()?,
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_filter(exporter_events),
            )
            .try_init()?,
    }
    Ok(Telemetry { provider })
}

/// At most one line per this many seconds from OpenTelemetry's own logging: with the
/// collector down, every batch export fails and would say so.
const EXPORT_ERROR_EVERY_SECS: u64 = 60;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Admits one event per period.
#[derive(Debug)]
struct OnceEvery {
    every: u64,
    /// When the last admitted event was (Unix seconds + 1; 0: none yet).
    last: std::sync::atomic::AtomicU64,
}

impl OnceEvery {
    fn new(every: u64) -> Self {
        Self {
            every,
            last: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn admit(&self, now: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let last = self.last.load(Relaxed);
        if last != 0 && now + 1 < last + self.every {
            return false;
        }
        self.last
            .compare_exchange(last, now + 1, Relaxed, Relaxed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_period_is_admitted() {
        let gate = OnceEvery::new(60);
        assert!(gate.admit(1_000));
        assert!(!gate.admit(1_000));
        assert!(!gate.admit(1_059));
        assert!(gate.admit(1_060));
        assert!(!gate.admit(1_061));
    }
}
