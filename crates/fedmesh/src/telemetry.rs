//! Logs (human or JSON lines on stderr) and, when an OTLP endpoint is configured, span export.

use anyhow::Result;
use fedmesh_core::config::{LogConfig, LogFormat, TelemetryConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
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
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("fedmesh")));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    match log.format {
        LogFormat::Human => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()?,
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
    }
    Ok(Telemetry { provider })
}
