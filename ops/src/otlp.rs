//! OTLP trace export (feature `otlp`): when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, the process's `tracing` spans (`run`, `island`,
//! `checkpoint`, and any of the user's) go to that collector as OTLP/HTTP protobuf, batched on
//! the SDK's export thread; the service is `OTEL_SERVICE_NAME`, else `weir`. The other standard
//! variables (`OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`, `OTEL_RESOURCE_ATTRIBUTES`, the batch
//! settings) are the SDK's. Plain HTTP only: send to a collector on the node (or a sidecar),
//! which forwards over TLS.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::Mutex;
use std::time::Duration;

/// The provider installed by [`layer`], flushed by [`shutdown`].
static PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);

/// How long [`shutdown`] waits for the last spans to be sent.
const FLUSH: Duration = Duration::from_secs(5);

/// The collector's address, if export is asked for.
fn endpoint() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))
}

/// Sends the exporter's requests with ureq (blocking, on the export thread).
#[derive(Debug)]
struct Ureq(ureq::Agent);

#[async_trait::async_trait]
impl HttpClient for Ureq {
    async fn send_bytes(
        &self,
        request: Request<bytes::Bytes>,
    ) -> Result<Response<bytes::Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, body.to_vec());
        let response = self.0.run(request)?;
        let (parts, mut body) = response.into_parts();
        let body = body.read_to_vec()?;
        Ok(Response::from_parts(parts, bytes::Bytes::from(body)))
    }
}

/// Why OTLP export could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up OTLP export to {endpoint}: {reason}")]
pub struct OtlpError {
    /// The collector asked for.
    pub endpoint: String,
    /// What the SDK said.
    pub reason: String,
}

/// The tracing layer exporting spans, when an endpoint is configured (`None` otherwise).
pub fn layer<S>() -> Result<
    Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>>,
    OtlpError,
>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let Some(endpoint) = endpoint() else {
        return Ok(None);
    };
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    // The SDK reads the endpoint variables itself (the traces one as is, the general one with
    // `/v1/traces` appended).
    let exporter = SpanExporter::builder()
        .with_http()
        .with_http_client(Ureq(agent))
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| OtlpError {
            endpoint: endpoint.clone(),
            reason: e.to_string(),
        })?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").map_or(true, |s| s.trim().is_empty()) {
        resource = resource.with_service_name("weir");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("weir");
    if let Ok(mut p) = PROVIDER.lock() {
        *p = Some(provider);
    }
    Ok(Some(tracing_opentelemetry::layer().with_tracer(tracer)))
}

/// Sends the spans not yet exported and stops the exporter (a no-op without one).
pub fn shutdown() {
    let provider = PROVIDER.lock().ok().and_then(|mut p| p.take());
    if let Some(p) = provider
        && let Err(e) = p.shutdown_with_timeout(FLUSH)
    {
        tracing::warn!(error = %e, "OTLP export: the last spans may not have been sent");
    }
}
