//! Who may start or read what: the documented permissions of Graph's start and read operations,
//! applied to a `Caller`. A read permission never allows a start.
//!
//! Owns the decision from the token alone. The one check that needs Graph (is an
//! `Application.ReadWrite.OwnedBy` caller an owner of the target?) is asked for here, as
//! `Grant::OwnedBy`, and carried out by the start pipeline.

use serde::Serialize;

use super::config::AuthConfig;
use super::{Caller, CallerKind};
use crate::error::ApiError;

/// What the token allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "grant")]
pub enum Grant {
    /// Any service principal of the tenant, through the named permission.
    All { permission: String },
    /// Only service principals the caller owns.
    OwnedBy { permission: String },
    /// A verified webhook delivery, for the hook's configured targets.
    Hook,
}

/// The permission rules, from `[auth]`: one set for starts, one for reads.
pub struct Policy {
    start: Rules,
    read: Rules,
}

/// One operation's permissions.
struct Rules {
    delegated_scopes: Vec<String>,
    application_roles: Vec<String>,
    owned_by_roles: Vec<String>,
    directory_roles: Vec<String>,
    require_directory_role: bool,
    /// The directory roles in words, for refusals.
    roles_named: &'static str,
}

impl Policy {
    /// `forwards_as_user` is true with on-behalf-of, where Graph itself enforces directory roles.
    pub fn new(auth: &AuthConfig, forwards_as_user: bool) -> Self {
        let lower = |roles: &[String]| roles.iter().map(|r| r.to_ascii_lowercase()).collect();
        let require_directory_role = auth.require_directory_role && !forwards_as_user;
        Self {
            start: Rules {
                delegated_scopes: auth.delegated_scopes.clone(),
                application_roles: auth.application_roles.clone(),
                owned_by_roles: auth.owned_by_roles.clone(),
                directory_roles: lower(&auth.directory_roles),
                require_directory_role,
                roles_named: "Application Administrator, Cloud Application Administrator, Hybrid Identity Administrator or Global Administrator",
            },
            read: Rules {
                delegated_scopes: auth.read_delegated_scopes.clone(),
                application_roles: auth.read_application_roles.clone(),
                owned_by_roles: auth.owned_by_roles.clone(),
                directory_roles: lower(&auth.read_directory_roles),
                require_directory_role,
                roles_named: "Application Administrator, Cloud Application Administrator, Hybrid Identity Administrator, Global Administrator or Global Reader",
            },
        }
    }

    /// What the token allows for a start.
    pub fn authorize(&self, caller: &Caller) -> Result<Grant, ApiError> {
        self.start.authorize(caller)
    }

    /// What the token allows for a job read.
    pub fn authorize_read(&self, caller: &Caller) -> Result<Grant, ApiError> {
        self.read.authorize(caller)
    }
}

impl Rules {
    fn authorize(&self, caller: &Caller) -> Result<Grant, ApiError> {
        match caller.kind {
            CallerKind::Delegated => self.authorize_delegated(caller),
            CallerKind::Application => self.authorize_application(caller),
            // The signature was verified and the targets are the hook's own configuration.
            CallerKind::Webhook => Ok(Grant::Hook),
        }
    }

    fn authorize_delegated(&self, caller: &Caller) -> Result<Grant, ApiError> {
        let Some(permission) = first_held(&self.delegated_scopes, &caller.scopes) else {
            return Err(ApiError::insufficient_scope(
                &self.delegated_scopes,
                format!(
                    "Insufficient privileges: a delegated token needs one of the scopes [{}] in scp; the token has [{}].",
                    self.delegated_scopes.join(", "),
                    caller.scopes.join(", ")
                ),
            ));
        };
        if self.require_directory_role
            && !caller
                .directory_roles
                .iter()
                .any(|r| self.directory_roles.contains(r))
        {
            return Err(ApiError::forbidden(format!(
                "Insufficient privileges: the signed-in user must hold one of the directory roles {} (role template ids [{}] in wids); the token has [{}].",
                self.roles_named,
                self.directory_roles.join(", "),
                caller.directory_roles.join(", ")
            )));
        }
        Ok(Grant::All { permission })
    }

    fn authorize_application(&self, caller: &Caller) -> Result<Grant, ApiError> {
        if let Some(permission) = first_held(&self.application_roles, &caller.roles) {
            return Ok(Grant::All { permission });
        }
        if let Some(permission) = first_held(&self.owned_by_roles, &caller.roles) {
            return Ok(Grant::OwnedBy { permission });
        }
        let needed: Vec<String> = self
            .application_roles
            .iter()
            .chain(&self.owned_by_roles)
            .cloned()
            .collect();
        Err(ApiError::insufficient_scope(
            &needed,
            format!(
                "Insufficient privileges: an application token needs one of the roles [{}] in roles; the token has [{}].",
                needed.join(", "),
                caller.roles.join(", ")
            ),
        ))
    }
}

/// The first permission of `wanted` (in configured order) that the token holds; permission names
/// compare case-insensitively, as Entra treats them.
fn first_held(wanted: &[String], held: &[String]) -> Option<String> {
    wanted
        .iter()
        .find(|w| held.iter().any(|h| h.eq_ignore_ascii_case(w)))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(kind: CallerKind, scopes: &[&str], roles: &[&str], wids: &[&str]) -> Caller {
        Caller {
            kind,
            tenant_id: "t".into(),
            object_id: "o".into(),
            app_id: None,
            name: None,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            roles: roles.iter().map(|s| s.to_string()).collect(),
            directory_roles: wids.iter().map(|s| s.to_string()).collect(),
        }
    }

    const APP_ADMIN: &str = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3";

    #[test]
    fn delegated_caller_needs_the_scope_and_a_directory_role() {
        let policy = Policy::new(&AuthConfig::default(), false);
        let ok = caller(
            CallerKind::Delegated,
            &["User.Read", "Synchronization.ReadWrite.All"],
            &[],
            &[APP_ADMIN],
        );
        assert_eq!(
            policy.authorize(&ok).unwrap(),
            Grant::All {
                permission: "Synchronization.ReadWrite.All".into()
            }
        );
        let no_role = caller(
            CallerKind::Delegated,
            &["Synchronization.ReadWrite.All"],
            &[],
            &[],
        );
        assert_eq!(policy.authorize(&no_role).unwrap_err().status, 403);
        let no_scope = caller(CallerKind::Delegated, &["User.Read"], &[], &[APP_ADMIN]);
        let error = policy.authorize(&no_scope).unwrap_err();
        assert!(error.message.contains("User.Read"));
        assert!(
            error
                .header("www-authenticate")
                .unwrap()
                .to_str()
                .unwrap()
                .contains(r#"scope="Synchronization.ReadWrite.All""#)
        );
    }

    #[test]
    fn directory_role_is_not_required_when_forwarding_as_the_user_or_when_disabled() {
        let no_role = caller(
            CallerKind::Delegated,
            &["Synchronization.ReadWrite.All"],
            &[],
            &[],
        );
        assert!(
            Policy::new(&AuthConfig::default(), true)
                .authorize(&no_role)
                .is_ok()
        );
        let relaxed = AuthConfig {
            require_directory_role: false,
            ..AuthConfig::default()
        };
        assert!(Policy::new(&relaxed, false).authorize(&no_role).is_ok());
    }

    #[test]
    fn application_roles_grant_all_or_owned_by_only() {
        let policy = Policy::new(&AuthConfig::default(), false);
        let full = caller(
            CallerKind::Application,
            &[],
            &[
                "Application.ReadWrite.OwnedBy",
                "Synchronization.ReadWrite.All",
            ],
            &[],
        );
        assert!(matches!(
            policy.authorize(&full).unwrap(),
            Grant::All { .. }
        ));
        let owned = caller(
            CallerKind::Application,
            &[],
            &["Application.ReadWrite.OwnedBy"],
            &[],
        );
        assert!(matches!(
            policy.authorize(&owned).unwrap(),
            Grant::OwnedBy { .. }
        ));
        let none = caller(CallerKind::Application, &[], &["User.Read.All"], &[]);
        assert_eq!(
            policy.authorize(&none).unwrap_err().code,
            "Authorization_RequestDenied"
        );
    }

    #[test]
    fn a_scope_is_not_accepted_as_an_application_role() {
        let policy = Policy::new(&AuthConfig::default(), false);
        let confused = caller(
            CallerKind::Application,
            &["Synchronization.ReadWrite.All"],
            &[],
            &[],
        );
        assert!(policy.authorize(&confused).is_err());
    }
}
