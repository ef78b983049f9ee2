//! The log settings against the real binary: `LOG_FORMAT`, `RUST_LOG` and the SDK's level.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Starts the handler as a terminal runs it, stdout and stderr into one stream, and returns
/// the merged lines as they arrive.
async fn start_merged(env: &[(&str, &str)]) -> (Gateway, Output) {
    install_crypto();
    let (reader, writer) = std::io::pipe().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_handler"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", ANY_PORT.to_string())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer);
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    // The parent's copies of the write end must go, or the stream never ends.
    drop(cmd);
    let merged = Output::default();
    // One stream carries both: counted as the second one closed already.
    merged
        .closed
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    merged.pipe(reader, merged.stdout.clone());
    let client = reqwest::Client::new();
    let (port, ready_after) = wait_ready(&client, &mut child, &merged, started).await;
    let gw = Gateway {
        child,
        port,
        output: merged.clone(),
        client,
        ready_after,
    };
    (gw, merged)
}

fn valid(n: usize) -> serde_json::Value {
    request_for(n, "completed")
}

#[tokio::test]
async fn text_logs_are_readable_lines_in_the_order_things_happened() {
    let (gw, merged) = start_merged(&[("LOG_FORMAT", "text"), ("RESUME_DRY_RUN", "true")]).await;
    // Alternating answers: a resume logs on stdout, a refusal on stderr.
    let ids = ["inv-a", "inv-b", "inv-c", "inv-d", "inv-e", "inv-f"];
    for (n, id) in ids.iter().enumerate() {
        let body = if n % 2 == 0 {
            valid(n)
        } else {
            json!({"operationStatus": "done"})
        };
        let r = gw
            .resume_with(&body, &[("x-azure-functions-invocationid", id)])
            .await;
        assert_eq!(r.status(), if n % 2 == 0 { 200 } else { 400 });
    }
    gw.terminate();
    let mut gw = gw;
    let status = gw.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success());
    let lines = merged.stdout();
    for line in &lines {
        assert!(!line.starts_with('{'), "a JSON line in text mode: {line}");
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{line}");
        assert!(
            ["INFO  ", "WARN  ", "ERROR "]
                .iter()
                .any(|l| rest.starts_with(l)),
            "{line}"
        );
    }
    let mut order: Vec<&str> = lines
        .iter()
        .filter_map(|l| {
            ids.iter()
                .find(|id| l.contains(&format!("[invocation_id={id}]")))
        })
        .copied()
        .collect();
    order.dedup();
    assert_eq!(order, ids, "{lines:#?}");
    let first = lines
        .iter()
        .find(|l| l.contains("inv-a") && l.contains("resume simulated"))
        .unwrap();
    assert!(
        first.contains(" INFO  resume simulated (dry run) invocation_id=inv-a workflow_id="),
        "{first}"
    );
    let started = lines
        .iter()
        .position(|l| l.contains("resume gateway listening"));
    let dry_run = lines
        .iter()
        .position(|l| l.contains("RESUME_DRY_RUN is on"));
    assert!(started < dry_run, "{lines:#?}");
}

#[tokio::test]
async fn json_is_the_default_when_stdout_is_not_a_terminal() {
    let gw = Gateway::start(&[("RESUME_DRY_RUN".into(), "true".into())]).await;
    assert_eq!(gw.resume(&valid(1)).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines = Output::json_lines(&gw.output.stdout());
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "resume simulated (dry run)"),
        "{lines:?}"
    );
}

#[test]
fn bad_log_settings_stop_at_once_naming_them() {
    for (setting, value, shown) in [
        ("LOG_FORMAT", "xml", "json, text"),
        ("RUST_LOG", "warning", "\"warning\" is not a level"),
        ("RUST_LOG", "info,verbose", "\"verbose\" is not a level"),
        (
            "RUST_LOG",
            "info,resume_gateway=loud",
            "info,resume_gateway=loud",
        ),
    ] {
        let env = [(setting.to_string(), value.to_string())];
        assert_stops_on_bad_setting(&env, setting, shown, Duration::from_secs(2));
    }
}

#[tokio::test]
async fn a_filter_that_hides_the_gateway_is_warned_about_at_start() {
    let env = [
        ("RUST_LOG".to_string(), "hyper=debug".to_string()),
        ("RESUME_DRY_RUN".into(), "true".into()),
    ];
    let gw = Gateway::start(&env).await;
    assert_eq!(gw.resume(&valid(1)).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stderr = Output::json_lines(&gw.output.stderr());
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert_eq!(stderr[0]["level"], "WARN");
    assert_eq!(stderr[0]["rust_log"], "hyper=debug");
    assert!(
        stderr[0]["message"]
            .as_str()
            .unwrap()
            .contains("enables none of the gateway's own logs"),
        "{stderr:?}"
    );
    // The gateway's own lines are indeed hidden: the warning was the only way to know.
    let stdout = gw.output.stdout();
    assert!(
        !stdout.iter().any(|l| l.contains("resume simulated")),
        "{stdout:?}"
    );

    // A filter that shows the gateway gets no warning.
    let env = [
        (
            "RUST_LOG".to_string(),
            "warn,resume_gateway::http::routes=debug".to_string(),
        ),
        ("RESUME_DRY_RUN".into(), "true".into()),
    ];
    let gw = Gateway::start(&env).await;
    assert_eq!(gw.resume(&valid(2)).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !gw.output.all().contains("enables none"),
        "{}",
        gw.output.all()
    );
}

/// `azure_identity` logs its client id as Rust debug text (`Some(ClientId("…"))`) at info.
#[tokio::test]
async fn the_azure_sdk_logs_at_warn_and_no_line_carries_rust_debug_text() {
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let client_id = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
    for (rust_log, sdk_shown) in [
        (None, false),
        (Some("info"), false),
        (Some("debug"), false),
        // Named, the SDK logs as asked: this is what the others would show if the default broke.
        (Some("info,azure_identity=info"), true),
    ] {
        let mut extra = vec![("AZURE_CLIENT_ID", client_id)];
        extra.extend(rust_log.map(|v| ("RUST_LOG", v)));
        let gw = Gateway::start(&env_with(&graph, &identity, &extra)).await;
        assert_eq!(gw.resume(&valid(3)).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let all = gw.output.all();
        assert_eq!(
            all.contains("ClientId("),
            sdk_shown,
            "RUST_LOG={rust_log:?}: {all}"
        );
        if !sdk_shown {
            assert!(!all.contains("Some("), "RUST_LOG={rust_log:?}: {all}");
        }
    }
}
