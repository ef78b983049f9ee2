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

/// Runs `handler <args>` with exactly `env` (plus PATH).
async fn handler(env: &[(String, String)], args: &[&str]) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_handler"));
    command.args(args);
    run(command, env).await
}

/// Runs `line` in a POSIX shell in `dir`, with exactly `env` (plus PATH).
async fn shell(dir: &std::path::Path, env: &[(String, String)], line: &str) -> Ran {
    let mut command = Command::new("sh");
    command.args(["-c", line]).current_dir(dir);
    run(command, env).await
}

/// Runs `command` with exactly `env` (plus PATH), off the test's runtime so the mocks keep
/// answering.
async fn run(mut command: Command, env: &[(String, String)]) -> Ran {
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.to_vec())
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || {
        let out = command.output().expect("the command runs");
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
        for status in ["completed", "failed"] {
            assert!(
                ran.stdout.contains(&format!(
                    "{} resume --callback-uri-path {} --status {status}\n",
                    env!("CARGO_BIN_EXE_handler"),
                    resume_path(WORKFLOW, TASK, r)
                )),
                "{}",
                ran.stdout
            );
        }
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
    assert!(
        ran.stderr
            .contains("invalid value 'not-a-guid' for '--workflow <ID>': not a GUID"),
        "{}",
        ran.stderr
    );
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
        ran.stderr
            .contains("invalid value 'nope' for '--workflow <ID>': not a GUID"),
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
    assert_eq!(ran.code, 2, "a bad setting is exit code 2: {}", ran.all());
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
    assert_eq!(ran.code, 2);
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

#[tokio::test]
async fn resume_without_az_fails_at_once_and_says_why() {
    let graph = Graph::accepting().await;
    let empty = std::env::temp_dir().join(format!("resume-gateway-nopath-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let env = vec![
        ("GRAPH_ENDPOINT".to_string(), graph.server.uri()),
        ("RESUME_CREDENTIAL".to_string(), "developer".to_string()),
        ("PATH".to_string(), empty.display().to_string()),
    ];
    let path = resume_path(WORKFLOW, TASK, RESULT);
    let args = resume_by_path(&path);
    let started = Instant::now();
    let ran = handler(&env, &args).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(
        ran.stderr.contains("not resumed (identity-unavailable)"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("remedy: az not found on PATH: install the Azure CLI"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("retrying"), "{}", ran.stderr);
    assert_eq!(graph.calls().await, 0);
}

#[tokio::test]
async fn resume_prints_a_progress_line_per_retry_wait() {
    let graph = Graph::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "1"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&graph.server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204).insert_header("request-id", "third-time"))
        .with_priority(2)
        .mount(&graph.server)
        .await;
    let identity = Identity::start().await;
    let path = resume_path(WORKFLOW, TASK, RESULT);
    let args = resume_by_path(&path);
    let ran = handler(&env_for(&graph, &identity), &args).await;
    assert_eq!(ran.code, 0, "{}", ran.all());
    let progress: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.contains("retrying in 1.0 s"))
        .collect();
    assert_eq!(progress.len(), 2, "{}", ran.stderr);
    assert!(
        progress[0].contains("attempt 1 failed (Graph answered 503"),
        "{}",
        progress[0]
    );
    assert!(progress[1].contains("attempt 2 failed"), "{}", progress[1]);
    assert!(
        ran.stdout.contains("request-id third-time"),
        "{}",
        ran.stdout
    );
}

/// An identity endpoint that refuses every token request (an identity not assigned).
async fn refusing_identity() -> Identity {
    let identity = Identity::bare().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_string("Identity not found"))
        .mount(&identity.server)
        .await;
    identity
}

/// `--json` on a failure: exactly one JSON document on stdout (the whole of stdout parses
/// as one value), nothing multi-line on stderr, and the exit code of docs/operations.md's table.
fn assert_one_problem(ran: &Ran, code: i32, slug: &str) -> Value {
    assert_eq!(ran.code, code, "{slug}: {}", ran.all());
    let doc = ran.json();
    assert_eq!(
        doc["type"],
        format!("urn:resume-gateway:problem:{slug}"),
        "{doc}"
    );
    assert!(!doc["detail"].as_str().unwrap().contains('\n'), "{doc}");
    assert!(doc["remedy"].is_string(), "{doc}");
    doc
}

/// A case name, the environment, the arguments, the exit code, the problem's slug, and the
/// argument the problem must name.
type FailureCase<'a> = (
    &'a str,
    Vec<(String, String)>,
    Vec<String>,
    i32,
    &'a str,
    Option<&'a str>,
);

#[tokio::test]
async fn json_is_one_document_on_every_failure_path() {
    let graph = Graph::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"error": {"code": "Forbidden", "message": "Insufficient privileges to complete the operation."}}),
        ))
        .mount(&graph.server)
        .await;
    let identity = Identity::start().await;
    let refusing = refusing_identity().await;
    let good = env_for(&graph, &identity);
    let bad_setting = with(good.clone(), &[("GRAPH_API_VERSION", "v2")]);
    let no_token = env_for(&graph, &refusing);
    let path = resume_path(WORKFLOW, TASK, RESULT);
    let resume = |extra: &[&str]| -> Vec<String> {
        ["resume", "--json", "--status", "completed"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let by_path = resume(&["--callback-uri-path", &path]);
    let cases: Vec<FailureCase> = vec![
        (
            "pending: bad setting",
            bad_setting.clone(),
            vec![
                "pending".into(),
                "--json".into(),
                "--workflow".into(),
                WORKFLOW.into(),
            ],
            2,
            "invalid-setting",
            None,
        ),
        (
            "pending: bad id",
            good.clone(),
            vec![
                "pending".into(),
                "--json".into(),
                "--workflow".into(),
                "not-a-guid".into(),
            ],
            2,
            "invalid-argument",
            Some("--workflow"),
        ),
        (
            "pending: no workflow",
            good.clone(),
            vec!["pending".into(), "--json".into()],
            2,
            "invalid-argument",
            None,
        ),
        (
            "pending: no token",
            no_token.clone(),
            vec![
                "pending".into(),
                "--json".into(),
                "--workflow".into(),
                WORKFLOW.into(),
            ],
            1,
            "identity-unavailable",
            None,
        ),
        (
            "pending: Graph refuses",
            good.clone(),
            vec![
                "pending".into(),
                "--json".into(),
                "--workflow".into(),
                WORKFLOW.into(),
            ],
            1,
            "graph-forbidden",
            None,
        ),
        (
            "resume: bad setting",
            bad_setting.clone(),
            by_path.clone(),
            2,
            "invalid-setting",
            None,
        ),
        (
            "resume: bad id",
            good.clone(),
            resume(&["--workflow", "nope", "--task", TASK, "--result", RESULT]),
            2,
            "invalid-argument",
            Some("--workflow"),
        ),
        (
            "resume: bad status",
            good.clone(),
            vec![
                "resume".into(),
                "--json".into(),
                "--status".into(),
                "done".into(),
                "--callback-uri-path".into(),
                path.clone(),
            ],
            2,
            "invalid-argument",
            Some("--status"),
        ),
        (
            "resume: no callout file",
            good.clone(),
            resume(&["--callout", "/nonexistent/callout.json"]),
            2,
            "invalid-argument",
            Some("--callout"),
        ),
        (
            "resume: bad path",
            good.clone(),
            resume(&["--callback-uri-path", "/users"]),
            2,
            "callback-path-refused",
            None,
        ),
        (
            "resume: no token",
            no_token.clone(),
            by_path.clone(),
            1,
            "identity-unavailable",
            None,
        ),
        (
            "check: bad id",
            good.clone(),
            vec![
                "check".into(),
                "--json".into(),
                "--extension".into(),
                "not-a-guid".into(),
            ],
            2,
            "invalid-argument",
            Some("--extension"),
        ),
    ];
    for (case, env, args, code, slug, argument) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ran = handler(&env, &args).await;
        let doc = assert_one_problem(&ran, code, slug);
        if let Some(argument) = argument {
            assert_eq!(doc["argument"], argument, "{case}: {doc}");
        }
        // Without --json: one line saying what, and the remedy on the next.
        let plain: Vec<&str> = args.into_iter().filter(|a| *a != "--json").collect();
        let ran = handler(&env, &plain).await;
        assert_eq!(ran.code, code, "{case}: {}", ran.all());
        assert!(ran.stdout.is_empty(), "{case}: {}", ran.stdout);
        // The error and its remedy, each on one line, and nothing else.
        let lines: Vec<&str> = ran.stderr.lines().collect();
        assert!(lines.len() <= 2, "{case}: {}", ran.stderr);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("resume-gateway") || l.starts_with("not resumed (")),
            "{case}: {}",
            ran.stderr
        );
        if slug != "invalid-setting" {
            assert!(
                lines.iter().any(|l| l.starts_with("remedy: ")),
                "{case}: {}",
                ran.stderr
            );
        }
    }
    // check answers with its checklist, one document, whatever failed.
    for (env, code) in [(bad_setting, 2), (no_token, 1)] {
        let ran = handler(&env, &["check", "--json"]).await;
        assert_eq!(ran.code, code, "{}", ran.all());
        assert_eq!(ran.json()["ok"], false);
    }
}

#[tokio::test]
async fn status_is_taken_in_any_case() {
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let path = resume_path(WORKFLOW, TASK, RESULT);
    for status in ["Completed", "FAILED", "completed"] {
        let ran = handler(
            &env_for(&graph, &identity),
            &[
                "resume",
                "--callback-uri-path",
                &path,
                "--status",
                status,
                "--dry-run",
                "--json",
            ],
        )
        .await;
        assert_eq!(ran.code, 0, "{status}: {}", ran.all());
        assert_eq!(
            ran.json()["operationStatus"],
            status.to_ascii_lowercase(),
            "{status}"
        );
    }
}

const OPERATOR_CLIENT: &str = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b";

/// A stand-in Entra ID for device-code sign-in (v2.0 endpoints under `organizations`): the
/// code, then one `authorization_pending` before the token, as a person takes a moment.
async fn authority(token: &str) -> Server {
    authority_pending(token, 1).await
}

/// [`authority`] with `pending` answers of `authorization_pending` before the token.
async fn authority_pending(token: &str, pending: u64) -> Server {
    use wiremock::matchers::body_string_contains;
    let server = std::mem::ManuallyDrop::new(wiremock::MockServer::start().await);
    Mock::given(method("POST"))
        .and(path("/organizations/oauth2/v2.0/devicecode"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "device_code": "device-code-1", "user_code": "ABCD-EFGH",
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": 900, "interval": 1,
            "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD-EFGH to authenticate."
        })))
        .mount(&server)
        .await;
    let token_call = || {
        Mock::given(method("POST"))
            .and(path("/organizations/oauth2/v2.0/token"))
            .and(body_string_contains("device_code=device-code-1"))
    };
    token_call()
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "authorization_pending",
            "error_description": "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending."
        })))
        .up_to_n_times(pending)
        .with_priority(1)
        .mount(&server)
        .await;
    token_call()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600,
            "scope": "https://graph.microsoft.com/LifecycleWorkflows.ReadWrite.All",
            "access_token": token
        })))
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

/// What the stand-in Entra ID was sent, as form bodies.
async fn authority_calls(server: &Server) -> Vec<(String, String)> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let body = url::form_urlencoded::parse(&r.body)
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&");
            (r.url.path().to_owned(), body)
        })
        .collect()
}

#[tokio::test]
async fn device_code_sign_in_prompts_on_stderr_and_calls_graph_as_the_person() {
    let token = gateway_token(&[], "secret-token-marker-person");
    let entra = authority(&token).await;
    let graph = Graph::start().await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/v1.0/identityGovernance/lifecycleWorkflows/workflows/{WORKFLOW}/runs"
        )))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": []})))
        .mount(&graph.server)
        .await;
    let env = vec![
        ("GRAPH_ENDPOINT".to_string(), graph.server.uri()),
        ("AZURE_AUTHORITY_HOST".to_string(), entra.uri()),
    ];
    let ran = handler(
        &env,
        &[
            "pending",
            "--workflow",
            WORKFLOW,
            "--client-id",
            OPERATOR_CLIENT,
            "--json",
        ],
    )
    .await;
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert_eq!(ran.json()["runsTotal"], 0);
    assert!(
        ran.stderr.contains(
            "to sign in, open https://microsoft.com/devicelogin and enter the code ABCD-EFGH"
        ),
        "{}",
        ran.stderr
    );
    assert!(
        !ran.all().contains(&token),
        "the token leaked:\n{}",
        ran.all()
    );
    let calls = authority_calls(&entra).await;
    assert_eq!(calls.len(), 3, "code, pending, token: {calls:?}");
    assert_eq!(calls[0].0, "/organizations/oauth2/v2.0/devicecode");
    assert!(
        calls[0].1.contains(&format!("client_id={OPERATOR_CLIENT}")),
        "{calls:?}"
    );
    assert!(
        calls[0]
            .1
            .contains("scope=https://graph.microsoft.com/LifecycleWorkflows.Read.All"),
        "a read asks for Read.All: {calls:?}"
    );
    for (_, body) in &calls[1..] {
        assert!(
            body.contains("grant_type=urn:ietf:params:oauth:grant-type:device_code"),
            "{body}"
        );
        assert!(
            body.contains(&format!("client_id={OPERATOR_CLIENT}")),
            "{body}"
        );
        assert!(!body.contains("client_secret"), "a public client: {body}");
    }
    assert_eq!(graph.calls().await, 1);

    // check names what the person's token was asked for.
    let ran = handler(&env, &["check", "--client-id", OPERATOR_CLIENT, "--json"]).await;
    let report = ran.json();
    let token_check = check_named(&report, "token");
    assert_eq!(token_check["status"], "pass", "{report}");
    assert_eq!(
        token_check["detail"],
        "got a Graph token for https://graph.microsoft.com/LifecycleWorkflows.Read.All with the device-code sign-in"
    );
}

/// A custom task extension as Graph returns it with authorizedApps expanded.
fn extension_with(apps: &[(&str, &str)], timeout: Option<&str>) -> Value {
    let apps: Vec<Value> = apps
        .iter()
        .map(|(id, app_id)| json!({"id": id, "appId": app_id, "displayName": "an app"}))
        .collect();
    let mut callback = json!({
        "@odata.type": "#microsoft.graph.identityGovernance.customTaskExtensionCallbackConfiguration",
        "authorizedApps": apps
    });
    if let Some(t) = timeout {
        callback["timeoutDuration"] = json!(t);
    }
    json!({"id": EXTENSION, "displayName": "Provision the mailbox", "callbackConfiguration": callback})
}

async fn graph_with_extension(extension: Value) -> Graph {
    let graph = Graph::start().await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/v1.0/identityGovernance/lifecycleWorkflows/customTaskExtensions/{EXTENSION}"
        )))
        .and(query_param(
            "$expand",
            "callbackConfiguration/microsoft.graph.identityGovernance.customTaskExtensionCallbackConfiguration/authorizedApps",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(extension))
        .mount(&graph.server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!(
            "/v1.0/identityGovernance/lifecycleWorkflows/customTaskExtensions/{EXTENSION}"
        )))
        .respond_with(ResponseTemplate::new(204).insert_header("request-id", "req-patch"))
        .mount(&graph.server)
        .await;
    graph
}

fn patches(requests: &[wiremock::Request]) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r.method.as_str() == "PATCH")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn grant_adds_the_app_once_with_one_identifier_per_app() {
    let token = gateway_token(&[], "secret-token-marker-person");
    let entra = authority(&token).await;
    let graph = graph_with_extension(extension_with(
        &[("0b1c2d3e-0000-4000-8000-00000000000a", OTHER_APP)],
        Some("PT30M"),
    ))
    .await;
    let env = vec![
        ("GRAPH_ENDPOINT".to_string(), graph.server.uri()),
        ("AZURE_AUTHORITY_HOST".to_string(), entra.uri()),
        ("RESUME_CREDENTIAL".to_string(), "device-code".to_string()),
    ];
    let args = ["grant", "--extension", EXTENSION, "--app", GATEWAY_APP_ID];

    let dry = handler(&env, &[&args[..], &["--dry-run", "--json"]].concat()).await;
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert_eq!(dry.json()["outcome"], "dry-run");
    assert!(
        patches(&graph.requests().await).is_empty(),
        "a dry run sends nothing"
    );

    let ran = handler(&env, &[&args[..], &["--json"]].concat()).await;
    assert_eq!(ran.code, 0, "{}", ran.all());
    let out = ran.json();
    assert_eq!(out["outcome"], "granted");
    assert_eq!(out["graphRequestId"], "req-patch");
    let sent = patches(&graph.requests().await);
    let expected = json!({"callbackConfiguration": {
        "@odata.type": "#microsoft.graph.identityGovernance.customTaskExtensionCallbackConfiguration",
        "timeoutDuration": "PT30M",
        "authorizedApps": [{"id": OTHER_APP}, {"id": GATEWAY_APP_ID}]
    }});
    assert_eq!(sent, vec![expected.clone()]);
    assert_eq!(
        dry.json()["request"],
        expected,
        "the dry run shows what is sent"
    );
    assert!(!ran.all().contains(&token));
    let scopes = authority_calls(&entra).await;
    assert!(
        scopes[0]
            .1
            .contains("scope=https://graph.microsoft.com/LifecycleWorkflows.ReadWrite.All"),
        "a write asks for ReadWrite.All: {scopes:?}"
    );

    // Listed already (here by appId in another case): read, say so, send nothing.
    let listed = graph_with_extension(extension_with(
        &[(
            "0b1c2d3e-0000-4000-8000-00000000000b",
            &GATEWAY_APP_ID.to_uppercase(),
        )],
        Some("PT30M"),
    ))
    .await;
    let env = with(
        env[1..].to_vec(),
        &[("GRAPH_ENDPOINT", &listed.server.uri())],
    );
    let again = handler(&env, &args).await;
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(again.stdout.contains("already granted"), "{}", again.stdout);
    assert!(patches(&listed.requests().await).is_empty());
}

#[tokio::test]
async fn grant_failures_say_what_to_fix() {
    let token = gateway_token(&[], "secret-token-marker-person");
    let entra = authority(&token).await;
    let env_for = |graph: &Graph| {
        vec![
            ("GRAPH_ENDPOINT".to_string(), graph.server.uri()),
            ("AZURE_AUTHORITY_HOST".to_string(), entra.uri()),
            ("RESUME_CREDENTIAL".to_string(), "device-code".to_string()),
        ]
    };
    let args = [
        "grant",
        "--json",
        "--extension",
        EXTENSION,
        "--app",
        GATEWAY_APP_ID,
    ];

    let forbidden = Graph::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"error": {"code": "Forbidden", "message": "Insufficient privileges to complete the operation."}}),
        ))
        .mount(&forbidden.server)
        .await;
    let ran = handler(&env_for(&forbidden), &args).await;
    let doc = assert_one_problem(&ran, 1, "graph-forbidden");
    let remedy = doc["remedy"].as_str().unwrap();
    for needed in [
        "Lifecycle Workflows Administrator",
        "Logic App Contributor",
        "Contributor or Owner",
    ] {
        assert!(remedy.contains(needed), "{remedy}");
    }

    let no_callback = graph_with_extension(extension_with(&[], None)).await;
    let ran = handler(&env_for(&no_callback), &args).await;
    let doc = assert_one_problem(&ran, 2, "invalid-argument");
    assert_eq!(doc["argument"], "--extension");
    assert!(patches(&no_callback.requests().await).is_empty());

    let ran = handler(
        &env_for(&no_callback),
        &[
            "grant",
            "--json",
            "--extension",
            EXTENSION,
            "--app",
            "gateway",
        ],
    )
    .await;
    assert_eq!(
        assert_one_problem(&ran, 2, "invalid-argument")["argument"],
        "--app"
    );

    // Entra ID refuses the client: answered at once, not retried for the deadline.
    let refusing = std::mem::ManuallyDrop::new(wiremock::MockServer::start().await);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "unauthorized_client",
            "error_description": "AADSTS700016: Application with identifier 'x' was not found in the directory."
        })))
        .mount(&refusing)
        .await;
    let started = Instant::now();
    let env = with(
        env_for(&no_callback),
        &[("AZURE_AUTHORITY_HOST", &refusing.uri())],
    );
    let ran = handler(&env, &args).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let doc = assert_one_problem(&ran, 1, "identity-unavailable");
    assert_eq!(doc["cause"], "refused", "{doc}");
    assert!(
        doc["detail"].as_str().unwrap().contains("AADSTS700016"),
        "{doc}"
    );
    assert_eq!(refusing.received_requests().await.unwrap().len(), 1);
}

/// `handler resume` of `path` as completed.
fn resume_by_path(path: &str) -> [&str; 5] {
    [
        "resume",
        "--callback-uri-path",
        path,
        "--status",
        "completed",
    ]
}

/// Entering a code takes a person longer than a request's deadline: the sign-in comes first,
/// and the deadline bounds only the resume.
#[tokio::test]
async fn resume_signs_in_before_its_deadline_starts() {
    let token = gateway_token(&[], "secret-token-marker-person");
    let entra = authority_pending(&token, 2).await;
    let graph = Graph::accepting().await;
    let env = vec![
        ("GRAPH_ENDPOINT".to_string(), graph.server.uri()),
        ("AZURE_AUTHORITY_HOST".to_string(), entra.uri()),
        ("RESUME_CREDENTIAL".to_string(), "device-code".to_string()),
        ("RESUME_DEADLINE_SECONDS".to_string(), "1".to_string()),
    ];
    let path = resume_path(WORKFLOW, TASK, RESULT);
    let started = Instant::now();
    let ran = handler(&env, &resume_by_path(&path)).await;
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "two polls a second apart"
    );
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(ran.stdout.starts_with("resumed:"), "{}", ran.stdout);
    assert_eq!(graph.calls().await, 1);
    assert!(!ran.all().contains(&token));
}

#[tokio::test]
async fn check_says_whether_extension_scope_can_work() {
    let graph = Graph::start().await;
    mount_extension(&graph, &[GATEWAY_APP_ID]).await;
    let listing = |status| {
        Mock::given(method("GET"))
            .and(path(
                "/v1.0/identityGovernance/lifecycleWorkflows/customTaskExtensions",
            ))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({"value": []})))
    };
    listing(403).mount(&graph.server).await;
    let identity = Identity::start().await;
    let entra = with(
        env_for(&graph, &identity),
        &[
            ("CALLER_AUTH", "entra"),
            ("CALLER_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("CALLER_AUDIENCES", "api://resume-gateway"),
            ("CALLER_ALLOWED_APP_IDS", OTHER_APP),
        ],
    );

    // The default scope reads extensions: a refused read fails the check, with both fixes.
    let ran = handler(&entra, &["check", "--json"]).await;
    assert_eq!(ran.code, 1, "{}", ran.all());
    let read = check_named(&ran.json(), "read").clone();
    assert_eq!(read["status"], "fail", "{read}");
    assert!(
        read["detail"]
            .as_str()
            .unwrap()
            .contains("customTaskExtensions")
    );
    let remedy = read["remedy"].as_str().unwrap();
    assert!(
        remedy.contains("LifecycleWorkflows.Read.All") && remedy.contains("CALLER_SCOPE=tenant"),
        "{remedy}"
    );
    // The same identity under tenant scope, or without entra, needs no read access.
    for env in [
        with(entra.clone(), &[("CALLER_SCOPE", "tenant")]),
        env_for(&graph, &identity),
    ] {
        let ran = handler(&env, &["check", "--extension", EXTENSION, "--json"]).await;
        assert_eq!(ran.code, 0, "{}", ran.all());
        assert_eq!(check_named(&ran.json(), "read")["status"], "pass");
    }

    listing(200).with_priority(1).mount(&graph.server).await;
    let ran = handler(&entra, &["check", "--extension", EXTENSION, "--json"]).await;
    assert_eq!(ran.code, 0, "{}", ran.all());
    let read = check_named(&ran.json(), "read").clone();
    assert_eq!(read["status"], "pass", "{read}");
    assert!(
        read["detail"]
            .as_str()
            .unwrap()
            .contains("CALLER_SCOPE=extension can work")
    );
}

const CATALOG: &str = "4a5b6c7d-8e9f-4a0b-8c1d-2e3f4a5b6c7d";
const EM_EXTENSION: &str = "5b6c7d8e-9f0a-4b1c-9d2e-3f4a5b6c7d8e";

/// `handler resume` takes the access-package forms: explicit ids (with a state at the stage
/// that takes one) and a callout file; it sends the same body the function sends.
#[tokio::test]
async fn resume_takes_access_package_ids_and_callouts() {
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let env = env_for(&graph, &identity);
    let ids = [
        "resume",
        "--json",
        "--assignment-request",
        ASSIGNMENT_REQUEST,
        "--stage-instance",
        STAGE_INSTANCE,
        "--stage",
        "AssignmentRequestCreated",
        "--state",
        "denied",
        "--detail",
        "SoD conflict",
    ];
    let ran = handler(&env, &ids).await;
    assert_eq!(ran.code, 0, "{}", ran.all());
    let answer = ran.json();
    assert_eq!(answer["assignmentRequestId"], ASSIGNMENT_REQUEST);
    assert_eq!(answer["state"], "denied");
    let sent = graph.requests().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].url.path(),
        format!("/v1.0{}", assignment_request_path(ASSIGNMENT_REQUEST))
    );
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body["data"]["state"], "denied");
    assert_eq!(
        body["data"]["customExtensionStageInstanceDetail"],
        "SoD conflict"
    );

    let dir = std::env::temp_dir().join(format!("em-callout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("callout.json");
    std::fs::write(
        &file,
        access_package_callout(
            ASSIGNMENT_REQUEST,
            STAGE_INSTANCE,
            "assignmentRequestGranted",
        )
        .to_string(),
    )
    .unwrap();
    let ran = handler(
        &env,
        &["resume", "--dry-run", "--callout", file.to_str().unwrap()],
    )
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout.contains(&format!(
            "Access package assignment request {ASSIGNMENT_REQUEST} at stage assignmentRequestGranted"
        )),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("would be resumed to continue"),
        "{}",
        ran.stdout
    );
    for personal in ACCESS_PACKAGE_PERSONAL {
        assert!(!ran.all().contains(personal), "{personal}: {}", ran.all());
    }
    // A state where the stage takes none, and a task's --status beside access-package ids.
    let mut bad = ids.to_vec();
    bad[7] = "assignmentRequestGranted";
    let ran = handler(&env, &bad).await;
    assert_one_problem(&ran, 2, "invalid-request");
    assert_eq!(graph.requests().await.len(), 1, "nothing more was sent");
}

/// `handler check` reads a catalog's custom extension (does it wait?) and an assignment
/// request's callout instances (which one waits?), and names the resume permission.
#[tokio::test]
async fn check_diagnoses_an_access_package_extension_and_request() {
    let graph = Graph::start().await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/v1.0/identityGovernance/entitlementManagement/catalogs/{CATALOG}/customWorkflowExtensions/{EM_EXTENSION}"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "@odata.type": "#microsoft.graph.accessPackageAssignmentRequestWorkflowExtension",
            "id": EM_EXTENSION, "displayName": "SoD check",
            "callbackConfiguration": {"@odata.type": "microsoft.graph.customExtensionCallbackConfiguration", "timeoutDuration": "PT1H"},
            "endpointConfiguration": {"@odata.type": "#microsoft.graph.logicAppTriggerEndpointConfiguration", "logicAppWorkflowName": "la-sod-check"}
        })))
        .mount(&graph.server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/v1.0/identityGovernance/entitlementManagement/assignmentRequests/{ASSIGNMENT_REQUEST}"
        )))
        .and(query_param("$select", "id,state,status,customExtensionCalloutInstances"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": ASSIGNMENT_REQUEST, "state": "submitted",
            "customExtensionCalloutInstances": [{"id": STAGE_INSTANCE, "status": "waitingForCallback", "customExtensionId": EM_EXTENSION}]
        })))
        .mount(&graph.server)
        .await;
    let identity = Identity::start_with_roles(&["EntitlementManagement.ReadWrite.All"]).await;
    let ran = handler(
        &env_for(&graph, &identity),
        &[
            "check",
            "--json",
            "--access-package-extension",
            EM_EXTENSION,
            "--catalog",
            CATALOG,
            "--assignment-request",
            ASSIGNMENT_REQUEST,
        ],
    )
    .await;
    let report = ran.json();
    for name in [
        "access-package permission",
        "access-package extension",
        "assignment request",
    ] {
        assert_eq!(
            check_named(&report, name)["status"],
            "pass",
            "{name}: {report}"
        );
    }
    let ext = check_named(&report, "access-package extension")["detail"]
        .as_str()
        .unwrap();
    assert!(
        ext.contains("PT1H") && ext.contains("la-sod-check"),
        "{ext}"
    );
    let req = check_named(&report, "assignment request")["detail"]
        .as_str()
        .unwrap();
    assert!(
        req.contains(&format!("{STAGE_INSTANCE} waitingForCallback")),
        "{req}"
    );

    // Without the permission: a warning naming both ways, not a failure (a catalog role
    // does not show in the token).
    let identity = Identity::start().await;
    let ran = handler(
        &env_for(&graph, &identity),
        &[
            "check",
            "--json",
            "--assignment-request",
            ASSIGNMENT_REQUEST,
        ],
    )
    .await;
    let perm = check_named(&ran.json(), "access-package permission").clone();
    assert_eq!(perm["status"], "warn", "{perm}");
    assert!(
        perm["remedy"]
            .as_str()
            .unwrap()
            .contains("EntitlementManagement.ReadWrite.All")
    );
}

/// Graph offers no filter for requests waiting on a callback: `pending` says so, and what
/// to do instead, without calling anything.
#[tokio::test]
async fn pending_says_why_it_cannot_list_access_package_requests() {
    let graph = Graph::start().await;
    let identity = Identity::start().await;
    let ran = handler(
        &env_for(&graph, &identity),
        &["pending", "--json", "--access-packages"],
    )
    .await;
    let doc = assert_one_problem(&ran, 2, "invalid-argument");
    let detail = doc["detail"].as_str().unwrap();
    assert!(
        detail.contains("no filter") && detail.contains("handler check --assignment-request"),
        "{detail}"
    );
    assert_eq!(graph.calls().await, 0);
    assert_eq!(identity.calls().await, 0);
}

/// The throwaway test-only key and certificate (see the file's header).
const TEST_CERTIFICATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/test-only-client-certificate.pem"
);

#[tokio::test]
async fn client_certificate_settings_are_checked_before_anything_is_called() {
    let graph = Graph::start().await;
    let identity = Identity::start().await;
    let certificate = [
        ("RESUME_CREDENTIAL", "client-certificate"),
        ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
        ("AZURE_CLIENT_ID", OPERATOR_CLIENT),
        ("AZURE_CLIENT_CERTIFICATE_PATH", TEST_CERTIFICATE),
    ];
    let dir = std::env::temp_dir().join(format!("resume-gateway-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_only = dir.join("key-only.pem");
    let text = std::fs::read_to_string(TEST_CERTIFICATE).unwrap();
    std::fs::write(
        &key_only,
        &text[..text.find("-----BEGIN CERTIFICATE").unwrap()],
    )
    .unwrap();
    let key_only = key_only.to_str().unwrap().to_owned();
    let cases: [(&str, Option<&str>, &str); 4] = [
        ("AZURE_CLIENT_CERTIFICATE_PATH", None, "(unset)"),
        (
            "AZURE_CLIENT_CERTIFICATE_PATH",
            Some("/nonexistent/app.pem"),
            "cannot read it",
        ),
        (
            "AZURE_CLIENT_CERTIFICATE_PATH",
            Some(&key_only),
            "no certificate",
        ),
        ("AZURE_TENANT_ID", Some("contoso.example"), "a GUID"),
    ];
    for (setting, value, says) in cases {
        let env: Vec<(&str, &str)> = certificate
            .iter()
            .filter(|(k, _)| *k != setting)
            .copied()
            .chain(value.map(|v| (setting, v)))
            .collect();
        let env = with(env_for(&graph, &identity), &env);
        for command in [
            vec!["pending", "--workflow", WORKFLOW],
            vec!["check"],
            vec![
                "resume",
                "--callback-uri-path",
                &resume_path(WORKFLOW, TASK, RESULTS[0]),
                "--status",
                "completed",
            ],
        ] {
            let ran = handler(&env, &command).await;
            assert_eq!(ran.code, 2, "{command:?} {setting}: {}", ran.all());
            // `check` prints its checklist on stdout, the others one line on stderr.
            let all = ran.all();
            let line = all.lines().find(|l| l.contains(setting));
            let line = line.unwrap_or_else(|| panic!("{command:?} names {setting}: {}", ran.all()));
            assert!(line.contains(says), "{line}");
        }
        let ran = handler(&env, &["pending", "--workflow", WORKFLOW, "--json"]).await;
        assert_eq!(ran.code, 2);
        assert!(
            ran.json()["detail"].as_str().unwrap().contains(setting),
            "{}",
            ran.stdout
        );
    }
    // The gateway itself refuses the operator credential at start, naming it.
    let env = with(env_for(&graph, &identity), &certificate);
    let ran = handler(&env, &["serve"]).await;
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.all()
            .contains("client-certificate is for the operator commands"),
        "{}",
        ran.all()
    );
    assert_eq!(identity.calls().await, 0);
    assert_eq!(graph.calls().await, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn pending_prints_commands_that_run_as_shown() {
    let graph = Graph::accepting().await;
    let identity = Identity::start_with_roles(&[
        "LifecycleWorkflows.Read.All",
        "LifecycleWorkflows.ReadWrite.All",
    ])
    .await;
    mount_pending_listing(&graph).await;
    let env = env_for(&graph, &identity);
    // Started the way an operator would from the binary's folder: `./handler`.
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_handler"));
    let dir = binary.parent().unwrap();
    let ran = shell(
        dir,
        &env,
        &format!("./handler pending --workflow {WORKFLOW}"),
    )
    .await;
    assert_eq!(ran.code, 0, "{}", ran.all());
    let commands: Vec<(&str, &str)> = ran
        .stdout
        .lines()
        .filter_map(|l| {
            l.strip_prefix("  complete ")
                .map(|c| ("completed", c))
                .or_else(|| l.strip_prefix("  fail     ").map(|c| ("failed", c)))
        })
        .collect();
    assert_eq!(commands.len(), 2 * RESULTS.len(), "{}", ran.stdout);
    for (status, command) in &commands {
        assert!(command.starts_with("./handler resume "), "{command}");
        assert!(
            command.ends_with(&format!(" --status {status}")),
            "{command}"
        );
    }
    // Each printed line, pasted into a shell where pending ran, resumes its task.
    for (status, command) in commands.iter().filter(|(s, _)| *s == "completed") {
        let resumed = shell(dir, &env, command).await;
        assert_eq!(resumed.code, 0, "{command}: {}", resumed.all());
        assert!(
            resumed.stdout.contains(&format!("as {status}")),
            "{}",
            resumed.all()
        );
    }
    let posted: Vec<String> = graph
        .requests()
        .await
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| r.url.path().to_owned())
        .collect();
    let mut expected: Vec<String> = RESULTS
        .iter()
        .map(|r| format!("/v1.0{}", resume_path(WORKFLOW, TASK, r)))
        .collect();
    let mut posted_sorted = posted.clone();
    posted_sorted.sort();
    expected.sort();
    assert_eq!(posted_sorted, expected);
}

#[tokio::test]
async fn commands_log_on_stderr_as_log_format_says() {
    let graph = Graph::start().await;
    let identity = Identity::start().await;
    let path = resume_path(WORKFLOW, TASK, RESULT);
    let dry_run = [
        "resume",
        "--callback-uri-path",
        &path,
        "--status",
        "completed",
        "--dry-run",
    ];
    let logged = |ran: &Ran| {
        assert_eq!(ran.code, 0, "{}", ran.all());
        ran.stderr
            .lines()
            .find(|l| l.contains("dry run: this request would be sent to Graph"))
            .unwrap_or_else(|| panic!("no log line on stderr: {}", ran.all()))
            .to_owned()
    };
    // Unset, with stderr not a terminal (as here), and json: the gateway's JSON lines.
    for format in [None, Some("json"), Some("JSON")] {
        let mut env = with(env_for(&graph, &identity), &[("RUST_LOG", "info")]);
        env.extend(format.map(|f| ("LOG_FORMAT".to_string(), f.to_string())));
        let ran = handler(&env, &dry_run).await;
        let line: Value = serde_json::from_str(&logged(&ran))
            .unwrap_or_else(|e| panic!("{format:?}: not a JSON line ({e}): {}", ran.stderr));
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(
            line["message"], "dry run: this request would be sent to Graph",
            "{line}"
        );
        assert!(
            !ran.stdout.contains("dry run: this request"),
            "logs stay off stdout"
        );
    }
    // text: one readable line per event, as the gateway writes at a terminal.
    let env = with(
        env_for(&graph, &identity),
        &[("RUST_LOG", "info"), ("LOG_FORMAT", "text")],
    );
    let ran = handler(&env, &dry_run).await;
    let line = logged(&ran);
    let (time, rest) = line.split_once(' ').unwrap();
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{line}");
    assert!(
        rest.starts_with("INFO  dry run: this request would be sent to Graph url=http"),
        "{line}"
    );
    // A bad value stops every command, naming the setting.
    let env = with(env_for(&graph, &identity), &[("LOG_FORMAT", "xml")]);
    for args in [
        &dry_run[..],
        &["pending", "--workflow", WORKFLOW],
        &["check"],
    ] {
        let ran = handler(&env, args).await;
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.all());
        assert!(
            ran.all()
                .contains("invalid setting LOG_FORMAT=\"xml\": json, text"),
            "{args:?}: {}",
            ran.all()
        );
    }
    assert_eq!(identity.calls().await, 0);
    assert_eq!(graph.calls().await, 0);
}
