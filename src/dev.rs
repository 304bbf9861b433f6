//! `dev` and `emulator`: the facade composed with the Graph + Entra emulator, on one machine with
//! nothing to configure. Part of the binary only, behind the default `emulator` feature: the
//! service library never imports the emulator, and a build without the feature (the container
//! image) carries none of it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use syncjob_emulator::{Emulator, Seed};
use syncjob_facade::config::Config;
use syncjob_facade::server::{Server, shutdown_signal};

/// `dev`: an emulator on a free port and the facade, configured for it, on `port`.
pub async fn dev(port: u16) -> Result<(), syncjob_facade::Error> {
    let _logging = syncjob_facade::cli::init_logging(false);
    let emulator = Emulator::spawn(
        Seed::default_seed(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .await?;
    let mut config = Config::from_toml(&emulator.facade_config_toml())?;
    config.server.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let server = Server::bind(config.validate()?).await?;
    let url = format!("http://{}", server.local_addr());
    // The page's sign-in comes back to wherever `dev` listens, as a redirect URI registered
    // for the single-page application.
    if let Some(page) = emulator.single_page_application() {
        let port = server.local_addr().port();
        for host in ["127.0.0.1", "localhost"] {
            emulator.allow_redirect_uri(&page.client_id, &format!("http://{host}:{port}/ui"));
        }
    }
    print_dev_banner(&emulator, &url);
    server.run(shutdown_signal()).await;
    Ok(())
}

/// `emulator`: the emulator alone.
pub async fn emulator(seed: Option<&Path>, addr: SocketAddr) -> Result<(), syncjob_facade::Error> {
    let _logging = syncjob_facade::cli::init_logging(false);
    syncjob_emulator::run(seed, addr)
        .await
        .map_err(syncjob_facade::Error::Startup)
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

Operator page (sign in as {admin_name} to start jobs, as {reader_name} to see a refusal):
  {url}/ui

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

Read a job as a portal does before its Start button (status, quarantine, the guard's view; ETag):
  curl -i -H "Authorization: Bearer $APP_TOKEN" {url}/v1.0/servicePrincipals/{paused_sp}/synchronization/jobs/{paused_job}

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
