//! Job reads: a job, or the jobs of a service principal, as Graph answers them, with Graph's
//! read permissions, a read cache that identical polls share, and the guard's view of each job.
//!
//! Portals poll. Identical reads (same job or list, same `$select`) within `reads.cache_secs`
//! are answered from one upstream GET, concurrent ones from one call, once each caller is
//! authorised. The cache lives in the guard's store, so replicas sharing Redis share it; a
//! forwarded start drops the cached reads of its service principal (the job and the list) at
//! once by moving their generation, so the next read asks Graph. The preflight read of a start
//! never comes here. Reads are counted in metrics, not audited.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use moka::future::Cache;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::admission::Admission;
use crate::auth::Caller;
use crate::auth::authz::{Grant, Policy};
use crate::directory::{Directory, Unkept};
use crate::error::ApiError;
use crate::graph::{Forwarding, GraphClient, Read, UpstreamAnswer};
use crate::guard::store::Store;
use crate::guard::{Guard, JobKey};
use crate::ids::{ApiVersion, JobId, ServicePrincipalId, ServicePrincipalRef};
use crate::outcome::Outcome;
use crate::values::Problems;

/// The `[reads]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadsConfig {
    /// Identical job reads within this window share one upstream GET; 0: no cache.
    pub cache_secs: u64,
}

impl Default for ReadsConfig {
    fn default() -> Self {
        Self { cache_secs: 5 }
    }
}

impl ReadsConfig {
    pub fn check(&self, problems: &mut Problems) {
        problems.within("reads.cache_secs", self.cache_secs, 0, 3600);
    }
}

/// One read, as asked.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub version: ApiVersion,
    pub service_principal: ServicePrincipalRef,
    /// `None`: the list of jobs.
    pub job: Option<JobId>,
    /// `$select`, as the caller gave it.
    pub select: Option<String>,
    pub forwarding: Forwarding,
}

/// Graph's answer to a read, as kept in the cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fetched {
    /// Graph's kept headers (`request-id`, ...).
    #[serde(with = "crate::outcome::header_list")]
    pub headers: HeaderMap,
    pub body: String,
    /// When Graph answered, in milliseconds since the Unix epoch.
    pub fetched_ms: u64,
}

/// A read answered: Graph's job or list with the guard's view, and how fresh it is.
pub struct JobsRead {
    pub headers: HeaderMap,
    pub body: Value,
    /// Seconds since Graph answered.
    pub age: u64,
    /// Seconds the answer may still be reused (`Cache-Control: max-age`).
    pub max_age: u64,
}

/// A read's answer: the jobs, or Graph's own error passed through.
pub enum ReadAnswer {
    Jobs(JobsRead),
    Graph(Outcome),
}

/// A generation of a service principal's cached reads: a new random token.
fn new_generation() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The read cache: entries in the guard's store (shared by replicas with Redis), a local tier in
/// front of it that also makes concurrent identical misses one Graph call.
pub struct ReadCache {
    store: Store,
    ttl: Duration,
    local: Cache<String, Arc<Fetched>>,
}

/// A cached answer expires `ttl` after Graph gave it, wherever it was cached since.
struct Freshness(Duration);

impl moka::Expiry<String, Arc<Fetched>> for Freshness {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Fetched>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        let age = Duration::from_millis(now_ms().saturating_sub(value.fetched_ms));
        Some(self.0.saturating_sub(age))
    }
}

impl ReadCache {
    pub fn new(store: Store, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            local: Cache::builder()
                .max_capacity(10_000)
                .expire_after(Freshness(ttl))
                .build(),
        }
    }

    /// The generation of every cached read of a service principal: its jobs and its list.
    fn generation_key(sp: &ServicePrincipalId) -> String {
        format!("readgen:{}", sp.as_str().to_ascii_lowercase())
    }

    /// Drops the cached reads of a service principal (the started job's and its list's among
    /// them): their generation moves, so every key made before names nothing any more. One
    /// write per start; the price is that a sibling job's cached read is asked of Graph again.
    pub async fn invalidate(&self, sp: &ServicePrincipalId) {
        if self.ttl.is_zero() {
            return;
        }
        if let Err(error) = self
            .store
            .set(
                &Self::generation_key(sp),
                &new_generation(),
                self.generation_ttl(),
            )
            .await
        {
            tracing::warn!(%error, "could not drop cached job reads");
        }
    }

    /// Longer than any entry lives, so an old generation can never come back.
    fn generation_ttl(&self) -> Duration {
        self.ttl * 2 + Duration::from_secs(60)
    }

    /// The key of a read's entry in its current generation; `None` when the store cannot say
    /// (the read then goes to Graph uncached).
    ///
    /// A service principal without a generation gets one before anything is kept: were entries
    /// kept under no generation, a generation key lost after a start (evicted from a full
    /// table, or by Redis under memory pressure) would bring back what was read before it.
    async fn entry_key(
        &self,
        version: ApiVersion,
        sp: &ServicePrincipalId,
        job: Option<&JobId>,
        select: Option<&str>,
    ) -> Option<String> {
        let generation_key = Self::generation_key(sp);
        let generation = match self.store.get(&generation_key).await.ok()? {
            Some(generation) => generation,
            None => {
                let fresh = new_generation();
                let ttl = self.generation_ttl();
                if self.store.set_nx(&generation_key, &fresh, ttl).await.ok()? {
                    fresh
                } else {
                    // Another request set it first: theirs is the one.
                    self.store.get(&generation_key).await.ok()??
                }
            }
        };
        let sp = generation_key.trim_start_matches("readgen:");
        let job = job.map(|job| job.as_str().to_ascii_lowercase());
        Some(format!(
            "read:{version}:{sp}/{}:{generation}:{}",
            job.as_deref().unwrap_or_default(),
            select.unwrap_or_default().to_ascii_lowercase()
        ))
    }

    /// The cached answer, or Graph's: a miss is charged to `caller` first. Returns the answer
    /// and whether Graph was asked for it.
    async fn get_or_fetch(
        &self,
        key: Option<String>,
        charge: impl FnOnce() -> Result<(), ApiError>,
        fetch: impl Future<Output = Result<UpstreamAnswer, ApiError>>,
    ) -> Result<Result<(Arc<Fetched>, bool), UpstreamAnswer>, ApiError> {
        let kept = |answer: UpstreamAnswer| Fetched {
            headers: answer
                .headers
                .iter()
                .filter(|(_, v)| v.to_str().is_ok())
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect(),
            body: String::from_utf8_lossy(&answer.body).into_owned(),
            fetched_ms: now_ms(),
        };
        let Some(key) = key.filter(|_| !self.ttl.is_zero()) else {
            charge()?;
            let answer = fetch.await?;
            return Ok(if answer.status.is_success() {
                Ok((Arc::new(kept(answer)), true))
            } else {
                Err(answer)
            });
        };
        if let Some(hit) = self.local.get(&key).await {
            return Ok(Ok((hit, false)));
        }
        let shared = self.store.get(&key).await.ok().flatten();
        if let Some(hit) = shared.and_then(|text| serde_json::from_str::<Fetched>(&text).ok()) {
            let hit = Arc::new(hit);
            self.local.insert(key, Arc::clone(&hit)).await;
            return Ok(Ok((hit, false)));
        }
        charge()?;
        let asked = AtomicBool::new(false);
        let loaded = self
            .local
            .try_get_with(key.clone(), async {
                asked.store(true, Ordering::Relaxed);
                let answer = fetch.await.map_err(Unkept::Failed)?;
                if !answer.status.is_success() {
                    return Err(Unkept::Upstream(answer));
                }
                let fetched = kept(answer);
                if let Ok(text) = serde_json::to_string(&fetched) {
                    let _ = self.store.set(&key, &text, self.ttl).await;
                }
                Ok(Arc::new(fetched))
            })
            .await;
        match loaded {
            Ok(fetched) => Ok(Ok((fetched, asked.load(Ordering::Relaxed)))),
            Err(unkept) => match &*unkept {
                Unkept::Upstream(answer) => Ok(Err(answer.clone())),
                Unkept::Failed(error) => Err(error.clone()),
            },
        }
    }
}

pub struct ReadService {
    pub(crate) graph: Arc<GraphClient>,
    pub(crate) policy: Policy,
    pub(crate) directory: Arc<Directory>,
    pub(crate) guard: Arc<Guard>,
    pub(crate) admission: Arc<Admission>,
    pub(crate) cache: Arc<ReadCache>,
}

impl ReadService {
    /// Authorises, resolves and reads; the answer carries the guard's view of each job.
    pub async fn read(
        &self,
        caller: &Caller,
        request: &ReadRequest,
    ) -> Result<ReadAnswer, ApiError> {
        let grant = self.policy.authorize_read(caller)?;
        let fwd = &request.forwarding;
        let sp = match &request.service_principal {
            ServicePrincipalRef::Id(id) => id.clone(),
            ServicePrincipalRef::AppId(app_id) => {
                match self
                    .directory
                    .resolve(caller, request.version, app_id, fwd)
                    .await?
                {
                    Read::Found(id) => id,
                    Read::Upstream(answer) => return Ok(ReadAnswer::Graph(answer.into())),
                }
            }
        };
        if let Grant::OwnedBy { permission } = &grant {
            match self.directory.owners_of(caller, &sp, fwd).await? {
                Read::Upstream(answer) => return Ok(ReadAnswer::Graph(answer.into())),
                Read::Found(owners) if owners.contains(&caller.object_id) => {}
                Read::Found(_) => {
                    return Err(ApiError::forbidden(format!(
                        "Insufficient privileges: with {permission} an application may read jobs only of service principals it owns; {} is not an owner of service principal {sp}.",
                        caller.object_id
                    )));
                }
            }
        }
        let job = request.job.as_ref();
        let select = request.select.as_deref();
        let key = self
            .cache
            .entry_key(request.version, &sp, job, select)
            .await;
        let fetched = self
            .cache
            .get_or_fetch(
                key,
                || self.admission.charge(caller),
                self.graph.read_jobs(request.version, &sp, job, select, fwd),
            )
            .await?;
        let (fetched, asked) = match fetched {
            Ok(done) => done,
            Err(answer) => return Ok(ReadAnswer::Graph(answer.into())),
        };
        let cache = match (self.cache.ttl.is_zero(), asked) {
            (true, _) => "off",
            (false, true) => "miss",
            (false, false) => "hit",
        };
        metrics::counter!(crate::telemetry::JOB_READS, "cache" => cache).increment(1);
        let mut body: Value = serde_json::from_str(&fetched.body).map_err(|e| {
            ApiError::bad_gateway(format!(
                "Graph answered an unreadable synchronizationJob: {e}"
            ))
        })?;
        self.annotate(&sp, request.job.as_ref(), &mut body).await?;
        let age = now_ms().saturating_sub(fetched.fetched_ms) / 1000;
        Ok(ReadAnswer::Jobs(JobsRead {
            headers: fetched.headers.clone(),
            body,
            age,
            max_age: self.cache.ttl.as_secs().saturating_sub(age),
        }))
    }

    /// Adds the guard's view to each job object as OData instance annotations, which Graph SDKs
    /// keep as additional data.
    async fn annotate(
        &self,
        sp: &ServicePrincipalId,
        job: Option<&JobId>,
        body: &mut Value,
    ) -> Result<(), ApiError> {
        let objects: Vec<&mut Value> = match job {
            Some(_) => vec![body],
            None => body
                .get_mut("value")
                .and_then(Value::as_array_mut)
                .map_or_else(Vec::new, |items| items.iter_mut().collect()),
        };
        for object in objects {
            let id = job
                .cloned()
                .or_else(|| JobId::parse(object.get("id")?.as_str()?).ok());
            let (Some(id), Some(object)) = (id, object.as_object_mut()) else {
                continue;
            };
            let view = self.guard.view(&JobKey::new(sp, &id)).await?;
            object.insert(
                "@syncjob.startAllowedAt".into(),
                view.start_allowed_at.into(),
            );
            object.insert(
                "@syncjob.lastStart".into(),
                view.last_start.unwrap_or(Value::Null),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lost_generation_never_brings_back_what_was_read_before_a_start() {
        let store = Store::open("memory", 100).unwrap();
        let cache = ReadCache::new(store.clone(), Duration::from_secs(5));
        let sp = ServicePrincipalId::parse("2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d").unwrap();
        let job = JobId::parse("AWS.abc.def").unwrap();
        let key = || cache.entry_key(ApiVersion::V1, &sp, Some(&job), None);
        let before_start = key().await.unwrap();
        assert_eq!(key().await.unwrap(), before_start, "stable between starts");
        cache.invalidate(&sp).await;
        let after_start = key().await.unwrap();
        assert_ne!(after_start, before_start);
        // The generation key is lost, as an eviction would lose it.
        store.delete(&ReadCache::generation_key(&sp)).await.unwrap();
        let after_loss = key().await.unwrap();
        assert_ne!(after_loss, before_start);
        assert_ne!(after_loss, after_start);
    }
}
