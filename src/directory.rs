//! The directory lookups a request may need before it reaches a job: an appId resolved to its
//! service principal, a service principal's owners. Cached, shared by starts and reads;
//! concurrent misses of one key share one Graph call, and a miss is charged to the caller whose
//! request asks Graph.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use moka::future::Cache;

use crate::admission::Admission;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::graph::{Forwarding, GraphClient, Read, UpstreamAnswer};
use crate::ids::{ApiVersion, AppId, ServicePrincipalId};

pub struct Directory {
    graph: Arc<GraphClient>,
    admission: Arc<Admission>,
    /// appId → service principal object id; directory ids do not change.
    app_ids: Lookups<AppId, ServicePrincipalId>,
    /// service principal → owner object ids, briefly, so bursts do not re-read them.
    owners: Lookups<ServicePrincipalId, Arc<Vec<String>>>,
}

impl Directory {
    pub fn new(graph: Arc<GraphClient>, admission: Arc<Admission>) -> Self {
        Self {
            graph,
            admission,
            app_ids: Lookups::new(Duration::from_secs(600)),
            owners: Lookups::new(Duration::from_secs(60)),
        }
    }

    pub async fn resolve(
        &self,
        caller: &Caller,
        version: ApiVersion,
        app_id: &AppId,
        fwd: &Forwarding,
    ) -> Result<Read<ServicePrincipalId>, ApiError> {
        self.app_ids
            .get(
                app_id.clone(),
                caller,
                &self.admission,
                self.graph.resolve_app_id(version, app_id, fwd),
            )
            .await
    }

    pub async fn owners_of(
        &self,
        caller: &Caller,
        sp: &ServicePrincipalId,
        fwd: &Forwarding,
    ) -> Result<Read<Arc<Vec<String>>>, ApiError> {
        let load = async {
            Ok(match self.graph.owners(sp, fwd).await? {
                Read::Found(owners) => Read::Found(Arc::new(owners)),
                Read::Upstream(answer) => Read::Upstream(answer),
            })
        };
        self.owners
            .get(sp.clone(), caller, &self.admission, load)
            .await
    }
}

/// How long Graph's 404 for a lookup is kept: a burst naming a missing service principal
/// costs one Graph call, and one created a moment later is found soon after.
const NOT_FOUND_TTL: Duration = Duration::from_secs(30);

/// A directory lookup cache: concurrent misses of one key share one Graph call, and its answer
/// is kept (a found value for the cache's lifetime, Graph's 404 for `NOT_FOUND_TTL`). Other
/// answers of Graph (throttling, failures) are shared by the waiters of that call, not kept.
struct Lookups<K, V> {
    cache: Cache<K, Read<V>>,
}

/// A lookup answer that is shared with concurrent waiters but not kept.
pub(crate) enum Unkept {
    Upstream(UpstreamAnswer),
    Failed(ApiError),
}

struct LookupExpiry {
    found: Duration,
}

impl<K, V> moka::Expiry<K, Read<V>> for LookupExpiry {
    fn expire_after_create(
        &self,
        _key: &K,
        value: &Read<V>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(match value {
            Read::Found(_) => self.found,
            Read::Upstream(_) => NOT_FOUND_TTL,
        })
    }
}

impl<K, V> Lookups<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + Clone + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(found: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(10_000)
                .expire_after(LookupExpiry { found })
                .build(),
        }
    }

    /// The cached answer, or `load`'s: a miss is charged to `caller` before Graph is asked.
    async fn get(
        &self,
        key: K,
        caller: &Caller,
        admission: &Admission,
        load: impl Future<Output = Result<Read<V>, ApiError>>,
    ) -> Result<Read<V>, ApiError> {
        if let Some(hit) = self.cache.get(&key).await {
            return Ok(hit);
        }
        admission.charge(caller)?;
        let loaded = self
            .cache
            .try_get_with(key, async {
                match load.await {
                    Ok(Read::Upstream(answer)) if answer.status != StatusCode::NOT_FOUND => {
                        Err(Unkept::Upstream(answer))
                    }
                    Ok(read) => Ok(read),
                    Err(error) => Err(Unkept::Failed(error)),
                }
            })
            .await;
        loaded.or_else(|unkept| match &*unkept {
            Unkept::Upstream(answer) => Ok(Read::Upstream(answer.clone())),
            Unkept::Failed(error) => Err(error.clone()),
        })
    }
}
