//! The command line: `serve`, `dev`, `emulator`, `openapi`, `check-config`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, CredentialKind, Secret};
use crate::emulator::{Emulator, FACADE_AUDIENCE, Seed};
use crate::server::{Server, shutdown_signal};

#[derive(Parser)]
#[command(
    name = "syncjob-facade",
    version,
    about = "Starts Microsoft Entra provisioning jobs through Microsoft Graph, authenticated, authorised and audited."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// The TOML configuration file.
        #[arg(long, env = "SYNCJOB_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the service with a built-in Graph and Entra emulator: nothing to configure.
    Dev {
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Run the Graph and Entra emulator alone.
    Emulator {
        #[arg(long, default_value_t = 8081)]
        port: u16,
        /// Seed file (default: the built-in seed, emulator/seed.json).
        #[arg(long)]
        seed: Option<PathBuf>,
        /// Address to listen on; its URLs (issuer, Graph) still name 127.0.0.1 (containers).
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Validate a configuration and print it, secrets redacted.
    CheckConfig {
        #[arg(long, env = "SYNCJOB_CONFIG")]
        config: PathBuf,
    },
}

fn init_logging(json: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
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
                .with_writer(std::io::stderr)
        }))
        .with((!json).then(|| {
            tracing_subscriber::fmt::layer()
                .compact()
                .with_writer(std::io::stderr)
        }));
    #[cfg(feature = "otel")]
    let registry = registry.with(otel::layer());
    registry.init();
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

pub async fn run(cli: Cli) -> Result<(), crate::Error> {
    match cli.command {
        Command::Serve { config } => {
            init_logging(true);
            let config = Config::load(config.as_deref())?;
            for warning in config.warnings() {
                tracing::warn!("{warning}");
            }
            Server::bind(config).await?.run(shutdown_signal()).await?;
        }
        Command::Dev { port } => {
            init_logging(false);
            dev(port).await?;
        }
        Command::Emulator { port, seed, bind } => {
            init_logging(false);
            let seed = match seed {
                Some(path) => Seed::from_file(&path)
                    .map_err(|e| crate::Error::Startup(format!("seed {}: {e}", path.display())))?,
                None => Seed::default_seed(),
            };
            let emulator = Emulator::spawn(seed, SocketAddr::new(bind, port)).await?;
            print_emulator_banner(&emulator);
            shutdown_signal().await;
        }
        Command::Openapi => {
            println!("{}", openapi_json());
        }
        Command::CheckConfig { config } => {
            let config = Config::load(Some(&config))?;
            print!("{}", config.to_redacted_toml());
            for warning in config.warnings() {
                eprintln!("warning: {warning}");
            }
            eprintln!("configuration is valid");
        }
    }
    Ok(())
}

/// The OpenAPI document as committed in `openapi/openapi.json`.
pub fn openapi_json() -> String {
    crate::http::openapi()
        .to_pretty_json()
        .expect("OpenAPI document serialises")
}

/// The facade's configuration against an emulator.
pub fn config_for_emulator(emulator: &Emulator, listen: SocketAddr) -> Config {
    let facade = &emulator.seed().applications[0];
    let mut config = Config::default();
    config.server.listen = listen.to_string();
    config.auth.issuers = vec![emulator.issuer()];
    config.auth.audiences = vec![FACADE_AUDIENCE.to_owned()];
    config.auth.openid_config_url = Some(emulator.openid_config_url());
    config.graph.base_url = emulator.base_url();
    config.graph.credential.kind = CredentialKind::ClientSecret;
    config.graph.credential.authority = emulator.base_url();
    config.graph.credential.tenant_id = Some(emulator.tenant_id().to_owned());
    config.graph.credential.client_id = Some(facade.client_id.clone());
    config.graph.credential.client_secret = Some(Secret::new(facade.client_secret.clone()));
    config
}

async fn dev(port: u16) -> Result<(), crate::Error> {
    let emulator = Emulator::spawn(
        Seed::default_seed(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .await?;
    let config = config_for_emulator(&emulator, SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    config.validate()?;
    let server = Server::bind(config).await?;
    let url = format!("http://{}", server.local_addr());
    print_dev_banner(&emulator, &url);
    server.run(shutdown_signal()).await?;
    Ok(())
}

/// What a person needs to use the emulator by hand: where it is, the seeded credentials, and
/// tokens with curl lines that work as printed.
fn print_emulator_banner(emulator: &Emulator) {
    let seed = emulator.seed();
    let base = emulator.base_url();
    let facade_app = &seed.applications[0];
    let graph_token = emulator
        .graph_claims(&facade_app.client_id)
        .map(|claims| emulator.mint(&long_lived(claims)))
        .unwrap_or_default();
    let admin = emulator.mint(&long_lived(
        emulator.delegated_claims(&seed.users[0].object_id),
    ));
    let app = emulator.mint(&long_lived(
        emulator.app_claims(&seed.applications[1].client_id),
    ));
    let paused = &seed.service_principals[0];
    println!(
        r#"Graph + Entra emulator on {base}
  issuer        {issuer}
  discovery     {discovery}
  token         {token_url}
  tenant        {tenant}
  calls/faults  {base}/_emulator/calls, {base}/_emulator/faults

Client credentials (the seeded Graph credential of a facade, {facade_name}):
  client id     {client_id}
  client secret {client_secret}
  curl -s {token_url} -d grant_type=client_credentials -d client_id={client_id} -d client_secret={client_secret} -d scope=https://graph.microsoft.com/.default

Tokens (valid 12 hours; the emulator's, worthless elsewhere):
  export GRAPH_TOKEN='{graph_token}'   # Graph token of {facade_name}
  export ADMIN_TOKEN='{admin}'   # caller token for a facade (aud {audience}): {admin_name}
  export APP_TOKEN='{app}'   # caller token for a facade (aud {audience}): {app_name}

Graph routes, as Graph answers them:
  curl -s -H "Authorization: Bearer $GRAPH_TOKEN" {base}/v1.0/servicePrincipals/{sp}/synchronization/jobs/{job}
  curl -i -X POST -H "Authorization: Bearer $GRAPH_TOKEN" {base}/v1.0/servicePrincipals/{sp}/synchronization/jobs/{job}/start

A facade pointed here: auth.issuers = ["{issuer}"], auth.audiences = ["{audience}"],
graph.base_url = "{base}", graph.credential.authority = "{base}" with the client id and secret above.
"#,
        issuer = emulator.issuer(),
        discovery = emulator.openid_config_url(),
        token_url = emulator.token_url(),
        tenant = emulator.tenant_id(),
        facade_name = facade_app.display_name,
        client_id = facade_app.client_id,
        client_secret = facade_app.client_secret,
        audience = FACADE_AUDIENCE,
        admin_name = seed.users[0].name,
        app_name = seed.applications[1].display_name,
        sp = paused.id,
        job = paused.jobs[0].id,
    );
}

/// Tokens valid for a working day, so a demo does not expire under the user.
fn long_lived(mut claims: serde_json::Value) -> serde_json::Value {
    let now = jsonwebtoken::get_current_timestamp();
    claims["exp"] = (now + 12 * 3600).into();
    claims
}

fn print_dev_banner(emulator: &Emulator, url: &str) {
    let seed = emulator.seed();
    let admin = long_lived(emulator.delegated_claims(&seed.users[0].object_id));
    let reader = long_lived(emulator.delegated_claims(&seed.users[1].object_id));
    let app = long_lived(emulator.app_claims(&seed.applications[1].client_id));
    let paused = &seed.service_principals[0];
    let quarantined = &seed.service_principals[1];
    println!(
        r#"
syncjob-facade (dev) on {url}, with the Graph + Entra emulator on {emu}

Tokens (valid 12 hours; the emulator's, worthless elsewhere):
  export ADMIN_TOKEN='{admin}'   # delegated: {admin_name}, Synchronization.ReadWrite.All + Application Administrator
  export APP_TOKEN='{app}'   # application: {app_name}, role Synchronization.ReadWrite.All
  export READER_TOKEN='{reader}'   # delegated: {reader_name}, no directory role

Start the paused job ({paused_name}) -> 204:
  curl -i -X POST -H "Authorization: Bearer $ADMIN_TOKEN" {url}/v1.0/servicePrincipals/{paused_sp}/synchronization/jobs/{paused_job}/start

A caller without a directory role -> 403:
  curl -i -X POST -H "Authorization: Bearer $READER_TOKEN" {url}/v1.0/servicePrincipals/{paused_sp}/synchronization/jobs/{paused_job}/start

What would happen (whatIf report, nothing sent) for the quarantined job ({quarantined_name}):
  curl -s -X POST -H "Authorization: Bearer $APP_TOKEN" '{url}/v1.0/servicePrincipals/{quarantined_sp}/synchronization/jobs/{quarantined_job}/start?whatIf=true'

The cmdlet's -InputObject form:
  curl -i -X POST -H "Authorization: Bearer $APP_TOKEN" -H 'Content-Type: application/json' '{url}/start?passThru=true' -d '{{"ServicePrincipalId":"{quarantined_sp}","SynchronizationJobId":"{quarantined_job}"}}'

What Graph (the emulator) received:  curl -s {emu}/_emulator/calls
API documentation:                  {url}/docs
"#,
        emu = emulator.base_url(),
        admin = emulator.mint(&admin),
        app = emulator.mint(&app),
        reader = emulator.mint(&reader),
        admin_name = seed.users[0].name,
        reader_name = seed.users[1].name,
        app_name = seed.applications[1].display_name,
        paused_name = paused.display_name,
        paused_sp = paused.id,
        paused_job = paused.jobs[0].id,
        quarantined_name = quarantined.display_name,
        quarantined_sp = quarantined.id,
        quarantined_job = quarantined.jobs[0].id,
    );
}
