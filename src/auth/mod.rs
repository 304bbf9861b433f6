//! Caller authentication: turns a bearer token issued for the facade's own API into a `Caller`.
//!
//! Owns token validation (signature against the issuer's keys, pinned algorithms, `exp`, `nbf`,
//! `iss`, `aud`, leeway, tenant allow-list) and the delegated/application distinction. It does
//! not decide what a caller may start: that is `authz`.

pub mod authz;
pub mod config;
pub mod keys;

use std::collections::HashSet;
use std::sync::Arc;

use jsonwebtoken::Validation;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::values::SecureUrl;
use config::AuthConfig;
use keys::{KeySource, KeyStore};

/// The consumer (personal Microsoft account) tenant.
pub const CONSUMER_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// Whether the token acts for a signed-in user or for an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallerKind {
    Delegated,
    Application,
    /// A verified webhook delivery; never made from a token.
    Webhook,
}

impl CallerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delegated => "delegated",
            Self::Application => "application",
            Self::Webhook => "webhook",
        }
    }
}

/// An authenticated caller: who it is and what its token allows. Holds no token, so nothing
/// that holds a caller can leak one (on-behalf-of takes the token from the request's
/// forwarding instead).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Caller {
    pub kind: CallerKind,
    pub tenant_id: String,
    pub object_id: String,
    pub app_id: Option<String>,
    pub name: Option<String>,
    #[serde(skip)]
    pub scopes: Vec<String>,
    #[serde(skip)]
    pub roles: Vec<String>,
    #[serde(skip)]
    pub directory_roles: Vec<String>,
}

/// The claims the facade reads; `exp`, `nbf`, `iss`, `aud` are checked by `Validation`.
#[derive(Debug, Deserialize)]
struct Claims {
    exp: u64,
    iss: Option<String>,
    tid: Option<String>,
    oid: Option<String>,
    azp: Option<String>,
    appid: Option<String>,
    name: Option<String>,
    preferred_username: Option<String>,
    idtyp: Option<String>,
    scp: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    wids: Vec<String>,
}

/// Most validated tokens kept at once.
const VERIFIED_TOKENS: u64 = 10_000;

/// A validated token: its caller, its `exp`, and the key that signed it.
#[derive(Clone)]
struct Verified {
    caller: Caller,
    exp: u64,
    kid: Arc<str>,
}

/// A validated token is kept until its `exp`, never past it.
struct UntilExp;

impl moka::Expiry<[u8; 32], Verified> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Verified,
        _created_at: std::time::Instant,
    ) -> Option<std::time::Duration> {
        let left = value
            .exp
            .saturating_sub(jsonwebtoken::get_current_timestamp());
        Some(std::time::Duration::from_secs(left))
    }
}

pub struct Authenticator {
    keys: Arc<KeyStore>,
    /// Tokens already validated, by the SHA-256 of the token, each until its `exp`: a caller
    /// presents the same token for up to an hour, and its signature need not be checked again
    /// while the issuer still publishes the key that signed it.
    verified: moka::future::Cache<[u8; 32], Verified>,
    /// Also the accepted algorithms (`algorithms`).
    validation: Validation,
    /// Empty means: any tenant of a configured issuer (the issuer check already pins it).
    allowed_tenants: HashSet<String>,
}

impl Authenticator {
    pub fn new(auth: &AuthConfig, http: reqwest::Client) -> Self {
        let source = match (&auth.jwks_url, &auth.openid_config_url) {
            (Some(jwks), _) => KeySource::Jwks(jwks.to_string()),
            (None, Some(discovery)) => KeySource::Discovery(discovery.to_string()),
            (None, None) => KeySource::Discovery(format!(
                "{}/.well-known/openid-configuration",
                (auth.issuers.first()).map_or("", |i| i.as_str().trim_end_matches('/'))
            )),
        };
        let mut validation = Validation::new(auth.algorithms[0]);
        validation.algorithms = auth.algorithms.clone();
        validation.leeway = auth.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(
            &auth
                .issuers
                .iter()
                .map(SecureUrl::as_str)
                .collect::<Vec<_>>(),
        );
        validation.set_audience(&auth.audiences);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud"]);
        let mut allowed_tenants: HashSet<String> = auth
            .allowed_tenants
            .iter()
            .map(|t| t.to_ascii_lowercase())
            .collect();
        if allowed_tenants.is_empty() {
            allowed_tenants = auth
                .issuers
                .iter()
                .filter_map(|issuer| tenant_of_issuer(issuer.as_str()))
                .collect();
        }
        Self {
            keys: Arc::new(KeyStore::new(http, source)),
            verified: moka::future::Cache::builder()
                .max_capacity(VERIFIED_TOKENS)
                .expire_after(UntilExp)
                .build(),
            validation,
            allowed_tenants,
        }
    }

    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Validates a bearer token and describes its caller.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, ApiError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some(verified) = self.verified.get(&digest).await {
            // A key the issuer no longer publishes (retired, perhaps compromised) takes its
            // tokens with it: they are validated again, and refused.
            if verified.exp > jsonwebtoken::get_current_timestamp()
                && self.keys.holds(&verified.kid)
            {
                return Ok(verified.caller);
            }
            self.verified.invalidate(&digest).await;
        }
        let verified = self.validate(token).await?;
        let caller = verified.caller.clone();
        self.verified.insert(digest, verified).await;
        Ok(caller)
    }

    /// Checks a token fully: its signature, its claims, its tenant.
    async fn validate(&self, token: &str) -> Result<Verified, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::invalid_token("The token is not a well-formed signed JWT."))?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(ApiError::invalid_token(format!(
                "The token algorithm {:?} is not accepted.",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| ApiError::invalid_token("The token header has no kid."))?;
        let Some(key) = self.keys.key(&kid).await else {
            return Err(if self.keys.is_loaded() {
                ApiError::invalid_token("The token is signed with an unknown key.")
            } else {
                let not_yet = "The issuer's signing keys are not available yet.";
                ApiError::service_unavailable(not_yet, 5)
            });
        };
        if key.algorithm.is_some_and(|alg| alg != header.alg) {
            return Err(ApiError::invalid_token(
                "The token algorithm does not match its key.",
            ));
        }
        // Validated for the one algorithm the header names (already pinned above): jsonwebtoken
        // checks the key's family against every listed algorithm.
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|error| {
                use jsonwebtoken::errors::ErrorKind::*;
                ApiError::invalid_token(match error.kind() {
                    ExpiredSignature => "The token is expired.".to_owned(),
                    ImmatureSignature => "The token is not valid yet (nbf).".to_owned(),
                    InvalidIssuer => "The token issuer is not accepted.".to_owned(),
                    InvalidAudience => "The token audience is not accepted.".to_owned(),
                    InvalidSignature => "The token signature is invalid.".to_owned(),
                    InvalidAlgorithm => "The token algorithm does not match its key.".to_owned(),
                    MissingRequiredClaim(claim) => format!("The token has no {claim} claim."),
                    _ => "The token could not be validated.".to_owned(),
                })
            })?;
        let exp = data.claims.exp;
        Ok(Verified {
            caller: self.caller_from(data.claims)?,
            exp,
            kid: kid.into(),
        })
    }

    fn caller_from(&self, claims: Claims) -> Result<Caller, ApiError> {
        let tenant_id = claims
            .tid
            .map(|t| t.to_ascii_lowercase())
            .ok_or_else(|| ApiError::invalid_token("The token has no tid claim."))?;
        if tenant_id == CONSUMER_TENANT {
            return Err(ApiError::forbidden(
                "Personal Microsoft accounts are not supported: starting a synchronization job needs a work or school account or an application.",
            ));
        }
        // A token from a tenant-specific issuer must carry that tenant.
        if let Some(issuer_tenant) = claims.iss.as_deref().and_then(tenant_of_issuer)
            && issuer_tenant != tenant_id
        {
            return Err(ApiError::invalid_token(
                "The token's tid does not match its issuer.",
            ));
        }
        if !self.allowed_tenants.contains(&tenant_id) {
            return Err(ApiError::invalid_token(format!(
                "Tenant {tenant_id} is not allowed."
            )));
        }
        let object_id = claims
            .oid
            .ok_or_else(|| ApiError::invalid_token("The token has no oid claim."))?;
        // The object id keys the rate limit, idempotency and the audit: a GUID, as Entra issues.
        let object_id = crate::ids::ServicePrincipalId::parse(&object_id)
            .map_err(|_| ApiError::invalid_token("The token's oid claim is not a GUID."))?
            .as_str()
            .to_ascii_lowercase();
        // `idtyp`, when Entra sends it, says what the token is; only v1-style tokens without it
        // are told apart by their claims (roles without scp: an application).
        let kind = match claims.idtyp.as_deref() {
            Some("app") => CallerKind::Application,
            Some("user") => CallerKind::Delegated,
            Some(_) => {
                return Err(ApiError::invalid_token(
                    "The token's idtyp claim is neither app nor user.",
                ));
            }
            None if claims.scp.is_none() && !claims.roles.is_empty() => CallerKind::Application,
            None => CallerKind::Delegated,
        };
        let scopes = claims
            .scp
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        Ok(Caller {
            kind,
            tenant_id,
            object_id,
            app_id: claims.azp.or(claims.appid),
            name: claims.name.or(claims.preferred_username),
            scopes,
            roles: claims.roles,
            directory_roles: claims
                .wids
                .into_iter()
                .map(|w| w.to_ascii_lowercase())
                .collect(),
        })
    }
}

/// The tenant id in an Entra issuer URL (`.../{tenant}/v2.0` or `https://sts.windows.net/{tenant}/`).
pub fn tenant_of_issuer(issuer: &str) -> Option<String> {
    issuer
        .trim_end_matches('/')
        .rsplit('/')
        .take(2)
        .find(|segment| crate::ids::ServicePrincipalId::parse(segment).is_ok())
        .map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_is_read_from_both_issuer_forms() {
        let tid = "8a3c9c1e-6f0b-4b7e-9d55-2f1e7c0a4b13";
        assert_eq!(
            tenant_of_issuer(&format!("https://login.microsoftonline.com/{tid}/v2.0")).as_deref(),
            Some(tid)
        );
        assert_eq!(
            tenant_of_issuer(&format!("https://sts.windows.net/{tid}/")).as_deref(),
            Some(tid)
        );
        assert_eq!(
            tenant_of_issuer("https://login.microsoftonline.com/common/v2.0"),
            None
        );
    }
}
