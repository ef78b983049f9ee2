//! Caller authentication (`CALLER_AUTH=entra`) where the real binary is needed: the attack
//! matrix, whose refusals and passes are checked in the process's JSON log lines on stdout and
//! stderr too (who was refused, and no token or signature anywhere); the start-up line naming
//! `CALLER_SCOPE`; and unsafe settings stopping the process with exit code 2 and one stderr line.
//! Everything else about callers is HTTP contract, tested in-process in `contract.rs`; the mock
//! Entra, keys and claims are in `common::caller`.

mod common;

use std::time::Duration;

use base64::Engine;
use common::caller::*;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

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
