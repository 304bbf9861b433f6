//! Micro-benchmarks of the per-request hot path of a start, each step alone: token validation
//! (first sight of a token, its signing key already cached; and a token seen before), the
//! authorisation decision, parsing the path and its ids, the guard's decision with the memory
//! store, and rendering an error. `cargo bench --bench hot_path`; `benches/run.sh` measures the
//! whole request against nginx and HAProxy.
//!
//! The identity provider is the emulator, in this process, on 127.0.0.1.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use divan::Bencher;
use syncjob_emulator::{Emulator, Seed};
use syncjob_facade::auth::Authenticator;
use syncjob_facade::auth::authz::Policy;
use syncjob_facade::config::Config;
use syncjob_facade::error::ApiError;
use syncjob_facade::guard::store::Store;
use syncjob_facade::guard::{Flight, Guard, JobKey};
use syncjob_facade::http::graph_path;
use syncjob_facade::ids::{JobId, ServicePrincipalId};
use syncjob_facade::outcome::Outcome;

const SP: &str = "2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d";
const START_PATH: &str = "/v1.0/servicePrincipals/2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d/synchronization/jobs/AAD2AADProvisioning.0123456789abcdef.fedcba9876543210/start";

fn main() {
    divan::main();
}

/// The runtime, the emulator, the facade's configuration and an authenticator that has
/// fetched the emulator's signing keys.
struct World {
    runtime: tokio::runtime::Runtime,
    emulator: Emulator,
    config: Config,
    auth: Authenticator,
    portal: String,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let emulator = runtime
            .block_on(Emulator::spawn(
                Seed::default_seed(),
                "127.0.0.1:0".parse().unwrap(),
            ))
            .unwrap();
        let config = Config::from_toml(&emulator.facade_config_toml()).unwrap();
        let auth = Authenticator::new(&config.auth, reqwest::Client::new());
        runtime.block_on(auth.keys().refresh()).unwrap();
        let portal = emulator.seed().applications[1].client_id.clone();
        World {
            runtime,
            emulator,
            config,
            auth,
            portal,
        }
    })
}

/// A token never seen before (a distinct `uti`), so that its signature is checked.
fn fresh_token(world: &World, n: u64) -> String {
    let mut claims = world.emulator.app_claims(&world.portal);
    claims["uti"] = format!("bench-{n}").into();
    world.emulator.mint(&claims)
}

#[divan::bench]
fn token_first_seen_key_cached(bencher: Bencher) {
    let world = world();
    let mut n = 0;
    bencher
        .with_inputs(|| {
            n += 1;
            fresh_token(world, n)
        })
        .bench_local_values(|token| {
            world
                .runtime
                .block_on(world.auth.authenticate(&token))
                .unwrap()
        });
}

#[divan::bench]
fn token_seen_before(bencher: Bencher) {
    let world = world();
    let token = fresh_token(world, 0);
    world
        .runtime
        .block_on(world.auth.authenticate(&token))
        .unwrap();
    bencher.bench_local(|| {
        world
            .runtime
            .block_on(world.auth.authenticate(divan::black_box(&token)))
            .unwrap()
    });
}

#[divan::bench]
fn authorisation(bencher: Bencher) {
    let world = world();
    let token = fresh_token(world, 0);
    let caller = world
        .runtime
        .block_on(world.auth.authenticate(&token))
        .unwrap();
    let policy = Policy::new(&world.config.auth, false);
    bencher.bench_local(|| policy.authorize(divan::black_box(&caller)).unwrap());
}

#[divan::bench]
fn path_and_ids(bencher: Bencher) {
    bencher.bench_local(|| {
        let path = graph_path::parse(divan::black_box(START_PATH)).unwrap();
        (path.service_principal.unwrap(), path.job.unwrap().unwrap())
    });
}

/// The guard's decision for a start nobody else is making, with the memory store, cooldown on:
/// the flight, the cooldown check and record, and leaving the flight.
#[divan::bench]
fn guard_decision_memory_store(bencher: Bencher) {
    let runtime = &world().runtime;
    let store = || Store::open("memory", 100_000).unwrap();
    let guard = Guard::new(
        store(),
        store(),
        store(),
        Duration::from_secs(60),
        Duration::from_secs(60),
        Duration::from_secs(30),
    );
    let sp = ServicePrincipalId::parse(SP).unwrap();
    let mut n = 0u64;
    bencher
        .with_inputs(|| {
            n += 1;
            let job = JobId::parse(&format!("job.{n}")).unwrap();
            (JobKey::new(&sp, &job), job)
        })
        .bench_local_values(|(key, job)| {
            runtime.block_on(async {
                let started = async {
                    Ok((
                        Outcome::from_graph(
                            StatusCode::NO_CONTENT,
                            HeaderMap::new(),
                            String::new(),
                        ),
                        (),
                    ))
                };
                match guard.single_flight(&key, &job, started).await.unwrap() {
                    Flight::Led(outcome, ()) => outcome,
                    Flight::Joined(_) => unreachable!("nobody else starts this job"),
                }
            })
        });
}

#[divan::bench]
fn error_rendering(bencher: Bencher) {
    bencher.bench_local(|| {
        ApiError::invalid_token(divan::black_box("The token has expired.")).into_response()
    });
}
