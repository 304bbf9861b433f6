//! The commands of the service that need no emulator: `serve`, `openapi`, `check-config`, and
//! the logging they share. The binary (`src/main.rs`) parses the command line and adds `dev` and
//! `emulator` when built with the emulator.

use std::path::Path;

use tracing_subscriber::EnvFilter;

use crate::config::Config;
use crate::server::{Server, shutdown_signal};

/// Logs as JSON lines (`serve`) or human-readable (`dev`), to stderr, with the `audit` target
/// always on.
///
/// Operational lines are written by a thread of their own, so that no request waits on stderr
/// for them; that writer blocks rather than drops a line when its queue is full, and the
/// returned guard flushes what is queued when it is dropped, at exit. Audit lines are written
/// before the answer leaves, directly: a process killed right after answering has still
/// recorded its decision.
#[must_use = "dropping the guard stops the log writer"]
pub fn init_logging(json: bool) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (background, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        // The queue is allocated whole at start: the default (128,000 lines) is 4 MB resident
        // for lines that come a few per second (audit lines do not pass through it).
        .buffered_lines_limit(4096)
        .lossy(false)
        .thread_name("syncjob-log")
        // The thread drains every queued line, then flushes: under load, one write for many
        // lines rather than one each (a line is never held past the drain that found it).
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let writer = background
        .with_filter(|meta: &tracing::Metadata<'_>| meta.target() != "audit")
        .or_else(std::io::stderr);
    // The audit trail is not a log level to tune away: it stays on whatever RUST_LOG says.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("audit=info".parse().expect("a valid directive"));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(json.then(|| {
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                // One span per request: the list would repeat it on every line.
                .with_span_list(false)
                .with_writer(writer.clone())
        }))
        .with((!json).then(|| {
            tracing_subscriber::fmt::layer()
                .compact()
                .with_writer(writer)
        }));
    #[cfg(feature = "otel")]
    let registry = registry.with(otel::layer());
    registry.init();
    guard
}

/// OpenTelemetry (cargo feature `otel`): spans go to the OTLP/HTTP endpoint named by the
/// standard `OTEL_EXPORTER_OTLP_ENDPOINT` (and the other `OTEL_*` variables); without it, none.
#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::trace::TracerProvider as _;

    pub fn layer<S>() -> Option<impl tracing_subscriber::Layer<S>>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT")?;
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => exporter,
            Err(error) => {
                eprintln!("syncjob-facade: OpenTelemetry export disabled: {error}");
                return None;
            }
        };
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("syncjob-facade")
                    .build(),
            )
            .build();
        let tracer = provider.tracer("syncjob-facade");
        opentelemetry::global::set_tracer_provider(provider);
        Some(tracing_opentelemetry::layer().with_tracer(tracer))
    }
}

/// `serve`: the service, until SIGTERM or ctrl-c.
pub async fn serve(config: Option<&Path>) -> Result<(), crate::Error> {
    let _logging = init_logging(true);
    let valid = Config::load(config)?;
    for warning in valid.config.warnings() {
        tracing::warn!("{warning}");
    }
    Server::bind(valid).await?.run(shutdown_signal()).await;
    Ok(())
}

/// `check-config`: validates, prints the effective configuration (secrets redacted) and warnings.
pub fn check_config(path: &Path) -> Result<(), crate::Error> {
    let config = Config::load(Some(path))?.config;
    print!("{}", config.to_redacted_toml());
    for warning in config.warnings() {
        eprintln!("warning: {warning}");
    }
    eprintln!("configuration is valid");
    Ok(())
}

/// The OpenAPI document as committed in `openapi/openapi.json`.
pub fn openapi_json() -> String {
    crate::http::openapi()
        .to_pretty_json()
        .expect("OpenAPI document serialises")
}
