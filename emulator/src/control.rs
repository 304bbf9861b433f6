//! The `/_emulator/...` control API: what tests and demos that run the binary use instead of
//! the Rust handle (call log, faults, key rotation, caller and federated tokens, job status, the
//! lifetime of sign-in tokens, the delay before a started job runs).
//! Not counted, recorded or faulted.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Emulator, Fault, TOKEN_LIFETIME_SECS, extend};

const JOB_STATUS_CODES: [&str; 5] = ["NotConfigured", "NotRun", "Active", "Paused", "Quarantine"];

pub(crate) fn routes() -> Router<Emulator> {
    Router::new()
        .route("/calls", get(calls).delete(reset_calls))
        .route("/faults", post(inject).delete(clear_faults))
        .route("/keys/rotate", post(rotate))
        .route("/keys/current.pem", get(current_key))
        .route("/tokens", post(tokens))
        .route("/sign-in-lifetime", put(sign_in_lifetime))
        .route("/start-delay", put(start_delay))
        .route("/jobs/{sp}/{job}", get(job).put(set_job))
}

fn bad_request(status: StatusCode, message: String) -> Response {
    let code = if status == StatusCode::NOT_FOUND {
        "NotFound"
    } else {
        "BadRequest"
    };
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn calls(State(emu): State<Emulator>) -> Json<Value> {
    Json(json!({"counts": emu.counts_json(), "calls": emu.calls()}))
}

async fn reset_calls(State(emu): State<Emulator>) -> StatusCode {
    emu.reset_calls();
    StatusCode::NO_CONTENT
}

async fn inject(State(emu): State<Emulator>, Json(fault): Json<Fault>) -> StatusCode {
    emu.inject(fault);
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(emu): State<Emulator>) -> StatusCode {
    emu.clear_faults();
    StatusCode::NO_CONTENT
}

/// The current signing key's public half as SPKI PEM, for relying parties that take a key file
/// rather than a JWKS (a gateway's JWT check in the benchmark).
async fn current_key(State(emu): State<Emulator>) -> String {
    emu.public_key_pem()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RotateQuery {
    #[serde(default)]
    retire_old: bool,
}

async fn rotate(State(emu): State<Emulator>, Query(query): Query<RotateQuery>) -> Json<Value> {
    Json(json!({"kid": emu.rotate_keys(query.retire_old)}))
}

#[derive(Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
enum TokenKind {
    Delegated {
        user_object_id: String,
    },
    App {
        client_id: String,
    },
    /// A workload identity token from [`super::FEDERATED_ISSUER`], for runs of the binary that
    /// need a federated token file.
    Federated {
        subject: String,
        #[serde(default)]
        lifetime_secs: Option<u64>,
    },
}

#[derive(Deserialize)]
struct TokenOrder {
    #[serde(flatten)]
    kind: TokenKind,
    /// Merged over the default claims; a `null` member removes that claim.
    #[serde(default)]
    claims: Map<String, Value>,
}

async fn tokens(State(emu): State<Emulator>, Json(order): Json<TokenOrder>) -> Response {
    let claims = match &order.kind {
        TokenKind::Delegated { user_object_id } => emu
            .try_delegated_claims(user_object_id)
            .ok_or_else(|| format!("no seed user with objectId '{user_object_id}'")),
        TokenKind::App { client_id } => emu
            .try_app_claims(client_id)
            .ok_or_else(|| format!("no seed application with clientId '{client_id}'")),
        TokenKind::Federated {
            subject,
            lifetime_secs,
        } => Ok(emu.federated_claims(subject, lifetime_secs.unwrap_or(TOKEN_LIFETIME_SECS))),
    };
    match claims {
        Ok(mut claims) => {
            extend(&mut claims, Value::Object(order.claims));
            Json(json!({"access_token": emu.mint(&claims)})).into_response()
        }
        Err(message) => bad_request(StatusCode::BAD_REQUEST, message),
    }
}

#[derive(Deserialize)]
struct Lifetime {
    seconds: u64,
}

/// `PUT /_emulator/sign-in-lifetime {"seconds": N}`: tokens from later sign-ins expire after N
/// seconds (0: an hour), so that a page's expiry can be seen without waiting an hour.
async fn sign_in_lifetime(
    State(emu): State<Emulator>,
    Json(lifetime): Json<Lifetime>,
) -> StatusCode {
    emu.set_sign_in_lifetime(lifetime.seconds);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Delay {
    milliseconds: u64,
}

/// `PUT /_emulator/start-delay {"milliseconds": N}`: an accepted start turns its job `Active`
/// N ms later (0: at once), so that a client's polling can be seen at work.
async fn start_delay(State(emu): State<Emulator>, Json(delay): Json<Delay>) -> StatusCode {
    emu.set_start_delay(std::time::Duration::from_millis(
        delay.milliseconds.min(600_000),
    ));
    StatusCode::NO_CONTENT
}

async fn job(State(emu): State<Emulator>, Path((sp, job)): Path<(String, String)>) -> Response {
    match emu.job_status(&sp, &job) {
        Some(status) => Json(json!({"status": status})).into_response(),
        None => bad_request(
            StatusCode::NOT_FOUND,
            format!("no job '{job}' on service principal '{sp}'"),
        ),
    }
}

#[derive(Deserialize)]
struct JobStatus {
    status: String,
}

async fn set_job(
    State(emu): State<Emulator>,
    Path((sp, job)): Path<(String, String)>,
    Json(body): Json<JobStatus>,
) -> Response {
    if !JOB_STATUS_CODES.contains(&body.status.as_str()) {
        let message = format!("status must be one of {}", JOB_STATUS_CODES.join(", "));
        return bad_request(StatusCode::BAD_REQUEST, message);
    }
    if !emu.try_set_job_status(&sp, &job, &body.status) {
        return bad_request(
            StatusCode::NOT_FOUND,
            format!("no job '{job}' on service principal '{sp}'"),
        );
    }
    Json(json!({"status": body.status})).into_response()
}
