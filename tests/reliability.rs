//! Fault injection against the real binary: retries inside the deadline, Retry-After,
//! identity failures, single-flight tokens, idempotency, accounting and graceful shutdown.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::method;
use wiremock::{Mock, Request, Respond, ResponseTemplate};

async fn post(gw: &Gateway, body: &Value) -> (u16, Option<String>, Value, Duration) {
    let started = Instant::now();
    let r = gw.resume(body).await;
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, _, body) = answer(r).await;
    (status, retry_after, body, started.elapsed())
}

async fn graph_failing_then_ok(failures: ResponseTemplate, times: u64) -> Graph {
    let graph = Graph::start().await;
    Mock::given(method("POST"))
        .respond_with(failures)
        .up_to_n_times(times)
        .with_priority(1)
        .mount(&graph.server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204).insert_header("request-id", "ok"))
        .with_priority(2)
        .mount(&graph.server)
        .await;
    graph
}

#[tokio::test]
async fn throttling_honours_retry_after_in_seconds() {
    let graph = graph_failing_then_ok(
        ResponseTemplate::new(429).insert_header("retry-after", "1"),
        1,
    )
    .await;
    let identity = Identity::start().await;
    let gw = Gateway::start(&env_for(&graph, &identity)).await;
    let (status, _, body, elapsed) = post(&gw, &request_for(1, "completed")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attempts"], 2);
    assert!(
        elapsed >= Duration::from_millis(950),
        "waited only {elapsed:?}"
    );
    assert_eq!(graph.calls().await, 2);
}

#[tokio::test]
async fn throttling_honours_retry_after_as_a_date() {
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    let graph = graph_failing_then_ok(
        ResponseTemplate::new(429).insert_header("retry-after", at.as_str()),
        1,
    )
    .await;
    let identity = Identity::start().await;
    let gw = Gateway::start(&env_for(&graph, &identity)).await;
    let (status, _, body, elapsed) = post(&gw, &request_for(2, "completed")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attempts"], 2);
    // One-second date resolution: the wait is between one and two seconds.
    assert!(
        elapsed >= Duration::from_millis(900),
        "waited only {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(4), "waited {elapsed:?}");
}

#[tokio::test]
async fn two_server_errors_then_success() {
    let graph = graph_failing_then_ok(ResponseTemplate::new(503), 2).await;
    let identity = Identity::start().await;
    let gw = Gateway::start(&env_for(&graph, &identity)).await;
    let (status, _, body, _) = post(&gw, &request_for(3, "completed")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attempts"], 3);
    assert_eq!(graph.calls().await, 3);
    assert_eq!(identity.calls().await, 1, "one token serves every attempt");
}

#[tokio::test]
async fn persistent_server_errors_end_in_503_inside_the_deadline() {
    let graph = Graph::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&graph.server)
        .await;
    let identity = Identity::start().await;
    let gw = Gateway::start(&env_with(
        &graph,
        &identity,
        &[("RESUME_DEADLINE_SECONDS", "3")],
    ))
    .await;
    let (status, retry_after, problem, elapsed) = post(&gw, &request_for(4, "completed")).await;
    println!(
        "persistent 503: answered after {elapsed:?}, {} attempts",
        problem["attempts"]
    );
    assert_eq!(status, 503, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:graph-unavailable"
    );
    assert!(
        elapsed < Duration::from_millis(3500),
        "answered after {elapsed:?}, past the 3 s deadline"
    );
    assert!(problem["attempts"].as_u64().unwrap() >= 3, "{problem}");
    assert_eq!(
        graph.calls().await as u64,
        problem["attempts"].as_u64().unwrap()
    );
    assert_eq!(
        retry_after.as_deref(),
        Some("10"),
        "no Retry-After from Graph: the gateway's default"
    );
    assert!(problem["remedy"].as_str().unwrap().contains("Retry-After"));
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_is_passed_on_at_once() {
    let graph = Graph::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "30")
                .insert_header("x-ms-throttle-scope", "Tenant_Application/ReadWrite/x/y"),
        )
        .mount(&graph.server)
        .await;
    let identity = Identity::start().await;
    let gw = Gateway::start(&env_with(
        &graph,
        &identity,
        &[("RESUME_DEADLINE_SECONDS", "5")],
    ))
    .await;
    let (status, retry_after, problem, elapsed) = post(&gw, &request_for(5, "completed")).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(
        retry_after.as_deref(),
        Some("30"),
        "Graph's own wait is passed on"
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "{elapsed:?}: the gateway must not sit out a wait it cannot finish"
    );
    assert_eq!(problem["attempts"], 1);
    assert_eq!(problem["graph"]["status"], 429);
    assert_eq!(
        problem["graph"]["throttleScope"],
        "Tenant_Application/ReadWrite/x/y"
    );
}

#[tokio::test]
async fn a_hanging_graph_is_cut_off_at_the_deadline() {
    let graph = Graph::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204).set_delay(Duration::from_secs(20)))
        .mount(&graph.server)
        .await;
    let identity = Identity::start().await;
    let gw = Gateway::start(&env_with(
        &graph,
        &identity,
        &[("RESUME_DEADLINE_SECONDS", "2")],
    ))
    .await;
    let (status, retry_after, problem, elapsed) = post(&gw, &request_for(6, "completed")).await;
    assert_eq!(status, 503, "{problem}");
    assert!(retry_after.is_some());
    // The attempt gets four fifths of the deadline; the rest is for the one read that follows
    // an unanswered attempt (here refused: the mock has no GET), all inside the deadline.
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_millis(2800),
        "{elapsed:?}"
    );
    assert_eq!(problem["graph"]["read"]["status"], 404, "{problem}");
    let sent = graph.requests().await;
    assert_eq!(
        sent.iter().filter(|r| r.method.as_str() == "POST").count(),
        1
    );
    assert_eq!(sent.len(), 2, "one resume, one read");
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:graph-unavailable"
    );
}

/// A Graph that resets the first `resets` connections, then answers 204.
async fn resetting_graph(resets: usize) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                if n < resets {
                    // A zero linger makes the close a TCP reset; it does not block on drop.
                    #[allow(deprecated)]
                    let _ = socket.set_linger(Some(Duration::ZERO));
                    drop(socket);
                    return;
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 204 No Content\r\nrequest-id: after-reset\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn a_connection_reset_is_retried() {
    let (graph_url, seen) = resetting_graph(1).await;
    let identity = Identity::start().await;
    let env = vec![
        ("GRAPH_ENDPOINT".to_string(), graph_url),
        ("IDENTITY_ENDPOINT".to_string(), identity.endpoint()),
        ("IDENTITY_HEADER".to_string(), IDENTITY_SECRET.to_string()),
    ];
    let gw = Gateway::start(&env).await;
    let (status, _, body, _) = post(&gw, &request_for(7, "completed")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attempts"], 2);
    assert_eq!(body["graphRequestId"], "after-reset");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_identity_failure_is_retried_then_succeeds() {
    let graph = Graph::accepting().await;
    let identity = Identity::bare().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500).set_body_string("temporarily broken"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&identity.server)
        .await;
    Mock::given(method("GET"))
        .respond_with(token_response(&identity.token))
        .with_priority(2)
        .mount(&identity.server)
        .await;
    let gw = Gateway::start(&env_for(&graph, &identity)).await;
    let (status, _, body, _) = post(&gw, &request_for(8, "completed")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attempts"], 2);
    assert_eq!(identity.calls().await, 2);
    assert_eq!(graph.calls().await, 1);
}

#[tokio::test]
async fn identity_down_entirely_is_503_with_what_to_check() {
    let graph = Graph::accepting().await;
    // Held until the test ends: no other test can start listening there meanwhile.
    let (_closed_socket, closed) = closed_port();
    let env = vec![
        ("GRAPH_ENDPOINT".to_string(), graph.server.uri()),
        (
            "IDENTITY_ENDPOINT".to_string(),
            format!("http://127.0.0.1:{closed}/msi/token"),
        ),
        ("IDENTITY_HEADER".to_string(), IDENTITY_SECRET.to_string()),
        ("RESUME_DEADLINE_SECONDS".to_string(), "3".to_string()),
        (
            "AZURE_CLIENT_ID".to_string(),
            "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee".to_string(),
        ),
    ];
    let gw = Gateway::start(&env).await;
    let (status, retry_after, problem, elapsed) = post(&gw, &request_for(9, "completed")).await;
    assert_eq!(status, 503, "{problem}");
    assert!(retry_after.is_some());
    assert!(elapsed < Duration::from_millis(3500), "{elapsed:?}");
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:identity-unavailable"
    );
    assert!(
        problem["attempts"].as_u64().unwrap() >= 2,
        "identity failures are retried: {problem}"
    );
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("managed identity could not get a token"),
        "{detail}"
    );
    let remedy = problem["remedy"].as_str().unwrap();
    assert!(
        remedy.contains("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee")
            && remedy.contains("AZURE_CLIENT_ID"),
        "{remedy}"
    );
    assert_eq!(graph.calls().await, 0);
}

#[tokio::test]
async fn a_thousand_concurrent_requests_on_a_cold_cache_make_one_identity_call() {
    let graph = Graph::accepting().await;
    let identity = Identity::bare().await;
    Mock::given(method("GET"))
        .respond_with(token_response(&identity.token).set_delay(Duration::from_millis(300)))
        .mount(&identity.server)
        .await;
    let gw = Arc::new(Gateway::start(&env_for(&graph, &identity)).await);
    let tasks: Vec<_> = (0..1000)
        .map(|n| {
            let gw = gw.clone();
            tokio::spawn(async move {
                gw.resume(&request_for(10_000 + n, "completed"))
                    .await
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 200 {
            ok += 1;
        }
    }
    println!(
        "1000 concurrent requests: {ok} answered 200, {} identity call(s)",
        identity.calls().await
    );
    assert_eq!(ok, 1000);
    assert_eq!(identity.calls().await, 1);
    assert_eq!(graph.calls().await, 1000);
}

#[tokio::test]
async fn concurrent_duplicates_share_one_graph_call_and_repeats_are_answered_from_memory() {
    let graph = Graph::slow(Duration::from_millis(500), "only-once").await;
    let identity = Identity::start().await;
    let gw = Arc::new(Gateway::start(&env_for(&graph, &identity)).await);
    let body = request_for(42, "completed");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (gw, body) = (gw.clone(), body.clone());
            tokio::spawn(async move { answer(gw.resume(&body).await).await })
        })
        .collect();
    // While they wait on Graph, the other status is refused.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, content_type, problem) = answer(gw.resume(&request_for(42, "failed")).await).await;
    assert_eq!(
        (status, content_type.as_str()),
        (409, "application/problem+json"),
        "{problem}"
    );
    assert_eq!(
        problem["type"],
        "urn:resume-gateway:problem:conflicting-status"
    );
    for t in tasks {
        let (status, _, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["graphRequestId"], "only-once");
    }
    assert_eq!(graph.calls().await, 1, "50 duplicates, one Graph call");

    let (status, _, again) = answer(gw.resume(&body).await).await;
    assert_eq!(status, 200);
    assert_eq!(again["alreadyResumed"], true);
    assert_eq!(again["attempts"], 0);
    assert_eq!(again["graphRequestId"], "only-once");
    let (status, _, _) = answer(gw.resume(&request_for(42, "failed")).await).await;
    assert_eq!(status, 409, "resumed as completed: failed is a conflict");
    assert_eq!(graph.calls().await, 1);
}

#[tokio::test]
async fn a_caller_that_hangs_up_does_not_lose_the_resume() {
    let graph = Graph::slow(Duration::from_millis(800), "finished-alone").await;
    let identity = Identity::start().await;
    let gw = Gateway::start(&env_for(&graph, &identity)).await;
    let body = request_for(43, "completed");
    let hung_up = gw
        .client
        .post(gw.url("/api/function-resume"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_millis(150))
        .send()
        .await;
    assert!(hung_up.is_err(), "the caller gave up before Graph answered");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(graph.calls().await, 1);
    let (status, _, again) = answer(gw.resume(&body).await).await;
    assert_eq!(status, 200);
    assert_eq!(again["alreadyResumed"], true);
    assert_eq!(again["graphRequestId"], "finished-alone");
    assert_eq!(graph.calls().await, 1);
}

/// Graph that fails about one first attempt in five with 503 and records every 2xx it gives.
struct Flaky {
    attempts: Mutex<HashMap<String, u32>>,
    accepted: Mutex<HashMap<String, u32>>,
    first_failures: AtomicUsize,
}

impl Respond for Flaky {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let segments: Vec<&str> = request.url.path().split('/').collect();
        let result = segments[segments.len() - 2].to_owned();
        let attempt = {
            let mut a = self.attempts.lock().unwrap();
            let n = a.entry(result.clone()).or_default();
            *n += 1;
            *n
        };
        if attempt == 1 && fastrand::u8(0..5) == 0 {
            self.first_failures.fetch_add(1, Ordering::SeqCst);
            return ResponseTemplate::new(503);
        }
        *self.accepted.lock().unwrap().entry(result).or_default() += 1;
        ResponseTemplate::new(204)
    }
}

#[tokio::test]
async fn accounting_every_200_matches_a_graph_success_and_none_is_lost() {
    const REQUESTS: usize = 2000;
    const CONCURRENCY: usize = 64;
    let flaky = Arc::new(Flaky {
        attempts: Mutex::default(),
        accepted: Mutex::default(),
        first_failures: AtomicUsize::new(0),
    });
    struct Shared(Arc<Flaky>);
    impl Respond for Shared {
        fn respond(&self, r: &Request) -> ResponseTemplate {
            self.0.respond(r)
        }
    }
    let graph = Graph::start().await;
    Mock::given(method("POST"))
        .respond_with(Shared(flaky.clone()))
        .mount(&graph.server)
        .await;
    let identity = Identity::start().await;
    let gw = Arc::new(Gateway::start(&env_for(&graph, &identity)).await);

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(Vec::with_capacity(REQUESTS)));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (gw, next, answers) = (gw.clone(), next.clone(), answers.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= REQUESTS {
                        return;
                    }
                    let (status, _, body) =
                        answer(gw.resume(&request_for(20_000 + n, "completed")).await).await;
                    answers
                        .lock()
                        .unwrap()
                        .push((result_id(20_000 + n), status, body));
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    let identity_calls = identity.calls().await;
    let answers = answers.lock().unwrap();
    let accepted = flaky.accepted.lock().unwrap();
    let ok: Vec<_> = answers.iter().filter(|(_, s, _)| *s == 200).collect();
    let graph_calls: u32 = flaky.attempts.lock().unwrap().values().sum();
    println!(
        "accounting: {} requests at concurrency {CONCURRENCY} in {:.1} s: {} answered, {} x 200, {} first attempts failed with 503, {} Graph calls, {} results accepted by Graph, {} identity call(s)",
        REQUESTS,
        elapsed.as_secs_f64(),
        answers.len(),
        ok.len(),
        flaky.first_failures.load(Ordering::SeqCst),
        graph_calls,
        accepted.len(),
        identity_calls
    );
    assert_eq!(answers.len(), REQUESTS, "every request is answered");
    let unique: HashSet<_> = answers.iter().map(|(id, _, _)| id.clone()).collect();
    assert_eq!(unique.len(), REQUESTS);
    for (id, status, body) in answers.iter() {
        match *status {
            200 => assert_eq!(
                accepted.get(id),
                Some(&1),
                "200 for {id} without exactly one 2xx at Graph"
            ),
            _ => assert!(
                !accepted.contains_key(id),
                "{id}: answered {status} but Graph took it: {body}"
            ),
        }
    }
    assert_eq!(ok.len(), accepted.len(), "every Graph success was reported");
    assert_eq!(
        ok.len(),
        REQUESTS,
        "with a 60 s deadline every request gets through"
    );
    assert!(
        flaky.first_failures.load(Ordering::SeqCst) > REQUESTS / 10,
        "the fault was injected"
    );
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish_then_exits_0() {
    let graph = Graph::slow(Duration::from_millis(1500), "after-sigterm").await;
    let identity = Identity::start().await;
    let mut gw = Gateway::start(&env_for(&graph, &identity)).await;
    let client = gw.client.clone();
    let url = gw.url("/api/function-resume");
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(request_for(30_000 + n, "completed").to_string())
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    gw.terminate();
    for t in tasks {
        assert_eq!(
            t.await.unwrap(),
            200,
            "a request in flight was cut off by the shutdown"
        );
    }
    let status = gw.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit 0 after a requested shutdown:\n{}",
        gw.output.all()
    );
    assert_eq!(graph.calls().await, 10);
    assert!(
        gw.output
            .stdout()
            .iter()
            .any(|l| l.contains("shutdown requested"))
    );
}

/// A directory of its own under the system's temporary folder, for PATH entries.
fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "resume-gateway-{name}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A PATH holding only a fake `az` that answers as the Azure CLI does when nobody ran
/// `az login` (its message on stderr, exit code 1).
fn path_with_signed_out_az() -> String {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch_dir("az");
    let az = dir.join("az");
    std::fs::write(
        &az,
        "#!/bin/sh\necho \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.display().to_string()
}

/// Each credential that cannot work is answered at once (the default 60 s deadline would
/// otherwise be spent retrying), with its cause, the one fix, and one warning in the log.
#[tokio::test]
async fn a_credential_that_cannot_work_is_answered_within_two_seconds() {
    let graph = Graph::accepting().await;
    let refusing = Identity::bare().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "statusCode": 400,
            "message": "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId."
        })))
        .mount(&refusing.server)
        .await;
    let developer = |path: String| {
        vec![
            ("GRAPH_ENDPOINT".to_string(), graph.server.uri()),
            ("RESUME_CREDENTIAL".to_string(), "developer".to_string()),
            ("PATH".to_string(), path),
        ]
    };
    let cases = [
        (
            "no az on PATH",
            developer(scratch_dir("empty").display().to_string()),
            "tool-missing",
            "az not found on PATH: install the Azure CLI",
        ),
        (
            "az not signed in",
            developer(path_with_signed_out_az()),
            "not-signed-in",
            "run `az login`",
        ),
        (
            "identity endpoint answers 400",
            env_for(&graph, &refusing),
            "refused",
            "system-assigned managed identity turned on",
        ),
    ];
    for (n, (case, env, cause, fix)) in cases.into_iter().enumerate() {
        let gw = Gateway::start(&env).await;
        let (status, retry_after, problem, elapsed) =
            post(&gw, &request_for(600 + n, "completed")).await;
        assert_eq!(status, 503, "{case}: {problem}");
        assert!(retry_after.is_some(), "{case}");
        assert!(
            elapsed < Duration::from_secs(2),
            "{case}: answered after {elapsed:?}"
        );
        assert_eq!(
            problem["type"], "urn:resume-gateway:problem:identity-unavailable",
            "{case}"
        );
        assert_eq!(problem["cause"], cause, "{case}: {problem}");
        assert_eq!(problem["attempts"], 1, "{case}: not retried: {problem}");
        let remedy = problem["remedy"].as_str().unwrap();
        assert!(remedy.contains(fix), "{case}: {remedy}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(!detail.contains('\n'), "{case}: one line: {detail:?}");
        assert!(!detail.contains("To troubleshoot"), "{case}: {detail}");
        // The pipe's reader thread may not have the line yet: wait for it, then count.
        let warnings = || {
            gw.output
                .stderr()
                .iter()
                .filter(|l| l.contains("asking again will not help"))
                .count()
        };
        let waited = Instant::now();
        while warnings() == 0 && waited.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(warnings(), 1, "{case}: {}", gw.output.all());
    }
    assert_eq!(refusing.calls().await, 1, "a 400 is asked once");
    assert_eq!(graph.calls().await, 0);
}
