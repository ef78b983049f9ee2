//! The gateway's own CPU work per request, without any I/O: parse and validate the body, build
//! Graph's resume body, serialize it. A plain timed loop (median over batches) instead of
//! criterion, which would add a large dependency tree for one figure.

use std::hint::black_box;
use std::time::{Duration, Instant};

use resume_gateway::graph::ResumeBody;
use resume_gateway::request::ResumeRequest;

/// The source the gateway sends when the caller gives none (its `RESUME_SOURCE` default).
const DEFAULT_SOURCE: &str = "resume-gateway";

/// Median time of one parse + validate + build + serialize over `batches` batches.
pub fn parse_build(body: &[u8], batches: usize, per_batch: u32) -> Duration {
    // Fails loudly if the sample stops being a valid request: a refusal is not the path measured.
    let check = ResumeRequest::parse(body).expect("the sample callout is a valid request");
    assert!(
        !serde_json::to_vec(&build(&check))
            .unwrap_or_default()
            .is_empty()
    );

    let mut per_call: Vec<Duration> = (0..batches)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..per_batch {
                let request = ResumeRequest::parse(black_box(body)).expect("valid sample");
                let json = serde_json::to_vec(&build(&request)).expect("serializable");
                black_box((json, &request.target.path));
            }
            started.elapsed() / per_batch
        })
        .collect();
    per_call.sort_unstable();
    per_call[per_call.len() / 2]
}

/// As the gateway builds it: the request's source is cloned into the body.
fn build(request: &ResumeRequest) -> ResumeBody {
    ResumeBody::new(
        request.status,
        request
            .source
            .clone()
            .unwrap_or_else(|| DEFAULT_SOURCE.to_owned()),
    )
}
