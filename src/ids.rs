//! Identifiers parsed at the edge. Once a value of these types exists it is valid everywhere, so
//! nothing malformed ever reaches an upstream URL.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ApiError;

/// The Graph API version a start is forwarded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
pub enum ApiVersion {
    #[serde(rename = "v1.0")]
    #[default]
    V1,
    #[serde(rename = "beta")]
    Beta,
}

impl ApiVersion {
    pub fn parse(text: &str) -> Option<Self> {
        [Self::V1, Self::Beta]
            .into_iter()
            .find(|version| text.eq_ignore_ascii_case(version.as_str()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1.0",
            Self::Beta => "beta",
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ids in configuration files are parsed as at the edge.
macro_rules! deserialize_by_parsing {
    ($($type:ty => $parse:expr),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $parse(&text).map_err(serde::de::Error::custom)
            }
        }
    )*};
}

deserialize_by_parsing!(
    ApiVersion => |t: &str| ApiVersion::parse(t).ok_or("v1.0 or beta"),
    ServicePrincipalId => |t: &str| ServicePrincipalId::parse(t).map_err(|e| e.message),
    JobId => |t: &str| JobId::parse(t).map_err(|e| e.message),
);

/// The text of an id that wraps a checked string.
macro_rules! as_text {
    ($($type:ty),*) => {$(
        impl $type {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

as_text!(ServicePrincipalId, AppId, JobId);

/// A GUID in its hyphenated 36-character form, kept in lower case (Graph object ids are
/// case-insensitive, and the guard compares them as such).
fn parse_guid(field: &str, text: &str) -> Result<String, ApiError> {
    let well_formed = text.len() == 36
        && text.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if well_formed {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid value for {field}: {}. It must be a GUID.",
            shown(text)
        )))
    }
}

/// Shows a rejected value in a message without letting it grow the message without bound.
fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > 64 {
        out.push_str("...");
    }
    format!("'{out}'")
}

/// The object id of a service principal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ServicePrincipalId(String);

impl ServicePrincipalId {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        parse_guid("servicePrincipalId", text).map(Self)
    }
}

/// The application (client) id, Graph's alternate key for a service principal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AppId(String);

impl AppId {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        parse_guid("appId", text).map(Self)
    }
}

/// A synchronization job id: `[A-Za-z0-9._-]{1,256}`, and never `.` or `..`, which would act as
/// path segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    pub const MAX_LEN: usize = 256;

    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let charset_ok = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if text.is_empty()
            || text.len() > Self::MAX_LEN
            || !charset_ok
            || text == "."
            || text == ".."
        {
            return Err(ApiError::bad_request(format!(
                "Invalid value for synchronizationJobId: {}. It must be 1 to 256 characters of A-Z, a-z, 0-9, '.', '_' or '-', and not '.' or '..'.",
                shown(text)
            )));
        }
        Ok(Self(text.to_owned()))
    }
}

/// How the caller named the service principal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServicePrincipalRef {
    Id(ServicePrincipalId),
    AppId(AppId),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn guids_are_lowercased_and_other_forms_refused() {
        let id = ServicePrincipalId::parse("2F8D4C6A-1B3E-4A5F-9C7D-8E0F1A2B3C4D").unwrap();
        assert_eq!(id.as_str(), "2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d");
        for bad in [
            "",
            "2f8d4c6a1b3e4a5f9c7d8e0f1a2b3c4d",
            "{2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d}",
            "../../users",
            "2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4g",
        ] {
            assert!(ServicePrincipalId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn job_ids_that_could_act_as_path_segments_are_refused() {
        for bad in [".", "..", "a/b", "../../users", "a%2Fb", "", "a b", "é"] {
            let error = JobId::parse(bad).unwrap_err();
            assert!(error.message.contains("synchronizationJobId"), "{bad}");
        }
        assert!(JobId::parse(&"a".repeat(256)).is_ok());
        assert!(JobId::parse(&"a".repeat(257)).is_err());
        assert!(JobId::parse("salesforce.8a3c9c1e6f0b4b7e9d552f1e7c0a4b13.x-y_z").is_ok());
    }

    #[test]
    fn a_long_rejected_value_is_cut_in_the_message() {
        let error = JobId::parse(&"/".repeat(1000)).unwrap_err();
        assert!(error.message.len() < 300);
    }

    proptest! {
        #[test]
        fn an_accepted_job_id_needs_no_percent_encoding(text in "\\PC{0,300}") {
            if let Ok(id) = JobId::parse(&text) {
                let encoded = percent_encoding::utf8_percent_encode(id.as_str(), percent_encoding::NON_ALPHANUMERIC).to_string();
                prop_assert!(!id.as_str().contains('/'));
                prop_assert!(id.as_str() != "." && id.as_str() != "..");
                prop_assert!(encoded.len() <= 3 * JobId::MAX_LEN);
            }
        }
    }
}
