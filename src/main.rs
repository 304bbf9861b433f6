use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = syncjob_facade::cli::Cli::parse();
    match syncjob_facade::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("syncjob-facade: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
