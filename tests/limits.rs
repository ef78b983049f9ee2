//! Limits and the drain, against the real binary: head and body timeouts, the connection cap
//! (readiness still answered), and a shutdown that answers every request it had received.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The gateway with Graph accepting every resume, and `extra` settings.
async fn started(extra: &[(&str, &str)]) -> (Graph, Identity, Gateway) {
    let graph = Graph::accepting().await;
    let identity = Identity::start().await;
    let mut env = env_for(&graph, &identity);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let gw = Gateway::start(&env).await;
    (graph, identity, gw)
}

async fn connect(gw: &Gateway) -> TcpStream {
    TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap()
}

#[tokio::test]
async fn sigterm_answers_every_request_received_even_those_not_yet_accepted() {
    let (graph, _identity, mut gw) = started(&[]).await;
    let mut streams = Vec::new();
    for n in 0..150 {
        let mut s = connect(&gw).await;
        let body = request_for(50_000 + n, "completed").to_string();
        s.write_all(&raw_post("/api/function-resume", &body))
            .await
            .unwrap();
        streams.push(s);
    }
    tokio::time::sleep(Duration::from_millis(3)).await;
    gw.terminate();
    let answers: Vec<_> = streams
        .into_iter()
        .map(|mut s| tokio::spawn(async move { raw_answer(&mut s).await }))
        .collect();
    let (mut answered, mut resets, mut closed_silently, mut statuses) = (0, 0, 0, Vec::new());
    for a in answers {
        match a.await.unwrap() {
            Ok((Some(status), _)) => {
                answered += 1;
                statuses.push(status);
            }
            Ok((None, _)) => closed_silently += 1,
            Err(_) => resets += 1,
        }
    }
    let status = gw.wait_exit(Duration::from_secs(20)).await;
    println!(
        "150 complete requests, SIGTERM 3 ms later: {answered} answered, {resets} reset, {closed_silently} closed without an answer; Graph received {}",
        graph.calls().await
    );
    assert_eq!(
        (answered, resets, closed_silently),
        (150, 0, 0),
        "{}",
        gw.output.all()
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert_eq!(
        graph.calls().await,
        statuses.iter().filter(|s| **s == 200).count(),
        "every 200 is a resume Graph received"
    );
    assert_eq!(status.code(), Some(0), "{}", gw.output.all());
}

fn signal(gw: &Gateway, name: &str) {
    let status = std::process::Command::new("kill")
        .args([name, &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_answers_connections_still_in_the_listen_backlog() {
    let (graph, _identity, mut gw) = started(&[]).await;
    // Paused, the gateway accepts nothing: the kernel queues these whole requests, and SIGTERM
    // is pending when it runs again.
    signal(&gw, "-STOP");
    let mut streams = Vec::new();
    for n in 0..40 {
        let mut s = connect(&gw).await;
        let body = request_for(70_000 + n, "completed").to_string();
        s.write_all(&raw_post("/api/function-resume", &body))
            .await
            .unwrap();
        streams.push(s);
    }
    gw.terminate();
    signal(&gw, "-CONT");
    let mut statuses = Vec::new();
    for mut s in streams {
        statuses.push(
            raw_answer(&mut s)
                .await
                .map(|(status, _)| status)
                .ok()
                .flatten(),
        );
    }
    let status = gw.wait_exit(Duration::from_secs(20)).await;
    println!("40 requests queued while paused, then SIGTERM: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == Some(200)),
        "{statuses:?}\n{}",
        gw.output.all()
    );
    assert_eq!(graph.calls().await, 40);
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn a_half_sent_request_and_idle_connections_do_not_hold_shutdown() {
    let (_graph, _identity, mut gw) = started(&[]).await;
    let mut half = connect(&gw).await;
    half.write_all(b"POST /api/function-resume HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-")
        .await
        .unwrap();
    let _idle = connect(&gw).await;
    // A kept-alive connection that has had its answer.
    let mut kept = connect(&gw).await;
    kept.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = Instant::now();
    gw.terminate();
    let status = gw.wait_exit(Duration::from_secs(30)).await;
    let took = stopped.elapsed();
    println!("exit after SIGTERM with a half-sent, an idle and a kept-alive connection: {took:?}");
    assert_eq!(status.code(), Some(0));
    // The deadline is 60 s: waiting on any of these would take that long.
    assert!(took < Duration::from_secs(10), "{took:?}");
    let (status, _) = raw_answer(&mut half).await.unwrap_or((None, String::new()));
    assert_eq!(status, None, "half a head is not answered");
}

#[tokio::test]
async fn a_half_sent_body_is_answered_503_at_shutdown_not_waited_for() {
    let (graph, _identity, mut gw) = started(&[]).await;
    let mut half = connect(&gw).await;
    half.write_all(b"POST /api/function-resume HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"operationStatus\":")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = Instant::now();
    gw.terminate();
    let (status, text) = raw_answer(&mut half).await.unwrap();
    let answered = stopped.elapsed();
    let exit = gw.wait_exit(Duration::from_secs(30)).await;
    let took = stopped.elapsed();
    println!(
        "half-sent body at SIGTERM: answered {status:?} after {answered:?}, exit after {took:?}"
    );
    assert_eq!(status, Some(503), "{text}");
    assert!(
        text.contains("urn:resume-gateway:problem:shutting-down"),
        "{text}"
    );
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert_eq!(exit.code(), Some(0));
    // The deadline is 60 s: waiting for the body would take that long.
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(graph.calls().await, 0);
}

#[tokio::test]
async fn slow_heads_are_closed_at_the_head_timeout() {
    let (_graph, _identity, gw) = started(&[]).await;
    let started = Instant::now();
    let mut silent = connect(&gw).await;
    let mut slow = connect(&gw).await;
    slow.write_all(b"POST /api/function-resume HTTP/1.1\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        // A header line every second: never a whole head.
        for n in 0..30 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if slow
                .write_all(format!("X-{n}: a\r\n").as_bytes())
                .await
                .is_err()
            {
                return started.elapsed();
            }
        }
        panic!("a head trickling for 30 s was never cut off");
    });
    let _ = raw_answer(&mut silent).await;
    let silent_closed = started.elapsed();
    let slow_closed = trickle.await.unwrap();
    println!(
        "head timeout: silent connection closed after {silent_closed:?}, trickling head after {slow_closed:?}"
    );
    // HEADER_READ_TIMEOUT is 10 s; a loaded machine may be late, never early.
    for took in [silent_closed, slow_closed] {
        assert!(
            took >= Duration::from_millis(9_500) && took < Duration::from_secs(20),
            "{took:?}"
        );
    }
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_at_the_request_deadline() {
    let (graph, _identity, gw) = started(&[("RESUME_DEADLINE_SECONDS", "2")]).await;
    let mut stalled = connect(&gw).await;
    let started = Instant::now();
    stalled
        .write_all(b"POST /api/function-resume HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"operationStatus\":")
        .await
        .unwrap();
    let (status, text) = raw_answer(&mut stalled).await.unwrap();
    let took = started.elapsed();
    println!("stalled body answered {status:?} after {took:?}");
    assert_eq!(status, Some(408), "{text}");
    assert!(
        text.contains("urn:resume-gateway:problem:request-timeout"),
        "{text}"
    );
    assert!(
        took >= Duration::from_millis(1_900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert_eq!(graph.calls().await, 0);
}

#[tokio::test]
async fn at_the_connection_cap_readiness_is_still_answered() {
    const MAX_CONNECTIONS: usize = 1024;
    const READINESS_RESERVE: usize = 16;
    let (graph, _identity, gw) = started(&[]).await;
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        held.push(connect(&gw).await);
    }
    // Let the gateway accept them all before the next ones.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ready = connect(&gw).await;
    ready
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let (status, text) = raw_answer(&mut ready).await.unwrap();
    assert_eq!(status, Some(200), "readiness at the cap: {text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );

    let mut refused = connect(&gw).await;
    let body = request_for(60_000, "completed").to_string();
    refused
        .write_all(&raw_post("/api/function-resume", &body))
        .await
        .unwrap();
    let (status, text) = raw_answer(&mut refused).await.unwrap();
    assert_eq!(status, Some(503), "{text}");
    assert!(
        text.contains("urn:resume-gateway:problem:at-capacity"),
        "{text}"
    );
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text}"
    );
    assert_eq!(graph.calls().await, 0);

    // Past the reserve, a connection is closed at once, without an answer.
    let mut over = Vec::new();
    for _ in 0..READINESS_RESERVE {
        over.push(connect(&gw).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut beyond = connect(&gw).await;
    let _ = beyond
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    let closed = tokio::time::timeout(Duration::from_secs(5), raw_answer(&mut beyond)).await;
    assert!(
        matches!(closed, Ok(Err(_)) | Ok(Ok((None, _)))),
        "beyond the reserve: {closed:?}"
    );

    // Connections freed, full service again.
    drop(held);
    drop(over);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, _) = answer(gw.resume(&request_for(60_001, "completed")).await).await;
    assert_eq!(status, 200);
}

/// Every line the gateway wrote is at most the log line cap (8 KiB) and does not contain `text`.
fn assert_logs_bounded_without(gw: &Gateway, text: &str) {
    for line in gw.output.stdout().iter().chain(gw.output.stderr().iter()) {
        assert!(line.len() <= 8 * 1024, "a log line of {} bytes", line.len());
        assert!(
            !line.contains(text),
            "echoed into the log: {}…",
            &line[..200.min(line.len())]
        );
    }
}

#[tokio::test]
async fn huge_names_ids_and_methods_are_not_echoed() {
    let (graph, _identity, gw) = started(&[]).await;

    // An unknown field name of 900 KB.
    let name = format!("x{}", "y".repeat(900 * 1024));
    let body = format!(r#"{{"operationStatus":"completed","{name}":1}}"#);
    let r = gw
        .client
        .post(gw.url("/api/function-resume"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, _, problem) = answer(r).await;
    assert_eq!(status, 400);
    let field = problem["field"].as_str().unwrap();
    assert!(
        field.ends_with('…') && field.chars().count() == 65,
        "{field}"
    );
    assert!(
        problem.to_string().len() < 2048,
        "{}",
        problem.to_string().len()
    );

    // An invocation id of 64 KB is ignored, not echoed; a GUID is.
    let long_id = "i".repeat(64 * 1024);
    let (status, _, problem) = answer(
        gw.resume_with(
            &serde_json::json!({}),
            &[("x-azure-functions-invocationid", &long_id)],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(problem.get("invocationId").is_none(), "{problem}");
    let guid = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let (_, _, problem) = answer(
        gw.resume_with(
            &serde_json::json!({}),
            &[("x-azure-functions-invocationid", guid)],
        )
        .await,
    )
    .await;
    assert_eq!(problem["invocationId"], guid);

    // A JSON invocation whose Method is not a method is refused, not taken for a POST.
    let envelope = serde_json::json!({"Data": {"req": {"Method": "P OST", "Headers": {"Content-Type": ["application/json"]}, "Body": request_for(80_000, "completed").to_string()}}, "Metadata": {}});
    let r = gw
        .client
        .post(gw.url("/function-resume"))
        .json(&envelope)
        .send()
        .await
        .unwrap();
    let (status, _, wrapped) = answer(r).await;
    assert_eq!(status, 200, "{wrapped}");
    assert_eq!(wrapped["Outputs"]["res"]["statusCode"], 400, "{wrapped}");

    // A JSON invocation over 4 MiB: the 413 names that limit, not the body's.
    let r = gw
        .client
        .post(gw.url("/function-resume"))
        .header("content-type", "application/json")
        .body(vec![b' '; 4 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    let (_, _, wrapped) = answer(r).await;
    let res = &wrapped["Outputs"]["res"];
    assert_eq!(res["statusCode"], 413, "{wrapped}");
    assert!(res.to_string().contains("4194304"), "{res}");
    assert_eq!(graph.calls().await, 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_logs_bounded_without(&gw, &"y".repeat(100));
    assert_logs_bounded_without(&gw, &"i".repeat(100));
}
