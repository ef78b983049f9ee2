//! Memory against the real binary: a body of caller content the gateway does not read costs
//! about its own size, never a JSON tree of it (peak from `/proc/<pid>/status`).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const MIB: u64 = 1024 * 1024;

/// Sends `count` copies of `body` to `path` and returns (peak growth over the first, resident
/// growth from after the first to after the last), both in bytes.
async fn growth(
    gw: &Gateway,
    path: &str,
    body: &str,
    count: usize,
    expect: u16,
) -> (u64, u64, u64) {
    let pid = gw.child.id();
    // Warm: lazy clients and the first allocations of a request are not what is measured.
    let (status, _, _) = answer(gw.resume(&request_for(90_000, "completed")).await).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let peak_before = proc_status_bytes(pid, "VmHWM");
    let mut rss_after_first = 0;
    for n in 0..count {
        let r = gw
            .client
            .post(gw.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let (status, _, answer) = answer(r).await;
        let status = answer["Outputs"]["res"]["statusCode"]
            .as_u64()
            .map_or(status, |s| s as u16);
        assert_eq!(status, expect, "{answer}");
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            rss_after_first = proc_status_bytes(pid, "VmRSS");
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let peak = proc_status_bytes(pid, "VmHWM");
    let rss_last = proc_status_bytes(pid, "VmRSS");
    (
        peak.saturating_sub(peak_before),
        rss_last.saturating_sub(rss_after_first),
        peak,
    )
}

/// Sends `body` 100 times, prints the figures, and holds them to the bounds: peak growth at
/// most 4 × the body, resident growth after the first at most 5 MB.
async fn bounded(gw: &Gateway, what: &str, path: &str, body: &str) {
    let size = body.len() as u64;
    let (peak_growth, rss_growth, peak) = growth(gw, path, body, 100, 200).await;
    println!(
        "{what} of {:.2} MiB, 100 times: peak RSS grew {:.1} MiB over the warm gateway (to {:.1} MiB), resident after the 100th {:+.1} MiB from after the first",
        size as f64 / MIB as f64,
        peak_growth as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        rss_growth as f64 / MIB as f64
    );
    assert!(
        peak_growth <= 4 * size,
        "peak grew {peak_growth} bytes for a {size}-byte {what}"
    );
    assert!(
        rss_growth <= 5_000_000,
        "resident grew {rss_growth} bytes over 99 more requests"
    );
}

#[tokio::test]
async fn a_4_mib_invocation_envelope_costs_at_most_four_times_its_size() {
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let gw = Gateway::start(&env_for(&graph, &identity)).await;
    // Metadata and an extra binding full of tiny objects, around a small valid request.
    let junk = tiny_objects(290_000);
    let envelope = json!({
        "Data": {
            "req": {"Method": "POST", "Headers": {"Content-Type": ["application/json"]},
                    "Body": request_for(91_000, "completed").to_string()},
            "other": {"Method": "GET", "junk": serde_json::from_str::<serde_json::Value>(&junk).unwrap()}
        },
        "Metadata": {"sys": serde_json::from_str::<serde_json::Value>(&junk).unwrap()}
    })
    .to_string();
    let size = envelope.len() as u64;
    assert!(size > 3 * MIB && size <= 4 * MIB, "{size}");
    bounded(&gw, "JSON invocation", "/function-resume", &envelope).await;
}

#[tokio::test]
async fn a_1_mib_forwarded_body_costs_at_most_four_times_its_size() {
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let gw = Gateway::start(&env_for(&graph, &identity)).await;
    // The callout's subject full of tiny objects: more brackets than the fast path takes, so
    // the complete parser reads it, as it does any body with an escape.
    let mut callout = callout(WORKFLOW, TASK, &result_id(92_000));
    callout["data"]["subject"]["extra"] = serde_json::from_str(&tiny_objects(148_000)).unwrap();
    let body = json!({"operationStatus": "completed", "callout": callout}).to_string();
    let size = body.len() as u64;
    assert!(size > MIB * 9 / 10 && size <= MIB, "{size}");
    bounded(&gw, "forwarded body", "/api/function-resume", &body).await;
}
