//! The gateway's HTTP contract, tested against the app in this process (`common::app`): what
//! each request is answered, the problems and their fields, what is sent to Graph and how
//! Graph's answers are mapped. One binary, each test with its own app, Graph and identity on
//! 127.0.0.1 port 0. Behaviour that needs the real process stays with the process tests.

mod common;

use common::app::{App, spawn_app};
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

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
