//! `syncjob-emulator`: the Graph + Entra emulator alone (`syncjob-facade emulator` runs the same).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;

/// Run the Graph and Entra emulator alone.
#[derive(Parser)]
#[command(name = "syncjob-emulator", version)]
struct Args {
    #[arg(long, default_value_t = 8081)]
    port: u16,
    /// Seed file (default: the built-in seed, emulator/seed.json).
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Address to listen on; its URLs (issuer, Graph) still name 127.0.0.1 (containers).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .compact()
        .init();
    let args = Args::parse();
    match syncjob_emulator::run(args.seed.as_deref(), SocketAddr::new(args.bind, args.port)).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("syncjob-emulator: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
