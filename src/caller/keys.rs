//! The caller tenant's token-signing keys: found through OpenID discovery, cached, refreshed
//! in the background before they go stale, and refreshed on an unknown `kid` at most once per
//! interval, so a flood of forged key ids cannot hammer Entra. A failed refresh keeps the last
//! good keys.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use reqwest::header::CACHE_CONTROL;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Refresh timings; production uses [`KeyTiming::default`], tests shrink them.
#[derive(Debug, Clone, Copy)]
pub struct KeyTiming {
    /// At most one refresh per this interval is caused by unknown key ids.
    pub unknown_kid_interval: Duration,
    /// With no keys at all, requests retry the fetch at most this often.
    pub empty_retry: Duration,
    /// Keys are refreshed in the background this long after a fetch, unless the key
    /// endpoint's `Cache-Control: max-age` asks for sooner.
    pub refresh_after: Duration,
    /// Floor for `max-age`, and the wait before the background retries a failed refresh.
    pub min_refresh: Duration,
    /// One discovery or key request may take this long.
    pub fetch_timeout: Duration,
}

impl Default for KeyTiming {
    fn default() -> Self {
        Self {
            unknown_kid_interval: Duration::from_secs(300),
            empty_retry: Duration::from_secs(10),
            // Microsoft's guidance: check the keys at least every 24 h; Entra answers max-age=86400.
            refresh_after: Duration::from_secs(12 * 3600),
            min_refresh: Duration::from_secs(60),
            fetch_timeout: Duration::from_secs(10),
        }
    }
}

/// Key sets bigger than this are refused (Entra's is a few kilobytes).
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Why no key could be found for a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The tenant's key set, fresh or refreshed within the interval, has no such key.
    #[error("no RS256 signing key {kid:?} in the tenant's key set")]
    UnknownKid { kid: String },
    /// No keys were ever fetched and the latest fetch failed.
    #[error("the tenant's signing keys could not be fetched: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Duration,
    },
}

/// Why one fetch failed; the text goes to logs and answers, so it never holds key material.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(String);

struct KeySet {
    keys: HashMap<String, Arc<DecodingKey>>,
    fetched_at: Instant,
    /// When the background task should fetch again.
    refresh_at: Instant,
}

#[derive(Default)]
struct RefreshState {
    /// The last refresh that a request (not the background task) caused.
    last_on_demand: Option<Instant>,
    last_error: Option<String>,
    last_attempt: Option<Instant>,
}

/// The key cache for one tenant.
pub struct KeyCache {
    http: reqwest::Client,
    discovery_url: String,
    /// `jwks_uri` must use this scheme and host: the discovery document cannot send us elsewhere.
    authority: url::Url,
    timing: KeyTiming,
    keys: RwLock<Option<KeySet>>,
    /// Bumped on every successful fetch, so waiters know a refresh already happened.
    generation: std::sync::atomic::AtomicU64,
    /// Held for the whole of a fetch: one fetch at a time, others wait for its result.
    refresh: Arc<Mutex<RefreshState>>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("discovery_url", &self.discovery_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// The members of a JWK the gateway uses; others are ignored.
#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl KeyCache {
    /// A cache for the tenant at `authority` (e.g. `https://login.microsoftonline.com`).
    pub fn new(authority: &str, tenant_id: &str, timing: KeyTiming) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timing.fetch_timeout)
            .connect_timeout(timing.fetch_timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(crate::outbound::USER_AGENT)
            .build()
            .expect("a reqwest client with these options always builds");
        let authority_url = url::Url::parse(authority).expect("CALLER_AUTHORITY is validated");
        Self {
            http,
            discovery_url: format!("{authority}/{tenant_id}/v2.0/.well-known/openid-configuration"),
            authority: authority_url,
            timing,
            keys: RwLock::new(None),
            generation: Default::default(),
            refresh: Arc::new(Mutex::new(RefreshState::default())),
        }
    }

    /// Starts the first fetch and the background refresh. Requests that arrive during the
    /// first fetch wait for it instead of starting their own.
    pub fn start(self: &Arc<Self>) {
        let first = self
            .refresh
            .clone()
            .try_lock_owned()
            .expect("nothing else holds the lock before start");
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            let mut state = first;
            cache.fetch_locked(&mut state).await;
            drop(state);
            loop {
                let wait = cache.next_background_refresh();
                tokio::time::sleep_until(wait).await;
                let mut state = cache.refresh.lock().await;
                cache.fetch_locked(&mut state).await;
            }
        });
    }

    fn next_background_refresh(&self) -> Instant {
        let keys = self.keys.read().expect("key cache lock");
        match keys.as_ref() {
            Some(set) if set.refresh_at > Instant::now() => set.refresh_at,
            // No keys yet, or a failed refresh left refresh_at behind: retry after the floor.
            _ => Instant::now() + self.timing.min_refresh,
        }
    }

    /// The key for `kid`, refreshing the set if the rules allow.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, KeyError> {
        let seen = self.generation.load(std::sync::atomic::Ordering::Acquire);
        let had_keys = match self.lookup(kid) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Unknown => true,
            Lookup::Empty => false,
        };
        let mut state = self.refresh.lock().await;
        let refreshed_meanwhile =
            self.generation.load(std::sync::atomic::Ordering::Acquire) != seen;
        if !refreshed_meanwhile {
            let (last, gap) = if had_keys {
                (state.last_on_demand, self.timing.unknown_kid_interval)
            } else {
                (state.last_attempt, self.timing.empty_retry)
            };
            if last.is_none_or(|t| t.elapsed() >= gap) {
                if had_keys {
                    state.last_on_demand = Some(Instant::now());
                }
                self.fetch_locked(&mut state).await;
            }
        }
        match self.lookup(kid) {
            Lookup::Found(key) => Ok(key),
            Lookup::Unknown => Err(KeyError::UnknownKid {
                kid: kid.chars().take(64).collect(),
            }),
            Lookup::Empty => {
                let since = state.last_attempt.map_or(Duration::ZERO, |t| t.elapsed());
                Err(KeyError::Unavailable {
                    reason: state
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "no fetch has finished yet".into()),
                    retry_after: self
                        .timing
                        .empty_retry
                        .saturating_sub(since)
                        .max(Duration::from_secs(1)),
                })
            }
        }
    }

    fn lookup(&self, kid: &str) -> Lookup {
        match self.keys.read().expect("key cache lock").as_ref() {
            None => Lookup::Empty,
            Some(set) => set
                .keys
                .get(kid)
                .cloned()
                .map_or(Lookup::Unknown, Lookup::Found),
        }
    }

    /// Fetches once; the caller holds the refresh lock. Failures keep the keys already held.
    async fn fetch_locked(&self, state: &mut RefreshState) {
        state.last_attempt = Some(Instant::now());
        match self.fetch().await {
            Ok((keys, max_age)) => {
                let now = Instant::now();
                let refresh_in = max_age
                    .map_or(self.timing.refresh_after, |age| {
                        age.min(self.timing.refresh_after)
                    })
                    .max(self.timing.min_refresh);
                let kids: Vec<&str> = keys.keys().map(String::as_str).collect();
                tracing::info!(
                    keys = kids.len(),
                    kids = kids.join(",").as_str(),
                    refresh_in_s = refresh_in.as_secs(),
                    "caller signing keys loaded"
                );
                *self.keys.write().expect("key cache lock") = Some(KeySet {
                    keys,
                    fetched_at: now,
                    refresh_at: now + refresh_in,
                });
                self.generation
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                state.last_error = None;
            }
            Err(e) => {
                let age = self
                    .keys
                    .read()
                    .expect("key cache lock")
                    .as_ref()
                    .map(|s| s.fetched_at.elapsed().as_secs());
                tracing::warn!(
                    error = %e,
                    kept_keys_age_s = age,
                    "caller signing keys could not be refreshed; keeping the last good keys, if any"
                );
                state.last_error = Some(e.0);
            }
        }
    }

    async fn fetch(
        &self,
    ) -> Result<(HashMap<String, Arc<DecodingKey>>, Option<Duration>), FetchError> {
        let (body, _) = self.get(&self.discovery_url).await?;
        let discovery: Discovery = serde_json::from_slice(&body).map_err(|e| {
            FetchError(format!(
                "the OpenID configuration at {} is not valid: {e}",
                self.discovery_url
            ))
        })?;
        let jwks_url = url::Url::parse(&discovery.jwks_uri)
            .ok()
            .filter(|u| {
                u.scheme() == self.authority.scheme()
                    && u.host_str() == self.authority.host_str()
                    && u.port_or_known_default() == self.authority.port_or_known_default()
            })
            .ok_or_else(|| {
                FetchError(format!(
                    "the OpenID configuration names jwks_uri {:?}, which is not on {}",
                    discovery.jwks_uri.chars().take(200).collect::<String>(),
                    self.authority.as_str().trim_end_matches('/')
                ))
            })?;
        let (body, max_age) = self.get(jwks_url.as_str()).await?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| FetchError(format!("the key set at {jwks_url} is not valid: {e}")))?;
        let keys: HashMap<String, Arc<DecodingKey>> =
            set.keys.iter().filter_map(usable_key).collect();
        if keys.is_empty() {
            return Err(FetchError(format!(
                "the key set at {jwks_url} has no RSA signing key usable with RS256"
            )));
        }
        Ok((keys, max_age))
    }

    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
        let fail = |what: String| FetchError(format!("GET {url}: {what}"));
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| fail(crate::outbound::error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(format!("answered {status}")));
        }
        let max_age = response
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_max_age);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(crate::outbound::error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(fail(format!(
                    "answer larger than {MAX_DOCUMENT_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }
}

enum Lookup {
    Found(Arc<DecodingKey>),
    Unknown,
    Empty,
}

/// An RSA key meant for signatures and, if it names an algorithm, for RS256.
fn usable_key(jwk: &Jwk) -> Option<(String, Arc<DecodingKey>)> {
    let kid = jwk.kid.as_ref()?;
    let rsa = jwk.kty.as_deref() == Some("RSA");
    let signing = jwk.usage.as_deref().is_none_or(|u| u == "sig");
    let rs256 = jwk.alg.as_deref().is_none_or(|a| a == "RS256");
    if !(rsa && signing && rs256) {
        return None;
    }
    let key = DecodingKey::from_rsa_components(jwk.n.as_ref()?, jwk.e.as_ref()?).ok()?;
    Some((kid.clone(), Arc::new(key)))
}

fn parse_max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|d| {
        let (name, secs) = d.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| secs.trim().trim_matches('"').parse::<u64>().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    // The cache never verifies with these: any base64url components will do.
    const N: &str = "sXchDaQebHnPiGvyDOAT4w";
    const E: &str = "AQAB";

    fn timing(interval_ms: u64) -> KeyTiming {
        KeyTiming {
            unknown_kid_interval: Duration::from_millis(interval_ms),
            empty_retry: Duration::from_millis(interval_ms),
            refresh_after: Duration::from_secs(3600),
            min_refresh: Duration::from_secs(3600),
            fetch_timeout: Duration::from_secs(5),
        }
    }

    async fn serve(server: &MockServer, kids: &[&str]) {
        server.reset().await;
        Mock::given(method("GET"))
            .and(path(format!(
                "/{TENANT}/v2.0/.well-known/openid-configuration"
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "issuer": format!("{}/{TENANT}/v2.0", server.uri()),
                "jwks_uri": format!("{}/{TENANT}/discovery/v2.0/keys", server.uri()),
            })))
            .mount(server)
            .await;
        let keys: Vec<_> = kids
            .iter()
            .map(|k| json!({"kty": "RSA", "use": "sig", "kid": k, "n": N, "e": E}))
            .collect();
        Mock::given(method("GET"))
            .and(path(format!("/{TENANT}/discovery/v2.0/keys")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": keys})))
            .mount(server)
            .await;
    }

    async fn jwks_calls(server: &MockServer) -> usize {
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().ends_with("/keys"))
            .count()
    }

    fn install_crypto() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    #[tokio::test]
    async fn first_fetch_is_shared_and_unknown_kids_refresh_once_per_interval() {
        install_crypto();
        let server = MockServer::start().await;
        serve(&server, &["a"]).await;
        let cache = Arc::new(KeyCache::new(&server.uri(), TENANT, timing(2000)));
        cache.start();
        // Requests racing the first fetch wait for it rather than fetching again.
        let waits: Vec<_> = (0..20).map(|_| cache.key("a")).collect();
        for r in futures_join(waits).await {
            assert!(r.is_ok());
        }
        assert_eq!(jwks_calls(&server).await, 1);

        // The first unknown kid refreshes at once; the rest of the burst does not.
        let unknown: Vec<_> = (0..200).map(|i| format!("forged-{i}")).collect();
        let burst: Vec<_> = unknown.iter().map(|k| cache.key(k)).collect();
        for r in futures_join(burst).await {
            assert!(matches!(r, Err(KeyError::UnknownKid { .. })));
        }
        assert_eq!(jwks_calls(&server).await, 2);

        // After the interval, a rotated key is picked up by the next unknown kid.
        serve(&server, &["a", "b"]).await;
        assert!(cache.key("b").await.is_err(), "still inside the interval");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(cache.key("b").await.is_ok());
        assert_eq!(jwks_calls(&server).await, 1, "one refresh after the reset");
    }

    #[tokio::test]
    async fn keys_are_refreshed_in_the_background_without_a_request() {
        install_crypto();
        let server = MockServer::start().await;
        serve(&server, &["a"]).await;
        let timing = KeyTiming {
            refresh_after: Duration::from_millis(1000),
            min_refresh: Duration::from_millis(100),
            ..timing(3_600_000)
        };
        let cache = Arc::new(KeyCache::new(&server.uri(), TENANT, timing));
        cache.start();
        assert!(cache.key("a").await.is_ok());
        serve(&server, &["a", "b"]).await;
        let started = std::time::Instant::now();
        while jwks_calls(&server).await == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no background refresh"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Found without a request-driven refresh: the rotated key arrived on its own.
        assert!(cache.key("b").await.is_ok());
        assert_eq!(jwks_calls(&server).await, 1);
    }

    /// The background refresh waits for `refresh_at` (not the floor), and after a failed
    /// refresh retries at the floor's pace rather than at once, again and again.
    #[tokio::test]
    async fn background_refreshes_keep_their_schedule_and_failures_wait_the_floor() {
        install_crypto();
        let server = MockServer::start().await;
        serve(&server, &["a"]).await;
        let timing = KeyTiming {
            refresh_after: Duration::from_millis(1500),
            min_refresh: Duration::from_millis(200),
            ..timing(3_600_000)
        };
        let cache = Arc::new(KeyCache::new(&server.uri(), TENANT, timing));
        cache.start();
        assert!(cache.key("a").await.is_ok());
        server.reset().await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            0,
            "refreshed before refresh_at"
        );
        // From now on every fetch fails (nothing is mounted): retries come at the floor's pace.
        tokio::time::sleep(Duration::from_millis(2300)).await;
        let attempts = server.received_requests().await.unwrap().len();
        assert!(
            (1..=12).contains(&attempts),
            "{attempts} discovery requests in 2.3 s after refresh_at with a 200 ms floor"
        );
        assert!(cache.key("a").await.is_ok(), "the last good keys are kept");
    }

    #[tokio::test]
    async fn key_documents_are_read_up_to_256_kib() {
        install_crypto();
        let server = MockServer::start().await;
        let cache = KeyCache::new(&server.uri(), TENANT, timing(1));
        for (padding, read) in [(200 * 1024, true), (300 * 1024, false)] {
            server.reset().await;
            Mock::given(method("GET"))
                .and(path(format!(
                    "/{TENANT}/v2.0/.well-known/openid-configuration"
                )))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                    "jwks_uri": format!("{}/{TENANT}/discovery/v2.0/keys", server.uri()),
                    "padding": "x".repeat(padding),
                })))
                .mount(&server)
                .await;
            Mock::given(method("GET"))
                .and(path(format!("/{TENANT}/discovery/v2.0/keys")))
                .respond_with(ResponseTemplate::new(200).set_body_json(
                    json!({"keys": [{"kty": "RSA", "use": "sig", "kid": "a", "n": N, "e": E}]}),
                ))
                .mount(&server)
                .await;
            match cache.fetch().await {
                Ok((keys, _)) => assert!(read && keys.contains_key("a"), "{padding}"),
                Err(e) => assert!(
                    !read && e.0.contains("larger than 262144 bytes"),
                    "{padding}: {e}"
                ),
            }
        }
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_last_good_keys() {
        install_crypto();
        let server = MockServer::start().await;
        serve(&server, &["a"]).await;
        let cache = Arc::new(KeyCache::new(&server.uri(), TENANT, timing(50)));
        cache.start();
        assert!(cache.key("a").await.is_ok());
        server.reset().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500))
            .mount(&server)
            .await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(matches!(
            cache.key("b").await,
            Err(KeyError::UnknownKid { .. })
        ));
        assert!(
            cache.key("a").await.is_ok(),
            "key a survives the failed refresh"
        );
    }

    #[tokio::test]
    async fn no_keys_at_all_is_unavailable_with_the_reason_until_entra_answers() {
        install_crypto();
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(404))
            .mount(&server)
            .await;
        let cache = Arc::new(KeyCache::new(&server.uri(), TENANT, timing(1500)));
        cache.start();
        match cache.key("a").await {
            Err(KeyError::Unavailable {
                reason,
                retry_after,
            }) => {
                assert!(reason.contains("404"), "{reason}");
                assert!(retry_after >= Duration::from_secs(1));
            }
            other => panic!("{other:?}"),
        }
        // Within the retry gap nothing more is asked.
        let _ = cache.key("a").await;
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
        // Once Entra answers again, the next request after the gap fetches and is served.
        serve(&server, &["a"]).await;
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert!(cache.key("a").await.is_ok());
    }

    #[tokio::test]
    async fn jwks_uri_must_stay_on_the_authority_and_keys_must_fit_rs256() {
        install_crypto();
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!(
                "/{TENANT}/v2.0/.well-known/openid-configuration"
            )))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"jwks_uri": "http://127.0.0.2:1/keys"})),
            )
            .mount(&server)
            .await;
        let cache = KeyCache::new(&server.uri(), TENANT, timing(1));
        let e = cache.fetch().await.err().unwrap();
        assert!(e.0.contains("is not on"), "{e}");
        // Each part must match on its own: another host on the authority's port, or the
        // authority's host on another port, is just as foreign.
        let port = server.address().port();
        for foreign in [
            format!("http://127.0.0.2:{port}/keys"),
            format!("http://127.0.0.1:{}/keys", port.wrapping_add(1).max(1)),
            format!("https://127.0.0.1:{port}/keys"),
        ] {
            server.reset().await;
            Mock::given(method("GET"))
                .and(path(format!(
                    "/{TENANT}/v2.0/.well-known/openid-configuration"
                )))
                .respond_with(
                    ResponseTemplate::new(200).set_body_json(json!({"jwks_uri": foreign})),
                )
                .mount(&server)
                .await;
            let e = cache.fetch().await.err().unwrap();
            assert!(e.0.contains("is not on"), "{foreign}: {e}");
        }

        let only_unusable = [
            json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": "a", "y": "b"}),
            json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": N, "e": E}),
            json!({"kty": "RSA", "kid": "ps", "alg": "PS256", "n": N, "e": E}),
            json!({"kty": "RSA", "n": N, "e": E}),
        ];
        let set: JwkSet = serde_json::from_value(json!({"keys": only_unusable})).unwrap();
        assert_eq!(set.keys.iter().filter_map(usable_key).count(), 0);
        let ok: Jwk = serde_json::from_value(
            json!({"kty": "RSA", "kid": "k", "alg": "RS256", "n": N, "e": E}),
        )
        .unwrap();
        assert!(usable_key(&ok).is_some());
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            parse_max_age("max-age=86400, private"),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(
            parse_max_age("private, Max-Age=60"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_max_age("no-store"), None);
    }

    async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
        let mut out = Vec::with_capacity(futures.len());
        let handles: Vec<_> = futures.into_iter().map(Box::pin).collect();
        // Poll them together so they genuinely race for the refresh lock.
        let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
        std::future::poll_fn(|cx| {
            let mut done = true;
            for slot in pending.iter_mut() {
                if let Some(f) = slot {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => {
                            out.push(v);
                            *slot = None;
                        }
                        std::task::Poll::Pending => done = false,
                    }
                }
            }
            if done {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        out
    }
}
