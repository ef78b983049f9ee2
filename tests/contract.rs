//! The gateway's HTTP contract, tested against the app in this process (`common::app`): what
//! each request is answered, the problems and their fields, what is sent to Graph and how
//! Graph's answers are mapped. One binary, each test with its own app, Graph and identity on
//! 127.0.0.1 port 0. Behaviour that needs the real process stays with the process tests.

mod common;

use common::app::{App, spawn_app};
use common::caller::*;
use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn callout_is_resumed_with_the_documented_graph_request() {
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let gw = spawn_app(&env_for(&graph, &identity)).await;

    let r = gw
        .resume_with(
            &json!({"operationStatus": "completed", "callout": callout(WORKFLOW, TASK, RESULT)}),
            &[("x-azure-functions-invocationid", "inv-0001")],
        )
        .await;
    let (status, content_type, body) = answer(r).await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("application/json"));
    assert_eq!(body["outcome"], "resumed");
    assert_eq!(body["workflowId"], WORKFLOW);
    assert_eq!(body["taskId"], TASK);
    assert_eq!(body["taskProcessingResultId"], RESULT);
    assert_eq!(body["operationStatus"], "completed");
    assert_eq!(body["graphStatus"], 204);
    assert_eq!(body["graphRequestId"], "graph-request-0001");
    assert_eq!(body["attempts"], 1);
    assert_eq!(body["dryRun"], false);
    assert_eq!(body["alreadyResumed"], false);
    assert_eq!(body["invocationId"], "inv-0001");
    assert!(body["elapsedMs"].is_u64());

    let requests = graph.requests().await;
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.method.as_str(), "POST");
    assert_eq!(
        sent.url.path(),
        format!("/v1.0{}", resume_path(WORKFLOW, TASK, RESULT))
    );
    assert_eq!(sent.url.query(), None);
    let h = |name: &str| {
        sent.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        h("authorization"),
        Some(format!("Bearer {}", identity.token))
    );
    assert_eq!(h("content-type").as_deref(), Some("application/json"));
    assert!(h("user-agent").unwrap().starts_with("resume-gateway/"));
    let crid = h("client-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(&crid).is_ok(), "{crid}");
    assert_eq!(body["clientRequestId"], crid);
    let sent_body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(
        sent_body,
        json!({"data": {"operationStatus": "completed"}, "source": "resume-gateway", "type": "lifecycleEvent"})
    );
}

#[tokio::test]
async fn invalid_input_is_refused_with_a_problem_and_no_graph_call() {
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let gw = spawn_app(&env_for(&graph, &identity)).await;
    let p = resume_path(WORKFLOW, TASK, RESULT);
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"callbackUriPath": p}),
            "invalid-request",
            "operationStatus",
        ),
        (
            json!({"operationStatus": "done", "callbackUriPath": p}),
            "invalid-request",
            "operationStatus",
        ),
        (
            json!({"operationStatus": "completed"}),
            "invalid-request",
            "callout",
        ),
        (
            json!({"operationStatus": "completed", "callbackUriPath": p, "callout": callout(WORKFLOW, TASK, RESULT)}),
            "invalid-request",
            "callbackUriPath",
        ),
        (
            json!({"operationStatus": "completed", "workflowId": WORKFLOW, "taskId": TASK}),
            "invalid-request",
            "taskProcessingResultId",
        ),
        (
            json!({"operationStatus": "completed", "callout": {"source": "x"}}),
            "invalid-request",
            "callout.data",
        ),
        (
            json!({"operationStatus": "completed", "callbackUriPath": format!("https://graph.microsoft.com/beta{p}")}),
            "callback-path-refused",
            "callbackUriPath",
        ),
        (
            json!({"operationStatus": "completed", "callbackUriPath": "/users/someone"}),
            "callback-path-refused",
            "callbackUriPath",
        ),
        (
            json!({"operationStatus": "completed", "callbackUriPath": p.replace("/tasks/", "/tasks/../")}),
            "callback-path-refused",
            "callbackUriPath",
        ),
        (
            json!({"operationStatus": "completed", "callbackUriPath": format!("{p}?$select=id")}),
            "callback-path-refused",
            "callbackUriPath",
        ),
        (
            json!({"operationStatus": "completed", "callbackUriPath": p, "statusReasons": "x"}),
            "invalid-request",
            "statusReasons",
        ),
        (
            json!({"operationStatus": "completed", "callbackUriPath": p, "extra": 1}),
            "invalid-request",
            "extra",
        ),
    ];
    for (body, kind, field) in cases {
        let (status, content_type, problem) = answer(gw.resume(&body).await).await;
        assert_eq!(status, 400, "{body} -> {problem}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(
            problem["type"],
            format!("urn:resume-gateway:problem:{kind}"),
            "{body}"
        );
        assert_eq!(problem["field"], field, "{body} -> {problem}");
        assert_eq!(problem["status"], 400);
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{problem}"
        );
        assert!(problem["remedy"].is_string());
    }

    // Not JSON at all.
    let r = gw
        .client
        .post(gw.url("/api/function-resume"))
        .header("content-type", "application/json")
        .body("{\"operationStatus\":")
        .send()
        .await
        .unwrap();
    let (status, _, problem) = answer(r).await;
    assert_eq!(status, 400);
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:invalid-request"
    );

    // Deeply nested JSON is never recursed into: where the gateway does not read (here, inside
    // a callout that is not an object), it is skipped whatever its depth, and the answer names
    // the real fault.
    for (field, expected) in [
        ("callout", "not an array"),
        // Where it reads, only as deep as it reads: the rest is skipped, and the item named.
        ("statusReasons", "must be a string"),
    ] {
        let deep = format!(
            "{{\"operationStatus\":\"completed\",\"{field}\":{}{}}}",
            "[".repeat(200_000),
            "]".repeat(200_000)
        );
        let r = gw
            .client
            .post(gw.url("/api/function-resume"))
            .header("content-type", "application/json")
            .body(deep)
            .send()
            .await
            .unwrap();
        let (status, _, problem) = answer(r).await;
        assert_eq!(status, 400, "{problem}");
        assert!(
            problem["field"].as_str().unwrap().starts_with(field),
            "{problem}"
        );
        assert!(
            problem["detail"].as_str().unwrap().contains(expected),
            "{problem}"
        );
    }

    // 415 for a non-JSON content type, and for none.
    let r = gw
        .client
        .post(gw.url("/api/function-resume"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, content_type, problem) = answer(r).await;
    assert_eq!(
        (status, content_type.as_str()),
        (415, "application/problem+json")
    );
    assert!(problem["detail"].as_str().unwrap().contains("text/plain"));
    let r = gw
        .client
        .post(gw.url("/api/function-resume"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // 413 for more than 1 MiB, declared or streamed.
    let big = format!(
        "{{\"statusReasons\":[\"{}\"]}}",
        "x".repeat(1024 * 1024 + 10)
    );
    let r = gw
        .client
        .post(gw.url("/api/function-resume"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let (status, _, problem) = answer(r).await;
    assert_eq!(status, 413);
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:payload-too-large"
    );
    let stream = futures_stream(big.into_bytes());
    let r = gw
        .client
        .post(gw.url("/api/function-resume"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    // The gateway answers 413 as soon as the limit is crossed and closes the connection, so
    // the client may see either the answer or the reset while still sending; a gateway that
    // read the whole body would answer 400 instead.
    match r {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e:?}"),
    }

    // 405 for other methods, with Allow.
    for m in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let r = gw
            .client
            .request(m.clone(), gw.url("/api/function-resume"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{m}");
        assert_eq!(r.headers()["allow"], "POST");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    // 404 elsewhere.
    let r = gw.client.post(gw.url("/api/other")).send().await.unwrap();
    let (status, _, problem) = answer(r).await;
    assert_eq!(status, 404);
    assert_eq!(problem["type"], "urn:resume-gateway:problem:not-found");

    assert_eq!(graph.calls().await, 0, "no input error may reach Graph");
    assert_eq!(
        identity.calls().await,
        0,
        "no input error may fetch a token"
    );
}

#[tokio::test]
async fn graph_forbidden_says_which_grant_is_missing_and_is_not_retried() {
    let graph = Graph::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("request-id", "graph-req-403")
                .set_body_json(json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation.", "innerError": {"request-id": "graph-req-403", "date": "2026-11-28T10:00:00"}}})),
        )
        .mount(&graph.server)
        .await;
    let identity = Identity::start_with_roles(&["User.Read.All"]).await;
    let gw = spawn_app(&env_for(&graph, &identity)).await;
    let (status, content_type, problem) = answer(
        gw.resume(
            &json!({"operationStatus": "completed", "callout": callout(WORKFLOW, TASK, RESULT)}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 424, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:graph-forbidden"
    );
    assert_eq!(problem["graph"]["status"], 403);
    assert_eq!(problem["graph"]["code"], "Authorization_RequestDenied");
    assert_eq!(problem["graph"]["requestId"], "graph-req-403");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Insufficient privileges")
    );
    let remedy = problem["remedy"].as_str().unwrap();
    assert!(
        remedy.contains("callbackConfiguration.authorizedApps"),
        "{remedy}"
    );
    assert!(
        remedy.contains("LifecycleWorkflows.ReadWrite.All"),
        "{remedy}"
    );
    assert!(remedy.contains(GATEWAY_APP_ID), "{remedy}");
    assert!(remedy.contains("carries User.Read.All but not"), "{remedy}");
    assert_eq!(problem["identity"]["appId"], GATEWAY_APP_ID);
    assert_eq!(problem["attempts"], 1);
    assert_eq!(graph.calls().await, 1, "403 must not be retried");
}

#[tokio::test]
async fn graph_refusals_map_to_424_with_graphs_words() {
    for (status, kind) in [
        (400, "graph-rejected"),
        (404, "graph-not-found"),
        (409, "graph-rejected"),
        (401, "graph-forbidden"),
    ] {
        let graph = Graph::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({"error": {"code": format!("Code{status}"), "message": format!("message {status}")}})))
            .mount(&graph.server)
            .await;
        let identity = Identity::start().await;
        let gw = spawn_app(&env_for(&graph, &identity)).await;
        let (got, _, problem) = answer(gw.resume(&json!({"operationStatus": "failed", "callbackUriPath": resume_path(WORKFLOW, TASK, RESULT)})).await).await;
        assert_eq!(got, 424, "{status}: {problem}");
        assert_eq!(
            problem["type"],
            format!("urn:resume-gateway:problem:{kind}")
        );
        assert_eq!(problem["graph"]["status"], status);
        assert_eq!(problem["graph"]["code"], format!("Code{status}"));
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("message {status}"))
        );
        let sent = graph.requests().await;
        let posts = sent.iter().filter(|r| r.method.as_str() == "POST").count();
        assert_eq!(posts, 1, "{status} must not be retried");
        // 400, 404 and 409 are followed by one read of the result (here unanswered: 404).
        let reads = sent.len() - posts;
        assert_eq!(reads, usize::from(status != 401), "{status}");
    }
}

#[tokio::test]
async fn one_token_serves_many_requests() {
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let gw = spawn_app(&env_for(&graph, &identity)).await;
    for i in 0..5 {
        let result = format!("7c2a9e11-56bd-41a0-9d7c-4b38a8c91d0{i}");
        let (status, _, body) = answer(gw.resume(&json!({"operationStatus": "completed", "workflowId": WORKFLOW, "taskId": TASK, "taskProcessingResultId": result})).await).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(graph.calls().await, 5);
    assert_eq!(identity.calls().await, 1);
}

/// The result's resume by its path, to the app, with a fresh identity; the app is kept.
async fn resume(graph: &Graph, extra: &[(&str, &str)], status: &str) -> (u16, Value, App) {
    let identity = Identity::start().await;
    let app = spawn_app(&env_with(graph, &identity, extra)).await;
    let (got, body) = resume_the_result(&app, status).await;
    (got, body, app)
}

#[tokio::test]
async fn an_unsettling_read_leaves_the_answer_as_it_was() {
    // The identity is only in authorizedApps: it may resume, not read.
    for (read, case, read_status) in [
        (graph_error(403), "unreadable", json!(403)),
        (held("inProgress"), "undecided", json!(200)),
        (held("unknownFutureValue"), "undecided", json!(200)),
        (
            ResponseTemplate::new(200).set_body_string("not json"),
            "unreadable",
            json!(200),
        ),
    ] {
        let graph = graph_resume_and_read(graph_error(404), read).await;
        let (status, problem, _app) = resume(&graph, &[], "failed").await;
        assert_eq!(status, 424, "{problem}");
        assert_eq!(
            problem["type"],
            "urn:resume-gateway:problem:graph-not-found"
        );
        assert_eq!(problem["graph"]["status"], 404);
        assert_eq!(problem["graph"]["code"], "Code404");
        assert_eq!(problem["graph"]["read"]["case"], case, "{problem}");
        assert_eq!(problem["graph"]["read"]["status"], read_status, "{problem}");
        assert_eq!(counts(&graph).await, (1, 1));
    }
}

#[tokio::test]
async fn an_attempt_that_timed_out_is_settled_by_reading() {
    // The attempt hangs past its share of a 2 s deadline; no time is left for a second
    // resume, but the read still fits: it shows the first one landed, or settles nothing.
    for (read, expected) in [(held("completed"), 200), (held("inProgress"), 503)] {
        let graph = graph_resume_and_read(
            ResponseTemplate::new(204).set_delay(Duration::from_secs(10)),
            read,
        )
        .await;
        let (status, body, _app) =
            resume(&graph, &[("RESUME_DEADLINE_SECONDS", "2")], "completed").await;
        assert_eq!(status, expected, "{body}");
        if expected == 200 {
            assert_eq!(body["alreadyResumed"], true);
            assert_eq!(body["confirmedByRead"], true);
        } else {
            assert_eq!(body["type"], "urn:resume-gateway:problem:graph-unavailable");
            assert_eq!(body["graph"]["read"]["processingStatus"], "inProgress");
        }
        assert_eq!(counts(&graph).await, (1, 1));
    }
}

#[tokio::test]
async fn a_wrong_workflow_with_the_right_result_never_takes_the_right_requests_answer() {
    const WRONG: &str = "0badf00d-5d7c-4b38-a8c9-1d0f7c2a9e11";
    let graph = Graph::start().await;
    // The mangled request reaches Graph first and is refused slowly.
    Mock::given(method("POST"))
        .and(path(format!("/v1.0{}", resume_path(WRONG, TASK, RESULT))))
        .respond_with(graph_error(404).set_delay(Duration::from_millis(1500)))
        .mount(&graph.server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/v1.0{}",
            resume_path(WORKFLOW, TASK, RESULT)
        )))
        .respond_with(ResponseTemplate::new(204).insert_header("request-id", "right"))
        .mount(&graph.server)
        .await;
    let identity = Identity::start().await;
    let gw = spawn_app(&env_for(&graph, &identity)).await;
    let wrong = {
        let body = json!({"operationStatus": "completed", "callout": callout(WRONG, TASK, RESULT)});
        let url = gw.url("/api/function-resume");
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, body) = answer(
        gw.resume(
            &json!({"operationStatus": "completed", "callout": callout(WORKFLOW, TASK, RESULT)}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["workflowId"], WORKFLOW);
    assert_eq!(body["graphRequestId"], "right");
    assert_eq!(body["alreadyResumed"], false);
    let (status, _, problem) = answer(wrong.await.unwrap()).await;
    assert_eq!(status, 424, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:graph-not-found"
    );
}

#[tokio::test]
async fn malformed_callout_ids_are_refused_and_nothing_is_sent() {
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let gw = spawn_app(&env_for(&graph, &identity)).await;
    for (holder, bad) in [
        ("workflow", json!("not-a-guid")),
        ("task", json!(42)),
        (
            "taskProcessingResult",
            json!("{7c2a9e11-56bd-41a0-9d7c-4b38a8c91d0f}"),
        ),
        ("taskProcessingresult", json!("")),
    ] {
        let mut c = callout(WORKFLOW, TASK, RESULT);
        c["data"][holder] = json!({"id": bad});
        let (status, _, problem) = answer(
            gw.resume(&json!({"operationStatus": "completed", "callout": c}))
                .await,
        )
        .await;
        assert_eq!(status, 400, "{holder}: {problem}");
        assert_eq!(
            problem["type"],
            "urn:resume-gateway:problem:invalid-request"
        );
        assert_eq!(problem["field"], format!("callout.data.{holder}.id"));
    }
    assert_eq!(graph.calls().await, 0);
    assert_eq!(identity.calls().await, 0);
}

// Callers with Entra ID app tokens (`CALLER_AUTH=entra`, `common::caller`): allow-lists, signing
// key rotation, unreachable keys, and the per-extension check (`CALLER_SCOPE=extension`) with
// mock Graph answering its reads as Graph's v1.0 metadata shapes them. The attack matrix, whose
// answers are checked against the log lines, and the settings that stop the process stay in
// `caller_auth.rs`.

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
    let gw = spawn_app(&env).await;
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
    let gw = Arc::new(spawn_app(&env).await);

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
    let gw = spawn_app(&env).await;
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

#[tokio::test]
async fn extension_scope_resumes_only_for_listed_callers_reading_twice_for_five_resumes() {
    let t = Tenant::start().await;
    let (task, extension) = (task_n(1), extension_n(1));
    serve_custom_task(&t.graph, &task, &extension).await;
    serve_extension(&t.graph, &extension, &[LOGIC_APP_ID], 5).await;
    let gw = t.app(&[]).await;

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
    let gw = t.app(&[]).await;
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
    let gw = t.app(&[("RESUME_DEADLINE_SECONDS", "3")]).await;
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
    let gw = t.app(&[]).await;

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
    let scoped = Arc::new(t.app(&[]).await);
    let tenant = t.app(&[("CALLER_SCOPE", "tenant")]).await;
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
        let gw = t.app(extra).await;
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
    let gw = t.app(&[("CALLER_SCOPE", "tenant")]).await;
    let (status, _, answer) = resume_as(&gw, &t.bearer(STRANGER_APP_ID), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(graph_resumes(&t.graph).await, 1);
}
