//! Answering truthfully after an ambiguous resume, against the real binary with mock Graph:
//! a refusal (400/404/409) that Graph already holds is confirmed by one read of the
//! taskProcessingResult, never by a second resume, and the summary log line says so. The
//! answers alone (an unsettling read, a timed-out attempt, requests told apart by their whole
//! target, malformed callout ids) are tested in-process, in `contract.rs`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

async fn resume(graph: &Graph, extra: &[(&str, &str)], status: &str) -> (u16, Value, Gateway) {
    let identity = Identity::start().await;
    let gw = Gateway::start(&env_with(graph, &identity, extra)).await;
    let (got, body) = resume_the_result(&gw, status).await;
    (got, body, gw)
}

fn logged_case(gw: &Gateway, case: &str) -> bool {
    Output::json_lines(&gw.output.stdout())
        .iter()
        .any(|l| l["read"] == case)
}

#[tokio::test]
async fn a_refused_resume_that_graph_already_holds_is_answered_200_confirmed_by_reading() {
    for refusal in [400, 404, 409] {
        let graph = graph_resume_and_read(graph_error(refusal), held("completed")).await;
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
    let graph = graph_resume_and_read(graph_error(400), held("failed")).await;
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
