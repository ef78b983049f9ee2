//! Per-extension authorization (`CALLER_SCOPE=extension`): a verified caller may resume a task
//! only if the task's custom task extension lists the caller in its
//! `callbackConfiguration.authorizedApps`, exactly as Graph would decide had the caller called
//! Graph itself. Without it, the gateway's one identity (authorized everywhere) would lend
//! every allowed caller the right to resume every task in the tenant.
//!
//! Everything the decision rests on is read from Graph, never taken from the request: the
//! task (from the path when it names one, otherwise through the taskProcessingResult), its
//! `customTaskExtensionID` argument, and that extension's authorized apps. Reads are cached
//! and single-flight, and every doubt (a read that fails, an unknown extension) refuses.
//!
//! Entitlement Management records nothing to check a caller against: its custom extensions
//! (`accessPackageAssignmentRequestWorkflowExtension`, `accessPackageAssignmentWorkflowExtension`)
//! have a `callbackConfiguration` whose v1.0 type (`customExtensionCallbackConfiguration`)
//! declares only `timeoutDuration`, no `authorizedApps`; their `authenticationConfiguration`
//! names the audience of the token *sent to* the Logic App, not who may call back. So under
//! `CALLER_SCOPE=extension` an access-package resume is refused, never let through unchecked.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::config::Config;
use crate::graph::extension::{self, App, Extension};
use crate::graph::{GetError, GraphClient, GraphFailure};
use crate::identity::{CredentialError, TokenSource};
use crate::request::Target;
use crate::request::ids::Guid;
use crate::request::path::ResumeTarget;

/// `taskDefinitionId`s of the built-in "Run a custom task extension" task; both appear in
/// Microsoft's docs (see the platform notes).
const CUSTOM_EXTENSION_TASK_DEFINITIONS: [&str; 2] = [
    "4262b724-8dba-4fad-afc3-43fcbb497a0e",
    "d79d1fcc-16be-490c-a865-f4533b1639ee",
];
/// The task argument naming the extension; its case varies between Microsoft's docs.
const EXTENSION_ARGUMENT: &str = "customTaskExtensionID";
/// How long a task's extension id is trusted: a task's arguments change only when its
/// workflow is edited.
const TASK_TTL: Duration = Duration::from_secs(600);
/// How long an extension's authorized apps are trusted: a revoked app keeps access this long.
const EXTENSION_TTL: Duration = Duration::from_secs(300);
/// A refusal from the cache re-reads the extension at most this often, so a grant made a
/// minute ago works, and a refused caller cannot make the gateway hammer Graph.
const REREAD_INTERVAL: Duration = Duration::from_secs(60);
/// Entries kept at most; Graph's limits are 100 workflows of 25 tasks and 100 extensions.
const TASK_CAPACITY: usize = 10_000;
const EXTENSION_CAPACITY: usize = 1_000;

/// Why a caller may not resume this task, or why the gateway could not find out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScopeError {
    #[error(
        "The caller (app id {caller_app_id}) is not in the authorizedApps of custom task extension {extension_id}, whose task this is."
    )]
    NotAuthorized {
        caller_app_id: String,
        extension_id: Guid,
    },
    #[error(
        "Custom task extension {extension_id}, named by the task, does not exist, so it authorizes no caller (app id {caller_app_id})."
    )]
    ExtensionNotFound {
        caller_app_id: String,
        extension_id: Guid,
    },
    #[error(
        "{task} {reason}, so no custom task extension authorizes the caller (app id {caller_app_id}) to resume it."
    )]
    NoExtension {
        caller_app_id: String,
        task: String,
        reason: String,
    },
    /// Graph refused to let the gateway read what the decision needs.
    #[error("Graph answered {} when the gateway read {what}: {}", failure.status.unwrap_or(0), failure.message)]
    ReadRefused {
        what: String,
        failure: Box<GraphFailure>,
    },
    /// Graph could not be read in time.
    #[error("Graph did not answer the read of {what} in time after {attempts} attempts{}", last.as_ref().map(|f| format!(": {}", f.message)).unwrap_or_default())]
    ReadUnavailable {
        what: String,
        last: Option<Box<GraphFailure>>,
        attempts: u32,
    },
    #[error("{}", .0.message)]
    Identity(CredentialError),
    /// An access-package resume under `CALLER_SCOPE=extension`: nothing to check it against.
    #[error(
        "Entitlement Management records no app allowed to resume an access-package request (its custom extensions' callbackConfiguration declares only timeoutDuration in Graph v1.0, no authorizedApps), so under CALLER_SCOPE=extension the caller (app id {caller_app_id}) cannot be checked and is refused."
    )]
    AccessPackageUnscoped { caller_app_id: String },
}

/// A positive decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The extension lists the caller.
    Allowed { extension_id: Guid },
    /// Dry-run: nothing is read and nothing is resumed, so nothing is widened.
    SkippedDryRun,
}

impl Verdict {
    /// How the answer describes the decision.
    pub fn describe(&self) -> String {
        match self {
            Self::Allowed { extension_id } => {
                format!("authorized by custom task extension {extension_id}")
            }
            Self::SkippedDryRun => "skipped (dry-run)".into(),
        }
    }
}

/// What a task says about its extension.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TaskLink {
    Extension(Guid),
    /// Not a custom extension task, or one without a usable extension id: why, in words.
    None(String),
}

/// Checks callers against each task's custom task extension.
#[derive(Debug)]
pub struct Authorizer {
    graph: GraphClient,
    tokens: Arc<TokenSource>,
    deadline: Duration,
    dry_run: bool,
    tasks: Flights<TaskLink>,
    extensions: Flights<Arc<[String]>>,
}

impl Authorizer {
    /// An authorizer reading through the resume's Graph client and identity.
    pub fn new(config: &Config, graph: GraphClient, tokens: Arc<TokenSource>) -> Self {
        Self {
            graph,
            tokens,
            deadline: config.deadline,
            dry_run: config.dry_run,
            tasks: Flights::new(TASK_TTL, TASK_CAPACITY),
            extensions: Flights::new(EXTENSION_TTL, EXTENSION_CAPACITY),
        }
    }

    /// Whether `caller_app_id` (lower-case) may resume `target`; reads finish by the request's
    /// deadline (`started` plus `RESUME_DEADLINE_SECONDS`), the one the resume also keeps.
    pub async fn authorize(
        &self,
        caller_app_id: &str,
        target: &Target,
        started: Instant,
    ) -> Result<Verdict, ScopeError> {
        let target = match target {
            Target::Task(t, _) => t,
            // Refused in dry-run too: the answer does not depend on anything read.
            Target::AccessPackage(_) => {
                return Err(ScopeError::AccessPackageUnscoped {
                    caller_app_id: caller_app_id.to_owned(),
                });
            }
        };
        if self.dry_run {
            return Ok(Verdict::SkippedDryRun);
        }
        let deadline = started + self.deadline;
        let asked = Instant::now();
        let (task_key, query) = task_source(target);
        let (link, _) = self
            .tasks
            .get(task_key, self.read_task(task_key, query, deadline))
            .await?;
        let extension_id = match link {
            TaskLink::Extension(id) => id,
            TaskLink::None(reason) => {
                return Err(ScopeError::NoExtension {
                    caller_app_id: caller_app_id.to_owned(),
                    task: describe_task(target),
                    reason,
                });
            }
        };
        let key = extension_id.as_str();
        let (apps, read_at) = self
            .extensions
            .get(
                key,
                self.read_extension(&extension_id, caller_app_id, deadline),
            )
            .await?;
        if lists(&apps, caller_app_id) {
            return Ok(Verdict::Allowed { extension_id });
        }
        // A cached "no" may predate a grant: look once more, unless this request just did.
        if read_at < asked {
            let reread = self.extensions.reread(
                key,
                asked,
                REREAD_INTERVAL,
                self.read_extension(&extension_id, caller_app_id, deadline),
            );
            if let Some(fresh) = reread.await {
                let (apps, _) = fresh?;
                if lists(&apps, caller_app_id) {
                    return Ok(Verdict::Allowed { extension_id });
                }
            }
        }
        Err(ScopeError::NotAuthorized {
            caller_app_id: caller_app_id.to_owned(),
            extension_id,
        })
    }

    async fn get(&self, url: &str, what: &str, deadline: Instant) -> Result<Value, ScopeError> {
        let token = self.tokens.token().await.map_err(ScopeError::Identity)?;
        match self.graph.get_retrying(url, token.secret(), deadline).await {
            Ok(fetched) => Ok(fetched.body),
            Err(e) => Err(read_failed(what, e)),
        }
    }

    async fn read_task(
        &self,
        path: &str,
        query: &str,
        deadline: Instant,
    ) -> Result<TaskLink, ScopeError> {
        let url = format!("{}?{query}", self.graph.url(path));
        let body = self.get(&url, path, deadline).await?;
        // Through a result, the task is its expanded `task`; otherwise the body is the task.
        let task = if query.starts_with("$expand") {
            body.get("task").unwrap_or(&Value::Null)
        } else {
            &body
        };
        Ok(task_link(task))
    }

    /// The extension's authorized apps, read as `handler check` and `handler grant` read them.
    /// An answer without `authorizedApps` (should Graph ever ignore the expansion) lists
    /// nobody, so it refuses rather than allows.
    async fn read_extension(
        &self,
        id: &Guid,
        caller_app_id: &str,
        deadline: Instant,
    ) -> Result<Arc<[String]>, ScopeError> {
        let token = self.tokens.token().await.map_err(ScopeError::Identity)?;
        match extension::read(&self.graph, token.secret(), id, deadline).await {
            Ok((extension, _)) => Ok(authorized_apps(&extension).into()),
            Err(GetError::Refused(failure)) if failure.status == Some(404) => {
                Err(ScopeError::ExtensionNotFound {
                    caller_app_id: caller_app_id.to_owned(),
                    extension_id: id.clone(),
                })
            }
            Err(e) => Err(read_failed(&format!("custom task extension {id}"), e)),
        }
    }
}

/// A failed read, as the answer will describe it.
fn read_failed(what: &str, error: GetError) -> ScopeError {
    match error {
        GetError::Refused(failure) => ScopeError::ReadRefused {
            what: what.to_owned(),
            failure: Box::new(failure),
        },
        GetError::Unavailable { last, attempts } => ScopeError::ReadUnavailable {
            what: what.to_owned(),
            last: last.map(Box::new),
            attempts,
        },
        // An answer of another shape: fail closed, and let the caller try again.
        other => ScopeError::ReadUnavailable {
            what: what.to_owned(),
            last: Some(Box::new(GraphFailure::without_answer(other.to_string()))),
            attempts: 1,
        },
    }
}

/// Where the task is read: the task itself when the path names it (`…/tasks/{t}`, under a
/// version too), otherwise the taskProcessingResult with its task expanded. Returns the path
/// (also the cache key) and the query.
///
/// Trusting the path's task relies on containment: `taskProcessingResults` is contained in the
/// task (`ContainsTarget`), so Graph resolves the resume's result inside that task and cannot
/// reach another task's result through it. It saves a read per request (results are unique).
fn task_source(target: &ResumeTarget) -> (&str, &'static str) {
    let result = target.result_path();
    match (&target.task_id, result.rfind("/taskProcessingResults/")) {
        (Some(_), Some(at)) => (&result[..at], "$select=id,taskDefinitionId,arguments"),
        _ => (result, "$expand=task"),
    }
}

fn describe_task(target: &ResumeTarget) -> String {
    match &target.task_id {
        Some(t) => format!("Task {t}"),
        None => format!(
            "The task of taskProcessingResult {}",
            target.result_id.as_str()
        ),
    }
}

/// The extension a task runs, from its `taskDefinitionId` and `customTaskExtensionID` argument.
fn task_link(task: &Value) -> TaskLink {
    let definition = task
        .get("taskDefinitionId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !CUSTOM_EXTENSION_TASK_DEFINITIONS
        .iter()
        .any(|d| d.eq_ignore_ascii_case(definition))
    {
        return TaskLink::None(format!(
            "is not a custom task extension task (taskDefinitionId {definition:?})"
        ));
    }
    let argument = task
        .get("arguments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|a| {
            a.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(EXTENSION_ARGUMENT))
        })
        .and_then(|a| a.get("value"))
        .and_then(Value::as_str);
    match argument.map(|v| (v, Guid::parse(v))) {
        Some((_, Some(id))) => TaskLink::Extension(id),
        // Checked: the id goes into the next URL the gateway calls with its identity.
        Some((v, None)) => TaskLink::None(format!(
            "names an extension {v:?} that is not an id ({EXTENSION_ARGUMENT})"
        )),
        None => TaskLink::None(format!("has no {EXTENSION_ARGUMENT} argument")),
    }
}

/// The lower-case app ids an extension authorizes: each entry's `appId`, or its `id` when the
/// entry has no `appId`.
fn authorized_apps(extension: &Extension) -> Vec<String> {
    extension
        .authorized_apps()
        .iter()
        .filter_map(App::identifier)
        .filter(|a| !a.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

fn lists(apps: &[String], caller_app_id: &str) -> bool {
    apps.iter().any(|a| a.eq_ignore_ascii_case(caller_app_id))
}

/// A time-limited, size-bounded cache whose misses for one key share one read, in the manner
/// of the token cache (`credential::TokenSource`): the first asker reads while the others wait
/// on a lock, then take its value, or its failure if they asked before it failed.
struct Flights<V> {
    ttl: Duration,
    capacity: usize,
    slots: Mutex<HashMap<Box<str>, Slot<V>>>,
}

struct Slot<V> {
    /// The value and when it was read.
    value: Option<(V, Instant)>,
    failure: Option<(Instant, ScopeError)>,
    /// The last forced re-read.
    reread: Option<Instant>,
    reading: Arc<tokio::sync::Mutex<()>>,
}

impl<V> Default for Slot<V> {
    fn default() -> Self {
        Self {
            value: None,
            failure: None,
            reread: None,
            reading: Arc::default(),
        }
    }
}

impl<V> std::fmt::Debug for Flights<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.slots.lock().map(|s| s.len()).unwrap_or_default();
        f.debug_struct("Flights").field("entries", &len).finish()
    }
}

impl<V: Clone> Flights<V> {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            slots: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Slot<V>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh(&self, slot: &Slot<V>, now: Instant) -> Option<(V, Instant)> {
        slot.value
            .as_ref()
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.ttl)
            .cloned()
    }

    /// The value for `key` with when it was read: cached while fresh, else from `read`, run
    /// by one caller at a time.
    async fn get(
        &self,
        key: &str,
        read: impl Future<Output = Result<V, ScopeError>>,
    ) -> Result<(V, Instant), ScopeError> {
        let asked = Instant::now();
        let reading = {
            let mut slots = self.lock();
            if let Some(hit) = slots.get(key).and_then(|s| self.fresh(s, asked)) {
                return Ok(hit);
            }
            self.slot(&mut slots, key).reading.clone()
        };
        let _reading = reading.lock().await;
        {
            let mut slots = self.lock();
            let slot = self.slot(&mut slots, key);
            if let Some(hit) = self.fresh(slot, Instant::now()) {
                return Ok(hit);
            }
            if let Some((at, e)) = &slot.failure
                && *at >= asked
            {
                return Err(e.clone());
            }
        }
        self.store(key, read.await)
    }

    /// Reads `key` again, cache or not, unless it was read since `asked` (then that value) or
    /// re-read less than `interval` ago (then `None`).
    async fn reread(
        &self,
        key: &str,
        asked: Instant,
        interval: Duration,
        read: impl Future<Output = Result<V, ScopeError>>,
    ) -> Option<Result<(V, Instant), ScopeError>> {
        let reading = self.slot(&mut self.lock(), key).reading.clone();
        let _reading = reading.lock().await;
        {
            let mut slots = self.lock();
            let slot = self.slot(&mut slots, key);
            if let Some((value, at)) = &slot.value
                && *at >= asked
            {
                return Some(Ok((value.clone(), *at)));
            }
            let now = Instant::now();
            if slot
                .reread
                .is_some_and(|at| now.saturating_duration_since(at) < interval)
            {
                return None;
            }
            slot.reread = Some(now);
        }
        Some(self.store(key, read.await))
    }

    fn store(&self, key: &str, read: Result<V, ScopeError>) -> Result<(V, Instant), ScopeError> {
        let now = Instant::now();
        let mut slots = self.lock();
        let slot = self.slot(&mut slots, key);
        match read {
            Ok(value) => {
                slot.value = Some((value.clone(), now));
                slot.failure = None;
                Ok((value, now))
            }
            Err(e) => {
                slot.failure = Some((now, e.clone()));
                Err(e)
            }
        }
    }

    /// The slot for `key`, made room for: expired entries go first, then the oldest.
    fn slot<'a>(&self, slots: &'a mut HashMap<Box<str>, Slot<V>>, key: &str) -> &'a mut Slot<V> {
        if !slots.contains_key(key) && slots.len() >= self.capacity {
            let now = Instant::now();
            slots.retain(|_, s| self.fresh(s, now).is_some());
            if slots.len() >= self.capacity {
                let oldest = slots
                    .iter()
                    .min_by_key(|(_, s)| s.value.as_ref().map(|(_, at)| *at))
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    slots.remove(&k);
                }
            }
        }
        slots.entry(key.into()).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const EXT: &str = "1e2f3a4b-5c6d-4e7f-8a9b-0c1d2e3f4a5b";

    fn task(definition: &str, arguments: Value) -> Value {
        json!({"id": "t", "taskDefinitionId": definition, "arguments": arguments})
    }

    #[test]
    fn both_custom_extension_definitions_and_any_case_of_the_argument_name() {
        for definition in CUSTOM_EXTENSION_TASK_DEFINITIONS
            .iter()
            .map(|d| d.to_string())
            .chain([CUSTOM_EXTENSION_TASK_DEFINITIONS[0].to_ascii_uppercase()])
        {
            for name in [
                "customTaskExtensionID",
                "customtaskextensionid",
                "CustomTaskExtensionId",
            ] {
                let t = task(
                    &definition,
                    json!([{"name": "other", "value": "x"}, {"name": name, "value": EXT.to_ascii_uppercase()}]),
                );
                assert_eq!(
                    task_link(&t),
                    TaskLink::Extension(Guid::parse(EXT).unwrap()),
                    "{definition} {name}"
                );
            }
        }
    }

    #[test]
    fn other_tasks_and_unusable_arguments_link_to_nothing() {
        let cases = [
            task(
                "70b29d51-b59a-4773-9280-8841dfd3f2ea",
                json!([{"name": "customTaskExtensionID", "value": EXT}]),
            ),
            task(CUSTOM_EXTENSION_TASK_DEFINITIONS[1], json!([])),
            task(
                CUSTOM_EXTENSION_TASK_DEFINITIONS[1],
                json!([{"name": "customTaskExtensionID", "value": "../../users"}]),
            ),
            json!({"id": "t"}),
            Value::Null,
        ];
        for t in cases {
            assert!(matches!(task_link(&t), TaskLink::None(_)), "{t}");
        }
    }

    #[test]
    fn authorized_apps_use_app_id_then_id() {
        let apps = |ext: Value| authorized_apps(&serde_json::from_value(ext).unwrap());
        let ext = json!({"id": EXT, "callbackConfiguration": {
        "@odata.type": "#microsoft.graph.identityGovernance.customTaskExtensionCallbackConfiguration",
        "authorizedApps": [
            {"id": "OBJ-1", "appId": "APP-1"},
            {"id": "only-id"},
            {"appId": null, "id": "obj-4"},
            {}
        ]}});
        assert_eq!(apps(ext.clone()), ["app-1", "only-id", "obj-4"]);
        assert!(lists(&apps(ext.clone()), "app-1"));
        assert!(!lists(&apps(ext), "obj-1"), "id only counts without appId");
        assert!(apps(json!({"id": EXT, "callbackConfiguration": {}})).is_empty());
        assert!(apps(json!({"id": EXT})).is_empty());
    }

    #[test]
    fn the_task_is_read_from_the_path_when_it_names_one_else_through_the_result() {
        let w = "156bd1a0-5d7c-4b38-a8c9-1d0f7c2a9e11";
        let t = "2a9e1156-bd1a-4d7c-8b38-a8c91d0f7c2a";
        let r = "7c2a9e11-56bd-41a0-9d7c-4b38a8c91d0f";
        let base = "/identityGovernance/lifecycleWorkflows";
        for (path, source, query) in [
            (
                format!("{base}/workflows/{w}/tasks/{t}/taskProcessingResults/{r}/resume"),
                format!("{base}/workflows/{w}/tasks/{t}"),
                "$select=id,taskDefinitionId,arguments",
            ),
            (
                format!(
                    "{base}/deletedItems/workflows/{w}/versions/3/tasks/{t}/taskProcessingResults/{r}/microsoft.graph.identityGovernance.resume"
                ),
                format!("{base}/deletedItems/workflows/{w}/versions/3/tasks/{t}"),
                "$select=id,taskDefinitionId,arguments",
            ),
            (
                format!("{base}/workflows/{w}/runs/{t}/taskProcessingResults/{r}/resume"),
                format!("{base}/workflows/{w}/runs/{t}/taskProcessingResults/{r}"),
                "$expand=task",
            ),
            (
                format!("{base}/workflows/{w}/taskReports/{t}/taskProcessingResults/{r}/resume"),
                format!("{base}/workflows/{w}/taskReports/{t}/taskProcessingResults/{r}"),
                "$expand=task",
            ),
        ] {
            let target = ResumeTarget::parse(&path).unwrap();
            assert_eq!(task_source(&target), (source.as_str(), query), "{path}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_share_one_read_and_failures_are_not_kept() {
        let flights = Arc::new(Flights::<u32>::new(Duration::from_secs(60), 10));
        let reads = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (flights, reads) = (flights.clone(), reads.clone());
                tokio::spawn(async move {
                    flights
                        .get("k", async {
                            reads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(7)
                        })
                        .await
                        .unwrap()
                        .0
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 7);
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);

        let failing = || async {
            Err::<u32, _>(ScopeError::ReadUnavailable {
                what: "x".into(),
                last: None,
                attempts: 1,
            })
        };
        assert!(flights.get("f", failing()).await.is_err());
        // A later request reads again: a failure is shared only with those already waiting.
        assert_eq!(flights.get("f", async { Ok(3) }).await.unwrap().0, 3);
    }

    #[tokio::test]
    async fn a_reread_happens_at_most_once_per_interval() {
        let flights = Flights::<u32>::new(Duration::from_secs(60), 10);
        flights.get("k", async { Ok(1) }).await.unwrap();
        let asked = Instant::now() + Duration::from_millis(1);
        tokio::time::sleep(Duration::from_millis(2)).await;
        let minute = Duration::from_secs(60);
        let first = flights.reread("k", asked, minute, async { Ok(2) }).await;
        assert_eq!(first.unwrap().unwrap().0, 2);
        let asked = Instant::now() + Duration::from_millis(1);
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(
            flights
                .reread("k", asked, minute, async { Ok(3) })
                .await
                .is_none()
        );
        assert_eq!(flights.get("k", async { Ok(4) }).await.unwrap().0, 2);
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_capacity() {
        let flights = Flights::<usize>::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            flights
                .get(&i.to_string(), async move { Ok(i) })
                .await
                .unwrap();
        }
        assert!(flights.lock().len() <= 3);
        assert!(flights.lock().contains_key("9"));
    }
}
