//! The operator subcommands, each run as a process against the mock Graph and the mock
//! managed-identity endpoint.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

const RUN: &str = "0f7c2a9e-1156-4bd1-a05d-7c4b38a8c91d";
const DONE_RUN: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
const EXTENSION: &str = "ffcc4c85-5a14-448e-a390-77abf2700369";
const OTHER_APP: &str = "542dc01a-0b5d-4edc-b3f9-5cfe6393f557";
const RESULTS: [&str; 3] = [
    "11111111-aaaa-4bbb-8ccc-000000000001",
    "11111111-aaaa-4bbb-8ccc-000000000002",
    "11111111-aaaa-4bbb-8ccc-000000000003",
];

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }

    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `handler <args>` with exactly `env` (plus PATH), off the test's runtime so the mocks
/// keep answering.
async fn handler(env: &[(String, String)], args: &[&str]) -> Ran {
    let env = env.to_vec();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_handler"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("the handler binary runs");
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

fn with(mut env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn assert_private(ran: &Ran, identity: &Identity) {
    let all = ran.all();
    assert!(!all.contains(&identity.token), "the token leaked:\n{all}");
    assert!(
        !all.contains("secret-token-marker"),
        "the token leaked:\n{all}"
    );
    for name in SUBJECT_NAMES {
        assert!(!all.contains(name), "personal data {name} leaked:\n{all}");
    }
}

#[tokio::test]
async fn help_and_version_on_every_command() {
    let v = handler(&[], &["--version"]).await;
    assert_eq!(v.code, 0);
    assert_eq!(
        v.stdout.trim(),
        format!("handler {}", env!("CARGO_PKG_VERSION"))
    );
    for cmd in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["pending", "--help"],
        vec!["resume", "--help"],
        vec!["check", "--help"],
    ] {
        let r = handler(&[], &cmd).await;
        assert_eq!(r.code, 0, "{cmd:?}: {}", r.stderr);
        assert!(r.stdout.contains("Usage: handler"), "{cmd:?}: {}", r.stdout);
    }
    let r = handler(&[], &["pending", "--version"]).await;
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains(env!("CARGO_PKG_VERSION")));
    let r = handler(&[], &["unstick"]).await;
    assert_eq!(r.code, 2, "an unknown subcommand is a usage error");
    let r = handler(&[], &["resume", "--status", "completed"]).await;
    assert_eq!(r.code, 2, "a resume without a target is a usage error");
    assert!(r.stderr.contains("--callback-uri-path"), "{}", r.stderr);
}

/// A task processing result as Graph lists it, subject's personal data included (Graph sends
/// only the id by default; a proxy or a future version might send more).
fn task_result(id: &str, created: &str, status: &str) -> Value {
    json!({
        "id": id, "processingStatus": status, "createdDateTime": created,
        "startedDateTime": created, "completedDateTime": null, "failureReason": null,
        "subject": {"id": "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b", "displayName": SUBJECT_NAMES[0], "userPrincipalName": SUBJECT_NAMES[1]},
        "task": {"id": TASK, "displayName": "Provision the mailbox", "category": "joiner", "isEnabled": true}
    })
}

async fn mount_pending_listing(graph: &Graph) -> String {
    let base = format!("/v1.0/identityGovernance/lifecycleWorkflows/workflows/{WORKFLOW}");
    let results = format!("{base}/runs/{RUN}/taskProcessingResults");
    let link = |token: &str| format!("{}{results}?$skiptoken={token}", graph.server.uri());
    Mock::given(method("GET"))
        .and(path(format!("{base}/runs")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [
            {"id": RUN, "processingStatus": "inProgress", "startedDateTime": "2026-11-28T09:00:00Z"},
            {"id": DONE_RUN, "processingStatus": "completed", "startedDateTime": "2026-11-27T09:00:00Z"}
        ]})))
        .mount(&graph.server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!(
            "{base}/runs/{DONE_RUN}/taskProcessingResults"
        )))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .named("a finished run is not scanned")
        .mount(&graph.server)
        .await;
    // Page 1 carries the filter; pages 2 and 3 are reached through nextLink only.
    Mock::given(method("GET"))
        .and(path(results.clone()))
        .and(query_param("$filter", "processingStatus eq 'inProgress'"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [task_result(RESULTS[0], "2026-11-28T10:00:00Z", "inProgress")],
            "@odata.nextLink": link("p2")
        })))
        .with_priority(3)
        .mount(&graph.server)
        .await;
    // Throttled once in the middle of the listing.
    Mock::given(method("GET"))
        .and(path(results.clone()))
        .and(query_param("$skiptoken", "p2"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(
                    json!({"error": {"code": "TooManyRequests", "message": "Too many requests"}}),
                ),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&graph.server)
        .await;
    Mock::given(method("GET"))
        .and(path(results.clone()))
        .and(query_param("$skiptoken", "p2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [task_result(RESULTS[1], "2026-11-28T08:00:00Z", "inProgress")],
            "@odata.nextLink": link("p3")
        })))
        .with_priority(2)
        .mount(&graph.server)
        .await;
    Mock::given(method("GET"))
        .and(path(results.clone()))
        .and(query_param("$skiptoken", "p3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [
                task_result(RESULTS[2], "2026-11-28T09:00:00Z", "inProgress"),
                task_result("11111111-aaaa-4bbb-8ccc-0000000000ff", "2026-11-28T07:00:00Z", "completed")
            ]
        })))
        .with_priority(2)
        .mount(&graph.server)
        .await;
    results
}

#[tokio::test]
async fn pending_pages_through_three_pages_and_waits_out_throttling() {
    let graph = Graph::start().await;
    let identity = Identity::start_with_roles(&["LifecycleWorkflows.Read.All"]).await;
    let results_path = mount_pending_listing(&graph).await;
    let env = env_for(&graph, &identity);

    let started = Instant::now();
    let ran = handler(
        &env,
        &["pending", "--workflow", &WORKFLOW.to_uppercase(), "--json"],
    )
    .await;
    assert_eq!(ran.code, 0, "{}", ran.all());
    let scanned_finished_run = graph.requests().await.iter().any(|r| {
        r.url
            .path()
            .ends_with(&format!("/runs/{DONE_RUN}/taskProcessingResults"))
    });
    assert!(!scanned_finished_run, "a finished run is not scanned");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    let report = ran.json();
    assert_eq!(report["workflowId"], WORKFLOW);
    assert_eq!(report["runsTotal"], 2);
    assert_eq!(report["runsScanned"], 1);
    let pending = report["pending"].as_array().unwrap();
    // All three pages, the completed item dropped, oldest first.
    let ids: Vec<&str> = pending
        .iter()
        .map(|p| p["taskProcessingResultId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [RESULTS[1], RESULTS[2], RESULTS[0]]);
    for p in pending {
        let r = p["taskProcessingResultId"].as_str().unwrap();
        assert_eq!(p["taskId"], TASK);
        assert_eq!(p["taskName"], "Provision the mailbox");
        assert_eq!(p["subjectId"], "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b");
        assert_eq!(p["runId"], RUN);
        assert_eq!(p["callbackUriPath"], resume_path(WORKFLOW, TASK, r));
        assert!(p["ageSeconds"].as_u64().is_some(), "{p}");
    }
    assert_private(&ran, &identity);

    let requests = graph.requests().await;
    let page2: Vec<_> = requests
        .iter()
        .filter(|r| r.url.path() == results_path && r.url.query().is_some_and(|q| q.contains("p2")))
        .collect();
    assert_eq!(page2.len(), 2, "page 2 was asked again after the 429");
    for r in &requests {
        assert_eq!(
            r.headers.get("authorization").unwrap().to_str().unwrap(),
            format!("Bearer {}", identity.token)
        );
    }
    assert_eq!(identity.calls().await, 1, "one token for the whole listing");

    // Human output: the same tasks, each with the command that resumes it.
    let ran = handler(&env, &["pending", "--workflow", WORKFLOW]).await;
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout
            .contains("3 task(s) waiting, in 1 unfinished run(s) of 2"),
        "{}",
        ran.stdout
    );
    for r in RESULTS {
        assert!(ran.stdout.contains(&format!(
            "handler resume --callback-uri-path {} --status completed|failed",
            resume_path(WORKFLOW, TASK, r)
        )));
    }
    assert_private(&ran, &identity);
}

#[tokio::test]
async fn pending_says_what_permission_is_missing() {
    let graph = Graph::start().await;
    let identity = Identity::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403).insert_header("request-id", "req-runs").set_body_json(
            json!({"error": {"code": "Forbidden", "message": "Insufficient privileges to complete the operation."}}),
        ))
        .mount(&graph.server)
        .await;
    let ran = handler(
        &env_for(&graph, &identity),
        &["pending", "--workflow", WORKFLOW],
    )
    .await;
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("Insufficient privileges"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("remedy: Reading workflow runs needs LifecycleWorkflows.Read.All"),
        "{}",
        ran.stderr
    );
    let ran = handler(
        &env_for(&graph, &identity),
        &["pending", "--workflow", "not-a-guid"],
    )
    .await;
    assert_eq!(ran.code, 2);
    assert!(ran.stderr.contains("--workflow must be a workflow id"));
}

#[tokio::test]
async fn resume_sends_the_gateways_request_and_prints_graphs_request_id() {
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let env = env_for(&graph, &identity);

    let ran = handler(
        &env,
        &[
            "resume",
            "--workflow",
            WORKFLOW,
            "--task",
            TASK,
            "--result",
            RESULT,
            "--status",
            "failed",
            "--reason",
            "no mailbox",
            "--reason",
            "quota",
        ],
    )
    .await;
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout
            .contains(&format!("resumed: task processing result {RESULT}")),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("Graph answered 204; request-id graph-request-0001"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains(
            "status reasons, recorded here only (Graph's resume action takes none): no mailbox; quota"
        ),
        "{}",
        ran.stdout
    );

    // The callout form, from a file, with JSON output.
    let file = std::env::temp_dir().join(format!("callout-{}.json", std::process::id()));
    std::fs::write(&file, callout(WORKFLOW, TASK, RESULT).to_string()).unwrap();
    let ran = handler(
        &env,
        &[
            "resume",
            "--callout",
            file.to_str().unwrap(),
            "--status",
            "completed",
            "--json",
        ],
    )
    .await;
    std::fs::remove_file(&file).ok();
    assert_eq!(ran.code, 0, "{}", ran.all());
    let out = ran.json();
    assert_eq!(out["outcome"], "resumed");
    assert_eq!(out["workflowId"], WORKFLOW);
    assert_eq!(out["taskId"], TASK);
    assert_eq!(out["taskProcessingResultId"], RESULT);
    assert_eq!(out["operationStatus"], "completed");
    assert_eq!(out["graphStatus"], 204);
    assert_eq!(out["graphRequestId"], "graph-request-0001");
    assert_eq!(out["attempts"], 1);
    assert_private(&ran, &identity);

    let sent = graph.requests().await;
    assert_eq!(sent.len(), 2);
    for r in &sent {
        assert_eq!(
            r.url.path(),
            format!("/v1.0{}", resume_path(WORKFLOW, TASK, RESULT))
        );
    }
    let bodies: Vec<Value> = sent
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        bodies[0],
        json!({"data": {"operationStatus": "failed"}, "source": "resume-gateway", "type": "lifecycleEvent"})
    );
    assert_eq!(bodies[1]["data"], json!({"operationStatus": "completed"}));
    assert_eq!(
        out["clientRequestId"],
        sent[1]
            .headers
            .get("client-request-id")
            .unwrap()
            .to_str()
            .unwrap()
    );
}

#[tokio::test]
async fn resume_forbidden_exits_non_zero_with_the_remedy() {
    let graph = Graph::start().await;
    let identity = Identity::start().await;
    Mock::given(method("POST"))
        .and(header("authorization", format!("Bearer {}", identity.token).as_str()))
        .respond_with(ResponseTemplate::new(403).insert_header("request-id", "req-403").set_body_json(json!({
            "error": {"code": "Forbidden", "message": "Insufficient privileges to complete the operation."}
        })))
        .mount(&graph.server)
        .await;
    let env = env_for(&graph, &identity);
    let path = resume_path(WORKFLOW, TASK, RESULT);

    let ran = handler(
        &env,
        &[
            "resume",
            "--callback-uri-path",
            &path,
            "--status",
            "completed",
        ],
    )
    .await;
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    assert!(
        ran.stderr.contains("not resumed (graph-forbidden)"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("Insufficient privileges"),
        "{}",
        ran.stderr
    );
    let remedy = ran
        .stderr
        .lines()
        .find(|l| l.starts_with("remedy: "))
        .expect("a remedy line");
    assert!(remedy.contains(GATEWAY_APP_ID), "{remedy}");
    assert!(remedy.contains("authorizedApps"), "{remedy}");
    assert!(
        remedy.contains("LifecycleWorkflows.ReadWrite.All"),
        "{remedy}"
    );
    assert!(
        ran.stderr.contains("Graph request-id: req-403"),
        "{}",
        ran.stderr
    );

    let ran = handler(
        &env,
        &[
            "resume",
            "--callback-uri-path",
            &path,
            "--status",
            "completed",
            "--json",
        ],
    )
    .await;
    assert_eq!(ran.code, 1);
    let problem = ran.json();
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:graph-forbidden"
    );
    assert_eq!(problem["status"], 424);
    assert_eq!(problem["graph"]["status"], 403);
    assert_eq!(problem["graph"]["requestId"], "req-403");
    assert_eq!(problem["attempts"], 1, "a 403 is not retried");
    assert!(problem["remedy"].as_str().unwrap().contains(GATEWAY_APP_ID));
    assert_private(&ran, &identity);
    assert_eq!(graph.calls().await, 2);
}

#[tokio::test]
async fn resume_refuses_bad_targets_and_dry_runs_without_calling_anything() {
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let env = env_for(&graph, &identity);

    let ran = handler(
        &env,
        &[
            "resume",
            "--callback-uri-path",
            "/users/someone",
            "--status",
            "completed",
            "--json",
        ],
    )
    .await;
    assert_eq!(ran.code, 2);
    assert_eq!(
        ran.json()["type"],
        "urn:resume-gateway:problem:callback-path-refused"
    );
    let ran = handler(
        &env,
        &[
            "resume",
            "--workflow",
            "nope",
            "--task",
            TASK,
            "--result",
            RESULT,
            "--status",
            "failed",
        ],
    )
    .await;
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr.contains("`workflowId` must be a GUID"),
        "{}",
        ran.stderr
    );
    let ran = handler(
        &env,
        &[
            "resume",
            "--callout",
            "/nonexistent/callout.json",
            "--status",
            "failed",
        ],
    )
    .await;
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr.contains("cannot read the callout"),
        "{}",
        ran.stderr
    );

    let ran = handler(
        &env,
        &[
            "resume",
            "--workflow",
            WORKFLOW,
            "--task",
            TASK,
            "--result",
            RESULT,
            "--status",
            "completed",
            "--dry-run",
            "--json",
        ],
    )
    .await;
    assert_eq!(ran.code, 0, "{}", ran.all());
    let out = ran.json();
    assert_eq!(out["outcome"], "dry-run");
    assert_eq!(out["request"]["method"], "POST");
    assert_eq!(
        out["request"]["url"],
        format!(
            "{}/v1.0{}",
            graph.server.uri(),
            resume_path(WORKFLOW, TASK, RESULT)
        )
    );
    assert_eq!(graph.calls().await, 0);
    assert_eq!(identity.calls().await, 0);

    let ran = handler(
        &with(env, &[("GRAPH_CLOUD", "mars")]),
        &[
            "resume",
            "--workflow",
            WORKFLOW,
            "--task",
            TASK,
            "--result",
            RESULT,
            "--status",
            "completed",
        ],
    )
    .await;
    assert_eq!(ran.code, 2);
    assert_eq!(
        ran.stderr.trim(),
        "resume-gateway: invalid setting GRAPH_CLOUD=\"mars\": global, usgov, usgovdod, china"
    );
}

async fn mount_extension(graph: &Graph, authorized: &[&str]) {
    let apps: Vec<Value> = authorized
        .iter()
        .map(|a| json!({"appId": a, "id": "0000"}))
        .collect();
    Mock::given(method("GET"))
        .and(path(format!("/v1.0/identityGovernance/lifecycleWorkflows/customTaskExtensions/{EXTENSION}")))
        .and(query_param(
            "$expand",
            "callbackConfiguration/microsoft.graph.identityGovernance.customTaskExtensionCallbackConfiguration/authorizedApps",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": EXTENSION, "displayName": "Provision mailbox",
            "authenticationConfiguration": {"@odata.type": "#microsoft.graph.azureAdTokenAuthentication", "resourceId": OTHER_APP},
            "callbackConfiguration": {
                "@odata.type": "#microsoft.graph.identityGovernance.customTaskExtensionCallbackConfiguration",
                "timeoutDuration": "PT1H", "authorizedApps": apps
            }
        })))
        .mount(&graph.server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/v1.0/identityGovernance/lifecycleWorkflows/workflows",
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("request-id", "req-probe")
                .set_body_json(json!({"value": []})),
        )
        .mount(&graph.server)
        .await;
}

fn check_named<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

#[tokio::test]
async fn check_passes_with_the_role_or_an_authorized_apps_entry() {
    let graph = Graph::start().await;
    mount_extension(&graph, &[OTHER_APP, GATEWAY_APP_ID]).await;

    let identity = Identity::start_with_roles(&["LifecycleWorkflows.ReadWrite.All"]).await;
    let ran = handler(
        &env_for(&graph, &identity),
        &["check", "--extension", EXTENSION, "--json"],
    )
    .await;
    assert_eq!(ran.code, 0, "{}", ran.all());
    let report = ran.json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["credential"], "managed identity");
    assert_eq!(report["identity"]["appId"], GATEWAY_APP_ID);
    assert_eq!(report["identity"]["objectId"], GATEWAY_OBJECT_ID);
    assert_eq!(
        report["identity"]["tenantId"],
        "72f988bf-86f1-41af-91ab-2d7cd011db47"
    );
    for name in [
        "settings",
        "token",
        "identity",
        "permission",
        "authorizedApps",
        "graph",
    ] {
        assert_eq!(
            check_named(&report, name)["status"],
            "pass",
            "{name}: {report}"
        );
    }
    assert!(
        check_named(&report, "graph")["detail"]
            .as_str()
            .unwrap()
            .contains("req-probe")
    );
    assert_private(&ran, &identity);

    // Least privilege: no role, but listed in authorizedApps.
    let identity = Identity::start().await;
    let ran = handler(
        &env_for(&graph, &identity),
        &["check", "--extension", EXTENSION],
    )
    .await;
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout
            .contains("not needed: the identity is in the extension's authorizedApps"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("All checks passed."), "{}", ran.stdout);
}

#[tokio::test]
async fn check_fails_without_the_role() {
    let graph = Graph::start().await;
    mount_extension(&graph, &[]).await;
    let identity = Identity::start_with_roles(&["User.Read.All"]).await;
    let ran = handler(&env_for(&graph, &identity), &["check", "--json"]).await;
    assert_eq!(ran.code, 1, "{}", ran.all());
    let report = ran.json();
    assert_eq!(report["ok"], false);
    let permission = check_named(&report, "permission");
    assert_eq!(permission["status"], "fail");
    assert!(
        permission["detail"]
            .as_str()
            .unwrap()
            .contains("carries User.Read.All but not LifecycleWorkflows.ReadWrite.All")
    );
    let remedy = permission["remedy"].as_str().unwrap();
    assert!(
        remedy.contains(GATEWAY_APP_ID) && remedy.contains("authorizedApps"),
        "{remedy}"
    );
    assert_eq!(check_named(&report, "graph")["status"], "pass");

    let ran = handler(&env_for(&graph, &identity), &["check"]).await;
    assert_eq!(ran.code, 1);
    assert!(ran.stdout.contains("[FAIL] permission"), "{}", ran.stdout);
    assert!(ran.stdout.contains("Some checks failed"), "{}", ran.stdout);
}

#[tokio::test]
async fn check_fails_when_not_in_authorized_apps() {
    let graph = Graph::start().await;
    mount_extension(&graph, &[OTHER_APP]).await;
    let identity = Identity::start().await;
    let ran = handler(
        &env_for(&graph, &identity),
        &["check", "--extension", EXTENSION, "--json"],
    )
    .await;
    assert_eq!(ran.code, 1, "{}", ran.all());
    let report = ran.json();
    let listed = check_named(&report, "authorizedApps");
    assert_eq!(listed["status"], "fail");
    assert!(
        listed["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("which lists {OTHER_APP}")),
        "{listed}"
    );
    assert!(
        listed["remedy"]
            .as_str()
            .unwrap()
            .contains(&format!("Add {GATEWAY_APP_ID}")),
        "{listed}"
    );
    assert_eq!(check_named(&report, "permission")["status"], "fail");
}

#[tokio::test]
async fn check_fails_on_a_bad_setting_without_calling_anything() {
    let graph = Graph::start().await;
    let identity = Identity::start().await;
    let env = with(env_for(&graph, &identity), &[("GRAPH_API_VERSION", "v2")]);
    let ran = handler(&env, &["check", "--json"]).await;
    assert_eq!(ran.code, 1, "{}", ran.all());
    let report = ran.json();
    let settings = check_named(&report, "settings");
    assert_eq!(settings["status"], "fail");
    assert_eq!(
        settings["detail"],
        "invalid setting GRAPH_API_VERSION=\"v2\": v1.0 or beta"
    );
    assert!(
        settings["remedy"]
            .as_str()
            .unwrap()
            .starts_with("Set GRAPH_API_VERSION")
    );
    assert_eq!(check_named(&report, "token")["status"], "skip");
    assert_eq!(identity.calls().await, 0);
    assert_eq!(graph.calls().await, 0);

    let env = with(env_for(&graph, &identity), &[("RUST_LOG", "info,[[")]);
    let ran = handler(&env, &["check", "--json"]).await;
    assert_eq!(ran.code, 1);
    let settings = check_named(&ran.json(), "settings").clone();
    assert_eq!(settings["status"], "fail");
    assert!(
        settings["detail"]
            .as_str()
            .unwrap()
            .starts_with("invalid setting RUST_LOG=")
    );
}

#[tokio::test]
async fn serve_is_the_default_and_keeps_its_exit_codes() {
    for args in [vec![], vec!["serve"]] {
        let ran = handler(&[("GRAPH_CLOUD".into(), "mars".into())], &args).await;
        assert_eq!(ran.code, 2, "{args:?}");
        assert_eq!(
            ran.stderr.trim(),
            "resume-gateway: invalid setting GRAPH_CLOUD=\"mars\": global, usgov, usgovdod, china"
        );
        assert!(ran.stdout.is_empty());
    }
}

#[tokio::test]
async fn check_fails_when_the_identity_endpoint_is_unreachable() {
    let graph = Graph::start().await;
    let env = vec![
        ("GRAPH_ENDPOINT".to_owned(), graph.server.uri()),
        (
            "IDENTITY_ENDPOINT".to_owned(),
            "http://127.0.0.1:9/msi/token".to_owned(),
        ),
        ("IDENTITY_HEADER".to_owned(), IDENTITY_SECRET.to_owned()),
    ];
    let ran = handler(&env, &["check", "--json"]).await;
    assert_eq!(ran.code, 1, "{}", ran.all());
    let report = ran.json();
    let token = check_named(&report, "token");
    assert_eq!(token["status"], "fail");
    assert!(
        token["detail"]
            .as_str()
            .unwrap()
            .contains("managed identity"),
        "{token}"
    );
    assert!(
        token["remedy"]
            .as_str()
            .unwrap()
            .contains("system-assigned managed identity"),
        "{token}"
    );
    assert_eq!(check_named(&report, "permission")["status"], "skip");
    // Graph is still probed, without a token: any answer proves it is reachable.
    assert_eq!(check_named(&report, "graph")["status"], "pass");
    assert!(!ran.all().contains(IDENTITY_SECRET));
}
