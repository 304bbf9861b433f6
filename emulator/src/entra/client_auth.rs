//! How a confidential client proves who it is at the token endpoint: a client secret, or a
//! `client_assertion` that is either signed by the application's registered certificate
//! (`iss` = `sub` = client id) or a token from a federated issuer its federated identity
//! credentials trust (workload identity). Every failure is 401 `invalid_client`, as in Entra.

use super::{EntraError, Lifetime, TokenRequest, audiences};
use crate::keys::Jwt;
use crate::{Emulator, SeedApplication, SeedFederatedCredential, unix_now};

const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const WORKLOAD_IDENTITY_DOCS: &str =
    "https://learn.microsoft.com/entra/workload-id/workload-identity-federation";

/// What the application proved itself with; names the flow in the call log and sets the
/// `appidacr` of the tokens it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Credential {
    Secret,
    Certificate,
    Federated,
    /// No credential presented at all: the platform vouches for the identity (IMDS).
    ManagedIdentity,
}

impl Credential {
    pub(crate) fn grant(self) -> &'static str {
        match self {
            Credential::Secret => "client_secret",
            Credential::Certificate => "client_certificate",
            Credential::Federated => "workload_identity",
            Credential::ManagedIdentity => "managed_identity",
        }
    }

    /// Entra's `appidacr`: 1 for a shared secret, 2 for anything key-based.
    pub(crate) fn appidacr(self) -> &'static str {
        match self {
            Credential::Secret => "1",
            _ => "2",
        }
    }

    /// Entra tells a certificate assertion from a federated one by its issuer: the client
    /// itself issues the former, an external identity provider the latter.
    fn of_assertion(assertion: &Jwt, client_id: Option<&str>) -> Credential {
        let issuer = assertion.claim_str("iss");
        match issuer.zip(client_id) {
            Some((iss, id)) if iss.eq_ignore_ascii_case(id) => Credential::Certificate,
            _ => Credential::Federated,
        }
    }
}

/// An authenticated client.
pub(crate) struct Client<'a> {
    pub(crate) app: &'a SeedApplication,
    pub(crate) credential: Credential,
}

/// The credential a request presents, unverified (for the call log).
pub(crate) fn presented(request: &TokenRequest) -> Option<Credential> {
    match request.param("client_assertion") {
        Some(assertion) => {
            let assertion = Jwt::parse(assertion)?;
            Some(Credential::of_assertion(&assertion, request.client_id()))
        }
        None => request.client_secret().map(|_| Credential::Secret),
    }
}

pub(crate) fn authenticate<'a>(
    emu: &'a Emulator,
    request: &TokenRequest,
) -> Result<Client<'a>, EntraError> {
    let client_id = request
        .client_id()
        .ok_or_else(|| EntraError::missing("client_id"))?;
    let app = emu.application(client_id).ok_or_else(|| {
        EntraError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", emu.tenant_id()),
        )
    })?;
    let credential = match (request.param("client_assertion"), request.client_secret()) {
        (Some(_), Some(_)) => {
            return Err(EntraError::malformed(
                "Present either 'client_secret' or 'client_assertion', not both.",
            ));
        }
        (Some(assertion), None) => check_assertion(emu, app, request, assertion)?,
        (None, Some(secret)) => {
            check_secret(app, secret)?;
            Credential::Secret
        }
        (None, None) => {
            return Err(EntraError::invalid_client(
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        }
    };
    Ok(Client { app, credential })
}

fn check_secret(app: &SeedApplication, secret: &str) -> Result<(), EntraError> {
    // An application registered without a secret has none that could match.
    if app.client_secret.is_empty() || secret != app.client_secret {
        return Err(EntraError::invalid_client(
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                app.client_id
            ),
        ));
    }
    Ok(())
}

fn check_assertion(
    emu: &Emulator,
    app: &SeedApplication,
    request: &TokenRequest,
    assertion: &str,
) -> Result<Credential, EntraError> {
    match request.param("client_assertion_type") {
        None => return Err(EntraError::missing("client_assertion_type")),
        Some(CLIENT_ASSERTION_TYPE) => {}
        Some(other) => {
            return Err(EntraError::malformed(&format!(
                "client_assertion_type '{other}' is not supported; use '{CLIENT_ASSERTION_TYPE}'."
            )));
        }
    }
    let assertion = Jwt::parse(assertion).ok_or_else(|| {
        EntraError::invalid_client(
            50027,
            "JWT token is invalid or malformed. The client_assertion is not a signed JWT.",
        )
    })?;
    let credential = Credential::of_assertion(&assertion, Some(&app.client_id));
    match credential {
        Credential::Certificate => check_certificate_assertion(emu, app, &assertion)?,
        _ => check_federated_assertion(emu, app, &assertion)?,
    }
    Ok(credential)
}

/// As Entra checks a certificate credential: the algorithm and the thumbprint header that goes
/// with it (`PS256` with `x5t#S256`, or the older `RS256` with a SHA-1 `x5t`), the key that
/// thumbprint chooses, the signature, then the claims RFC 7523 requires.
fn check_certificate_assertion(
    emu: &Emulator,
    app: &SeedApplication,
    assertion: &Jwt,
) -> Result<(), EntraError> {
    let alg = assertion.header_str("alg").unwrap_or_default();
    let unsupported = |detail: &str| {
        EntraError::invalid_client(
            5002738,
            format!(
                "Invalid JWT token. {detail} Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
            ),
        )
    };
    let matches = match alg {
        "PS256" => {
            let presented = assertion.header_str("x5t#S256").ok_or_else(|| {
                unsupported(
                    "A PS256 client assertion names its certificate in the 'x5t#S256' header.",
                )
            })?;
            app.certificate
                .as_ref()
                .filter(|cert| same_thumbprint(presented, &cert.thumbprint_s256))
        }
        "RS256" => {
            let Some(presented) = assertion.header_str("x5t") else {
                return Err(unsupported(if assertion.header_str("x5t#S256").is_some() {
                    "'x5t#S256' goes with the PS256 algorithm; an RS256 client assertion names its certificate in the SHA-1 'x5t' header."
                } else {
                    "An RS256 client assertion names its certificate in the 'x5t' header."
                }));
            };
            app.certificate.as_ref().filter(|cert| {
                cert.thumbprint_sha1
                    .as_deref()
                    .is_some_and(|sha1| same_thumbprint(presented, sha1))
            })
        }
        other => {
            return Err(unsupported(&format!(
                "'{other}' is not a supported signature algorithm. Supported signing algorithms are: 'RS256, PS256'"
            )));
        }
    };
    let certificate = matches.ok_or_else(|| key_not_found(app, assertion))?;
    match assertion.verifies_with_pem(&certificate.public_key_pem) {
        Some(true) => {}
        Some(false) => {
            return Err(EntraError::invalid_client(
                700027,
                "Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value.]",
            ));
        }
        None => {
            tracing::warn!(client_id = %app.client_id, "the seed certificate's publicKeyPem is not an SPKI RSA public key");
            return Err(EntraError::invalid_client(
                700027,
                "Client assertion failed signature validation. [Reason - The key registered on the application could not be read.]",
            ));
        }
    }
    let names_the_app = |claim: &str| {
        assertion
            .claim_str(claim)
            .is_some_and(|v| v.eq_ignore_ascii_case(&app.client_id))
    };
    if !names_the_app("iss") {
        return Err(EntraError::invalid_client(
            700021,
            "Client assertion issuer doesn't match 'client_id' parameter: 'iss' and 'sub' must both be the application's client id. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
        ));
    }
    if !names_the_app("sub") {
        return Err(EntraError::invalid_client(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
        ));
    }
    let (token_url, issuer) = (emu.token_url(), emu.issuer());
    let aud_ok = audiences(&assertion.claims)
        .iter()
        .any(|aud| aud.eq_ignore_ascii_case(&token_url) || aud.eq_ignore_ascii_case(&issuer));
    if !aud_ok {
        return Err(EntraError::invalid_client(
            700023,
            format!(
                "Client assertion audience claim does not match Realm issuer. The audience must be '{token_url}'. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
            ),
        ));
    }
    check_lifetime(assertion)?;
    if assertion.claim_str("jti").is_none_or(str::is_empty) {
        return Err(EntraError::invalid_client(
            50027,
            "JWT token is invalid or malformed. The client assertion has no 'jti' claim.",
        ));
    }
    Ok(())
}

/// Thumbprints are base64url; some clients keep the padding.
fn same_thumbprint(presented: &str, registered: &str) -> bool {
    presented.trim_end_matches('=') == registered.trim().trim_end_matches('=')
}

fn key_not_found(app: &SeedApplication, assertion: &Jwt) -> EntraError {
    let thumbprint = assertion
        .header_str("x5t#S256")
        .or(assertion.header_str("x5t"))
        .unwrap_or_default();
    EntraError::invalid_client(
        700027,
        format!(
            "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'. The emulator matches 'x5t#S256' (PS256) against the application's certificate.thumbprintS256 and 'x5t' (RS256) against thumbprintSha1.]",
            app.client_id
        ),
    )
}

/// As Entra checks a federated identity credential: one that names the token's issuer, a token
/// that issuer signed (here: with the emulator's own published keys) and that is current, then
/// a credential naming its subject and one of its audiences.
fn check_federated_assertion(
    emu: &Emulator,
    app: &SeedApplication,
    assertion: &Jwt,
) -> Result<(), EntraError> {
    let issuer = assertion.claim_str("iss").unwrap_or_default();
    let subject = assertion.claim_str("sub").unwrap_or_default();
    // Entra matches issuer and subject case-sensitively.
    let by_issuer: Vec<&SeedFederatedCredential> = app
        .federated_credentials
        .iter()
        .filter(|credential| credential.issuer == issuer)
        .collect();
    if by_issuer.is_empty() {
        return Err(no_match(700211, "issuer", issuer));
    }
    if !emu.keys().verifies(assertion) {
        return Err(EntraError::invalid_client(
            700027,
            format!(
                "Client assertion failed signature validation. [Reason - The key was not found among the signing keys of issuer '{issuer}'.]"
            ),
        ));
    }
    check_lifetime(assertion)?;
    let by_subject: Vec<&SeedFederatedCredential> = by_issuer
        .into_iter()
        .filter(|credential| credential.subject == subject)
        .collect();
    if by_subject.is_empty() {
        return Err(no_match(700213, "subject", subject));
    }
    let presented = audiences(&assertion.claims);
    let audience_ok = by_subject.iter().any(|credential| {
        credential
            .audiences
            .iter()
            .any(|a| presented.contains(&a.as_str()))
    });
    if !audience_ok {
        return Err(no_match(700212, "audience", &presented.join(", ")));
    }
    Ok(())
}

fn no_match(code: u32, what: &str, value: &str) -> EntraError {
    EntraError::invalid_client(
        code,
        format!(
            "No matching federated identity record found for presented assertion {what} '{value}'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. {WORKLOAD_IDENTITY_DOCS}"
        ),
    )
}

fn check_lifetime(assertion: &Jwt) -> Result<(), EntraError> {
    Lifetime::check(&assertion.claims, unix_now()).map_err(|lifetime| {
        EntraError::invalid_client(
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                Lifetime::describe(Some(lifetime.now)),
                Lifetime::describe(lifetime.nbf),
                Lifetime::describe(lifetime.exp),
            ),
        )
    })
}
