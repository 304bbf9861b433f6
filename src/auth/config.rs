//! The `[auth]` section: which tokens are accepted, and the permission names that allow a start.

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

use crate::values::{Problems, SecureUrl};

/// Role template ids of Application Administrator, Cloud Application Administrator, Hybrid
/// Identity Administrator and Global Administrator.
pub const DEFAULT_DIRECTORY_ROLES: [&str; 4] = [
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
    "158c047a-c907-4556-b7ef-446551a6b5f7",
    "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2",
    "62e90394-69f5-4237-9190-012177145e10",
];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub issuers: Vec<SecureUrl>,
    pub audiences: Vec<String>,
    pub jwks_url: Option<SecureUrl>,
    pub openid_config_url: Option<SecureUrl>,
    pub algorithms: Vec<Algorithm>,
    pub leeway_secs: u64,
    pub allowed_tenants: Vec<String>,
    pub require_directory_role: bool,
    pub delegated_scopes: Vec<String>,
    pub application_roles: Vec<String>,
    pub owned_by_roles: Vec<String>,
    /// Directory role template ids that let a delegated caller start a job when the facade
    /// forwards with its own credential.
    pub directory_roles: Vec<String>,
    /// Job reads: the delegated scopes, application roles and directory roles that allow them
    /// (`owned_by_roles` read the jobs of owned service principals).
    pub read_delegated_scopes: Vec<String>,
    pub read_application_roles: Vec<String>,
    pub read_directory_roles: Vec<String>,
}

/// Global Reader: may read synchronization jobs, never start them.
pub const GLOBAL_READER: &str = "f2ef992c-3afb-46b9-b7cf-a126ee74c451";

/// What a read takes by default: either Synchronization permission.
const READ_PERMISSIONS: [&str; 2] = ["Synchronization.Read.All", "Synchronization.ReadWrite.All"];

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            audiences: strings(&["api://syncjob-facade"]),
            jwks_url: None,
            openid_config_url: None,
            algorithms: vec![Algorithm::RS256],
            leeway_secs: 60,
            allowed_tenants: Vec::new(),
            require_directory_role: true,
            delegated_scopes: strings(&["Synchronization.ReadWrite.All"]),
            application_roles: strings(&["Synchronization.ReadWrite.All"]),
            owned_by_roles: strings(&["Application.ReadWrite.OwnedBy"]),
            directory_roles: strings(&DEFAULT_DIRECTORY_ROLES),
            read_delegated_scopes: strings(&READ_PERMISSIONS),
            read_application_roles: strings(&READ_PERMISSIONS),
            read_directory_roles: strings(
                &[&DEFAULT_DIRECTORY_ROLES[..], &[GLOBAL_READER]].concat(),
            ),
        }
    }
}

impl AuthConfig {
    pub fn check(&self, problems: &mut Problems) {
        use Algorithm::{ES256, ES384, PS256, PS384, PS512, RS256, RS384, RS512};
        if self.issuers.is_empty() {
            problems.add("auth.issuers", "at least one issuer is required");
        }
        if self.audiences.is_empty() || self.audiences.iter().any(|a| a.trim().is_empty()) {
            problems.add(
                "auth.audiences",
                "at least one non-empty audience is required",
            );
        }
        if self.algorithms.is_empty() {
            problems.add("auth.algorithms", "at least one algorithm is required");
        }
        // Symmetric algorithms would let anyone holding the public key forge tokens.
        for alg in &self.algorithms {
            if !matches!(
                alg,
                RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384
            ) {
                problems.add("auth.algorithms", format!("'{alg:?}' is not an accepted asymmetric algorithm (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384)"));
            }
        }
        problems.within("auth.leeway_secs", self.leeway_secs, 0, 600);
        let tenant_issuer = self
            .issuers
            .iter()
            .any(|issuer| super::tenant_of_issuer(issuer.as_str()).is_some());
        if self.allowed_tenants.is_empty() && !self.issuers.is_empty() && !tenant_issuer {
            problems.add(
                "auth.allowed_tenants",
                "no issuer names a tenant id: list the allowed tenant ids",
            );
        }
        for (i, tenant) in self.allowed_tenants.iter().enumerate() {
            if crate::ids::ServicePrincipalId::parse(tenant).is_err() {
                problems.add(
                    format!("auth.allowed_tenants[{i}]"),
                    "must be a tenant id (GUID)",
                );
            }
        }
        problems.names("auth.delegated_scopes", &self.delegated_scopes);
        problems.names("auth.application_roles", &self.application_roles);
        problems.names("auth.read_delegated_scopes", &self.read_delegated_scopes);
        problems.names("auth.read_application_roles", &self.read_application_roles);
    }

    /// Settings that validate but are likely not what the operator meant, in words.
    pub fn warnings(&self) -> Vec<String> {
        let is_guid = |text: &str| crate::ids::AppId::parse(text).is_ok();
        let v2_issuer = self
            .issuers
            .iter()
            .find(|issuer| issuer.as_str().trim_end_matches('/').ends_with("/v2.0"));
        match v2_issuer {
            Some(issuer) if !self.audiences.iter().any(|aud| is_guid(aud)) => vec![format!(
                "auth.audiences holds no client id, but {issuer} issues v2.0 tokens, whose aud is the API's application (client) id, not its App ID URI: such tokens will be refused. Add the API's client id to auth.audiences, or use the v1 issuer https://sts.windows.net/<tenant>/ if the API issues v1 tokens (the default)."
            )],
            _ => Vec::new(),
        }
    }
}
