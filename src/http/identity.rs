//! The cmdlet's `-InputObject` (IApplicationsIdentity), as PowerShell reads a hashtable: keys
//! compare case-insensitively, the three keys of this operation are read, the other identity
//! keys are accepted and ignored, and anything else is refused by name.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::ids::{AppId, JobId, ServicePrincipalId, ServicePrincipalRef};

/// Every property of IApplicationsIdentity.
pub const IDENTITY_KEYS: [&str; 24] = [
    "AppId",
    "AppManagementPolicyId",
    "AppRoleAssignmentId",
    "ApplicationId",
    "ApplicationTemplateId",
    "ClaimsMappingPolicyId",
    "DelegatedPermissionClassificationId",
    "DirectoryDefinitionId",
    "DirectoryObjectId",
    "EndpointId",
    "ExtensionPropertyId",
    "FederatedIdentityCredentialId",
    "GroupId",
    "HomeRealmDiscoveryPolicyId",
    "Name",
    "OAuth2PermissionGrantId",
    "ServicePrincipalId",
    "SynchronizationJobId",
    "SynchronizationTemplateId",
    "TargetDeviceGroupId",
    "TokenIssuancePolicyId",
    "TokenLifetimePolicyId",
    "UniqueName",
    "UserId",
];

/// The target an identity object names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub service_principal: ServicePrincipalRef,
    pub job: JobId,
}

/// Parses one identity object. `ServicePrincipalId` wins over `AppId` when both are given,
/// as the cmdlet builds its URL from `ServicePrincipalId`.
pub fn parse(value: &Value) -> Result<Identity, ApiError> {
    let Value::Object(object) = value else {
        return Err(ApiError::bad_request(
            "InputObject must be a JSON object with ServicePrincipalId and SynchronizationJobId.",
        ));
    };
    let service_principal_id = field(object, "ServicePrincipalId")?;
    let app_id = field(object, "AppId")?;
    let job_id = field(object, "SynchronizationJobId")?;
    let service_principal = match (service_principal_id, app_id) {
        (Some(id), _) => ServicePrincipalRef::Id(ServicePrincipalId::parse(id)?),
        (None, Some(app_id)) => ServicePrincipalRef::AppId(AppId::parse(app_id)?),
        (None, None) => {
            return Err(ApiError::bad_request(
                "InputObject has null value for InputObject.ServicePrincipalId",
            ));
        }
    };
    let job = JobId::parse(job_id.ok_or_else(|| {
        ApiError::bad_request("InputObject has null value for InputObject.SynchronizationJobId")
    })?)?;
    Ok(Identity {
        service_principal,
        job,
    })
}

/// The string value of `key`, matched case-insensitively; validates every key of the object on
/// the way (a key once checked is simply checked again, objects are small).
fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ApiError> {
    let mut found: Option<(&str, &'a Value)> = None;
    for (name, value) in object {
        let Some(canonical) = IDENTITY_KEYS.iter().find(|k| k.eq_ignore_ascii_case(name)) else {
            let shown: String = name.chars().take(64).collect();
            return Err(ApiError::bad_request(format!(
                "'{shown}' is not a property of IApplicationsIdentity."
            )));
        };
        if !value.is_string() && !value.is_null() {
            return Err(ApiError::bad_request(format!(
                "InputObject.{canonical} must be a string."
            )));
        }
        if canonical.eq_ignore_ascii_case(key) {
            if let Some((previous, _)) = found {
                return Err(ApiError::bad_request(format!(
                    "InputObject names {key} twice ('{previous}' and '{name}')."
                )));
            }
            found = Some((name, value));
        }
    }
    // A null or empty value is what PowerShell reports as a null value.
    Ok(found
        .and_then(|(_, v)| v.as_str())
        .filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SP: &str = "2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d";

    #[test]
    fn keys_match_in_any_casing() {
        for body in [
            json!({"ServicePrincipalId": SP, "SynchronizationJobId": "j"}),
            json!({"servicePrincipalId": SP, "synchronizationJobId": "j"}),
            json!({"SERVICEPRINCIPALID": SP, "synchronizationjobid": "j", "UserId": "ignored"}),
        ] {
            let identity = parse(&body).unwrap();
            assert_eq!(identity.job.as_str(), "j");
            assert_eq!(
                identity.service_principal,
                ServicePrincipalRef::Id(ServicePrincipalId::parse(SP).unwrap())
            );
        }
    }

    #[test]
    fn missing_ids_read_like_the_cmdlet() {
        let error = parse(&json!({"SynchronizationJobId": "j"})).unwrap_err();
        assert_eq!(
            error.message,
            "InputObject has null value for InputObject.ServicePrincipalId"
        );
        let error =
            parse(&json!({"ServicePrincipalId": SP, "SynchronizationJobId": null})).unwrap_err();
        assert_eq!(
            error.message,
            "InputObject has null value for InputObject.SynchronizationJobId"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        assert!(
            parse(&json!({"ServicePrincipalId": SP, "SynchronizationJobId": "j", "Url": "x"}))
                .unwrap_err()
                .message
                .contains("'Url'")
        );
        assert!(
            parse(&json!({"ServicePrincipalId": 5, "SynchronizationJobId": "j"}))
                .unwrap_err()
                .message
                .contains("ServicePrincipalId")
        );
        assert!(parse(&json!({"ServicePrincipalId": SP, "servicePrincipalId": SP, "SynchronizationJobId": "j"})).unwrap_err().message.contains("twice"));
        assert!(parse(&json!(["x"])).is_err());
    }

    #[test]
    fn app_id_is_the_alternate_key() {
        let identity = parse(&json!({"AppId": SP, "SynchronizationJobId": "j"})).unwrap();
        assert!(matches!(
            identity.service_principal,
            ServicePrincipalRef::AppId(_)
        ));
    }
}
