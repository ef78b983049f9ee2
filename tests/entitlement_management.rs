//! Entitlement Management resumes through the real `handler` binary, against a mock Graph and
//! identity endpoint: the callout form at every stage, `state` where Graph takes it and nowhere
//! else, the explicit ids, foreign paths, personal data in the logs, duplicates, the reconciling
//! read and the permission named in a refusal.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const STAGES: [&str; 6] = [
    "assignmentRequestCreated",
    "assignmentRequestApproved",
    "assignmentRequestGranted",
    "assignmentRequestRemoved",
    "assignmentFourteenDaysBeforeExpiration",
    "assignmentOneDayBeforeExpiration",
];
const RESUME_PATH: &str = "/v1.0/identityGovernance/entitlementManagement/assignmentRequests/0e60f18c-b2a0-4887-9da8-da2e30a39d99/resume";

/// A distinct stage instance id for number `n`.
fn instance(n: usize) -> String {
    format!("957d0c50-466b-4840-bb5b-{n:012}")
}

fn callout_request(n: usize, stage: &str) -> Value {
    json!({"callout": access_package_callout(ASSIGNMENT_REQUEST, &instance(n), stage)})
}

/// The resume bodies Graph received, in order.
async fn resumes(graph: &Graph) -> Vec<(String, Value)> {
    graph
        .requests()
        .await
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| {
            (
                r.url.path().to_owned(),
                serde_json::from_slice(&r.body).unwrap(),
            )
        })
        .collect()
}

async fn gateway(graph: &Graph, identity: &Identity) -> Gateway {
    Gateway::start(&env_for(graph, identity)).await
}

/// The callout at each of the six stages: one Graph call each, to the assignment request's
/// resume, with the body the metadata declares; the answer names the access-package ids.
/// Nothing of the target user or the requestor reaches a log line, on success or refusal.
#[tokio::test]
async fn the_callout_resumes_at_every_stage_and_no_personal_data_is_logged() {
    let (graph, identity) = (Graph::accepting().await, Identity::start().await);
    let mut gw = gateway(&graph, &identity).await;
    for (n, stage) in STAGES.iter().enumerate() {
        let (status, _, body) = answer(gw.resume(&callout_request(n, stage)).await).await;
        assert_eq!(status, 200, "{stage}: {body}");
        assert_eq!(body["outcome"], "resumed");
        assert_eq!(body["assignmentRequestId"], ASSIGNMENT_REQUEST);
        assert_eq!(body["customExtensionStageInstanceId"], instance(n));
        assert_eq!(body["stage"], *stage);
        assert_eq!(body["state"], Value::Null);
        assert!(body.get("workflowId").is_none() && body.get("operationStatus").is_none());
        assert_eq!(body["graphStatus"], 204);
    }
    let sent = resumes(&graph).await;
    assert_eq!(sent.len(), STAGES.len());
    for ((at, body), (n, stage)) in sent.iter().zip(STAGES.iter().enumerate()) {
        assert_eq!(at, RESUME_PATH);
        assert_eq!(
            *body,
            json!({"source": "resume-gateway",
                "type": format!("microsoft.graph.accessPackageCustomExtensionStage.{stage}"),
                "data": {"@odata.type": "microsoft.graph.accessPackageAssignmentRequestCallbackData",
                    "stage": stage, "customExtensionStageInstanceId": instance(n)}})
        );
    }
    // A refusal logs too: it must not leak the callout either.
    let refused = json!({"callout": access_package_callout(ASSIGNMENT_REQUEST, &instance(9), "assignmentRequestGranted"), "state": "denied"});
    assert_eq!(gw.resume(&refused).await.status(), 400);

    gw.terminate();
    gw.wait_exit(Duration::from_secs(20)).await;
    gw.output.wait_closed(Duration::from_secs(20));
    let logs = gw.output.all();
    assert!(
        logs.contains(ASSIGNMENT_REQUEST),
        "the ids are logged: {logs}"
    );
    assert!(logs.contains("assignmentRequestRemoved"), "{logs}");
    for personal in ACCESS_PACKAGE_PERSONAL {
        assert!(!logs.contains(personal), "{personal} logged: {logs}");
    }
}

/// `denied` and `canceled` (any case) reach Graph at assignmentRequestCreated; at every other
/// stage they are a 400 naming `state`, and nothing is sent.
#[tokio::test]
async fn denied_and_canceled_only_at_assignment_request_created() {
    let (graph, identity) = (Graph::accepting().await, Identity::start().await);
    let gw = gateway(&graph, &identity).await;
    for (n, state) in ["Denied", "canceled"].into_iter().enumerate() {
        let mut request = callout_request(n, "assignmentRequestCreated");
        request["state"] = json!(state);
        request["detail"] = json!("Potential risk user based on the SoD check");
        let (status, _, body) = answer(gw.resume(&request).await).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["state"], state.to_lowercase());
    }
    let sent = resumes(&graph).await;
    assert_eq!(sent[0].1["data"]["state"], "denied");
    assert_eq!(sent[1].1["data"]["state"], "canceled");
    assert_eq!(
        sent[1].1["data"]["customExtensionStageInstanceDetail"],
        "Potential risk user based on the SoD check"
    );

    for (n, stage) in STAGES.iter().enumerate().skip(1) {
        for state in ["denied", "canceled"] {
            let mut request = callout_request(10 + n, stage);
            request["state"] = json!(state);
            let (status, _, problem) = answer(gw.resume(&request).await).await;
            assert_eq!(status, 400, "{stage}: {problem}");
            assert_eq!(
                problem["type"],
                "urn:resume-gateway:problem:invalid-request"
            );
            assert_eq!(problem["field"], "state");
            let detail = problem["detail"].as_str().unwrap();
            assert!(
                detail.contains("assignmentRequestCreated") && detail.contains(stage),
                "{detail}"
            );
        }
    }
    assert_eq!(resumes(&graph).await.len(), 2, "no refused state was sent");
}

/// The explicit form, with the caller's `source` and `detail`; `operationStatus` is refused
/// with what to send instead.
#[tokio::test]
async fn the_explicit_ids_and_what_has_no_meaning_here() {
    let (graph, identity) = (Graph::accepting().await, Identity::start().await);
    let gw = gateway(&graph, &identity).await;
    let request = json!({"assignmentRequestId": ASSIGNMENT_REQUEST.to_uppercase(),
        "customExtensionStageInstanceId": STAGE_INSTANCE, "stage": "AssignmentRequestApproved",
        "detail": "approved by the HR system", "source": "contoso-hr"});
    let (status, _, body) = answer(gw.resume(&request).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stage"], "assignmentRequestApproved");
    let sent = resumes(&graph).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, RESUME_PATH);
    assert_eq!(
        sent[0].1,
        json!({"source": "contoso-hr",
            "type": "microsoft.graph.accessPackageCustomExtensionStage.assignmentRequestApproved",
            "data": {"@odata.type": "microsoft.graph.accessPackageAssignmentRequestCallbackData",
                "stage": "assignmentRequestApproved", "customExtensionStageInstanceId": STAGE_INSTANCE,
                "customExtensionStageInstanceDetail": "approved by the HR system"}})
    );

    let mut with_status = callout_request(1, "assignmentRequestGranted");
    with_status["operationStatus"] = json!("completed");
    let (status, _, problem) = answer(gw.resume(&with_status).await).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "operationStatus");
    assert!(
        problem["detail"].as_str().unwrap().contains("\"state\""),
        "{problem}"
    );
    assert_eq!(resumes(&graph).await.len(), 1);
}

/// Everything under Entitlement Management that is not an assignment request's resume, and
/// every path trick, is refused before any token or Graph call.
#[tokio::test]
async fn foreign_paths_are_refused_with_no_call() {
    let (graph, identity) = (Graph::accepting().await, Identity::start().await);
    let gw = gateway(&graph, &identity).await;
    let good = assignment_request_path(ASSIGNMENT_REQUEST);
    let foreign = [
        good.replace("/resume", "/cancel"),
        good.replace("/resume", "/reprocess"),
        good.replace("/resume", ""),
        good.replace("assignmentRequests", "assignments"),
        good.replace("/resume", "/requestor/resume"),
        good.replace(ASSIGNMENT_REQUEST, "not-a-guid"),
        good.replace("assignmentRequests/", "assignmentRequests/../catalogs/"),
        format!("{good}?$select=id"),
        format!("/identityGovernance/entitlementManagement/catalogs/{ASSIGNMENT_REQUEST}/resume"),
        format!("/v1.0{good}"),
    ];
    for p in &foreign {
        let mut callout = access_package_callout(
            ASSIGNMENT_REQUEST,
            STAGE_INSTANCE,
            "assignmentRequestCreated",
        );
        callout["data"]["callbackUriPath"] = json!(p);
        let (status, _, problem) = answer(gw.resume(&json!({"callout": callout})).await).await;
        assert_eq!(status, 400, "{p}: {problem}");
        assert_eq!(
            problem["type"], "urn:resume-gateway:problem:callback-path-refused",
            "{p}: {problem}"
        );
        // The explicit form with the same path.
        let explicit = json!({"callbackUriPath": p, "customExtensionStageInstanceId": STAGE_INSTANCE, "stage": "assignmentRequestCreated"});
        let (status, _, problem) = answer(gw.resume(&explicit).await).await;
        assert_eq!(status, 400, "{p}: {problem}");
        assert_eq!(problem["field"], "callbackUriPath", "{p}: {problem}");
    }
    assert_eq!(graph.calls().await, 0);
    assert_eq!(identity.calls().await, 0);
}

/// Concurrent duplicates of one callout share one Graph call, a repeat is answered from memory,
/// and another stage instance of the same request is a resume of its own.
#[tokio::test]
async fn duplicates_share_one_call() {
    let graph = Graph::slow(Duration::from_millis(500), "only-once").await;
    let identity = Identity::start().await;
    let gw = Arc::new(gateway(&graph, &identity).await);
    let request = callout_request(1, "assignmentRequestCreated");
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (gw, request) = (gw.clone(), request.clone());
            tokio::spawn(async move { answer(gw.resume(&request).await).await })
        })
        .collect();
    for t in tasks {
        let (status, _, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["graphRequestId"], "only-once");
    }
    assert_eq!(graph.calls().await, 1);

    let (status, _, repeat) = answer(gw.resume(&request).await).await;
    assert_eq!(status, 200, "{repeat}");
    assert_eq!(repeat["alreadyResumed"], true);
    assert_eq!(graph.calls().await, 1);

    // The same stage instance, now denied: a conflict with the resume Graph took, not a call.
    let mut deny = request.clone();
    deny["state"] = json!("denied");
    let (status, _, problem) = answer(gw.resume(&deny).await).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:conflicting-status"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains(&instance(1)),
        "{problem}"
    );
    assert_eq!(graph.calls().await, 1);

    let other = callout_request(2, "assignmentRequestGranted");
    let (status, _, body) = answer(gw.resume(&other).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        graph.calls().await,
        2,
        "another stage instance is its own resume"
    );
}

/// Graph refuses the resume with 409, and the assignment request's callout instance shows the
/// callback was received: answered as resumed, confirmed by the read. A timed-out instance is
/// a 409 that says so.
#[tokio::test]
async fn an_ambiguous_refusal_is_settled_by_the_callout_instance() {
    let graph = Graph::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(409).set_body_json(
            json!({"error": {"code": "Conflict", "message": "The request is not waiting for a callback."}}),
        ))
        .mount(&graph.server)
        .await;
    let instances = json!([
        {"id": instance(1), "status": "callbackReceived", "customExtensionId": "c1"},
        {"id": instance(2), "status": "callbackTimedOut", "customExtensionId": "c1"}
    ]);
    Mock::given(method("GET"))
        .and(path(format!(
            "/v1.0/identityGovernance/entitlementManagement/assignmentRequests/{ASSIGNMENT_REQUEST}"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": ASSIGNMENT_REQUEST, "state": "delivering", "customExtensionCalloutInstances": instances}),
        ))
        .mount(&graph.server)
        .await;
    let identity = Identity::start().await;
    let gw = gateway(&graph, &identity).await;

    let (status, _, body) = answer(
        gw.resume(&callout_request(1, "assignmentRequestApproved"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["confirmedByRead"], true);
    assert_eq!(body["alreadyResumed"], true);

    let (status, _, problem) = answer(
        gw.resume(&callout_request(2, "assignmentRequestApproved"))
            .await,
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:graph-holds-other-status"
    );
    assert_eq!(problem["processingStatus"], "callbackTimedOut");
    assert!(
        problem["detail"].as_str().unwrap().contains(&instance(2)),
        "{problem}"
    );
    let reads: Vec<String> = graph
        .requests()
        .await
        .iter()
        .filter(|r| r.method.as_str() == "GET")
        .map(|r| r.url.query().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(reads.len(), 2);
    assert!(
        reads[0].contains("customExtensionCalloutInstances"),
        "{reads:?}"
    );
}

/// Graph's 403 is answered with Entitlement Management's permission and the catalog role, not
/// Lifecycle Workflows'.
#[tokio::test]
async fn a_forbidden_resume_names_the_entitlement_management_permission() {
    let graph = Graph::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}}),
        ))
        .mount(&graph.server)
        .await;
    let identity = Identity::start().await;
    let gw = gateway(&graph, &identity).await;
    let (status, _, problem) = answer(
        gw.resume(&callout_request(1, "assignmentRequestCreated"))
            .await,
    )
    .await;
    assert_eq!(status, 424, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:graph-forbidden"
    );
    let remedy = problem["remedy"].as_str().unwrap();
    assert!(
        remedy.contains("EntitlementManagement.ReadWrite.All"),
        "{remedy}"
    );
    assert!(
        remedy.contains("Access package assignment manager"),
        "{remedy}"
    );
    assert!(!remedy.contains("LifecycleWorkflows"), "{remedy}");
}

/// In dry-run the answer shows the request that would have been sent, and nothing is.
#[tokio::test]
async fn dry_run_shows_the_access_package_request() {
    let (graph, identity) = (Graph::accepting().await, Identity::start().await);
    let mut gw = Gateway::start(&env_with(&graph, &identity, &[("RESUME_DRY_RUN", "true")])).await;
    let mut request = callout_request(1, "assignmentOneDayBeforeExpiration");
    request["detail"] = json!("Grace's manager confirmed by phone");
    let (status, _, body) = answer(gw.resume(&request).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "dry-run");
    assert!(
        body["request"]["url"]
            .as_str()
            .unwrap()
            .ends_with(RESUME_PATH),
        "{body}"
    );
    assert_eq!(
        body["request"]["body"]["type"],
        "microsoft.graph.accessPackageCustomExtensionStage.assignmentOneDayBeforeExpiration"
    );
    assert_eq!(
        body["request"]["body"]["data"]["customExtensionStageInstanceDetail"],
        "Grace's manager confirmed by phone",
        "the answer shows what would be sent"
    );
    assert_eq!(graph.calls().await, 0);
    gw.terminate();
    gw.wait_exit(Duration::from_secs(20)).await;
    gw.output.wait_closed(Duration::from_secs(20));
    let logs = gw.output.all();
    assert!(logs.contains("dry run"), "{logs}");
    assert!(logs.contains("(34 characters, not logged)"), "{logs}");
    assert!(
        !logs.contains("confirmed by phone"),
        "the detail was logged: {logs}"
    );
}

/// The Logic App action for an access-package extension passes the trigger body through: with
/// the sample callout filled in, the gateway takes it as an Entitlement Management resume; it
/// is the Lifecycle Workflows action but for its body, and the docs show it as it is.
#[test]
fn the_logic_app_action_sample_passes_the_callout_through() {
    use resume_gateway::request::Resume;
    let read =
        |p: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let action = read("samples/logic-app-action-access-package.json");
    let inputs = &action["Resume_through_gateway"]["inputs"];
    assert_eq!(inputs["body"], json!({"callout": "@triggerBody()"}));
    let mut body = inputs["body"].clone();
    body["callout"] = read("samples/access-package-callout.json");
    let Ok(Resume::AccessPackage(request)) = Resume::parse(body.to_string().as_bytes()) else {
        panic!("the gateway does not take {body} as an access-package resume");
    };
    assert_eq!(
        request.target.request.request_id.as_str(),
        ASSIGNMENT_REQUEST
    );
    let mut lifecycle = read("samples/logic-app-action.json");
    lifecycle["Resume_through_gateway"]["inputs"]["body"] = inputs["body"].clone();
    assert_eq!(lifecycle, action, "only the body differs");

    let sample = std::fs::read_to_string("samples/logic-app-action-access-package.json").unwrap();
    let page = common::docs::read(std::path::Path::new("docs/entitlement-management.md"));
    assert!(
        common::docs::blocks(&page).iter().any(|b| b.text == sample),
        "docs/entitlement-management.md must show the sample verbatim"
    );
}
