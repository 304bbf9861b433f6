//! The `syncjob-facade` command line.

#[cfg(feature = "emulator")]
mod dev;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "syncjob-facade",
    version,
    about = "Starts Microsoft Entra provisioning jobs through Microsoft Graph, authenticated, authorised and audited."
)]
struct Cli {
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
    #[cfg(feature = "emulator")]
    Dev {
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Run the Graph and Entra emulator alone.
    #[cfg(feature = "emulator")]
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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    use syncjob_facade::cli;
    let result = match Cli::parse().command {
        Command::Serve { config } => cli::serve(config.as_deref()).await,
        #[cfg(feature = "emulator")]
        Command::Dev { port } => dev::dev(port).await,
        #[cfg(feature = "emulator")]
        Command::Emulator { port, seed, bind } => {
            dev::emulator(seed.as_deref(), std::net::SocketAddr::new(bind, port)).await
        }
        Command::Openapi => {
            println!("{}", cli::openapi_json());
            Ok(())
        }
        Command::CheckConfig { config } => cli::check_config(&config),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("syncjob-facade: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// mimalloc rather than the system allocator: a third less CPU per forwarded start and half
/// again the throughput in `benches/run.sh` (malloc and free were a tenth of the profile). Its
/// arenas are committed on use (`.cargo/config.toml`), which keeps idle memory where the system
/// allocator had it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
