//! A benchmark scenario the load generator cannot drive: 1,000 concurrent starts of one job,
//! against a facade whose Graph is the emulator with its start slowed down, so that every request
//! arrives while the first is in flight. Prints, as JSON: how many starts reached Graph, how many
//! callers got the 204, how many were shed, and how long after the first answer the last follower
//! had its own. Run by `benches/run.py`:
//! `scenarios FACADE_URL EMULATOR_URL TOKEN SERVICE_PRINCIPAL JOB`.

use std::time::Instant;

const REQUESTS: usize = 1000;
const DELAY_MS: u64 = 1000;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [facade, emulator, token, sp, job] = &args[..] else {
        eprintln!("usage: scenarios FACADE_URL EMULATOR_URL TOKEN SERVICE_PRINCIPAL JOB");
        std::process::exit(2);
    };
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(REQUESTS)
        .build()
        .expect("client");
    http.delete(format!("{emulator}/_emulator/calls"))
        .send()
        .await
        .expect("reset calls");
    http.post(format!("{emulator}/_emulator/faults"))
        .json(&serde_json::json!({"operation": "start", "delayMs": DELAY_MS}))
        .send()
        .await
        .expect("inject the delay");
    let url = format!("{facade}/v1.0/servicePrincipals/{sp}/synchronization/jobs/{job}/start");
    let began = Instant::now();
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let request = http.post(&url).bearer_auth(token).send();
            tokio::spawn(async move {
                let status = request.await.map_or(0, |r| r.status().as_u16());
                (status, began.elapsed())
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(REQUESTS);
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    let first = answers.iter().map(|(_, at)| *at).min().unwrap_or_default();
    let last = answers.iter().map(|(_, at)| *at).max().unwrap_or_default();
    let counts: serde_json::Value = http
        .get(format!("{emulator}/_emulator/calls"))
        .send()
        .await
        .expect("calls")
        .json()
        .await
        .expect("calls json");
    let within = last.saturating_sub(first);
    println!(
        "{}",
        serde_json::json!({
            "requests": REQUESTS,
            "delay_ms": DELAY_MS,
            "upstream_starts": counts["counts"]["start"],
            "answered_204": answers.iter().filter(|(s, _)| *s == 204).count(),
            "shed": answers.iter().filter(|(s, _)| *s == 503).count(),
            "first_answer_ms": first.as_millis(),
            "followers_within_ms": (within.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
        })
    );
}
