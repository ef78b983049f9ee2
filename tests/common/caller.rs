//! Callers with Entra ID app tokens (`CALLER_AUTH=entra`), for the in-process contract tests and
//! the process tests alike: RSA signing keys made at run time, a mock Entra serving the tenant's
//! OpenID discovery and key set, the claims Entra puts in v1 and v2 app tokens, and Graph's
//! answers to the reads of the per-extension check (`CALLER_SCOPE=extension`): tasks, results
//! and custom task extensions with their `authorizedApps`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Generate, PrivateKey};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use super::app::{App, spawn_app};
use super::{
    Endpoint, Gateway, Graph, Identity, RESULT, Server, TASK, WORKFLOW, answer, callout, env_for,
    result_id, server,
};

pub const TENANT: &str = "5b0c1d2e-3f4a-4b5c-8d6e-7f8a9b0c1d2e";
pub const OTHER_TENANT: &str = "9e8d7c6b-5a4f-4e3d-9c2b-1a0f9e8d7c6b";
/// The gateway's own app registration: the audience callers ask tokens for.
pub const GATEWAY_AUDIENCE_ID: &str = "4d5e6f70-8192-4a3b-bc4d-5e6f70819203";
pub const AUDIENCE_URI: &str = "api://resume-gateway";
/// The Logic App's managed identity: client id and service principal object id.
pub const LOGIC_APP_ID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
pub const LOGIC_APP_OBJECT: &str = "6f7e8d9c-0b1a-4f2e-9d3c-4b5a6f7e8d9c";
pub const STRANGER_APP_ID: &str = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9";

/// An RSA signing key with its JWK.
pub struct Key {
    pub kid: String,
    encoding: EncodingKey,
    pub jwk: Value,
}

impl Key {
    pub fn generate(kid: &str) -> Self {
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

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// A mock Entra ID: the tenant's OpenID configuration and its key set.
pub struct Entra {
    pub server: Server,
}

impl Entra {
    pub async fn serving(keys: &[&Key]) -> Self {
        let entra = Self {
            server: server().await,
        };
        entra.serve(keys).await;
        entra
    }

    /// Replaces the key set (and forgets the requests seen so far).
    pub async fn serve(&self, keys: &[&Key]) {
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

    pub async fn key_fetches(&self) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().ends_with("/keys"))
            .count()
    }

    /// Waits until the key set has been fetched more than `before` times: a gateway fetches it
    /// at start, in the background, and a test that counts refreshes must not count that one.
    pub async fn wait_for_fetches_over(&self, before: usize) {
        let started = Instant::now();
        while self.key_fetches().await == before {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the gateway never fetched the keys"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn v1_issuer(tenant: &str) -> String {
        format!("https://sts.windows.net/{tenant}/")
    }

    pub fn v2_issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.server.uri())
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A v1 app token as Entra issues it to a managed identity.
pub fn v1_claims() -> Value {
    let t = now();
    json!({
        "aud": AUDIENCE_URI, "iss": Entra::v1_issuer(TENANT), "iat": t - 60, "nbf": t - 60,
        "exp": t + 3600, "aio": "k2BgYJjN", "appid": LOGIC_APP_ID, "appidacr": "2",
        "idp": Entra::v1_issuer(TENANT), "idtyp": "app", "oid": LOGIC_APP_OBJECT,
        "rh": "0.AAAA", "sub": LOGIC_APP_OBJECT, "tid": TENANT, "uti": "x1y2z3", "ver": "1.0"
    })
}

/// A v2 app token (no `idtyp`: an app token without it is recognised by `sub == oid`, no `scp`).
pub fn v2_claims(entra: &Entra) -> Value {
    let t = now();
    json!({
        "aud": GATEWAY_AUDIENCE_ID, "iss": entra.v2_issuer(TENANT), "iat": t - 60, "nbf": t - 60,
        "exp": t + 3600, "azp": LOGIC_APP_ID, "azpacr": "2", "oid": LOGIC_APP_OBJECT,
        "sub": LOGIC_APP_OBJECT, "tid": TENANT, "ver": "2.0"
    })
}

pub fn with_claims(mut claims: Value, changes: &[(&str, Value)]) -> Value {
    for (k, v) in changes {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(*k);
        } else {
            claims[*k] = v.clone();
        }
    }
    claims
}

pub fn caller_env(graph: &Graph, identity: &Identity, entra: &Entra) -> Vec<(String, String)> {
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

pub fn resume_body() -> Value {
    json!({"operationStatus": "completed", "callout": callout(WORKFLOW, TASK, RESULT)})
}

pub async fn call(gw: &impl Endpoint, authorization: Option<&str>) -> (u16, Option<String>, Value) {
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
pub async fn wait_for_key_fetch(entra: &Entra) {
    entra.wait_for_fetches_over(0).await;
}

// Per-extension authorization (`CALLER_SCOPE=extension`): mock Graph answers the task, result
// and extension reads as Graph's v1.0 metadata shapes them.

pub const GRAPH_LW: &str = "/v1.0/identityGovernance/lifecycleWorkflows";
/// "Run a custom task extension", as Microsoft's docs name its definition.
pub const CUSTOM_TASK_DEFINITION: &str = "4262b724-8dba-4fad-afc3-43fcbb497a0e";
/// A built-in task that runs no extension ("Generate Temporary Access Pass").
pub const OTHER_TASK_DEFINITION: &str = "1b555e50-7f65-41d5-b514-5894a026d10d";
pub const EXTENSION_EXPAND: &str = "callbackConfiguration/microsoft.graph.identityGovernance.customTaskExtensionCallbackConfiguration/authorizedApps";
pub const RUN: &str = "3d4e5f60-7182-4a3b-9c4d-5e6f70819aab";

pub fn task_n(n: usize) -> String {
    format!("2a9e1156-bd1a-4d7c-8b38-{n:012}")
}

pub fn extension_n(n: usize) -> String {
    format!("1e2f3a4b-5c6d-4e7f-8a9b-{n:012}")
}

/// A task as Graph answers `$select=id,taskDefinitionId,arguments` (the argument name in the
/// case one of Microsoft's docs writes it).
pub fn task_json(task: &str, definition: &str, extension: &str) -> Value {
    json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#identityGovernance/lifecycleWorkflows/workflows('x')/tasks(id,taskDefinitionId,arguments)/$entity",
        "id": task, "taskDefinitionId": definition,
        "arguments": [{"name": "customTaskExtensionId", "value": extension}]
    })
}

pub async fn serve_task(graph: &Graph, task: &str, answer: ResponseTemplate) {
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

pub async fn serve_custom_task(graph: &Graph, task: &str, extension: &str) {
    let body = task_json(task, CUSTOM_TASK_DEFINITION, extension);
    serve_task(graph, task, ResponseTemplate::new(200).set_body_json(body)).await;
}

/// The extension with `authorizedApps` expanded into application objects; a later call with a
/// lower `priority` number replaces the answer (a grant made in the tenant).
pub async fn serve_extension(graph: &Graph, extension: &str, app_ids: &[&str], priority: u8) {
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

pub async fn graph_reads(graph: &Graph) -> Vec<String> {
    graph
        .requests()
        .await
        .iter()
        .filter(|r| r.method.as_str() == "GET")
        .map(|r| r.url.to_string())
        .collect()
}

pub async fn graph_resumes(graph: &Graph) -> usize {
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
pub struct Tenant {
    pub key: Key,
    pub entra: Entra,
    pub graph: Graph,
    pub identity: Identity,
}

impl Tenant {
    pub async fn start() -> Self {
        let key = Key::generate("key-1");
        Self {
            entra: Entra::serving(&[&key]).await,
            key,
            graph: Graph::accepting().await,
            identity: Identity::start().await,
        }
    }

    /// The settings of a gateway with `extra` settings.
    fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = caller_env(&self.graph, &self.identity, &self.entra);
        env.retain(|(k, _)| k != "CALLER_SCOPE" && k != "CALLER_ALLOWED_APP_IDS");
        env.push((
            "CALLER_ALLOWED_APP_IDS".into(),
            format!("{LOGIC_APP_ID},{STRANGER_APP_ID}"),
        ));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    /// The `handler` process with `extra` settings, once it holds the signing keys.
    pub async fn gateway(&self, extra: &[(&str, &str)]) -> Gateway {
        let before = self.entra.key_fetches().await;
        let gw = Gateway::start(&self.env(extra)).await;
        self.entra.wait_for_fetches_over(before).await;
        gw
    }

    /// The app in this process with `extra` settings, once it holds the signing keys.
    pub async fn app(&self, extra: &[(&str, &str)]) -> App {
        let before = self.entra.key_fetches().await;
        let app = spawn_app(&self.env(extra)).await;
        self.entra.wait_for_fetches_over(before).await;
        app
    }

    pub fn bearer(&self, app_id: &str) -> String {
        format!(
            "Bearer {}",
            self.key
                .sign(&with_claims(v1_claims(), &[("appid", json!(app_id))]))
        )
    }
}

pub fn ids_body(task: &str, n: usize) -> Value {
    json!({"operationStatus": "completed", "workflowId": WORKFLOW, "taskId": task, "taskProcessingResultId": result_id(n)})
}

/// Status, `Retry-After` and body of one resume by `authorization`.
pub async fn resume_as(
    gw: &impl Endpoint,
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
