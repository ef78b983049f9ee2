//! End-to-end behaviour of the resume function against the real binary.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

fn with(mut env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

#[tokio::test]
async fn ready_at_once_even_when_graph_and_identity_are_unreachable() {
    let env = with(
        vec![],
        &[
            ("GRAPH_ENDPOINT", "http://127.0.0.1:9"),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token"),
            ("IDENTITY_HEADER", "x"),
        ],
    );
    let gw = Gateway::start(&env).await;
    let r = gw.client.get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    println!("ready after {:?}", gw.ready_after);
}

#[tokio::test]
async fn every_target_form_and_option_reaches_graph() {
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let env = with(
        env_for(&graph, &identity),
        &[
            ("GRAPH_API_VERSION", "beta"),
            ("RESUME_SOURCE", "contoso-gateway"),
        ],
    );
    let gw = Gateway::start(&env).await;
    let upper_callout = callout(WORKFLOW, TASK, RESULT)
        .to_string()
        .replace(RESULT, &RESULT.to_uppercase());
    let run = "0f7c2a9e-1156-4bd1-a05d-7c4b38a8c91d";
    let run_path = format!(
        "/identityGovernance/lifecycleWorkflows/workflows/{WORKFLOW}/runs/{run}/taskProcessingResults/{}/microsoft.graph.identityGovernance.resume",
        result_id(2)
    );
    let cases = [
        (
            json!({"operationStatus": "Failed", "callout": upper_callout, "statusReasons": ["mailbox quota"]}),
            resume_path(WORKFLOW, TASK, RESULT),
        ),
        (
            json!({"operationStatus": "completed", "callbackUriPath": run_path, "source": "hr-system"}),
            run_path.clone(),
        ),
        (
            json!({"operationStatus": "completed", "workflowId": WORKFLOW.to_uppercase(), "taskId": TASK, "taskProcessingResultId": result_id(3)}),
            resume_path(WORKFLOW, TASK, &result_id(3)),
        ),
    ];
    let mut answers = Vec::new();
    for (request, _) in &cases {
        let (status, _, body) = answer(gw.resume(request).await).await;
        assert_eq!(status, 200, "{request} -> {body}");
        answers.push(body);
    }
    // Reasons come back in the answer and go to the summary log line, never to Graph.
    assert_eq!(answers[0]["statusReasons"], json!(["mailbox quota"]));
    assert!(answers[1].get("statusReasons").is_none(), "{}", answers[1]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logged = Output::json_lines(&gw.output.stdout());
    assert!(
        logged
            .iter()
            .any(|l| l["status_reasons"] == r#"["mailbox quota"]"#),
        "{logged:?}"
    );
    let sent = graph.requests().await;
    assert_eq!(sent.len(), 3);
    for (req, (_, expected_path)) in sent.iter().zip(&cases) {
        assert_eq!(req.url.path(), format!("/beta{expected_path}"));
    }
    let bodies: Vec<Value> = sent
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        bodies[0],
        json!({"data": {"operationStatus": "failed"}, "source": "contoso-gateway", "type": "lifecycleEvent"})
    );
    assert_eq!(bodies[1]["source"], "hr-system");
    assert_eq!(bodies[2]["data"]["operationStatus"], "completed");
}

#[tokio::test]
async fn unreachable_identity_is_503_with_retry_after_and_the_remedy() {
    let graph = Graph::accepting().await;
    let identity = Identity::bare().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500).set_body_string("identity endpoint broke"))
        .mount(&identity.server)
        .await;
    let env = with(
        env_for(&graph, &identity),
        &[("RESUME_DEADLINE_SECONDS", "2")],
    );
    let gw = Gateway::start(&env).await;
    let started = Instant::now();
    let r = gw.resume(&json!({"operationStatus": "completed", "callbackUriPath": resume_path(WORKFLOW, TASK, RESULT)})).await;
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, _, problem) = answer(r).await;
    assert_eq!(status, 503, "{problem}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:identity-unavailable"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("managed identity could not get a token"),
        "{problem}"
    );
    assert!(
        problem["remedy"]
            .as_str()
            .unwrap()
            .contains("AZURE_CLIENT_ID"),
        "{problem}"
    );
    assert_eq!(graph.calls().await, 0);
}

#[tokio::test]
async fn dry_run_answers_without_calling_graph_or_identity() {
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let env = with(env_for(&graph, &identity), &[("RESUME_DRY_RUN", "true")]);
    let gw = Gateway::start(&env).await;
    let (status, _, body) = answer(gw.resume(&json!({"operationStatus": "failed", "callout": callout(WORKFLOW, TASK, RESULT), "statusReasons": ["test"]})).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "dry-run");
    assert_eq!(body["dryRun"], true);
    assert_eq!(body["attempts"], 0);
    let url = format!(
        "{}/v1.0{}",
        graph.server.uri(),
        resume_path(WORKFLOW, TASK, RESULT)
    );
    assert_eq!(body["request"]["method"], "POST");
    assert_eq!(body["request"]["url"], url);
    assert_eq!(
        body["request"]["body"],
        json!({"data": {"operationStatus": "failed"}, "source": "resume-gateway", "type": "lifecycleEvent"})
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logged = Output::json_lines(&gw.output.stdout());
    assert!(logged.iter().any(|l| l["url"] == url.as_str() && l["message"].as_str().unwrap().contains("dry run")), "{logged:?}");
    assert_eq!(graph.calls().await, 0);
    assert_eq!(identity.calls().await, 0);
}

#[tokio::test]
async fn logs_are_json_lines_split_by_level_without_secrets_or_personal_data() {
    let graph = Graph::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/v1.0{}",
            resume_path(WORKFLOW, TASK, RESULT)
        )))
        .respond_with(ResponseTemplate::new(204).insert_header("request-id", "graph-ok-1"))
        .mount(&graph.server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"error": {"code": "Forbidden", "message": "no"}})),
        )
        .mount(&graph.server)
        .await;
    let identity = Identity::start().await;
    // Debug level: even the chattiest setting a user would pick must not leak the token.
    let env = with(env_for(&graph, &identity), &[("RUST_LOG", "debug")]);
    let gw = Gateway::start(&env).await;
    let ok = json!({"operationStatus": "completed", "callout": callout(WORKFLOW, TASK, RESULT)});
    let other = "9d7c4b38-a8c9-41d0-8f7c-2a9e1156bd1a";
    let refused =
        json!({"operationStatus": "completed", "callout": callout(WORKFLOW, TASK, other)});
    assert_eq!(
        gw.resume_with(
            &ok,
            &[
                ("x-azure-functions-invocationid", "inv-ok"),
                ("x-functions-key", "function-key-value-xyz")
            ]
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        gw.resume_with(&refused, &[("x-azure-functions-invocationid", "inv-403")])
            .await
            .status(),
        424
    );
    assert_eq!(
        gw.resume_with(
            &json!({"operationStatus": "x"}),
            &[("x-azure-functions-invocationid", "inv-400")]
        )
        .await
        .status(),
        400
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stdout = Output::json_lines(&gw.output.stdout());
    let stderr = Output::json_lines(&gw.output.stderr());
    let summary = stdout
        .iter()
        .find(|l| l["invocation_id"] == "inv-ok")
        .unwrap_or_else(|| panic!("no summary line for inv-ok: {stdout:?}"));
    assert_eq!(summary["level"], "INFO");
    assert_eq!(summary["workflow_id"], WORKFLOW);
    assert_eq!(summary["task_id"], TASK);
    assert_eq!(summary["task_processing_result_id"], RESULT);
    assert_eq!(summary["operation_status"], "completed");
    assert_eq!(summary["status"], 200);
    assert_eq!(summary["graph_request_id"], "graph-ok-1");
    assert_eq!(summary["attempts"], 1);
    assert!(summary["elapsed_ms"].is_u64());
    assert!(
        stdout
            .iter()
            .all(|l| l["level"] != "WARN" && l["level"] != "ERROR")
    );
    assert!(
        stderr
            .iter()
            .all(|l| l["level"] == "WARN" || l["level"] == "ERROR")
    );
    let refused_line = stderr
        .iter()
        .find(|l| l["invocation_id"] == "inv-403")
        .expect("refusal logged on stderr");
    assert_eq!(refused_line["status"], 424);
    assert_eq!(refused_line["graph_status"], 403);
    assert_eq!(refused_line["task_processing_result_id"], other);
    assert!(
        stderr
            .iter()
            .any(|l| l["invocation_id"] == "inv-400" && l["status"] == 400)
    );

    let all = gw.output.all();
    let token_signature = identity.token.rsplit('.').next().unwrap();
    assert!(
        !all.contains(&identity.token),
        "the access token was logged"
    );
    assert!(
        !all.contains(token_signature),
        "part of the access token was logged"
    );
    assert!(
        !all.contains(IDENTITY_SECRET),
        "the identity header was logged"
    );
    assert!(
        !all.contains("function-key-value-xyz"),
        "the function key was logged"
    );
    for name in SUBJECT_NAMES {
        assert!(!all.contains(name), "personal data {name:?} was logged");
    }
}

#[test]
fn a_bad_setting_stops_at_once_with_one_line_naming_it() {
    let cases = [
        ("GRAPH_CLOUD", "mars"),
        ("GRAPH_API_VERSION", "v2"),
        ("GRAPH_ENDPOINT", "http://graph.example.com"),
        ("RESUME_CREDENTIAL", "magic"),
        ("RESUME_DRY_RUN", "perhaps"),
        ("RESUME_DEADLINE_SECONDS", "230"),
        ("AZURE_CLIENT_ID", "not-a-guid"),
        ("RUST_LOG", "info,[["),
    ];
    for (setting, value) in cases {
        let env = [(setting.to_string(), value.to_string())];
        assert_stops_on_bad_setting(&env, setting, value, Duration::from_secs(1));
    }
}

/// Each mistake a person makes on a first try is answered with its local cause.
#[tokio::test]
async fn first_try_mistakes_are_answered_with_their_local_cause() {
    let gw = Gateway::start(&[("RESUME_DRY_RUN".into(), "true".into())]).await;
    // As curl sends it: Content-Length always, 0 for an empty body (hyper would leave it out).
    let post = |body: String, headers: &[(&'static str, &'static str)]| {
        let mut req = gw
            .client
            .post(gw.url("/api/function-resume"))
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };

    // `curl -d @mistyped-path` sends Content-Length: 0.
    let (status, _, problem) = answer(post(String::new(), &[]).await.unwrap()).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["detail"], "The request body is empty.");
    let remedy = problem["remedy"].as_str().unwrap();
    assert!(
        remedy.contains("-d @FILE") && remedy.contains("path"),
        "{remedy}"
    );
    assert!(!problem.to_string().contains("chunked"), "{problem}");

    // Content-Length: 0 through the host is still the caller's own empty body.
    let (status, _, problem) = answer(
        post(
            String::new(),
            &[("x-azure-functions-invocationid", "inv-empty")],
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["detail"], "The request body is empty.");

    // No Content-Length, as the host's legacy forwarding sends a chunked request it dropped:
    // the forwarding may be at fault, and that is explained.
    let empty_stream: Vec<Result<Vec<u8>, std::io::Error>> = vec![];
    let r = gw
        .client
        .post(gw.url("/api/function-resume"))
        .header("content-type", "application/json")
        .header("x-azure-functions-invocationid", "inv-chunked")
        .body(reqwest::Body::wrap_stream(tokio_stream_iter(empty_stream)))
        .send()
        .await
        .unwrap();
    let (status, _, problem) = answer(r).await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("chunked"),
        "{problem}"
    );

    // The trigger body posted as is.
    let raw = std::fs::read_to_string("samples/callout.json").unwrap();
    let (status, _, problem) = answer(post(raw, &[]).await.unwrap()).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "data");
    assert!(
        problem["detail"].as_str().unwrap().contains(
            r#"wrap it as {"operationStatus":"completed" or "failed","callout":<the trigger body>}"#
        ),
        "{problem}"
    );

    // No target at all: all three forms are named.
    let (status, _, problem) = answer(
        post(r#"{"operationStatus":"completed"}"#.into(), &[])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    for form in [
        "`callout`",
        "`callbackUriPath`",
        "`workflowId` + `taskId` + `taskProcessingResultId`",
    ] {
        assert!(detail.contains(form), "{detail}");
    }
}

#[tokio::test]
async fn a_port_in_use_names_the_setting_that_chose_it() {
    install_crypto();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (mut child, output) = spawn(&[("RESUME_DRY_RUN".into(), "true".into())], port);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still running with its port taken"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    output.wait_closed(Duration::from_secs(5));
    assert_eq!(status.code(), Some(1));
    let stderr = output.stderr().join("\n");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}"))
            && stderr.contains("set FUNCTIONS_CUSTOMHANDLER_PORT to a free port"),
        "{stderr}"
    );
}

/// Every process test starts its handler on port 0 and reads the port the child bound
/// (`common::listening_port`), so no port is ever released to be taken by another test.
#[tokio::test]
async fn many_handlers_started_at_once_each_listen_on_their_own_port() {
    let env = [("RESUME_DRY_RUN".to_string(), "true".to_string())];
    let mut starting = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let env = env.clone();
        starting.spawn(async move { Gateway::start(&env).await });
    }
    let gateways = starting.join_all().await;
    let mut ports: Vec<u16> = gateways.iter().map(|g| g.port).collect();
    assert!(ports.iter().all(|p| *p != 0), "{ports:?}");
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), gateways.len(), "a port shared: {ports:?}");
    for (n, gw) in gateways.iter().enumerate() {
        // Each port is its own child's: the answer is logged by that child and no other.
        let id = format!("inv-port-{n}");
        let r = gw
            .resume_with(
                &request_for(n, "completed"),
                &[("x-azure-functions-invocationid", &id)],
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (n, gw) in gateways.iter().enumerate() {
        let all = gw.output.all();
        for m in 0..gateways.len() {
            let id = format!("\"inv-port-{m}\"");
            assert_eq!(
                all.contains(&id),
                m == n,
                "gateway {n}, invocation {m}: {all}"
            );
        }
    }
}
