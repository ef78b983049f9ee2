//! Answering truthfully after an ambiguous resume, against the real binary with mock Graph:
//! a refusal (400/404/409) or an unanswered last attempt is followed by exactly one read of
//! the taskProcessingResult, never by a second resume. Also: requests are told apart by their
//! whole target, and malformed callout ids are refused before anything is sent.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

fn result_path(workflow: &str, task: &str, result: &str) -> String {
    resume_path(workflow, task, result)
        .strip_suffix("/resume")
        .unwrap()
        .to_owned()
}

/// Graph answering the resume with `resume`, and a read of the result with `read`. The
/// shared mock servers are never dropped (see `common::Server`), so counts are asserted on
/// the received requests ([`counts`]).
async fn graph(resume: ResponseTemplate, read: ResponseTemplate) -> Graph {
    let graph = Graph::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/v1.0{}",
            resume_path(WORKFLOW, TASK, RESULT)
        )))
        .respond_with(resume)
        .mount(&graph.server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/v1.0{}",
            result_path(WORKFLOW, TASK, RESULT)
        )))
        .and(query_param("$select", "id,processingStatus"))
        .respond_with(read)
        .mount(&graph.server)
        .await;
    graph
}

fn graph_error(status: u16) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("request-id", format!("resume-{status}").as_str())
        .set_body_json(json!({"error": {"code": format!("Code{status}"), "message": format!("message {status}")}}))
}

fn held(status: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("request-id", "read-1")
        .set_body_json(json!({"id": RESULT, "processingStatus": status}))
}

async fn resume(graph: &Graph, extra: &[(&str, &str)], status: &str) -> (u16, Value, Gateway) {
    let identity = Identity::start().await;
    let gw = Gateway::start(&env_with(graph, &identity, extra)).await;
    let (got, _, body) = answer(gw.resume(&json!({"operationStatus": status, "callbackUriPath": resume_path(WORKFLOW, TASK, RESULT)})).await).await;
    (got, body, gw)
}

/// How many resumes and reads Graph received; every read carries the resume's token.
async fn counts(graph: &Graph) -> (usize, usize) {
    let sent = graph.requests().await;
    let (posts, gets): (Vec<_>, Vec<_>) = sent.iter().partition(|r| r.method.as_str() == "POST");
    for get in &gets {
        assert_eq!(
            get.headers.get("authorization"),
            posts[0].headers.get("authorization"),
            "the read uses the resume's token"
        );
    }
    (posts.len(), gets.len())
}

fn logged_case(gw: &Gateway, case: &str) -> bool {
    Output::json_lines(&gw.output.stdout())
        .iter()
        .any(|l| l["read"] == case)
}

#[tokio::test]
async fn a_refused_resume_that_graph_already_holds_is_answered_200_confirmed_by_reading() {
    for refusal in [400, 404, 409] {
        let graph = graph(graph_error(refusal), held("completed")).await;
        let (status, body, gw) = resume(&graph, &[], "completed").await;
        assert_eq!(status, 200, "{refusal}: {body}");
        assert_eq!(body["outcome"], "resumed");
        assert_eq!(body["alreadyResumed"], true);
        assert_eq!(body["confirmedByRead"], true);
        assert_eq!(body["graphRequestId"], "read-1");
        assert_eq!(counts(&graph).await, (1, 1), "{refusal}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(logged_case(&gw, "confirmed"), "{}", gw.output.all());
    }
}

#[tokio::test]
async fn the_other_final_status_is_a_409_naming_it() {
    let graph = graph(graph_error(400), held("failed")).await;
    let (status, problem, gw) = resume(&graph, &[], "completed").await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:graph-holds-other-status"
    );
    assert_eq!(problem["processingStatus"], "failed");
    assert!(
        problem["detail"].as_str().unwrap().contains(" as failed"),
        "{problem}"
    );
    assert_eq!(problem["graph"]["read"]["case"], "heldOtherwise");
    assert_eq!(counts(&graph).await, (1, 1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(logged_case(&gw, "heldOtherwise"), "{}", gw.output.all());
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
        let graph = graph(graph_error(404), read).await;
        let (status, problem, _gw) = resume(&graph, &[], "failed").await;
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
        let graph = graph(
            ResponseTemplate::new(204).set_delay(Duration::from_secs(10)),
            read,
        )
        .await;
        let (status, body, _gw) =
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
    let gw = Gateway::start(&env_for(&graph, &identity)).await;
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
    let gw = Gateway::start(&env_for(&graph, &identity)).await;
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
