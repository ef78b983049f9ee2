//! `handler pending`: task processing results of a workflow that are still in progress, that
//! is, waiting for a custom task extension's Logic App (or this gateway) to resume them.
//!
//! Graph calls: `GET …/workflows/{id}/runs` (every page), then for each run that has not
//! finished `GET …/runs/{id}/taskProcessingResults?$filter=processingStatus eq 'inProgress'`
//! (every page). A finished run has no waiting task, and a task waits at most the extension's
//! `timeoutDuration` (PT3H at most), so unfinished runs are where stuck tasks live.

use std::process::ExitCode;
use std::time::Duration;

use azure_core::time::{OffsetDateTime, parse_rfc3339};
use serde::{Deserialize, Serialize};

use super::{human_age, invoked_as, run_signed_in, shell_word};
use crate::config::Config;
use crate::graph::{GetError, GraphClient};
use crate::http::problem::CommandError;
use crate::identity::{OperatorAccess, READ_PERMISSION, TokenSource, WRITE_PERMISSION};
use crate::ops::cli::PendingArgs;
use crate::request::ids::Guid;
use crate::request::path::ResumeTarget;

const LIFECYCLE: &str = "/identityGovernance/lifecycleWorkflows";
/// Run states after which nothing in the run can be waiting.
const FINISHED: &[&str] = &["completed", "completedWithErrors", "canceled", "failed"];

/// A run, as far as this command reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    id: String,
    processing_status: Option<String>,
}

/// A task processing result, as far as this command reads it: ids and times only, so the
/// subject's other properties are never even parsed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskResult {
    id: String,
    processing_status: Option<String>,
    created_date_time: Option<String>,
    subject: Option<IdOnly>,
    task: Option<TaskRef>,
}

#[derive(Debug, Deserialize)]
struct IdOnly {
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskRef {
    id: Option<String>,
    display_name: Option<String>,
}

/// One waiting task, as printed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingTask {
    pub task_processing_result_id: String,
    pub task_id: Option<String>,
    pub task_name: Option<String>,
    pub subject_id: Option<String>,
    pub run_id: String,
    pub created_date_time: Option<String>,
    pub age_seconds: Option<u64>,
    /// What `handler resume --callback-uri-path` (or the resume function) takes.
    pub callback_uri_path: Option<String>,
}

/// The whole answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub workflow_id: String,
    pub runs_total: usize,
    pub runs_scanned: usize,
    pub pending: Vec<PendingTask>,
}

/// `handler pending`.
pub fn main(args: PendingArgs) -> ExitCode {
    let Some(workflow) = args.workflow else {
        let e = CommandError::InvalidArgument {
            argument: Some("--access-packages".into()),
            message: super::access_package::NO_PENDING_FILTER.into(),
        };
        return super::fail(&e, args.json);
    };
    run_signed_in(
        &args.sign_in,
        OperatorAccess::Read,
        args.json,
        |config, tokens| async move { scan(&config, &tokens, &workflow).await },
        print_report,
    )
}

async fn scan(
    config: &Config,
    tokens: &TokenSource,
    workflow: &Guid,
) -> Result<Report, CommandError> {
    let graph = GraphClient::new(config);
    let token = tokens.token().await?;
    let runs: Vec<Run> = graph
        .list(
            &format!("{LIFECYCLE}/workflows/{workflow}/runs"),
            token.secret(),
            config.deadline,
        )
        .await
        .map(parse_items)
        .map_err(|source| graph_error("listing the workflow's runs", source, config.deadline))?;
    let unfinished: Vec<&Run> = runs
        .iter()
        .filter(|r| {
            !r.processing_status
                .as_deref()
                .is_some_and(|s| FINISHED.iter().any(|f| f.eq_ignore_ascii_case(s)))
        })
        .collect();

    let now = OffsetDateTime::now_utc();
    let mut pending = Vec::new();
    for run in &unfinished {
        let results: Vec<TaskResult> = graph
            .list(
                &format!(
                    "{LIFECYCLE}/workflows/{workflow}/runs/{}/taskProcessingResults?$filter=processingStatus%20eq%20'inProgress'",
                    run.id
                ),
                token.secret(),
                config.deadline,
            )
            .await
            .map(parse_items)
            .map_err(|source| {
                graph_error("listing a run's task processing results", source, config.deadline)
            })?;
        pending.extend(
            results
                .into_iter()
                // Graph applies the filter; this keeps the answer right if a proxy drops it.
                .filter(|r| {
                    r.processing_status
                        .as_deref()
                        .is_none_or(|s| s.eq_ignore_ascii_case("inProgress"))
                })
                .map(|r| pending_task(workflow, &run.id, r, now)),
        );
    }
    pending.sort_by_key(|p| std::cmp::Reverse(p.age_seconds));
    Ok(Report {
        workflow_id: workflow.to_string(),
        runs_total: runs.len(),
        runs_scanned: unfinished.len(),
        pending,
    })
}

/// Items that do not have the expected shape are skipped rather than failing the listing.
fn parse_items<T: serde::de::DeserializeOwned>(items: Vec<serde_json::Value>) -> Vec<T> {
    items
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect()
}

fn pending_task(workflow: &Guid, run_id: &str, r: TaskResult, now: OffsetDateTime) -> PendingTask {
    let task_id = r.task.as_ref().and_then(|t| t.id.clone());
    let ids = (
        task_id.as_deref().and_then(Guid::parse),
        Guid::parse(&r.id),
        Guid::parse(run_id),
    );
    // The task form is what Lifecycle Workflows puts in callouts; the run form needs no task id.
    let callback_uri_path = match ids {
        (Some(task), Some(result), _) => {
            Some(ResumeTarget::from_ids(workflow.clone(), task, result).path)
        }
        (None, Some(result), Some(run)) => ResumeTarget::parse(&format!(
            "{LIFECYCLE}/workflows/{workflow}/runs/{run}/taskProcessingResults/{result}/resume"
        ))
        .ok()
        .map(|t| t.path),
        _ => None,
    };
    let age_seconds = r
        .created_date_time
        .as_deref()
        .and_then(|t| parse_rfc3339(t).ok())
        .map(|created| {
            let age = now - created;
            u64::try_from(age.whole_seconds()).unwrap_or(0)
        });
    PendingTask {
        task_processing_result_id: r.id,
        task_id,
        task_name: r.task.and_then(|t| t.display_name),
        subject_id: r.subject.and_then(|s| s.id),
        run_id: run_id.to_owned(),
        created_date_time: r.created_date_time,
        age_seconds,
        callback_uri_path,
    }
}

/// A failed listing, with what this command knows about why.
fn graph_error(what: &'static str, source: GetError, deadline: Duration) -> CommandError {
    let remedy = match &source {
        GetError::Refused(f) => match f.status {
            Some(401 | 403) => Some(
                format!("Reading workflow runs needs {READ_PERMISSION} (or {WRITE_PERMISSION}) for an application, or the Lifecycle Workflows Reader (or Administrator) role for a signed-in user (RESUME_CREDENTIAL=device-code)."),
            ),
            Some(404) => Some(
                "Check the workflow id (Entra admin center → Lifecycle workflows → Workflows); a deleted workflow's runs are not listed here.".into(),
            ),
            _ => None,
        },
        GetError::Unavailable { .. } => Some(format!(
            "Graph kept throttling or failing; run the command again later, or give each page more time with RESUME_DEADLINE_SECONDS (now {} s).",
            deadline.as_secs()
        )),
        _ => None,
    };
    CommandError::Graph {
        what,
        source: Box::new(source),
        remedy,
    }
}

fn print_report(r: &Report) {
    let program = invoked_as();
    println!(
        "Workflow {}: {} task(s) waiting, in {} unfinished run(s) of {}.",
        r.workflow_id,
        r.pending.len(),
        r.runs_scanned,
        r.runs_total
    );
    for p in &r.pending {
        println!();
        println!("  result   {}", p.task_processing_result_id);
        println!(
            "  task     {} ({})",
            p.task_name.as_deref().unwrap_or("(unnamed)"),
            p.task_id.as_deref().unwrap_or("no task id")
        );
        println!(
            "  subject  {}",
            p.subject_id.as_deref().unwrap_or("(unknown)")
        );
        println!("  run      {}", p.run_id);
        println!(
            "  age      {}",
            p.age_seconds
                .map(human_age)
                .unwrap_or_else(|| "(unknown)".into())
        );
        match &p.callback_uri_path {
            // Each line runs as shown, by the program this process was started as.
            Some(path) => {
                let resume = format!("{program} resume --callback-uri-path {}", shell_word(path));
                println!("  complete {resume} --status completed");
                println!("  fail     {resume} --status failed");
            }
            None => println!("  resume   (no resume path: Graph gave no usable ids)"),
        }
    }
}
