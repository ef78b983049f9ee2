//! The gateway under an emulated Functions host, in every mode a user can configure:
//! request forwarding, request proxying and JSON invocations.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::host::{
    FUNCTION_KEY, FunctionsHost, Mode, app_folder, expand, host_json_for, repo_json,
};
use common::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, ResponseTemplate};

const ACCEPTED: &str = "00000000-0000-4000-8000-000000000001";
const FORBIDDEN: &str = "00000000-0000-4000-8000-000000000003";
const THROTTLED: &str = "00000000-0000-4000-8000-000000000004";

/// Graph with one behaviour per result id.
async fn graph() -> Graph {
    let g = Graph::start().await;
    Mock::given(method("POST"))
        .and(path_regex(format!("{FORBIDDEN}/resume$")))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {"code": "Forbidden", "message": "Insufficient privileges to complete the operation."}})))
        .mount(&g.server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(format!("{THROTTLED}/resume$")))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "120"))
        .mount(&g.server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("/resume$"))
        .respond_with(ResponseTemplate::new(204).insert_header("request-id", "graph-req-host"))
        .mount(&g.server)
        .await;
    g
}

async fn start(mode: Mode, graph: &Graph, identity: &Identity) -> FunctionsHost {
    let app = app_folder(
        &host_json_for(mode),
        "function-resume",
        &repo_json("function-resume/function.json"),
    );
    FunctionsHost::start(&app, &env_for(graph, identity)).await
}

async fn read(r: reqwest::Response) -> (u16, HashMap<String, String>, Value) {
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn the_same_end_to_end_cases_pass_in_every_mode() {
    let graph = graph().await;
    let identity = Identity::start().await;
    let mut graph_calls = 0;
    for mode in Mode::ALL {
        let host = start(mode, &graph, &identity).await;
        let function = "/api/function-resume";

        // Resumed, with the callout as the trigger received it.
        let (status, headers, body) = read(host.post(function, &json!({"operationStatus": "completed", "callout": callout(WORKFLOW, TASK, ACCEPTED)})).await).await;
        assert_eq!(status, 200, "{mode:?}: {body}");
        assert!(
            headers["content-type"].starts_with("application/json"),
            "{mode:?}"
        );
        assert_eq!(body["outcome"], "resumed", "{mode:?}");
        assert_eq!(body["taskProcessingResultId"], ACCEPTED);
        assert_eq!(body["graphRequestId"], "graph-req-host");
        let ids = host.invocation_ids.lock().unwrap().clone();
        assert_eq!(
            body["invocationId"],
            ids.last().unwrap().as_str(),
            "{mode:?}: the host's invocation id is echoed"
        );
        graph_calls += 1;

        // Invalid input: 400 problem, whatever the transport.
        let (status, headers, problem) = read(
            host.post(
                function,
                &json!({"operationStatus": "done", "callout": callout(WORKFLOW, TASK, ACCEPTED)}),
            )
            .await,
        )
        .await;
        assert_eq!(status, 400, "{mode:?}: {problem}");
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{mode:?}"
        );
        assert_eq!(problem["field"], "operationStatus");

        // Graph refuses: 424 with the remedy.
        let (status, _, problem) = read(host.post(function, &json!({"operationStatus": "completed", "workflowId": WORKFLOW, "taskId": TASK, "taskProcessingResultId": FORBIDDEN})).await).await;
        assert_eq!(status, 424, "{mode:?}: {problem}");
        assert!(
            problem["remedy"]
                .as_str()
                .unwrap()
                .contains("authorizedApps")
        );
        graph_calls += 1;

        // Graph throttles beyond the deadline: 503 and Retry-After survive the host.
        let (status, headers, problem) = read(host.post(function, &json!({"operationStatus": "completed", "workflowId": WORKFLOW, "taskId": TASK, "taskProcessingResultId": THROTTLED})).await).await;
        assert_eq!(status, 503, "{mode:?}: {problem}");
        assert_eq!(
            headers.get("retry-after").map(String::as_str),
            Some("120"),
            "{mode:?}"
        );
        graph_calls += 1;

        // The function key is the host's business: without it nothing reaches the handler.
        let r = host
            .client
            .post(host.url(function))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{mode:?}");
        // The key also works as ?code=.
        let r = host
            .client
            .post(format!("{}?code={FUNCTION_KEY}", host.url(function)))
            .header("content-type", "application/json")
            .body(json!({"operationStatus": "completed", "callout": callout(WORKFLOW, TASK, ACCEPTED)}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "{mode:?}: a repeat is answered from memory"
        );
        assert_eq!(r.json::<Value>().await.unwrap()["alreadyResumed"], true);

        // Every handler log line of a request carries the host's invocation id.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let lines = Output::json_lines(&host.output.stdout());
        let id = &ids[ids.len() - 1];
        let for_request: Vec<&Value> = lines
            .iter()
            .filter(|l| l["span"]["invocation_id"] == id.as_str())
            .collect();
        assert!(
            !for_request.is_empty(),
            "{mode:?}: no log line carries invocation {id}: {lines:?}"
        );
        assert!(
            for_request
                .iter()
                .any(|l| l["invocation_id"] == id.as_str() && l["status"] == 200)
        );
        assert!(
            lines.iter().all(|l| l["level"] == "INFO"),
            "{mode:?}: stdout holds info only"
        );

        if mode == Mode::Json {
            let logs = host.invocation_logs.lock().unwrap().clone();
            assert!(
                logs.iter()
                    .any(|l| l.contains("answered 200") && l.contains(ACCEPTED)),
                "{logs:?}"
            );
            assert!(
                logs.iter()
                    .any(|l| l.contains("answered 424") && l.contains("graph-forbidden")),
                "{logs:?}"
            );
        }
        println!("{mode:?}: handler ready {:?} after exec", host.ready_after);
    }
    assert_eq!(
        graph.calls().await,
        graph_calls,
        "one Graph call per accepted, refused or throttled case (throttled: Retry-After beyond the deadline)"
    );
}

#[tokio::test]
async fn chunked_bodies_lost_by_forwarding_are_explained_and_proxying_keeps_them() {
    let graph = graph().await;
    let identity = Identity::start().await;
    let body = json!({"operationStatus": "completed", "callbackUriPath": resume_path(WORKFLOW, TASK, "00000000-0000-4000-8000-000000000009")}).to_string();
    for (mode, expected) in [
        (Mode::Forwarding, 400),
        (Mode::Proxying, 200),
        (Mode::Json, 400),
    ] {
        let host = start(mode, &graph, &identity).await;
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(body.clone().into_bytes())];
        let stream = futures_util_stream(chunks);
        let r = host
            .client
            .post(host.url("/api/function-resume"))
            .header("x-functions-key", FUNCTION_KEY)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap();
        let (status, _, problem) = read(r).await;
        assert_eq!(status, expected, "{mode:?}: {problem}");
        if expected == 400 {
            assert!(
                problem["detail"].as_str().unwrap().contains("chunked"),
                "{mode:?}: {problem}"
            );
            assert!(
                problem["remedy"]
                    .as_str()
                    .unwrap()
                    .contains("Content-Length")
            );
        }
    }
}

fn futures_util_stream(
    items: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + Sync + 'static {
    struct Iter(std::vec::IntoIter<Result<Vec<u8>, std::io::Error>>);
    impl futures_core::Stream for Iter {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(items.into_iter())
}

#[tokio::test]
async fn a_renamed_function_with_its_own_route_and_prefix_works_in_every_mode() {
    let graph = graph().await;
    let identity = Identity::start().await;
    for mode in Mode::ALL {
        let mut host_json = host_json_for(mode);
        host_json["extensions"] = json!({"http": {"routePrefix": "gw"}});
        let mut function = repo_json("function-resume/function.json");
        function["bindings"][0]["route"] = json!("lifecycle/resume");
        let app = app_folder(&host_json, "lcw-resume", &function);
        let host = FunctionsHost::start(&app, &env_for(&graph, &identity)).await;
        let r = host.post("/gw/lifecycle/resume", &json!({"operationStatus": "failed", "callbackUriPath": resume_path(WORKFLOW, TASK, "00000000-0000-4000-8000-000000000010")})).await;
        let (status, _, body) = read(r).await;
        assert_eq!(status, 200, "{mode:?}: {body}");
        assert_eq!(body["operationStatus"], "failed");
        let started = host.output.stdout().join("\n");
        assert!(
            started.contains("lcw-resume at /gw/lifecycle/resume"),
            "{mode:?}: {started}"
        );
    }
}

#[tokio::test]
async fn an_empty_route_prefix_puts_both_kinds_of_request_on_one_path() {
    let graph = graph().await;
    let identity = Identity::start().await;
    for mode in [Mode::Forwarding, Mode::Json] {
        let mut host_json = host_json_for(mode);
        host_json["extensions"] = json!({"http": {"routePrefix": ""}});
        let app = app_folder(
            &host_json,
            "function-resume",
            &repo_json("function-resume/function.json"),
        );
        let host = FunctionsHost::start(&app, &env_for(&graph, &identity)).await;
        let r = host.post("/function-resume", &json!({"operationStatus": "completed", "callbackUriPath": resume_path(WORKFLOW, TASK, "00000000-0000-4000-8000-000000000011")})).await;
        let (status, _, body) = read(r).await;
        assert_eq!(status, 200, "{mode:?}: {body}");
    }
}

#[tokio::test]
async fn readiness_is_measured_over_several_starts() {
    let graph = graph().await;
    let identity = Identity::start().await;
    let mut times = Vec::new();
    for _ in 0..7 {
        let host = start(Mode::Forwarding, &graph, &identity).await;
        times.push(host.ready_after);
    }
    times.sort();
    println!(
        "exec to first answer on GET /: median {:?} (min {:?}, max {:?}) over {} starts; the host allows 30 s",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        times.len()
    );
    assert!(times[times.len() / 2] < Duration::from_secs(5));
}

#[tokio::test]
async fn a_bad_app_layout_stops_the_handler_with_the_file_named() {
    let mut function = repo_json("function-resume/function.json");
    function["bindings"][0]["route"] = json!("resume/{id}");
    let app = app_folder(
        &host_json_for(Mode::Forwarding),
        "function-resume",
        &function,
    );
    let mut child = std::process::Command::new(app.join("handler"))
        .current_dir(&app)
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", ANY_PORT.to_string())
        .env("FUNCTIONS_APP_ROOT_PATH", &app)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_ne!(
        status.code(),
        Some(0),
        "a broken layout must not exit 0 (that stops restarts)"
    );
    assert!(
        stderr.contains("function.json") && stderr.contains("{id}"),
        "{stderr}"
    );
}

#[test]
fn arguments_expand_app_settings_like_the_host() {
    let s: HashMap<String, String> = [("A".to_string(), "1".to_string())].into_iter().collect();
    assert_eq!(expand("--x=%A%/%B%", &s), "--x=1/");
    assert_eq!(expand("50%", &s), "50%");
}
