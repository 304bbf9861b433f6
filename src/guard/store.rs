//! Where the guard keeps its state: in process memory (one replica) or in Redis (shared by
//! replicas). Both offer the same few primitives with expiry, so the guard's logic is written
//! once and behaves the same on either.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;

pub use super::config::RedisOptions;
use moka::future::Cache;
use moka::ops::compute::Op;

/// How long one Redis command may take before the store counts as unreachable.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
#[error("guard store unavailable: {0}")]
pub struct StoreError(pub String);

#[derive(Clone)]
pub enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl Store {
    /// `memory`, or a `redis://` / `rediss://` URL. A Redis that is down at start-up is not an
    /// error: the store connects when first used, and fails closed until then.
    pub fn open(spec: &str, memory_max_entries: u64) -> Result<Self, StoreError> {
        Self::open_with(&spec.into(), memory_max_entries, RedisOptions::default())
    }

    /// As `open`, with the TLS roots and password file of a Redis store.
    pub fn open_with(
        spec: &super::config::StoreSpec,
        memory_max_entries: u64,
        options: RedisOptions,
    ) -> Result<Self, StoreError> {
        let Some(url) = spec.redis_url() else {
            return Ok(Self::Memory(MemoryStore::new(memory_max_entries)));
        };
        let store = RedisStore {
            url: url.to_owned(),
            options: Arc::new(options),
            connection: Arc::new(std::sync::RwLock::new(None)),
            connecting: Arc::new(tokio::sync::Mutex::new(())),
        };
        // The URL and the certificates are checked now; the password file is read at connect.
        store.client(None)?;
        Ok(Self::Redis(store))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(_) => "redis",
        }
    }

    /// Stores `value` under `key` unless the key exists; true when stored.
    pub async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        match self {
            Self::Memory(store) => Ok(store.set_nx(key, value, ttl).await),
            Self::Redis(store) => {
                let reply: Option<String> = store
                    .query(
                        redis::cmd("SET")
                            .arg(key)
                            .arg(value)
                            .arg("NX")
                            .arg("PX")
                            .arg(millis(ttl)),
                    )
                    .await?;
                Ok(reply.is_some())
            }
        }
    }

    pub async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        match self {
            Self::Memory(store) => {
                store.set(key, value, ttl).await;
                Ok(())
            }
            Self::Redis(store) => {
                store
                    .query::<()>(
                        redis::cmd("SET")
                            .arg(key)
                            .arg(value)
                            .arg("PX")
                            .arg(millis(ttl)),
                    )
                    .await
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        match self {
            Self::Memory(store) => Ok(store.get(key).await.map(|(value, _)| value)),
            Self::Redis(store) => store.query(redis::cmd("GET").arg(key)).await,
        }
    }

    /// Time left before `key` expires; `None` when it does not exist.
    pub async fn ttl(&self, key: &str) -> Result<Option<Duration>, StoreError> {
        match self {
            Self::Memory(store) => Ok(store.get(key).await.map(|(_, left)| left)),
            Self::Redis(store) => {
                let millis: i64 = store.query(redis::cmd("PTTL").arg(key)).await?;
                Ok((millis > 0).then(|| Duration::from_millis(millis as u64)))
            }
        }
    }

    /// Deletes `key` only while it still holds `value` (a lease is released only by its holder).
    pub async fn delete_if(&self, key: &str, value: &str) -> Result<(), StoreError> {
        match self {
            Self::Memory(store) => {
                store.delete_if(key, value).await;
                Ok(())
            }
            Self::Redis(store) => {
                const RELEASE_IF_HELD: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
                let mut release = redis::cmd("EVAL");
                let release = release.arg(RELEASE_IF_HELD).arg(1).arg(key).arg(value);
                store.query::<i64>(release).await.map(drop)
            }
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Self::Memory(store) => {
                store.entries.invalidate(key).await;
                Ok(())
            }
            Self::Redis(store) => store.query::<()>(redis::cmd("DEL").arg(key)).await,
        }
    }

    /// Whether the store answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Memory(_) => Ok(()),
            Self::Redis(store) => store.query::<String>(&redis::cmd("PING")).await.map(drop),
        }
    }
}

fn millis(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u64::MAX as u128) as u64
}

fn redis_error(error: redis::RedisError) -> StoreError {
    StoreError(format!("Redis: {error}"))
}

/// The system's trusted roots as PEM, followed by `extra`: the Redis client trusts exactly the
/// roots it is given, so the system's are handed over too.
fn roots_with(extra: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let mut pem = Vec::new();
    for cert in rustls_native_certs::load_native_certs().certs {
        let encoded = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem.extend_from_slice(extra);
    pem
}

/// A value with its own expiry.
#[derive(Clone)]
struct Timed {
    value: Arc<str>,
    expires_at: Instant,
}

impl Timed {
    fn new(value: &str, ttl: Duration) -> Self {
        Self {
            value: value.into(),
            expires_at: Instant::now() + ttl,
        }
    }
}

struct PerEntryExpiry;

impl Expiry<String, Timed> for PerEntryExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Timed,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.expires_at.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Timed,
        updated_at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.expires_at.saturating_duration_since(updated_at))
    }
}

/// Bounded in-process store: entries expire on their own deadline and the least recently used
/// are evicted beyond `max_entries`.
///
/// Least recently used, not moka's default TinyLFU: TinyLFU may refuse a new key when the
/// table is full of keys read more often, and a guard record refused is a cooldown forgotten
/// the moment it is set. Under LRU a record just written is the last to go.
#[derive(Clone)]
pub struct MemoryStore {
    entries: Cache<String, Timed>,
}

impl MemoryStore {
    pub fn new(max_entries: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(max_entries)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .expire_after(PerEntryExpiry)
                .build(),
        }
    }

    async fn get(&self, key: &str) -> Option<(String, Duration)> {
        let entry = self.entries.get(key).await?;
        let left = entry.expires_at.checked_duration_since(Instant::now())?;
        Some((entry.value.to_string(), left))
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) {
        self.entries
            .insert(key.to_owned(), Timed::new(value, ttl))
            .await;
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> bool {
        let new = Timed::new(value, ttl);
        let result = self
            .entries
            .entry(key.to_owned())
            .and_compute_with(|existing| {
                let live = existing.is_some_and(|e| e.value().expires_at > Instant::now());
                std::future::ready(if live { Op::Nop } else { Op::Put(new) })
            })
            .await;
        !matches!(result, moka::ops::compute::CompResult::Unchanged(_))
    }

    async fn delete_if(&self, key: &str, value: &str) {
        self.entries
            .entry(key.to_owned())
            .and_compute_with(|existing| {
                std::future::ready(if existing.is_some_and(|e| &*e.value().value == value) {
                    Op::Remove
                } else {
                    Op::Nop
                })
            })
            .await;
    }

    /// Entries held now (after pending evictions), for the boundedness test.
    pub async fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.entry_count()
    }
}

/// Redis through a connection manager, which reconnects by itself once created; creating it
/// is retried on use, so a Redis that was down at start-up is picked up when it comes back.
/// When Redis refuses the password (a rotated key), the manager is dropped and the next use
/// connects anew with the password file read again.
#[derive(Clone)]
pub struct RedisStore {
    url: String,
    options: Arc<RedisOptions>,
    connection: Arc<std::sync::RwLock<Option<redis::aio::ConnectionManager>>>,
    /// Held by the one request that connects.
    connecting: Arc<tokio::sync::Mutex<()>>,
}

impl RedisStore {
    /// A client for the URL, with `password` (when given) and the TLS roots.
    fn client(&self, password: Option<String>) -> Result<redis::Client, StoreError> {
        use redis::IntoConnectionInfo;
        let mut info = self
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| StoreError(format!("invalid Redis URL: {e}")))?;
        if let Some(password) = password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
        match (&self.options.extra_roots_pem, tls) {
            (Some(extra), true) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(roots_with(extra)),
                },
            ),
            _ => redis::Client::open(info),
        }
        .map_err(|e| StoreError(format!("invalid Redis settings: {e}")))
    }

    /// The connection; while none exists, one request connects and the others fail fast
    /// (503) rather than queue behind a Redis that may be black-holed.
    async fn connection(&self) -> Result<redis::aio::ConnectionManager, StoreError> {
        let established = || self.connection.read().expect("connection lock").clone();
        if let Some(connection) = established() {
            return Ok(connection);
        }
        let Ok(_connecting) = self.connecting.try_lock() else {
            return Err(StoreError("connecting to Redis".into()));
        };
        if let Some(connection) = established() {
            return Ok(connection);
        }
        let password = match &self.options.password_file {
            Some(path) => Some(crate::values::first_line(path).map_err(StoreError)?),
            None => None,
        };
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connect =
            redis::aio::ConnectionManager::new_with_config(self.client(password)?, config);
        let connection = tokio::time::timeout(REDIS_TIMEOUT * 2, connect)
            .await
            .map_err(|_| StoreError("Redis did not accept a connection in time".into()))?
            .map_err(redis_error)?;
        *self.connection.write().expect("connection lock") = Some(connection.clone());
        Ok(connection)
    }

    /// Drops the connection when Redis refused the credentials, so that the next use connects
    /// with the password read again.
    fn check(&self, error: redis::RedisError) -> StoreError {
        let refused = error.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(error.code(), Some("NOAUTH" | "WRONGPASS"));
        if refused {
            *self.connection.write().expect("connection lock") = None;
        }
        redis_error(error)
    }

    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, StoreError> {
        let mut connection = self.connection().await?;
        tokio::time::timeout(REDIS_TIMEOUT, command.query_async::<T>(&mut connection))
            .await
            .map_err(|_| StoreError("Redis did not answer in time".into()))?
            .map_err(|e| self.check(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_set_nx_refuses_a_live_key_and_accepts_an_expired_one() {
        let store = Store::open("memory", 100).unwrap();
        assert!(
            store
                .set_nx("k", "a", Duration::from_millis(50))
                .await
                .unwrap()
        );
        assert!(
            !store
                .set_nx("k", "b", Duration::from_secs(5))
                .await
                .unwrap()
        );
        assert_eq!(store.get("k").await.unwrap().as_deref(), Some("a"));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(store.get("k").await.unwrap(), None);
        assert!(
            store
                .set_nx("k", "c", Duration::from_secs(5))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn memory_delete_if_only_deletes_the_holders_value() {
        let store = Store::open("memory", 100).unwrap();
        store
            .set("lease", "me", Duration::from_secs(5))
            .await
            .unwrap();
        store.delete_if("lease", "someone-else").await.unwrap();
        assert!(store.get("lease").await.unwrap().is_some());
        store.delete_if("lease", "me").await.unwrap();
        assert!(store.get("lease").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn memory_store_keeps_a_new_record_when_full_of_often_read_ones() {
        let store = MemoryStore::new(1_000);
        let day = Duration::from_secs(86_400);
        for i in 0..1_000 {
            store.set(&format!("laststart:{i}"), "x", day).await;
        }
        for _ in 0..3 {
            for i in 0..1_000 {
                store.get(&format!("laststart:{i}")).await;
            }
        }
        store.entries.run_pending_tasks().await;
        store
            .set(
                "cooldown:job",
                "2026-12-03T16:00:00Z",
                Duration::from_secs(300),
            )
            .await;
        store.entries.run_pending_tasks().await;
        assert_eq!(
            store.get("cooldown:job").await.map(|(value, _)| value),
            Some("2026-12-03T16:00:00Z".to_owned())
        );
        assert!(store.entry_count().await <= 1_000);
    }

    #[tokio::test]
    async fn memory_store_stays_bounded_under_100k_distinct_keys() {
        let store = MemoryStore::new(10_000);
        for i in 0..100_000 {
            store
                .set(&format!("idem:{i}"), "x", Duration::from_secs(86_400))
                .await;
        }
        assert!(
            store.entry_count().await <= 10_000,
            "{} entries",
            store.entry_count().await
        );
    }
}
