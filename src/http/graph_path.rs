//! Recognises the Graph-compatible paths (a job's start, a job, the jobs of a service
//! principal) from the raw request path.
//!
//! axum cannot route `servicePrincipals(appId='...')`, and a path such as
//! `.../jobs/../../users/start` must be a 400 naming the id rather than a 404, so the path is
//! split here, each id segment percent-decoded once and parsed into its newtype.

use percent_encoding::percent_decode_str;

use crate::error::ApiError;
use crate::ids::{ApiVersion, AppId, JobId, ServicePrincipalId, ServicePrincipalRef};

/// A Graph-compatible path; the ids may still be invalid (a 400 once the caller is known).
#[derive(Debug)]
pub struct StartPath {
    pub version: ApiVersion,
    pub service_principal: Result<ServicePrincipalRef, ApiError>,
    /// The job; `None` when the path names the list of jobs.
    pub job: Option<Result<JobId, ApiError>>,
    /// `.../start` (or `.../microsoft.graph.start`): the path of a start, not of a read.
    pub start: bool,
}

fn decode(segment: &str) -> Result<String, ApiError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| {
            ApiError::bad_request("The request path is not valid UTF-8 once percent-decoded.")
        })
}

fn is(segment: &str, name: &str) -> bool {
    decode(segment).is_ok_and(|text| text.eq_ignore_ascii_case(name))
}

/// `None` when the path is none of these (404).
pub fn parse(path: &str) -> Option<StartPath> {
    // One trailing slash is tolerated, as Graph does.
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.ends_with('/'))
        .unwrap_or(path);
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let (first, rest) = segments.split_first()?;
    let version = ApiVersion::parse(first)?;
    let start = rest
        .last()
        .is_some_and(|last| is(last, "start") || is(last, "microsoft.graph.start"));
    let middle = if start { &rest[..rest.len() - 1] } else { rest };
    let sync = (1..middle.len().saturating_sub(1))
        .find(|&i| is(middle[i], "synchronization") && is(middle[i + 1], "jobs"))?;
    let (sp_part, job_part) = (&middle[..sync], &middle[sync + 2..]);
    let head = decode(sp_part[0]).ok()?;
    let service_principal = if head.eq_ignore_ascii_case("servicePrincipals") {
        match &sp_part[1..] {
            [id] => decode(id)
                .and_then(|id| ServicePrincipalId::parse(&id))
                .map(ServicePrincipalRef::Id),
            other => Err(invalid_segments("servicePrincipalId", other)),
        }
    } else if let Some(key) =
        strip_prefix_ignore_case(&head, "servicePrincipals(").filter(|_| sp_part.len() == 1)
    {
        alternate_key(key)
    } else {
        return None;
    };
    let job = match job_part {
        [] if !start => None,
        [id] => Some(decode(id).and_then(|id| JobId::parse(&id))),
        // A start whose job id spans segments is a bad id; a read path that goes on is not one.
        other if start => Some(Err(invalid_segments("synchronizationJobId", other))),
        _ => return None,
    };
    Some(StartPath {
        version,
        service_principal,
        job,
        start,
    })
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `appId='{guid}')` (after the opening parenthesis), the only alternate key of a service principal that v1.0 supports.
fn alternate_key(text: &str) -> Result<ServicePrincipalRef, ApiError> {
    let inner = text.strip_suffix(')');
    let value = inner.and_then(|inner| {
        let (key, value) = inner.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("appId")
            .then_some(value.trim())
    });
    match value
        .and_then(|v| v.strip_prefix('\''))
        .and_then(|v| v.strip_suffix('\''))
    {
        Some(app_id) => AppId::parse(app_id).map(ServicePrincipalRef::AppId),
        None => Err(ApiError::bad_request(
            "Invalid key for servicePrincipals: only the alternate key appId='{appId}' is supported.",
        )),
    }
}

fn invalid_segments(field: &str, segments: &[&str]) -> ApiError {
    let joined = segments.join("/");
    let shown: String = joined.chars().take(64).collect();
    ApiError::bad_request(format!(
        "Invalid value for {field}: '{shown}'. It must be a single path segment."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SP: &str = "2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d";

    fn ok(path: &str) -> (ApiVersion, ServicePrincipalRef, JobId) {
        let parsed = parse(path).unwrap_or_else(|| panic!("{path} not recognised"));
        (
            parsed.version,
            parsed.service_principal.unwrap(),
            parsed.job.unwrap().unwrap(),
        )
    }

    #[test]
    fn the_three_start_forms_are_recognised() {
        let (version, sp, job) = ok(&format!(
            "/v1.0/servicePrincipals/{SP}/synchronization/jobs/Job.1/start"
        ));
        assert_eq!(version, ApiVersion::V1);
        assert_eq!(
            sp,
            ServicePrincipalRef::Id(ServicePrincipalId::parse(SP).unwrap())
        );
        assert_eq!(job.as_str(), "Job.1");
        let (version, _, _) = ok(&format!(
            "/beta/servicePrincipals/{SP}/synchronization/jobs/Job.1/microsoft.graph.start"
        ));
        assert_eq!(version, ApiVersion::Beta);
        let (_, sp, _) = ok(&format!(
            "/v1.0/servicePrincipals(appId='{SP}')/synchronization/jobs/Job.1/start"
        ));
        assert!(matches!(sp, ServicePrincipalRef::AppId(_)));
        ok(&format!(
            "/v1.0/servicePrincipals/{SP}/synchronization/jobs/Job.1/start/"
        ));
        let (_, sp, _) = ok(&format!(
            "/v1.0/servicePrincipals(appId=%27{SP}%27)/synchronization/jobs/Job.1/start"
        ));
        assert!(matches!(sp, ServicePrincipalRef::AppId(_)));
    }

    #[test]
    fn ids_that_escape_their_segment_are_bad_requests() {
        for path in [
            format!("/v1.0/servicePrincipals/{SP}/synchronization/jobs/../../users/start"),
            format!("/v1.0/servicePrincipals/{SP}/synchronization/jobs/%2e%2e/start"),
            format!("/v1.0/servicePrincipals/{SP}/synchronization/jobs/a%2Fb/start"),
            format!("/v1.0/servicePrincipals/{SP}/synchronization/jobs/a/b/start"),
            format!(
                "/v1.0/servicePrincipals/{SP}/synchronization/jobs/{}/start",
                "x".repeat(257)
            ),
        ] {
            let parsed = parse(&path).unwrap();
            assert!(parsed.job.unwrap().is_err(), "{path}");
        }
        let parsed =
            parse("/v1.0/servicePrincipals/../../users/synchronization/jobs/x/start").unwrap();
        assert!(parsed.service_principal.is_err());
        let parsed =
            parse("/v1.0/servicePrincipals(displayName='x')/synchronization/jobs/x/start").unwrap();
        assert!(parsed.service_principal.is_err());
    }

    #[test]
    fn a_job_and_the_list_of_jobs_are_read_paths() {
        let job = parse(&format!(
            "/v1.0/servicePrincipals/{SP}/synchronization/jobs/Job.1"
        ))
        .unwrap();
        assert!(!job.start);
        assert_eq!(job.job.unwrap().unwrap().as_str(), "Job.1");
        let list = parse(&format!(
            "/beta/servicePrincipals(appId='{SP}')/synchronization/jobs/"
        ))
        .unwrap();
        assert!(!list.start && list.job.is_none());
        assert!(matches!(
            list.service_principal,
            Ok(ServicePrincipalRef::AppId(_))
        ));
        let bad = parse(&format!(
            "/v1.0/servicePrincipals/{SP}/synchronization/jobs/%2e%2e"
        ))
        .unwrap();
        assert!(bad.job.unwrap().is_err());
    }

    #[test]
    fn other_paths_are_not_start_paths() {
        for path in [
            "/",
            "/v1.0",
            "/v2.0/servicePrincipals/x/synchronization/jobs/y/start",
            "/v1.0/users/x/start",
            "/v1.0/servicePrincipals/x/synchronization/jobs/y/pause",
        ] {
            assert!(parse(path).is_none(), "{path}");
        }
    }
}
