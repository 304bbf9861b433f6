//! The emulator's signing keys: RSA key generation and rotation, the published JWKS, and
//! minting and checking compact RS256 JWTs; also checking client assertions against a key an
//! application registered (RS256 or PS256).

use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RSA_PSS_2048_8192_SHA256,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

pub(crate) struct SigningKey {
    kid: String,
    pair: KeyPair,
    n: String,
    e: String,
}

impl SigningKey {
    fn generate() -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 key generation failed");
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        // The RFC 7638 thumbprint makes every key's kid unique and stable, as Entra's kids are.
        let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()));
        Self { kid, pair, n, e }
    }

    fn jwk(&self) -> Value {
        json!({"kty": "RSA", "use": "sig", "kid": self.kid, "n": self.n, "e": self.e, "alg": "RS256"})
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64_json(header), b64_json(claims));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .expect("RS256 signing failed");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn verifies(&self, token: &Jwt) -> bool {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, self.pair.public_key().as_ref())
            .verify(token.signing_input.as_bytes(), &token.signature)
            .is_ok()
    }

    fn public_key_pem(&self) -> String {
        let der = AsDer::<PublicKeyX509Der>::as_der(self.pair.public_key())
            .expect("SPKI encoding failed");
        let body = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("JSON values serialise"))
}

/// The current signing key plus every key still published in the JWKS.
pub(crate) struct KeySet {
    current: Arc<SigningKey>,
    published: Vec<Arc<SigningKey>>,
}

impl KeySet {
    pub(crate) fn generate() -> Self {
        let current = Arc::new(SigningKey::generate());
        Self {
            published: vec![current.clone()],
            current,
        }
    }

    pub(crate) fn current_kid(&self) -> String {
        self.current.kid.clone()
    }

    pub(crate) fn rotate(&mut self, retire_old: bool) -> String {
        let fresh = Arc::new(SigningKey::generate());
        if retire_old {
            self.published.clear();
        }
        self.published.push(fresh.clone());
        self.current = fresh;
        self.current_kid()
    }

    pub(crate) fn jwks(&self) -> Value {
        let keys: Vec<Value> = self.published.iter().map(|key| key.jwk()).collect();
        json!({ "keys": keys })
    }

    pub(crate) fn mint(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.current.kid});
        self.current.sign(&header, claims)
    }

    pub(crate) fn mint_with_header(&self, header: &Value, claims: &Value) -> String {
        self.current.sign(header, claims)
    }

    pub(crate) fn public_key_pem(&self) -> String {
        self.current.public_key_pem()
    }

    /// True when the token is RS256 and signed by a key that is still published, which is what
    /// a relying party that trusts the JWKS would accept.
    pub(crate) fn verifies(&self, token: &Jwt) -> bool {
        let kid = token.header.get("kid").and_then(Value::as_str);
        token.header.get("alg").and_then(Value::as_str) == Some("RS256")
            && self
                .published
                .iter()
                .any(|key| Some(key.kid.as_str()) == kid && key.verifies(token))
    }
}

/// A compact JWT split into its parts; nothing is trusted until [`KeySet::verifies`] says so.
pub(crate) struct Jwt {
    pub(crate) header: Value,
    pub(crate) claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

impl Jwt {
    pub(crate) fn parse(token: &str) -> Option<Jwt> {
        let mut parts = token.split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let json_part = |part: &str| -> Option<Value> {
            let value: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()?;
            value.is_object().then_some(value)
        };
        Some(Jwt {
            header: json_part(header)?,
            claims: json_part(claims)?,
            signing_input: format!("{header}.{claims}"),
            signature: URL_SAFE_NO_PAD.decode(signature).ok()?,
        })
    }

    pub(crate) fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    pub(crate) fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// Checks the signature against an SPKI PEM public key, for the algorithms Entra accepts on
    /// certificate client assertions. `None` when the PEM holds no usable RSA key, so that a
    /// broken seed is told apart from a bad signature.
    pub(crate) fn verifies_with_pem(&self, spki_pem: &str) -> Option<bool> {
        let der = pem_block(spki_pem, "PUBLIC KEY")?;
        aws_lc_rs::rsa::PublicKey::from_der(&der).ok()?;
        let algorithm = match self.header_str("alg") {
            Some("RS256") => &RSA_PKCS1_2048_8192_SHA256,
            Some("PS256") => &RSA_PSS_2048_8192_SHA256,
            _ => return Some(false),
        };
        let verified = UnparsedPublicKey::new(algorithm, der)
            .verify(self.signing_input.as_bytes(), &self.signature)
            .is_ok();
        Some(verified)
    }
}

/// The DER inside the first `-----BEGIN {label}-----` block of a PEM text.
fn pem_block(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = pem.split_once(&begin)?.1.split_once(&end)?.0;
    let base64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(base64).ok()
}
