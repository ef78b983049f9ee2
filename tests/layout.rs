//! The files the Functions host reads are what it expects, and the local settings list every setting.

use std::path::Path;

use resume_gateway::config::{HOST_SET, SETTINGS};
use resume_gateway::request::ResumeRequest;
use serde_json::Value;

fn json(path: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

fn text(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn host_json_starts_the_handler_with_proxying() {
    let host = json("host.json");
    assert_eq!(host["version"], "2.0");
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        "handler"
    );
    // Proxying streams the caller's request as it came; the legacy forwarding drops chunked bodies.
    assert_eq!(host["customHandler"]["enableProxyingHttpRequest"], true);
    assert!(
        host["customHandler"]
            .get("enableForwardingHttpRequest")
            .is_none()
    );
    assert_eq!(
        host["extensionBundle"]["id"],
        "Microsoft.Azure.Functions.ExtensionBundle"
    );
    assert_eq!(host["extensionBundle"]["version"], "[4.*, 5.0.0)");
}

#[test]
fn function_json_is_one_post_http_trigger_with_a_function_key() {
    let f = json("function-resume/function.json");
    let bindings = f["bindings"].as_array().unwrap();
    assert_eq!(
        bindings.len(),
        2,
        "forwarding needs exactly one trigger and one http output"
    );
    let trigger = &bindings[0];
    assert_eq!(trigger["type"], "httpTrigger");
    assert_eq!(trigger["direction"], "in");
    assert_eq!(trigger["name"], "req");
    assert_eq!(trigger["authLevel"], "function");
    assert_eq!(trigger["methods"], serde_json::json!(["post"]));
    assert!(
        trigger.get("route").is_none(),
        "the handler serves /api/function-resume"
    );
    assert_eq!(bindings[1]["type"], "http");
    assert_eq!(bindings[1]["direction"], "out");
    assert_eq!(bindings[1]["name"], "res");
}

#[test]
fn local_settings_sample_lists_every_setting_and_runs_dry() {
    let sample = json("local.settings.sample.json");
    let values = sample["Values"].as_object().unwrap();
    assert_eq!(values["FUNCTIONS_WORKER_RUNTIME"], "custom");
    assert_eq!(
        values["RESUME_DRY_RUN"], "true",
        "a first `func start` must not touch Graph"
    );
    for setting in SETTINGS.iter().filter(|s| !HOST_SET.contains(s)) {
        assert!(
            values.contains_key(*setting),
            "local.settings.sample.json lacks {setting}"
        );
    }
}

#[test]
fn deploy_doc_build_step_puts_the_binary_where_host_json_starts_it() {
    let host = json("host.json");
    let exe = host["customHandler"]["description"]["defaultExecutablePath"]
        .as_str()
        .unwrap();
    let deploy = text("docs/deploy.md");
    assert!(
        deploy.contains(&format!("cp target/release/handler ./{exe}")),
        "docs/deploy.md's func start steps must copy the binary to ./{exe}"
    );
    assert!(deploy.contains("func start"));
}

#[test]
fn samples_are_valid_requests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("resume-") && name.ends_with(".json") {
            let body = std::fs::read(&path).unwrap();
            ResumeRequest::parse(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            checked += 1;
        }
    }
    assert!(checked >= 3, "expected the resume samples, found {checked}");
}

#[test]
fn funcignore_keeps_sources_out_of_the_package() {
    let ignore = text(".funcignore");
    for entry in ["target/", "src/", "tests/", "local.settings.json"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".funcignore lacks {entry}"
        );
    }
    assert!(!ignore.lines().any(|l| l.trim() == "handler"));
}
