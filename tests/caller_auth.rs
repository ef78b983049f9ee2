//! Caller authentication (`CALLER_AUTH=entra`) against the real binary: RSA keys made at run
//! time, OpenID discovery and JWKS served by a mock Entra, and an attack matrix.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Generate, PrivateKey};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TENANT: &str = "5b0c1d2e-3f4a-4b5c-8d6e-7f8a9b0c1d2e";
const OTHER_TENANT: &str = "9e8d7c6b-5a4f-4e3d-9c2b-1a0f9e8d7c6b";
/// The gateway's own app registration: the audience callers ask tokens for.
const GATEWAY_AUDIENCE_ID: &str = "4d5e6f70-8192-4a3b-bc4d-5e6f70819203";
const AUDIENCE_URI: &str = "api://resume-gateway";
/// The Logic App's managed identity: client id and service principal object id.
const LOGIC_APP_ID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const LOGIC_APP_OBJECT: &str = "6f7e8d9c-0b1a-4f2e-9d3c-4b5a6f7e8d9c";
const STRANGER_APP_ID: &str = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9";

/// An RSA signing key with its JWK.
struct Key {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl Key {
    fn generate(kid: &str) -> Self {
        let private = PrivateKey::generate();
        let der = private.to_pkcs1_der().unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let n = b64.encode(private.n().to_be_bytes_trimmed_vartime());
        let e = b64.encode(private.e().to_be_bytes_trimmed_vartime());
        Self {
            kid: kid.into(),
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: json!({"kty": "RSA", "use": "sig", "kid": kid, "x5t": kid, "n": n, "e": e}),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// A mock Entra ID: the tenant's OpenID configuration and its key set.
struct Entra {
    server: MockServer,
}

impl Entra {
    async fn serving(keys: &[&Key]) -> Self {
        let entra = Self {
            server: MockServer::start().await,
        };
        entra.serve(keys).await;
        entra
    }

    /// Replaces the key set (and forgets the requests seen so far).
    async fn serve(&self, keys: &[&Key]) {
        self.server.reset().await;
        let base = self.server.uri();
        Mock::given(method("GET"))
            .and(path(format!(
                "/{TENANT}/v2.0/.well-known/openid-configuration"
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "issuer": format!("{base}/{TENANT}/v2.0"),
                "jwks_uri": format!("{base}/{TENANT}/discovery/v2.0/keys"),
                "id_token_signing_alg_values_supported": ["RS256"],
            })))
            .mount(&self.server)
            .await;
        let jwks: Vec<&Value> = keys.iter().map(|k| &k.jwk).collect();
        Mock::given(method("GET"))
            .and(path(format!("/{TENANT}/discovery/v2.0/keys")))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("cache-control", "max-age=86400, private")
                    .set_body_json(json!({"keys": jwks})),
            )
            .mount(&self.server)
            .await;
    }

    async fn key_fetches(&self) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().ends_with("/keys"))
            .count()
    }

    fn v1_issuer(tenant: &str) -> String {
        format!("https://sts.windows.net/{tenant}/")
    }

    fn v2_issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.server.uri())
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A v1 app token as Entra issues it to a managed identity.
fn v1_claims() -> Value {
    let t = now();
    json!({
        "aud": AUDIENCE_URI, "iss": Entra::v1_issuer(TENANT), "iat": t - 60, "nbf": t - 60,
        "exp": t + 3600, "aio": "k2BgYJjN", "appid": LOGIC_APP_ID, "appidacr": "2",
        "idp": Entra::v1_issuer(TENANT), "idtyp": "app", "oid": LOGIC_APP_OBJECT,
        "rh": "0.AAAA", "sub": LOGIC_APP_OBJECT, "tid": TENANT, "uti": "x1y2z3", "ver": "1.0"
    })
}

/// A v2 app token (no `idtyp`: an app token without it is recognised by `sub == oid`, no `scp`).
fn v2_claims(entra: &Entra) -> Value {
    let t = now();
    json!({
        "aud": GATEWAY_AUDIENCE_ID, "iss": entra.v2_issuer(TENANT), "iat": t - 60, "nbf": t - 60,
        "exp": t + 3600, "azp": LOGIC_APP_ID, "azpacr": "2", "oid": LOGIC_APP_OBJECT,
        "sub": LOGIC_APP_OBJECT, "tid": TENANT, "ver": "2.0"
    })
}

fn with_claims(mut claims: Value, changes: &[(&str, Value)]) -> Value {
    for (k, v) in changes {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(*k);
        } else {
            claims[*k] = v.clone();
        }
    }
    claims
}

fn caller_env(graph: &Graph, identity: &Identity, entra: &Entra) -> Vec<(String, String)> {
    let mut env = env_for(graph, identity);
    for (k, v) in [
        ("CALLER_AUTH", "entra"),
        ("CALLER_TENANT_ID", TENANT),
        (
            "CALLER_AUDIENCES",
            &format!("{AUDIENCE_URI}, {GATEWAY_AUDIENCE_ID}"),
        ),
        ("CALLER_ALLOWED_APP_IDS", LOGIC_APP_ID),
        ("CALLER_AUTHORITY", &entra.server.uri()),
        // These tests are about authentication; the per-extension check has its own below.
        ("CALLER_SCOPE", "tenant"),
    ] {
        env.push((k.into(), v.to_string()));
    }
    env
}

fn resume_body() -> Value {
    json!({"operationStatus": "completed", "callout": callout(WORKFLOW, TASK, RESULT)})
}

async fn call(gw: &Gateway, authorization: Option<&str>) -> (u16, Option<String>, Value) {
    let mut headers = vec![];
    if let Some(a) = authorization {
        headers.push(("authorization", a));
    }
    let r = gw.resume_with(&resume_body(), &headers).await;
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, content_type, body) = answer(r).await;
    if status != 200 {
        assert_eq!(content_type, "application/problem+json", "{body}");
    }
    (status, challenge, body)
}

/// Waits until the gateway's first key fetch has reached the mock.
async fn wait_for_key_fetch(entra: &Entra) {
    let started = Instant::now();
    while entra.key_fetches().await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the gateway never fetched the keys"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Name, Authorization header, status, the `claim` named, and the `WWW-Authenticate` challenge.
type Case = (
    &'static str,
    Option<String>,
    u16,
    Option<&'static str>,
    Option<&'static str>,
);

#[tokio::test]
async fn attack_matrix_is_refused_before_graph_and_valid_v1_and_v2_tokens_pass() {
    let key = Key::generate("key-current");
    let stranger_key = Key::generate("key-current");
    let entra = Entra::serving(&[&key]).await;
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let gw = Gateway::start(&caller_env(&graph, &identity, &entra)).await;
    wait_for_key_fetch(&entra).await;

    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let v1 = v1_claims();
    let alg_none = format!(
        "{}.{}.",
        b64.encode(json!({"alg": "none", "typ": "JWT", "kid": key.kid}).to_string()),
        b64.encode(v1.to_string())
    );
    // The classic confusion: HMAC keyed with the public key the verifier already holds.
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(key.kid.clone());
    let public_der = key.jwk["n"].as_str().unwrap().as_bytes().to_vec();
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &v1,
        &EncodingKey::from_secret(&public_der).unwrap(),
    )
    .unwrap();
    let huge = key.sign(&with_claims(
        v1.clone(),
        &[("pad", json!("x".repeat(100 * 1024)))],
    ));
    let t = now();

    let invalid = Some("Bearer error=\"invalid_token\"");
    let cases: Vec<Case> = vec![
        ("missing header", None, 401, None, Some("Bearer")),
        (
            "Basic scheme",
            Some("Basic bG9naWM6YXBw".into()),
            401,
            None,
            Some("Bearer"),
        ),
        (
            "garbage token",
            Some("Bearer not-a-token".into()),
            401,
            Some("header"),
            invalid,
        ),
        (
            "alg none",
            Some(format!("Bearer {alg_none}")),
            401,
            Some("header"),
            invalid,
        ),
        (
            "HS256 with the public key",
            Some(format!("Bearer {hs256}")),
            401,
            Some("alg"),
            invalid,
        ),
        (
            "wrong key, known kid",
            Some(format!("Bearer {}", stranger_key.sign(&v1))),
            401,
            Some("signature"),
            invalid,
        ),
        (
            "unknown kid",
            Some(format!(
                "Bearer {}",
                stranger_key.sign_as("key-forged", &v1)
            )),
            401,
            Some("kid"),
            invalid,
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                key.sign(&with_claims(
                    v1.clone(),
                    &[
                        ("exp", json!(t - 600)),
                        ("nbf", json!(t - 4000)),
                        ("iat", json!(t - 4000))
                    ]
                ))
            )),
            401,
            Some("exp"),
            invalid,
        ),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                key.sign(&with_claims(v1.clone(), &[("nbf", json!(t + 600))]))
            )),
            401,
            Some("nbf"),
            invalid,
        ),
        (
            "wrong issuer",
            Some(format!(
                "Bearer {}",
                key.sign(&with_claims(
                    v1.clone(),
                    &[("iss", json!("https://sts.example.com/issuer/"))]
                ))
            )),
            401,
            Some("iss"),
            invalid,
        ),
        (
            "other tenant's issuer",
            Some(format!(
                "Bearer {}",
                key.sign(&with_claims(
                    v1.clone(),
                    &[
                        ("iss", json!(Entra::v1_issuer(OTHER_TENANT))),
                        ("tid", json!(OTHER_TENANT))
                    ]
                ))
            )),
            401,
            Some("iss"),
            invalid,
        ),
        (
            "wrong tenant id",
            Some(format!(
                "Bearer {}",
                key.sign(&with_claims(v1.clone(), &[("tid", json!(OTHER_TENANT))]))
            )),
            401,
            Some("tid"),
            invalid,
        ),
        (
            "wrong audience",
            Some(format!(
                "Bearer {}",
                key.sign(&with_claims(
                    v1.clone(),
                    &[("aud", json!("https://graph.microsoft.com"))]
                ))
            )),
            401,
            Some("aud"),
            invalid,
        ),
        (
            "no audience",
            Some(format!(
                "Bearer {}",
                key.sign(&with_claims(v1.clone(), &[("aud", Value::Null)]))
            )),
            401,
            Some("aud"),
            invalid,
        ),
        (
            "user token",
            Some(format!(
                "Bearer {}",
                key.sign(&with_claims(
                    v1.clone(),
                    &[
                        ("idtyp", json!("user")),
                        ("scp", json!("user_impersonation")),
                        ("sub", json!("aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5zA7bC9d"))
                    ]
                ))
            )),
            401,
            Some("idtyp"),
            invalid,
        ),
        (
            "user token without idtyp",
            Some(format!(
                "Bearer {}",
                key.sign(&with_claims(
                    v2_claims(&entra),
                    &[
                        ("scp", json!("user_impersonation")),
                        ("sub", json!("aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5zA7bC9d"))
                    ]
                ))
            )),
            401,
            Some("idtyp"),
            invalid,
        ),
        (
            "100 KB claim",
            Some(format!("Bearer {huge}")),
            401,
            Some("token"),
            invalid,
        ),
        (
            "caller not allowed",
            Some(format!(
                "Bearer {}",
                key.sign(&with_claims(
                    v1.clone(),
                    &[("appid", json!(STRANGER_APP_ID))]
                ))
            )),
            403,
            Some("appid"),
            None,
        ),
        (
            "v2 caller not allowed",
            Some(format!(
                "Bearer {}",
                key.sign(&with_claims(
                    v2_claims(&entra),
                    &[
                        ("azp", json!(STRANGER_APP_ID)),
                        ("appid", json!(LOGIC_APP_ID))
                    ]
                ))
            )),
            403,
            Some("azp"),
            None,
        ),
    ];
    let mut tokens = vec![];
    for (name, authorization, status, claim, challenge) in &cases {
        let (got, got_challenge, problem) = call(&gw, authorization.as_deref()).await;
        assert_eq!(got, *status, "{name}: {problem}");
        let slug = if *status == 401 {
            "caller-unauthenticated"
        } else {
            "caller-forbidden"
        };
        assert_eq!(
            problem["type"],
            format!("urn:resume-gateway:problem:{slug}"),
            "{name}"
        );
        assert_eq!(got_challenge.as_deref(), *challenge, "{name}");
        if let Some(claim) = claim {
            assert_eq!(problem["claim"], *claim, "{name}: {problem}");
        }
        assert!(problem["remedy"].is_string(), "{name}");
        if let Some(a) = authorization {
            let token = a.split_once(' ').map_or(a.as_str(), |(_, t)| t);
            let signature = token.rsplit('.').next().unwrap();
            let text = problem.to_string();
            assert!(!text.contains(token), "{name}: the answer echoes the token");
            if signature.len() > 16 {
                assert!(
                    !text.contains(signature),
                    "{name}: the answer echoes the signature"
                );
            }
            tokens.push(token.to_owned());
        }
    }
    assert_eq!(graph.calls().await, 0, "no refused caller may reach Graph");
    assert_eq!(
        identity.calls().await,
        0,
        "no refused caller may cost a token"
    );

    // The refused-but-valid caller is named in the answer, for the admin to allow it.
    let not_allowed = cases.iter().find(|c| c.0 == "caller not allowed").unwrap();
    let (_, _, problem) = call(&gw, not_allowed.1.as_deref()).await;
    assert_eq!(problem["callerAppId"], STRANGER_APP_ID);
    assert!(
        problem["remedy"]
            .as_str()
            .unwrap()
            .contains("CALLER_ALLOWED_APP_IDS")
    );

    // Valid tokens: v1 (managed identity for api://…), v2 (for the bare app id).
    let valid = [key.sign(&v1), key.sign(&v2_claims(&entra))];
    for (i, token) in valid.iter().enumerate() {
        // A result per token: the same one twice would be answered from memory (idempotency).
        let r = gw
            .resume_with(
                &request_for(900 + i, "completed"),
                &[
                    ("authorization", &format!("Bearer {token}")),
                    ("x-azure-functions-invocationid", &format!("inv-valid-{i}")),
                ],
            )
            .await;
        let (status, _, body) = answer(r).await;
        assert_eq!(status, 200, "valid token {i}: {body}");
        tokens.push(token.clone());
    }
    assert_eq!(graph.calls().await, 2);
    assert_eq!(
        entra.key_fetches().await,
        2,
        "the start-up fetch, and one refresh for the unknown kid"
    );

    tokio::time::sleep(Duration::from_millis(200)).await;
    let stdout = Output::json_lines(&gw.output.stdout());
    for i in 0..2 {
        let line = stdout
            .iter()
            .find(|l| l["invocation_id"] == format!("inv-valid-{i}").as_str())
            .unwrap_or_else(|| panic!("no summary for inv-valid-{i}: {stdout:?}"));
        assert_eq!(line["caller_app_id"], LOGIC_APP_ID);
        assert_eq!(line["caller_object_id"], LOGIC_APP_OBJECT);
    }
    let stderr = Output::json_lines(&gw.output.stderr());
    assert!(
        stderr
            .iter()
            .any(|l| l["status"] == 403 && l["caller_app_id"] == STRANGER_APP_ID),
        "a refused caller is named in the log: {stderr:?}"
    );
    let all = gw.output.all();
    for token in &tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!all.contains(token.as_str()), "a caller token was logged");
        if signature.len() > 16 {
            assert!(!all.contains(signature), "a token signature was logged");
        }
    }
}

#[tokio::test]
async fn object_id_allow_list_narrows_the_allowed_apps() {
    let key = Key::generate("key-1");
    let entra = Entra::serving(&[&key]).await;
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let mut env = caller_env(&graph, &identity, &entra);
    env.push((
        "CALLER_ALLOWED_OBJECT_IDS".into(),
        "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d".into(),
    ));
    env.push(("RESUME_DRY_RUN".into(), "true".into()));
    let gw = Gateway::start(&env).await;
    let (status, _, problem) = call(&gw, Some(&format!("Bearer {}", key.sign(&v1_claims())))).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["claim"], "oid");
    assert_eq!(problem["callerObjectId"], LOGIC_APP_OBJECT);
    let allowed = with_claims(
        v1_claims(),
        &[
            ("oid", json!("7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d")),
            ("sub", json!("7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d")),
        ],
    );
    let (status, _, body) = call(&gw, Some(&format!("Bearer {}", key.sign(&allowed)))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn rotated_keys_are_picked_up_with_one_refresh_and_forged_kids_cannot_force_more() {
    let old = Key::generate("key-2026-10");
    let new = Key::generate("key-2026-11");
    let entra = Entra::serving(&[&old]).await;
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let mut env = caller_env(&graph, &identity, &entra);
    env.push(("RESUME_DRY_RUN".into(), "true".into()));
    let gw = Arc::new(Gateway::start(&env).await);

    // The first request after a successful start-up fetch uses the cached keys.
    wait_for_key_fetch(&entra).await;
    let (status, _, body) = call(&gw, Some(&format!("Bearer {}", old.sign(&v1_claims())))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(entra.key_fetches().await, 1);

    // Entra rotates: only the new key is published now.
    entra.serve(&[&new]).await;
    let (status, _, body) = call(&gw, Some(&format!("Bearer {}", new.sign(&v1_claims())))).await;
    assert_eq!(status, 200, "a token signed by the new key: {body}");
    assert_eq!(entra.key_fetches().await, 1, "exactly one refresh");

    // A flood of random key ids inside the refresh interval costs Entra nothing more.
    let mut tasks = tokio::task::JoinSet::new();
    let claims = v1_claims();
    let forged: Vec<String> = (0..1000)
        .map(|_| {
            let kid = format!("{:032x}", fastrand::u128(..));
            new.sign_as(&kid, &claims)
        })
        .collect();
    let forged = Arc::new(forged);
    let started = Instant::now();
    for worker in 0..20 {
        let gw = Arc::clone(&gw);
        let forged = Arc::clone(&forged);
        tasks.spawn(async move {
            let mut statuses = vec![];
            for token in forged.iter().skip(worker).step_by(20) {
                let r = gw
                    .resume_with(
                        &resume_body(),
                        &[("authorization", &format!("Bearer {token}"))],
                    )
                    .await;
                statuses.push(r.status().as_u16());
            }
            statuses
        });
    }
    let mut refused = 0;
    while let Some(statuses) = tasks.join_next().await {
        for s in statuses.unwrap() {
            assert_eq!(s, 401);
            refused += 1;
        }
    }
    assert_eq!(refused, 1000);
    println!("1000 forged kids answered in {:?}", started.elapsed());
    assert_eq!(
        entra.key_fetches().await,
        1,
        "no refresh within the interval, however many unknown kids"
    );
    // The retired key's tokens are now refused.
    let (status, _, problem) = call(&gw, Some(&format!("Bearer {}", old.sign(&v1_claims())))).await;
    assert_eq!(status, 401);
    assert_eq!(problem["claim"], "kid");
    assert_eq!(graph.calls().await, 0, "dry run");
}

#[tokio::test]
async fn unreachable_keys_with_nothing_cached_is_503_and_no_graph_call() {
    let entra = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&entra)
        .await;
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let mut env = env_for(&graph, &identity);
    for (k, v) in [
        ("CALLER_AUTH", "entra"),
        ("CALLER_TENANT_ID", TENANT),
        ("CALLER_AUDIENCES", AUDIENCE_URI),
        ("CALLER_ALLOWED_APP_IDS", LOGIC_APP_ID),
        ("CALLER_AUTHORITY", &entra.uri()),
    ] {
        env.push((k.into(), v.to_string()));
    }
    let gw = Gateway::start(&env).await;
    let key = Key::generate("key-x");
    let r = gw
        .resume_with(
            &resume_body(),
            &[(
                "authorization",
                &format!("Bearer {}", key.sign(&v1_claims())),
            )],
        )
        .await;
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, content_type, problem) = answer(r).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:caller-keys-unavailable"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("503"),
        "{problem}"
    );
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(graph.calls().await, 0);
    assert_eq!(identity.calls().await, 0);
}

#[test]
fn unsafe_caller_settings_stop_the_gateway_with_one_line() {
    let entra = |extra: &[(&str, &str)]| {
        let mut env: Vec<(String, String)> = [
            ("CALLER_AUTH", "entra"),
            ("CALLER_TENANT_ID", TENANT),
            ("CALLER_AUDIENCES", AUDIENCE_URI),
            ("CALLER_ALLOWED_APP_IDS", LOGIC_APP_ID),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        env
    };
    let cases = [
        (entra(&[("CALLER_AUTH", "oauth")]), "CALLER_AUTH", "oauth"),
        (
            entra(&[("CALLER_ALLOWED_APP_IDS", "*")]),
            "CALLER_ALLOWED_APP_IDS",
            "*",
        ),
        (
            entra(&[("CALLER_ALLOWED_APP_IDS", "")]),
            "CALLER_ALLOWED_APP_IDS",
            "unset",
        ),
        (
            entra(&[("CALLER_TENANT_ID", "")]),
            "CALLER_TENANT_ID",
            "unset",
        ),
        (
            entra(&[("CALLER_AUDIENCES", "")]),
            "CALLER_AUDIENCES",
            "unset",
        ),
        (
            entra(&[("CALLER_AUTHORITY", "http://login.example.com")]),
            "CALLER_AUTHORITY",
            "http://login.example.com",
        ),
        (
            vec![(
                "CALLER_ALLOWED_APP_IDS".to_string(),
                LOGIC_APP_ID.to_string(),
            )],
            "CALLER_AUTH",
            "CALLER_ALLOWED_APP_IDS",
        ),
        (
            entra(&[("CALLER_SCOPE", "everyone")]),
            "CALLER_SCOPE",
            "everyone",
        ),
        // Without a known caller there is nothing to scope: refused like the other CALLER_*.
        (
            vec![("CALLER_SCOPE".to_string(), "extension".to_string())],
            "CALLER_AUTH",
            "CALLER_SCOPE",
        ),
    ];
    for (env, setting, shown) in cases {
        assert_stops_on_bad_setting(&env, setting, shown, Duration::from_secs(2));
    }
}

// Per-extension authorization (`CALLER_SCOPE=extension`): mock Graph answers the task, result
// and extension reads as Graph's v1.0 metadata shapes them.

const GRAPH_LW: &str = "/v1.0/identityGovernance/lifecycleWorkflows";
/// "Run a custom task extension", as Microsoft's docs name its definition.
const CUSTOM_TASK_DEFINITION: &str = "4262b724-8dba-4fad-afc3-43fcbb497a0e";
/// A built-in task that runs no extension ("Generate Temporary Access Pass").
const OTHER_TASK_DEFINITION: &str = "1b555e50-7f65-41d5-b514-5894a026d10d";
const EXTENSION_EXPAND: &str = "callbackConfiguration/microsoft.graph.identityGovernance.customTaskExtensionCallbackConfiguration/authorizedApps";
const RUN: &str = "3d4e5f60-7182-4a3b-9c4d-5e6f70819aab";

fn task_n(n: usize) -> String {
    format!("2a9e1156-bd1a-4d7c-8b38-{n:012}")
}

fn extension_n(n: usize) -> String {
    format!("1e2f3a4b-5c6d-4e7f-8a9b-{n:012}")
}

/// A task as Graph answers `$select=id,taskDefinitionId,arguments` (the argument name in the
/// case one of Microsoft's docs writes it).
fn task_json(task: &str, definition: &str, extension: &str) -> Value {
    json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#identityGovernance/lifecycleWorkflows/workflows('x')/tasks(id,taskDefinitionId,arguments)/$entity",
        "id": task, "taskDefinitionId": definition,
        "arguments": [{"name": "customTaskExtensionId", "value": extension}]
    })
}

async fn serve_task(graph: &Graph, task: &str, answer: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(format!(
            "{GRAPH_LW}/workflows/{WORKFLOW}/tasks/{task}"
        )))
        .and(wiremock::matchers::query_param(
            "$select",
            "id,taskDefinitionId,arguments",
        ))
        .respond_with(answer)
        .mount(&graph.server)
        .await;
}

async fn serve_custom_task(graph: &Graph, task: &str, extension: &str) {
    let body = task_json(task, CUSTOM_TASK_DEFINITION, extension);
    serve_task(graph, task, ResponseTemplate::new(200).set_body_json(body)).await;
}

/// The extension with `authorizedApps` expanded into application objects; a later call with a
/// lower `priority` number replaces the answer (a grant made in the tenant).
async fn serve_extension(graph: &Graph, extension: &str, app_ids: &[&str], priority: u8) {
    let apps: Vec<Value> = app_ids
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"id": format!("9f8e7d6c-5b4a-4392-8170-{i:012}"), "appId": a, "displayName": "Logic App"}))
        .collect();
    Mock::given(method("GET"))
        .and(path(format!("{GRAPH_LW}/customTaskExtensions/{extension}")))
        .and(wiremock::matchers::query_param("$expand", EXTENSION_EXPAND))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": extension, "displayName": "Provision the mailbox",
            "callbackConfiguration": {
                "@odata.type": "#microsoft.graph.identityGovernance.customTaskExtensionCallbackConfiguration",
                "timeoutDuration": "PT1H",
                "authorizedApps": apps
            }
        })))
        .with_priority(priority)
        .mount(&graph.server)
        .await;
}

async fn graph_reads(graph: &Graph) -> Vec<String> {
    graph
        .requests()
        .await
        .iter()
        .filter(|r| r.method.as_str() == "GET")
        .map(|r| r.url.to_string())
        .collect()
}

async fn graph_resumes(graph: &Graph) -> usize {
    graph
        .requests()
        .await
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count()
}

/// Entra, Graph and the identity endpoint for the scope tests, and gateways started against them
/// with the default scope and two allowed apps: the Logic App the extensions list, and a
/// stranger that may call the gateway but that no extension lists.
struct Tenant {
    key: Key,
    entra: Entra,
    graph: Graph,
    identity: Identity,
}

impl Tenant {
    async fn start() -> Self {
        let key = Key::generate("key-1");
        Self {
            entra: Entra::serving(&[&key]).await,
            key,
            graph: Graph::accepting().await,
            identity: Identity::start().await,
        }
    }

    /// A gateway with `extra` settings, once it holds the signing keys.
    async fn gateway(&self, extra: &[(&str, &str)]) -> Gateway {
        let mut env = caller_env(&self.graph, &self.identity, &self.entra);
        env.retain(|(k, _)| k != "CALLER_SCOPE" && k != "CALLER_ALLOWED_APP_IDS");
        env.push((
            "CALLER_ALLOWED_APP_IDS".into(),
            format!("{LOGIC_APP_ID},{STRANGER_APP_ID}"),
        ));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let before = self.entra.key_fetches().await;
        let gw = Gateway::start(&env).await;
        let started = Instant::now();
        while self.entra.key_fetches().await == before {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the gateway never fetched the keys"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gw
    }

    fn bearer(&self, app_id: &str) -> String {
        format!(
            "Bearer {}",
            self.key
                .sign(&with_claims(v1_claims(), &[("appid", json!(app_id))]))
        )
    }
}

fn ids_body(task: &str, n: usize) -> Value {
    json!({"operationStatus": "completed", "workflowId": WORKFLOW, "taskId": task, "taskProcessingResultId": result_id(n)})
}

/// Status, `Retry-After` and body of one resume by `authorization`.
async fn resume_as(
    gw: &Gateway,
    authorization: &str,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let r = gw
        .resume_with(body, &[("authorization", authorization)])
        .await;
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, _, body) = answer(r).await;
    (status, retry_after, body)
}

#[tokio::test]
async fn extension_scope_resumes_only_for_listed_callers_reading_twice_for_five_resumes() {
    let t = Tenant::start().await;
    let (task, extension) = (task_n(1), extension_n(1));
    serve_custom_task(&t.graph, &task, &extension).await;
    serve_extension(&t.graph, &extension, &[LOGIC_APP_ID], 5).await;
    let gw = t.gateway(&[]).await;

    let logic_app = t.bearer(LOGIC_APP_ID);
    for n in 1..=5 {
        let (status, _, body) = resume_as(&gw, &logic_app, &ids_body(&task, n)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["authorization"],
            format!("authorized by custom task extension {extension}")
        );
    }
    let reads = graph_reads(&t.graph).await;
    println!("5 resumes of one task: {} Graph reads", reads.len());
    assert!(reads.len() <= 2, "{reads:?}");
    assert_eq!(graph_resumes(&t.graph).await, 5);

    // Allowed to call the gateway, but not listed by this task's extension.
    let (status, _, problem) =
        resume_as(&gw, &t.bearer(STRANGER_APP_ID), &ids_body(&task, 6)).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:caller-not-authorized-for-extension"
    );
    assert_eq!(problem["extensionId"], extension.as_str());
    assert_eq!(problem["callerAppId"], STRANGER_APP_ID);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&extension) && detail.contains(STRANGER_APP_ID),
        "{detail}"
    );
    assert!(
        problem["remedy"]
            .as_str()
            .unwrap()
            .contains("authorizedApps")
    );
    assert_eq!(
        graph_resumes(&t.graph).await,
        5,
        "no resume for a refused caller"
    );
}

#[tokio::test]
async fn a_grant_added_after_a_refusal_is_honoured_on_the_next_request() {
    let t = Tenant::start().await;
    let (task, extension) = (task_n(2), extension_n(2));
    serve_custom_task(&t.graph, &task, &extension).await;
    serve_extension(&t.graph, &extension, &[LOGIC_APP_ID], 5).await;
    let gw = t.gateway(&[]).await;
    let stranger = t.bearer(STRANGER_APP_ID);

    let (status, _, problem) = resume_as(&gw, &stranger, &ids_body(&task, 1)).await;
    assert_eq!(status, 403, "{problem}");
    // The tenant's admin adds the stranger to the extension's authorizedApps.
    serve_extension(&t.graph, &extension, &[LOGIC_APP_ID, STRANGER_APP_ID], 1).await;
    let (status, _, body) = resume_as(&gw, &stranger, &ids_body(&task, 1)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(graph_resumes(&t.graph).await, 1);
    let reads = graph_reads(&t.graph).await;
    assert_eq!(
        reads.len(),
        3,
        "task, extension, then one re-read after the cached refusal: {reads:?}"
    );
}

#[tokio::test]
async fn extension_scope_fails_closed_when_graph_cannot_be_read_or_the_task_has_no_extension() {
    let t = Tenant::start().await;
    let (down, forbidden, no_extension, other, missing) =
        (task_n(1), task_n(2), task_n(3), task_n(4), task_n(5));
    serve_task(
        &t.graph,
        &down,
        ResponseTemplate::new(503).insert_header("retry-after", "1"),
    )
    .await;
    serve_task(
        &t.graph,
        &forbidden,
        ResponseTemplate::new(403).set_body_json(json!({"error": {"code": "Forbidden", "message": "Insufficient privileges to complete the operation."}})),
    )
    .await;
    // Names an extension that does not exist: the mock answers 404 for it.
    serve_custom_task(&t.graph, &missing, &extension_n(99)).await;
    serve_task(
        &t.graph,
        &other,
        ResponseTemplate::new(200).set_body_json(task_json(
            &other,
            OTHER_TASK_DEFINITION,
            &extension_n(1),
        )),
    )
    .await;
    let no_argument =
        json!({"id": no_extension, "taskDefinitionId": CUSTOM_TASK_DEFINITION, "arguments": []});
    serve_task(
        &t.graph,
        &no_extension,
        ResponseTemplate::new(200).set_body_json(no_argument),
    )
    .await;
    let gw = t.gateway(&[("RESUME_DEADLINE_SECONDS", "3")]).await;
    let logic_app = t.bearer(LOGIC_APP_ID);

    let started = Instant::now();
    let (status, retry_after, problem) = resume_as(&gw, &logic_app, &ids_body(&down, 1)).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:authorization-unavailable"
    );
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    assert!(
        problem["attempts"].as_u64().unwrap() >= 2,
        "retried: {problem}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "kept the deadline"
    );

    let (status, _, problem) = resume_as(&gw, &logic_app, &ids_body(&forbidden, 2)).await;
    assert_eq!(status, 424, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:authorization-read-forbidden"
    );
    let remedy = problem["remedy"].as_str().unwrap();
    assert!(
        remedy.contains("LifecycleWorkflows.Read.All") && remedy.contains("CALLER_SCOPE=tenant"),
        "{remedy}"
    );
    assert_eq!(problem["graph"]["status"], 403);

    for task in [&missing, &other, &no_extension] {
        let (status, _, problem) = resume_as(&gw, &logic_app, &ids_body(task, 3)).await;
        assert_eq!(status, 403, "{task}: {problem}");
        assert_eq!(
            problem["type"],
            "urn:resume-gateway:problem:caller-not-authorized-for-extension"
        );
    }
    assert_eq!(
        graph_resumes(&t.graph).await,
        0,
        "never a resume without a positive check"
    );
}

#[tokio::test]
async fn runs_paths_resolve_the_task_through_the_result() {
    let t = Tenant::start().await;
    let (task, extension) = (task_n(7), extension_n(7));
    let result =
        format!("{GRAPH_LW}/workflows/{WORKFLOW}/runs/{RUN}/taskProcessingResults/{RESULT}");
    Mock::given(method("GET"))
        .and(path(result.clone()))
        .and(wiremock::matchers::query_param("$expand", "task"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": RESULT, "processingStatus": "inProgress",
            "createdDateTime": "2026-11-28T10:00:00Z",
            "task": task_json(&task, CUSTOM_TASK_DEFINITION, &extension)
        })))
        .mount(&t.graph.server)
        .await;
    serve_extension(&t.graph, &extension, &[LOGIC_APP_ID], 5).await;
    let gw = t.gateway(&[]).await;

    let body = json!({"operationStatus": "completed", "callbackUriPath": format!("{}/resume", &result["/v1.0".len()..])});
    let (status, _, answer) = resume_as(&gw, &t.bearer(LOGIC_APP_ID), &body).await;
    assert_eq!(status, 200, "{answer}");
    let reads = graph_reads(&t.graph).await;
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(
        reads[0].contains(&format!("{result}?$expand=task")),
        "{reads:?}"
    );
    assert!(reads.iter().all(|r| !r.contains("/tasks/")), "{reads:?}");
    let (status, _, _) = resume_as(&gw, &t.bearer(STRANGER_APP_ID), &body).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn tenant_scope_reads_nothing_and_dry_run_skips_the_check_saying_so() {
    let t = Tenant::start().await;
    let tenant = t.gateway(&[("CALLER_SCOPE", "tenant")]).await;
    let dry = t.gateway(&[("RESUME_DRY_RUN", "true")]).await;
    let stranger = t.bearer(STRANGER_APP_ID);

    let (status, _, body) = resume_as(&tenant, &stranger, &ids_body(&task_n(1), 1)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("authorization").is_none(), "{body}");
    assert!(
        tenant.output.all().contains("CALLER_SCOPE=tenant"),
        "the start-up line names the scope"
    );

    let (status, _, body) = resume_as(&dry, &stranger, &ids_body(&task_n(1), 2)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "dry-run");
    assert_eq!(body["authorization"], "skipped (dry-run)");
    assert!(dry.output.all().contains("CALLER_SCOPE=extension"));

    assert_eq!(graph_reads(&t.graph).await, Vec::<String>::new());
    assert_eq!(
        graph_resumes(&t.graph).await,
        1,
        "the tenant-mode resume only"
    );
}

#[tokio::test]
async fn a_burst_over_ten_tasks_reads_each_once_and_a_warm_cache_adds_little_latency() {
    const REQUESTS: usize = 1000;
    const TASKS: usize = 10;
    const EXTENSIONS: usize = 5;
    let t = Tenant::start().await;
    for i in 0..TASKS {
        serve_custom_task(&t.graph, &task_n(i), &extension_n(i % EXTENSIONS)).await;
    }
    for e in 0..EXTENSIONS {
        serve_extension(&t.graph, &extension_n(e), &[LOGIC_APP_ID], 5).await;
    }
    let scoped = Arc::new(t.gateway(&[]).await);
    let tenant = t.gateway(&[("CALLER_SCOPE", "tenant")]).await;
    let auth = Arc::new(t.bearer(LOGIC_APP_ID));

    let limit = Arc::new(tokio::sync::Semaphore::new(64));
    let mut burst = tokio::task::JoinSet::new();
    for n in 0..REQUESTS {
        let (gw, auth, limit) = (scoped.clone(), auth.clone(), limit.clone());
        burst.spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            resume_as(&gw, &auth, &ids_body(&task_n(n % TASKS), n))
                .await
                .0
        });
    }
    let statuses = burst.join_all().await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let reads = graph_reads(&t.graph).await.len();
    println!(
        "burst of {REQUESTS} requests over {TASKS} tasks ({EXTENSIONS} extensions), concurrency 64: {reads} Graph reads, {:.3} reads per request",
        reads as f64 / REQUESTS as f64
    );
    assert!(reads <= TASKS + EXTENSIONS, "{reads} reads");

    // Warm cache: the same requests, one at a time, alternating between the two gateways.
    let mut latency = [Vec::new(), Vec::new()];
    for n in 0..400 {
        let (i, gw) = if n % 2 == 0 {
            (0, &*scoped)
        } else {
            (1, &tenant)
        };
        let body = ids_body(&task_n(n % TASKS), REQUESTS + n);
        let at = Instant::now();
        assert_eq!(resume_as(gw, &auth, &body).await.0, 200);
        latency[i].push(at.elapsed());
    }
    assert_eq!(
        graph_reads(&t.graph).await.len(),
        reads,
        "a warm cache reads nothing"
    );
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (scoped_median, tenant_median) = (median(&mut latency[0]), median(&mut latency[1]));
    let ratio = scoped_median.as_secs_f64() / tenant_median.as_secs_f64();
    println!(
        "warm cache, 200 sequential requests each: median {:.2} ms with CALLER_SCOPE=extension, {:.2} ms with tenant: ratio {ratio:.2}",
        scoped_median.as_secs_f64() * 1e3,
        tenant_median.as_secs_f64() * 1e3
    );
    // Generous for a shared machine; a cache that went to Graph would show in the reads above.
    assert!(ratio < 3.0, "ratio {ratio:.2}");
}

/// Entitlement Management records no apps allowed to resume (its extensions' v1.0
/// callbackConfiguration has only timeoutDuration): under CALLER_SCOPE=extension an
/// access-package resume is refused for every caller, dry-run or not, with nothing sent or
/// read; CALLER_SCOPE=tenant lets an allowed caller through.
#[tokio::test]
async fn extension_scope_refuses_access_package_resumes_and_tenant_scope_lets_them_through() {
    let t = Tenant::start().await;
    let body = json!({"callout": access_package_callout(ASSIGNMENT_REQUEST, STAGE_INSTANCE, "assignmentRequestApproved")});
    for extra in [&[][..], &[("RESUME_DRY_RUN", "true")][..]] {
        let gw = t.gateway(extra).await;
        let (status, _, problem) = resume_as(&gw, &t.bearer(LOGIC_APP_ID), &body).await;
        assert_eq!(status, 403, "{problem}");
        assert_eq!(
            problem["type"],
            "urn:resume-gateway:problem:caller-scope-unsupported"
        );
        assert_eq!(problem["callerAppId"], LOGIC_APP_ID);
        assert!(
            problem["remedy"]
                .as_str()
                .unwrap()
                .contains("CALLER_SCOPE=tenant"),
            "{problem}"
        );
        assert!(t.graph.requests().await.is_empty(), "nothing read or sent");
    }
    let gw = t.gateway(&[("CALLER_SCOPE", "tenant")]).await;
    let (status, _, answer) = resume_as(&gw, &t.bearer(STRANGER_APP_ID), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(graph_resumes(&t.graph).await, 1);
}
