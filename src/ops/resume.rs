//! `handler resume`: the resume function's request, built from flags, validated by the same
//! parser and sent by the same [`Resumer`], so retries, deadline and answers are identical.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{
    EXIT_FAILED, EXIT_OK, EXIT_USAGE, block_on, fail, print_json, report_problem, settings,
};
use crate::http::problem::{CommandError, GatewayError, Problem};
use crate::identity::{CredentialSource, OperatorAccess, TokenSource};
use crate::ops::cli::ResumeArgs;
use crate::request::{OperationStatus, RequestError, Resume, Target};
use crate::resume::{Outcome, Resumed, Resumer};

/// Why the flags do not make a resume request.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error("cannot read the callout from {path}: {source}")]
    CalloutUnreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("the callout in {path} is not JSON: {source}")]
    CalloutNotJson {
        path: String,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Invalid(#[from] RequestError),
}

/// The JSON body an HTTP caller would POST for these flags; the request parser then says
/// what is missing (`--status` for a task, `--stage` for an access-package request).
pub fn request_body(args: &ResumeArgs) -> Result<Value, ArgsError> {
    let mut body = json!({});
    if let Some(status) = args.status {
        body["operationStatus"] = json!(OperationStatus::from(status).as_str());
    }
    if !args.reasons.is_empty() {
        body["statusReasons"] = json!(args.reasons);
    }
    for (field, value) in [("state", &args.state), ("detail", &args.detail)] {
        if let Some(value) = value {
            body[field] = json!(value);
        }
    }
    if let Some(path) = &args.callback_uri_path {
        body["callbackUriPath"] = json!(path);
    } else if let Some(file) = &args.callout {
        body["callout"] = read_callout(file)?;
    } else if let Some(request) = &args.assignment_request {
        body["assignmentRequestId"] = json!(request);
        body["customExtensionStageInstanceId"] = json!(args.stage_instance);
        body["stage"] = json!(args.stage);
    } else {
        body["workflowId"] = json!(args.workflow);
        body["taskId"] = json!(args.task);
        body["taskProcessingResultId"] = json!(args.result);
    }
    if args.callback_uri_path.is_some() {
        // An access-package path needs the stage and its instance beside it.
        if let Some(instance) = &args.stage_instance {
            body["customExtensionStageInstanceId"] = json!(instance);
        }
        if let Some(stage) = &args.stage {
            body["stage"] = json!(stage);
        }
    }
    Ok(body)
}

fn read_callout(file: &std::path::Path) -> Result<Value, ArgsError> {
    let path = file.display().to_string();
    let mut text = String::new();
    let read = if path == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|source| ArgsError::CalloutUnreadable {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ArgsError::CalloutNotJson { path, source })
}

/// `handler resume`.
pub fn main(args: ResumeArgs) -> ExitCode {
    let mut config = match settings(&args.sign_in) {
        Ok(c) => c,
        Err(e) => return fail(&e, args.json),
    };
    // Either switch makes it a dry run: an operator who set RESUME_DRY_RUN meant it.
    config.dry_run |= args.dry_run;

    let request = match request_body(&args)
        .and_then(|body| Resume::parse(body.to_string().as_bytes()).map_err(ArgsError::from))
    {
        Ok(r) => r,
        Err(ArgsError::Invalid(e)) => {
            report_problem(&GatewayError::from(e).problem(), args.json, NOT_RESUMED);
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            let e = CommandError::InvalidArgument {
                argument: Some("--callout".into()),
                message: e.to_string(),
            };
            return fail(&e, args.json);
        }
    };

    let tokens = match TokenSource::for_operator(&config, OperatorAccess::Write) {
        Ok(t) => Arc::new(t),
        Err(e) => return fail(&e.into(), args.json),
    };
    // A person signs in before the request's deadline starts: entering a code takes minutes.
    if tokens.source() == CredentialSource::DeviceCode && !config.dry_run {
        match block_on(tokens.token()) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                report_problem(&CommandError::Identity(e).problem(), args.json, NOT_RESUMED);
                return ExitCode::from(EXIT_FAILED);
            }
            Err(e) => return fail(&e, args.json),
        }
    }
    // A person at a terminal sees why the command waits instead of a silent minute.
    let resumer = Resumer::new(&config, tokens).with_progress(Box::new(|what, wait, attempts| {
        eprintln!(
            "resume-gateway: attempt {attempts} failed ({what}); retrying in {:.1} s",
            wait.as_secs_f64()
        );
    }));
    let resumed = block_on(async move {
        match resumer.resume(&request, Instant::now()).await {
            Ok(outcome) => {
                if args.json {
                    print_json(&Resumed::new(
                        &outcome,
                        request.status_reasons(),
                        outcome.elapsed,
                        None,
                    ));
                } else {
                    print_outcome(&outcome);
                    if !request.status_reasons().is_empty() {
                        println!(
                            "status reasons, recorded here only (Graph's resume action takes none): {}",
                            request.status_reasons().join("; ")
                        );
                    }
                }
                ExitCode::from(EXIT_OK)
            }
            Err(e) => {
                let p = GatewayError::from(e).problem();
                report_problem(&p, args.json, NOT_RESUMED);
                if !args.json {
                    print_request_ids(&p);
                }
                ExitCode::from(EXIT_FAILED)
            }
        }
    });
    resumed.unwrap_or_else(|e| fail(&e, args.json))
}

/// How a refused resume's stderr line starts.
const NOT_RESUMED: &str = "not resumed";

/// The target and the outcome asked for, in words: "task processing result … (workflow …,
/// task …) … as completed", or "access package assignment request … at stage … (instance
/// …) … to continue".
fn described(target: &Target) -> (String, String) {
    match target {
        Target::Task(t, status) => {
            let task = t
                .task_id
                .as_ref()
                .map(|x| format!(", task {x}"))
                .unwrap_or_default();
            (
                format!(
                    "task processing result {} (workflow {}{task})",
                    t.result_id, t.workflow_id
                ),
                format!("as {}", status.as_str()),
            )
        }
        Target::AccessPackage(t) => (
            format!(
                "access package assignment request {} at stage {} (instance {})",
                t.request.request_id,
                t.stage.as_str(),
                t.stage_instance_id
            ),
            match t.state {
                None => "to continue".to_owned(),
                Some(s) => format!("with state {}", s.as_str()),
            },
        ),
    }
}

fn print_outcome(o: &Outcome) {
    let (what, how) = described(&o.target);
    match &o.dry_run {
        Some(dry) => {
            let mut what = what;
            // Sentence case: the line starts with it.
            what.replace_range(..1, &what[..1].to_uppercase());
            println!("dry run: nothing was sent. {what} would be resumed {how}:");
            println!("  {} {}", dry.method, dry.url);
            println!("  {}", serde_json::to_string(&dry.body).unwrap_or_default());
        }
        None => {
            println!("resumed: {what} {how}");
            if o.confirmed_by_read {
                println!(
                    "the resume was refused or went unanswered, but Graph's record shows the task already holds this status"
                );
            }
            println!(
                "Graph answered {}; request-id {}; client-request-id {}; {} attempt(s) in {} ms",
                o.graph_status.map_or_else(|| "-".into(), |s| s.to_string()),
                o.graph_request_id.as_deref().unwrap_or("(none)"),
                o.client_request_id,
                o.attempts,
                o.elapsed.as_millis()
            );
        }
    }
}

/// Graph's ids for a support case, when Graph answered.
fn print_request_ids(p: &Problem) {
    if p.slug() == "identity-unavailable" {
        // Nothing reached Graph: its ids would only suggest otherwise.
        return;
    }
    let graph = p.extensions.get("graph");
    let request_id = graph
        .and_then(|g| g.get("requestId"))
        .and_then(Value::as_str);
    let client_request_id = p.extensions.get("clientRequestId").and_then(Value::as_str);
    if request_id.is_some() || client_request_id.is_some() {
        eprintln!(
            "Graph request-id: {}; client-request-id: {}",
            request_id.unwrap_or("(none)"),
            client_request_id.unwrap_or("(none)")
        );
    }
}
