//! A closed-loop load generator: `concurrency` keep-alive connections to one loopback server,
//! each sending the next request as soon as the last one is answered, until a request count or
//! a time limit is reached.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// The sample callout as a Logic App posts it; its result id is replaced per request.
const TEMPLATE: &str = include_str!("../../samples/resume-callout.json");
const TEMPLATE_RESULT_ID: &str = "7c2a9e11-56bd-41a0-9d7c-4b38a8c91d0f";

/// Request bodies with a distinct `taskProcessingResult` id each: the gateway may deduplicate
/// repeated ids, which would measure a cache instead of the resume path.
#[derive(Debug, Clone)]
pub struct Bodies {
    /// The template split around each occurrence of the result id.
    pieces: Vec<&'static str>,
}

impl Default for Bodies {
    fn default() -> Self {
        let pieces: Vec<_> = TEMPLATE.split(TEMPLATE_RESULT_ID).collect();
        assert!(pieces.len() > 1, "the sample callout names its result id");
        Self { pieces }
    }
}

impl Bodies {
    /// The body for request `n` of the load phase `tag`.
    pub fn body(&self, tag: u32, n: u64) -> Vec<u8> {
        let id = format!("{tag:08x}-0000-4000-8000-{n:012x}");
        let mut out = Vec::with_capacity(TEMPLATE.len() + 16);
        for (i, piece) in self.pieces.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(id.as_bytes());
            }
            out.extend_from_slice(piece.as_bytes());
        }
        out
    }

    /// The body as the sample has it, for the in-process measurement.
    pub fn sample() -> &'static [u8] {
        TEMPLATE.as_bytes()
    }
}

/// One load phase.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub concurrency: usize,
    pub max_requests: u64,
    pub max_time: Duration,
    /// Distinguishes this phase's result ids from every other phase's.
    pub tag: u32,
}

/// What a phase measured.
#[derive(Debug, Default, Clone)]
pub struct Measured {
    pub ok: u64,
    pub failed: u64,
    pub first_failure: Option<String>,
    pub elapsed: Duration,
    /// Latency of every answered request in microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of latency, nearest rank.
    pub fn latency(&self, q: f64) -> Duration {
        let n = self.latencies_us.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        Duration::from_micros(u64::from(self.latencies_us[rank - 1]))
    }
}

/// Runs one phase against `addr`'s `POST /api/function-resume`.
pub async fn run(addr: SocketAddr, phase: Phase, bodies: &Bodies) -> Measured {
    let next = Arc::new(AtomicU64::new(0));
    let start_line = Arc::new(Barrier::new(phase.concurrency + 1));
    let mut workers = Vec::with_capacity(phase.concurrency);
    for _ in 0..phase.concurrency {
        let (next, start_line, bodies) = (next.clone(), start_line.clone(), bodies.clone());
        workers.push(tokio::spawn(async move {
            worker(addr, phase, &bodies, &next, &start_line).await
        }));
    }
    // Connections are opened before the clock starts: the host keeps its connections open.
    start_line.wait().await;
    let started = Instant::now();
    let mut all = Measured::default();
    for w in workers {
        let m = w.await.unwrap_or_else(|e| Measured {
            failed: 1,
            first_failure: Some(format!("load worker failed: {e}")),
            ..Measured::default()
        });
        all.ok += m.ok;
        all.failed += m.failed;
        if all.first_failure.is_none() {
            all.first_failure = m.first_failure;
        }
        all.latencies_us.extend(m.latencies_us);
    }
    all.elapsed = started.elapsed();
    all.latencies_us.sort_unstable();
    all
}

async fn worker(
    addr: SocketAddr,
    phase: Phase,
    bodies: &Bodies,
    next: &AtomicU64,
    start_line: &Barrier,
) -> Measured {
    let mut m = Measured::default();
    let connected = connect(addr).await;
    start_line.wait().await;
    let mut sender = match connected {
        Ok(s) => s,
        Err(e) => {
            m.failed += 1;
            m.first_failure = Some(format!("cannot connect to {addr}: {e}"));
            return m;
        }
    };
    let deadline = Instant::now() + phase.max_time;
    let capacity = (phase.max_requests as usize / phase.concurrency).min(1 << 16);
    m.latencies_us.reserve(capacity);
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= phase.max_requests || Instant::now() >= deadline {
            break;
        }
        // As the Functions host forwards a request: with the invocation's id.
        let request = Request::post("/api/function-resume")
            .header(HOST, addr.to_string())
            .header(CONTENT_TYPE, "application/json")
            .header(
                "x-azure-functions-invocationid",
                format!("{:08x}-0000-4000-8000-{n:012x}", phase.tag),
            )
            .body(Full::new(Bytes::from(bodies.body(phase.tag, n))))
            .expect("a static request builds");
        let sent_at = Instant::now();
        let answer = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await;
        let took = sent_at.elapsed();
        match answer {
            Ok((status, _)) if status == 200 => {
                m.ok += 1;
                m.latencies_us
                    .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
            }
            Ok((status, body)) => {
                m.failed += 1;
                m.first_failure
                    .get_or_insert_with(|| format!("{status}: {}", String::from_utf8_lossy(&body)));
            }
            Err(e) => {
                // The connection is gone; this worker stops rather than measure reconnects.
                m.failed += 1;
                m.first_failure.get_or_insert_with(|| e.to_string());
                break;
            }
        }
    }
    m
}

async fn connect(
    addr: SocketAddr,
) -> Result<
    hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    Box<dyn std::error::Error + Send + Sync>,
> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}
