//! Signed webhooks: who a delivery comes from (Standard Webhooks or GitHub signatures, checked
//! over the raw body before anything parses it) and the per-target summary it is answered with.
//!
//! A verified signature stands in for a caller's token and allows exactly the hook's configured
//! targets; the payload never chooses what is started. Starting itself is the start pipeline's.

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::error::ApiError;
use crate::ids::{ApiVersion, JobId, ServicePrincipalId};
use crate::outcome::{Body, Outcome};
use crate::values::{Problems, Secret};

/// How a webhook sender signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WebhookScheme {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    #[default]
    Standard,
    /// GitHub: `X-Hub-Signature-256`, `X-GitHub-Delivery`.
    Github,
}

/// One `[[webhooks]]` entry: a hook, its secrets and the fixed targets it may start.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    #[serde(default)]
    pub scheme: WebhookScheme,
    /// Any one of them verifies (rotation). Standard Webhooks secrets are `whsec_<base64>`.
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// A file with more secrets, one per line (a mounted Kubernetes Secret); read at start-up.
    #[serde(default)]
    pub secrets_file: Option<std::path::PathBuf>,
    /// True: an Entra bearer token, authorised like any caller, also works.
    #[serde(default)]
    pub allow_bearer: bool,
    #[serde(default)]
    pub api_version: ApiVersion,
    pub targets: Vec<WebhookTarget>,
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    pub service_principal_id: ServicePrincipalId,
    pub synchronization_job_id: JobId,
}

/// Checks every hook, and adds each hook's `secrets_file` lines to its secrets (read once).
pub fn prepare(hooks: &mut [WebhookConfig], problems: &mut Problems) {
    let mut names = std::collections::HashSet::new();
    for (i, hook) in hooks.iter_mut().enumerate() {
        let key = |field: &str| format!("webhooks[{i}].{field}");
        if let Some(path) = &hook.secrets_file {
            match std::fs::read_to_string(path) {
                Err(e) => problems.add(
                    key("secrets_file"),
                    format!("cannot read {}: {e}", path.display()),
                ),
                Ok(text) => {
                    let before = hook.secrets.len();
                    hook.secrets.extend(
                        text.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(Secret::new),
                    );
                    if hook.secrets.len() == before {
                        problems.add(
                            key("secrets_file"),
                            format!("{} holds no secret", path.display()),
                        );
                    }
                }
            }
        }
        let name_ok = !hook.name.is_empty()
            && hook.name.len() <= 64
            && hook
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !name_ok {
            problems.add(
                key("name"),
                "1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'",
            );
        }
        if !names.insert(hook.name.clone()) {
            problems.add(key("name"), format!("'{}' is configured twice", hook.name));
        }
        if hook.secrets.is_empty() && !hook.allow_bearer {
            problems.add(
                key("secrets"),
                "at least one secret is required unless allow_bearer = true",
            );
        }
        for (j, secret) in hook.secrets.iter().enumerate() {
            let problem = match hook.scheme {
                WebhookScheme::Standard => standard_secret(secret.expose()).err(),
                WebhookScheme::Github if secret.expose().is_empty() => {
                    Some("must not be empty".into())
                }
                WebhookScheme::Github => None,
            };
            if let Some(problem) = problem {
                problems.add(format!("webhooks[{i}].secrets[{j}]"), problem);
            }
        }
        if hook.targets.is_empty() || hook.targets.len() > 20 {
            problems.add(key("targets"), "1 to 20 targets");
        }
    }
}

/// Standard Webhooks' tolerance for `webhook-timestamp`, both ways.
pub const TOLERANCE_SECS: u64 = 300;
/// Longest delivery id kept (signed or not): ids are remembered for 24 hours.
pub const MAX_DELIVERY_ID: usize = 255;

type HmacSha256 = Hmac<Sha256>;

/// The key bytes of a `whsec_<base64>` secret.
pub fn standard_secret(text: &str) -> Result<Vec<u8>, String> {
    let encoded = text
        .strip_prefix("whsec_")
        .ok_or("a Standard Webhooks secret has the form whsec_<base64>")?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| "the part after whsec_ is not base64".to_owned())?;
    if key.len() < 16 {
        return Err("the secret must hold at least 16 bytes".into());
    }
    Ok(key)
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "InvalidWebhookSignature", message)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .ok_or_else(|| unauthorized(format!("The {name} header is missing.")))?
        .to_str()
        .map_err(|_| unauthorized(format!("The {name} header is not readable.")))
}

fn delivery_id(text: &str, name: &str) -> Result<String, ApiError> {
    checked_delivery_id(text).ok_or_else(|| unauthorized(delivery_id_rule(name)))
}

fn checked_delivery_id(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()
        && text.len() <= MAX_DELIVERY_ID
        && text.bytes().all(|b| b.is_ascii_graphic()))
    .then(|| text.to_owned())
}

fn delivery_id_rule(name: &str) -> String {
    format!("The {name} header must be 1 to {MAX_DELIVERY_ID} visible ASCII characters.")
}

/// The `webhook-id` of a bearer-token sender: unsigned, so held to the same bounds as a signed
/// one before it is kept; a bad one is the sender's mistake (400), not a failed signature.
pub fn bearer_delivery_id(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("webhook-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(checked_delivery_id)
        .map(Some)
        .ok_or_else(|| ApiError::bad_request(delivery_id_rule("webhook-id")))
}

/// A verified delivery.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// The sender's delivery id, as shown in the summary.
    pub delivery_id: String,
    /// What its replays are recognised by: the signed id (Standard Webhooks), or the signature
    /// itself where the id is not signed (GitHub: a captured body and signature sent again
    /// with a new X-GitHub-Delivery is still the same delivery).
    pub replay_key: String,
}

/// Verifies a delivery.
pub fn verify(
    hook: &WebhookConfig,
    headers: &HeaderMap,
    body: &[u8],
    now: u64,
) -> Result<Verified, ApiError> {
    match hook.scheme {
        WebhookScheme::Standard => verify_standard(hook, headers, body, now).map(|id| Verified {
            replay_key: format!("id:{id}"),
            delivery_id: id,
        }),
        WebhookScheme::Github => verify_github(hook, headers, body),
    }
}

fn verify_standard(
    hook: &WebhookConfig,
    headers: &HeaderMap,
    body: &[u8],
    now: u64,
) -> Result<String, ApiError> {
    let id = delivery_id(header(headers, "webhook-id")?, "webhook-id")?;
    let timestamp_text = header(headers, "webhook-timestamp")?.trim();
    let timestamp: u64 = timestamp_text
        .parse()
        .ok()
        .filter(|_| timestamp_text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| unauthorized("The webhook-timestamp header must be Unix seconds."))?;
    if now.abs_diff(timestamp) > TOLERANCE_SECS {
        return Err(unauthorized(format!(
            "The webhook-timestamp is more than {TOLERANCE_SECS} seconds away from now."
        )));
    }
    let signatures: Vec<Vec<u8>> = header(headers, "webhook-signature")?
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .collect();
    if signatures.is_empty() {
        return Err(unauthorized(
            "The webhook-signature header holds no v1 signature.",
        ));
    }
    let signed_prefix = format!("{id}.{timestamp}.");
    let verified = hook
        .secrets
        .iter()
        .filter_map(|secret| standard_secret(secret.expose()).ok())
        .any(|key| {
            let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
            mac.update(signed_prefix.as_bytes());
            mac.update(body);
            // verify_slice compares in constant time.
            signatures
                .iter()
                .any(|signature| mac.clone().verify_slice(signature).is_ok())
        });
    if !verified {
        return Err(unauthorized(
            "No webhook-signature matches a secret of this hook.",
        ));
    }
    Ok(id)
}

fn verify_github(
    hook: &WebhookConfig,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Verified, ApiError> {
    // GitHub signs neither a timestamp nor the delivery id: replays are recognised by the
    // signature (see `Verified::replay_key`).
    let id = delivery_id(header(headers, "x-github-delivery")?, "X-GitHub-Delivery")?;
    let signature = header(headers, "x-hub-signature-256")?
        .trim()
        .strip_prefix("sha256=")
        .and_then(decode_hex)
        .ok_or_else(|| {
            unauthorized("The X-Hub-Signature-256 header must be sha256=<64 hex digits>.")
        })?;
    let verified = hook.secrets.iter().any(|secret| {
        let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC takes any key length");
        mac.update(body);
        mac.verify_slice(&signature).is_ok()
    });
    if !verified {
        return Err(unauthorized(
            "X-Hub-Signature-256 matches no secret of this hook.",
        ));
    }
    let replay_key = format!(
        "sha256:{}",
        signature
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    Ok(Verified {
        delivery_id: id,
        replay_key,
    })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One target's line of the 202 summary.
pub fn summary_entry(sp: &str, job: &str, outcome: &Outcome) -> (Value, bool) {
    let mut entry = json!({ "servicePrincipalId": sp, "synchronizationJobId": job });
    let status = outcome.status.as_u16();
    // Whether a redelivery should run this target again.
    let retriable = outcome.status.is_server_error() || status == 429;
    entry["status"] = status.into();
    match &outcome.body {
        Body::Started => {
            entry["outcome"] = "started".into();
            entry["requestId"] = outcome.request_id().into();
        }
        Body::Graph { text } => {
            entry["outcome"] = "failed".into();
            entry["requestId"] = outcome.request_id().into();
            entry["error"] = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|e| e.get("error").cloned())
                .unwrap_or(Value::Null);
        }
        Body::Error { code, message } if status == 409 => {
            entry["outcome"] = "suppressed".into();
            entry["reason"] = code.as_str().into();
            entry["message"] = message.as_str().into();
        }
        Body::Error { code, message } => {
            entry["outcome"] = "failed".into();
            entry["error"] = json!({"code": code, "message": message});
        }
        // Hooks never ask whatIf.
        Body::Report { .. } => entry["outcome"] = "failed".into(),
    }
    (entry, retriable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(scheme: WebhookScheme, secrets: &[&str]) -> WebhookConfig {
        WebhookConfig {
            name: "h".into(),
            scheme,
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            secrets_file: None,
            allow_bearer: false,
            api_version: ApiVersion::V1,
            targets: vec![WebhookTarget {
                service_principal_id: ServicePrincipalId::parse(
                    "2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d",
                )
                .unwrap(),
                synchronization_job_id: JobId::parse("j").unwrap(),
            }],
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (axum::http::HeaderName::from_static(n), v.parse().unwrap()))
            .collect()
    }

    /// The published Standard Webhooks test vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: u64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_standard_webhooks_test_vector_verifies() {
        let headers = headers(&[
            ("webhook-id", ID),
            ("webhook-timestamp", &TIMESTAMP.to_string()),
            ("webhook-signature", SIGNATURE),
        ]);
        assert_eq!(
            verify(
                &hook(WebhookScheme::Standard, &[SECRET]),
                &headers,
                BODY,
                TIMESTAMP
            )
            .unwrap()
            .delivery_id,
            ID
        );
    }

    #[test]
    fn any_secret_and_any_listed_signature_verifies_for_rotation() {
        let other = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let list = format!("v1,bm90LWl0 v2,ignored {SIGNATURE}");
        let headers = headers(&[
            ("webhook-id", ID),
            ("webhook-timestamp", &TIMESTAMP.to_string()),
            ("webhook-signature", &list),
        ]);
        assert!(
            verify(
                &hook(WebhookScheme::Standard, &[other, SECRET]),
                &headers,
                BODY,
                TIMESTAMP
            )
            .is_ok()
        );
    }

    #[test]
    fn a_changed_body_a_stale_timestamp_or_a_malformed_list_is_refused() {
        let good = [
            ("webhook-id", ID),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", SIGNATURE),
        ];
        let hook = hook(WebhookScheme::Standard, &[SECRET]);
        assert!(verify(&hook, &headers(&good), br#"{"test": 1}"#, TIMESTAMP).is_err());
        assert!(verify(&hook, &headers(&good), BODY, TIMESTAMP + TOLERANCE_SECS + 1).is_err());
        assert!(verify(&hook, &headers(&good), BODY, TIMESTAMP - TOLERANCE_SECS - 1).is_err());
        assert!(verify(&hook, &headers(&good), BODY, TIMESTAMP + TOLERANCE_SECS).is_ok());
        let malformed = [
            ("webhook-id", ID),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", "g0hM9SsE"),
        ];
        assert!(
            verify(&hook, &headers(&malformed), BODY, TIMESTAMP)
                .unwrap_err()
                .message
                .contains("v1")
        );
        let not_a_number = [
            ("webhook-id", ID),
            ("webhook-timestamp", "+1614265330"),
            ("webhook-signature", SIGNATURE),
        ];
        assert!(verify(&hook, &headers(&not_a_number), BODY, TIMESTAMP).is_err());
        assert!(
            verify(&hook, &headers(&good[1..]), BODY, TIMESTAMP)
                .unwrap_err()
                .message
                .contains("webhook-id")
        );
    }

    #[test]
    fn a_github_signature_verifies_over_the_raw_body() {
        let secret = "It's a Secret to Everybody";
        // GitHub's documented example: payload "Hello, World!".
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let hook = hook(WebhookScheme::Github, &[secret]);
        let ok = headers(&[
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("x-hub-signature-256", signature),
        ]);
        let verified = verify(&hook, &ok, b"Hello, World!", 0).unwrap();
        assert_eq!(verified.delivery_id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
        assert_eq!(
            verified.replay_key,
            format!("sha256:{}", signature.trim_start_matches("sha256="))
        );
        assert!(verify(&hook, &ok, b"Hello, World?", 0).is_err());
    }

    #[test]
    fn secrets_must_be_whsec_base64() {
        assert!(standard_secret(SECRET).is_ok());
        assert!(standard_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(standard_secret("whsec_not base64!").is_err());
    }
}
