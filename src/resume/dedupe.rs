//! Idempotent resumes: one Graph call per target and status, however many requests ask for it
//! at once, and no second call for a repeat soon after a success.
//!
//! The key is the whole target, [`Target::key`]: for a task the navigation path with every id
//! in it, never the result id alone (a request naming the right result under a wrong workflow
//! must not share, or be answered with, the real request's outcome); for an access-package
//! request its path with the paused stage instance.
//!
//! Logic Apps retry, operators re-run, and a resume that Graph already took answers with an
//! error the second time; remembering recent successes turns those repeats into a clean
//! `200 alreadyResumed` instead of a confusing refusal.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::request::Target;
use crate::resume::{Outcome, ResumeError};

/// How long a success is remembered.
pub const SUCCESS_WINDOW: Duration = Duration::from_secs(600);
/// How many successes are remembered at most (a few hundred bytes each).
pub const CAPACITY: usize = 10_000;

type Shared = Result<Outcome, ResumeError>;

/// Why a request was not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DedupeError {
    /// The target is being resumed, or was just resumed, with another outcome.
    #[error("{subject} {} as {existing}; this request asks for {requested}", if *.in_flight { "is being resumed" } else { "was resumed" })]
    Conflict {
        /// The target in words ([`Target::describe`]).
        subject: String,
        existing: &'static str,
        requested: &'static str,
        in_flight: bool,
    },
    /// The shared resume ended without an answer (it panicked).
    #[error("the resume ended without an answer")]
    Lost,
}

enum Entry {
    InFlight {
        status: &'static str,
        result: watch::Receiver<Option<Shared>>,
    },
    Done(Remembered),
}

/// What a repeat answer needs of a success; the rest (the target) comes from the repeat
/// request itself. Kept small: up to [`CAPACITY`] of these stay in memory.
struct Remembered {
    /// [`Target::verdict`].
    status: &'static str,
    graph_status: Option<u16>,
    graph_request_id: Option<Box<str>>,
    client_request_id: Box<str>,
    at: Instant,
}

/// A target as the map keys it: [`Target::key`], compared whole, but hashed by its last 36
/// bytes only, a GUID (the result's, or the stage instance's). Hashing the whole path (about 190 bytes, four
/// times a request) cost more than the rest of the bookkeeping (callgrind); equal paths still
/// hash alike, and the paths of one result under different workflows share a bucket and are
/// told apart by the comparison.
#[derive(Clone, PartialEq, Eq)]
struct Key(Arc<str>);

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let bytes = self.0.as_bytes();
        bytes[bytes.len().saturating_sub(36)..].hash(state);
    }
}

#[derive(Default)]
struct Entries {
    /// Keyed by [`Target::key`].
    /// One allocation per target, shared by the map, `done` and the running task.
    map: HashMap<Key, Entry>,
    /// Successes in the order they were recorded, for expiry and the size cap.
    done: VecDeque<(Key, Instant)>,
}

impl Entries {
    fn forget_old(&mut self, now: Instant, window: Duration, capacity: usize) {
        while let Some((key, at)) = self.done.front().cloned() {
            if at + window > now && self.done.len() <= capacity {
                break;
            }
            self.done.pop_front();
            // Only drop the entry this record is about; a newer one may have replaced it.
            if matches!(self.map.get(&key), Some(Entry::Done(r)) if r.at == at) {
                self.map.remove(&key);
            }
        }
    }
}

/// Shares in-flight resumes and remembers recent successes.
pub struct Deduplicator {
    entries: Mutex<Entries>,
    window: Duration,
    capacity: usize,
    running: AtomicUsize,
    idle: Notify,
}

impl std::fmt::Debug for Deduplicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deduplicator")
            .field("running", &self.running.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for Deduplicator {
    fn default() -> Self {
        Self::new(SUCCESS_WINDOW, CAPACITY)
    }
}

impl Deduplicator {
    /// A deduplicator remembering up to `capacity` successes for `window`.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            window,
            capacity,
            running: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }

    /// Runs `resume` for this result and status unless an identical one is running (then its
    /// answer is shared) or succeeded within the window (then that success is returned, marked
    /// `already_resumed`). The resume runs in its own task, so it completes even when the
    /// caller that started it goes away.
    pub async fn run<F>(self: &Arc<Self>, target: &Target, resume: F) -> Result<Shared, DedupeError>
    where
        F: Future<Output = Shared> + Send + 'static,
    {
        let status = target.verdict();
        // Built before the lookup: a new target (the common case) is inserted with it.
        let key = Key(target.key().into());
        let mut receiver = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.forget_old(Instant::now(), self.window, self.capacity);
            match entries.map.get(&key) {
                Some(Entry::Done(done)) => {
                    if done.status != status {
                        return Err(self.conflict(target, done.status, status, false));
                    }
                    return Ok(Ok(Outcome {
                        target: target.clone(),
                        graph_status: done.graph_status,
                        graph_request_id: done.graph_request_id.as_deref().map(str::to_owned),
                        client_request_id: done.client_request_id.to_string(),
                        attempts: 0,
                        elapsed: Duration::ZERO,
                        dry_run: None,
                        already_resumed: true,
                        confirmed_by_read: false,
                    }));
                }
                Some(Entry::InFlight {
                    status: running,
                    result,
                }) => {
                    if *running != status {
                        return Err(self.conflict(target, running, status, true));
                    }
                    result.clone()
                }
                None => {
                    let (sender, receiver) = watch::channel(None);
                    entries.map.insert(
                        key.clone(),
                        Entry::InFlight {
                            status,
                            result: receiver.clone(),
                        },
                    );
                    self.running.fetch_add(1, Ordering::SeqCst);
                    let this = Arc::clone(self);
                    let task = async move {
                        // Dropped on every exit, panics included: the entry never stays in flight.
                        let _finish = Finish {
                            dedupe: &this,
                            key: &key,
                        };
                        let result = resume.await;
                        this.record(&key, status, &result);
                        let _ = sender.send(Some(result));
                    };
                    // The caller's span (its invocation id) follows the resume into its task.
                    tokio::spawn(task.instrument(tracing::Span::current()));
                    receiver
                }
            }
        };
        match receiver.wait_for(Option::is_some).await {
            Ok(answer) => Ok(answer.clone().expect("waited for Some")),
            Err(_) => Err(DedupeError::Lost),
        }
    }

    fn conflict(
        &self,
        target: &Target,
        existing: &'static str,
        requested: &'static str,
        in_flight: bool,
    ) -> DedupeError {
        DedupeError::Conflict {
            subject: target.describe(),
            existing,
            requested,
            in_flight,
        }
    }

    fn record(&self, key: &Key, status: &'static str, result: &Shared) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            // A dry run resumed nothing, so there is nothing to remember.
            Ok(outcome) if outcome.dry_run.is_none() => {
                let at = Instant::now();
                entries.map.insert(
                    key.clone(),
                    Entry::Done(Remembered {
                        status,
                        graph_status: outcome.graph_status,
                        graph_request_id: outcome.graph_request_id.as_deref().map(Box::from),
                        client_request_id: outcome.client_request_id.as_str().into(),
                        at,
                    }),
                );
                entries.done.push_back((key.clone(), at));
                entries.forget_old(at, self.window, self.capacity);
            }
            // A failure is not remembered: the next request tries again.
            _ => {
                entries.map.remove(key);
            }
        }
    }

    /// How many resumes are running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    #[cfg(test)]
    /// How many results are remembered (running or recently resumed).
    pub fn remembered(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// Waits until no resume is running, or `limit` passes; true when none is left.
    pub async fn drain(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        loop {
            let idle = self.idle.notified();
            if self.running() == 0 {
                return true;
            }
            if tokio::time::timeout_at(until, idle).await.is_err() {
                return self.running() == 0;
            }
        }
    }
}

/// Clears a running entry that ended without being recorded (a panic), and counts it down.
struct Finish<'a> {
    dedupe: &'a Deduplicator,
    key: &'a Key,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let mut entries = self
            .dedupe
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if matches!(entries.map.get(self.key), Some(Entry::InFlight { .. })) {
            entries.map.remove(self.key);
        }
        drop(entries);
        self.dedupe.running.fetch_sub(1, Ordering::SeqCst);
        self.dedupe.idle.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::OperationStatus;
    use crate::request::ids::Guid;
    use crate::request::path::ResumeTarget;
    use std::sync::atomic::AtomicU32;

    fn guid(n: u32) -> Guid {
        Guid::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap()
    }

    fn target(result: &Guid) -> ResumeTarget {
        ResumeTarget::from_ids(guid(1), guid(2), result.clone())
    }

    fn outcome(result: &Guid) -> Outcome {
        Outcome {
            target: Target::Task(
                ResumeTarget::from_ids(guid(1), guid(2), result.clone()),
                OperationStatus::Completed,
            ),
            graph_status: Some(204),
            graph_request_id: Some("r".into()),
            client_request_id: "c".into(),
            attempts: 1,
            elapsed: Duration::ZERO,
            dry_run: None,
            already_resumed: false,
            confirmed_by_read: false,
        }
    }

    /// How a resume fails in a way worth retrying.
    fn unavailable() -> ResumeError {
        ResumeError::Unavailable {
            cause: crate::resume::Unavailable::Deadline(Duration::from_secs(1)),
            retry_after: Duration::from_secs(1),
            attempts: 1,
            client_request_id: "c".into(),
        }
    }

    async fn slow_ok(calls: Arc<AtomicU32>, result: Guid) -> Shared {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(outcome(&result))
    }

    #[tokio::test]
    async fn concurrent_duplicates_share_one_call() {
        let d = Arc::new(Deduplicator::default());
        let calls = Arc::new(AtomicU32::new(0));
        let id = guid(7);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (d, calls, id) = (d.clone(), calls.clone(), id.clone());
                tokio::spawn(async move {
                    d.run(
                        &Target::Task(target(&id), OperationStatus::Completed),
                        slow_ok(calls, id.clone()),
                    )
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().unwrap().is_ok());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A repeat after success is answered from memory.
        let again = d
            .run(
                &Target::Task(target(&id), OperationStatus::Completed),
                slow_ok(calls.clone(), id.clone()),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(again.already_resumed);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let other = d
            .run(
                &Target::Task(target(&id), OperationStatus::Failed),
                slow_ok(calls.clone(), id.clone()),
            )
            .await
            .unwrap_err();
        assert!(matches!(
            other,
            DedupeError::Conflict {
                in_flight: false,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn the_same_result_under_another_workflow_is_another_target() {
        let d = Arc::new(Deduplicator::default());
        let calls = Arc::new(AtomicU32::new(0));
        let id = guid(11);
        let wrong = ResumeTarget::from_ids(guid(99), guid(2), id.clone());
        let first = {
            let (d, calls, wrong) = (d.clone(), calls.clone(), wrong.clone());
            tokio::spawn(async move {
                d.run(
                    &Target::Task(wrong.clone(), OperationStatus::Completed),
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Err(unavailable())
                    },
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        // In flight under the wrong workflow: the right target neither shares nor conflicts.
        let right = d
            .run(
                &Target::Task(target(&id), OperationStatus::Failed),
                slow_ok(calls.clone(), id.clone()),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(!right.already_resumed);
        assert!(first.await.unwrap().unwrap().is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Remembered under its own target only.
        let again = d
            .run(
                &Target::Task(wrong.clone(), OperationStatus::Completed),
                slow_ok(calls.clone(), id.clone()),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(!again.already_resumed);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_different_status_in_flight_conflicts() {
        let d = Arc::new(Deduplicator::default());
        let calls = Arc::new(AtomicU32::new(0));
        let id = guid(8);
        let first = {
            let (d, calls, id) = (d.clone(), calls.clone(), id.clone());
            tokio::spawn(async move {
                d.run(
                    &Target::Task(target(&id), OperationStatus::Completed),
                    slow_ok(calls, id.clone()),
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let e = d
            .run(
                &Target::Task(target(&id), OperationStatus::Failed),
                slow_ok(calls.clone(), id.clone()),
            )
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            DedupeError::Conflict {
                in_flight: true,
                existing: "completed",
                requested: "failed",
                ..
            }
        ));
        assert!(first.await.unwrap().unwrap().is_ok());
    }

    #[tokio::test]
    async fn failures_are_not_remembered() {
        let d = Arc::new(Deduplicator::default());
        let id = guid(9);
        let fail = async { Err(unavailable()) };
        assert!(
            d.run(&Target::Task(target(&id), OperationStatus::Completed), fail)
                .await
                .unwrap()
                .is_err()
        );
        assert_eq!(d.remembered(), 0);
        let calls = Arc::new(AtomicU32::new(0));
        let ok = d
            .run(
                &Target::Task(target(&id), OperationStatus::Failed),
                slow_ok(calls.clone(), id.clone()),
            )
            .await
            .unwrap();
        assert!(ok.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn memory_is_bounded_and_successes_expire() {
        let d = Arc::new(Deduplicator::new(Duration::from_millis(200), 100));
        let calls = Arc::new(AtomicU32::new(0));
        for n in 0..250 {
            let id = guid(n);
            d.run(
                &Target::Task(target(&id), OperationStatus::Completed),
                slow_ok_fast(calls.clone(), id.clone()),
            )
            .await
            .unwrap()
            .unwrap();
        }
        assert_eq!(d.remembered(), 100);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let id = guid(249);
        let again = d
            .run(
                &Target::Task(target(&id), OperationStatus::Completed),
                slow_ok_fast(calls.clone(), id.clone()),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(!again.already_resumed, "expired successes are forgotten");
        assert_eq!(d.remembered(), 1);
    }

    async fn slow_ok_fast(calls: Arc<AtomicU32>, result: Guid) -> Shared {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(outcome(&result))
    }

    #[tokio::test]
    async fn a_panicking_resume_frees_its_entry_and_drains() {
        let d = Arc::new(Deduplicator::default());
        let id = guid(10);
        let e = d
            .run(
                &Target::Task(target(&id), OperationStatus::Completed),
                async { panic!("boom") },
            )
            .await
            .unwrap_err();
        assert_eq!(e, DedupeError::Lost);
        assert!(d.drain(Duration::from_secs(1)).await);
        assert_eq!(d.remembered(), 0);
    }

    #[tokio::test]
    async fn dry_run_outcomes_are_not_remembered() {
        let d = Arc::new(Deduplicator::default());
        let id = guid(11);
        let calls = Arc::new(AtomicU32::new(0));
        for _ in 0..2 {
            let (calls, id) = (calls.clone(), id.clone());
            let simulated = async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let mut o = outcome(&id);
                o.dry_run = Some(crate::resume::DryRun {
                    method: "POST",
                    url: "https://graph.microsoft.com/v1.0/x".into(),
                    body: crate::graph::GraphBody::Task(crate::graph::ResumeBody::new(
                        OperationStatus::Completed,
                        "resume-gateway".into(),
                    )),
                });
                Ok(o)
            };
            let answer = d
                .run(
                    &Target::Task(target(&guid(11)), OperationStatus::Completed),
                    simulated,
                )
                .await
                .unwrap()
                .unwrap();
            assert!(!answer.already_resumed, "a dry run resumed nothing");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(d.remembered(), 0);
    }

    #[tokio::test]
    async fn drain_waits_for_a_resume_whose_caller_hung_up() {
        let d = Arc::new(Deduplicator::default());
        let id = guid(12);
        let calls = Arc::new(AtomicU32::new(0));
        let resume = {
            let (calls, id) = (calls.clone(), id.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(outcome(&id))
            }
        };
        let caller = {
            let (d, id) = (d.clone(), id.clone());
            tokio::spawn(async move {
                d.run(
                    &Target::Task(target(&id), OperationStatus::Completed),
                    resume,
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        caller.abort();
        assert_eq!(d.running(), 1, "the resume runs on without its caller");
        assert!(
            !d.drain(Duration::from_millis(50)).await,
            "a running resume is not drained in 50 ms"
        );
        let started = Instant::now();
        assert!(d.drain(Duration::from_secs(5)).await);
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "drained only after it finished"
        );
        assert_eq!(d.running(), 0);
        assert_eq!(d.remembered(), 1);
    }

    #[test]
    fn a_success_is_forgotten_when_its_window_ends_not_before() {
        let window = Duration::from_secs(600);
        let key = Key(target(&guid(13)).result_path().into());
        let at = Instant::now();
        let mut entries = Entries::default();
        entries.map.insert(
            key.clone(),
            Entry::Done(Remembered {
                status: OperationStatus::Completed.as_str(),
                graph_status: Some(204),
                graph_request_id: None,
                client_request_id: "c".into(),
                at,
            }),
        );
        entries.done.push_back((key, at));
        entries.forget_old(at + window - Duration::from_nanos(1), window, 10);
        assert_eq!((entries.map.len(), entries.done.len()), (1, 1));
        entries.forget_old(at + window, window, 10);
        assert_eq!((entries.map.len(), entries.done.len()), (0, 0));
    }

    #[test]
    fn keys_hash_by_the_result_guid_alone() {
        use std::hash::BuildHasher;
        let hasher = std::collections::hash_map::RandomState::new();
        let hash = |t: &ResumeTarget| hasher.hash_one(Key(t.result_path().into()));
        let one = target(&guid(14));
        let same_result_elsewhere = ResumeTarget::from_ids(guid(98), guid(97), guid(14));
        // Equal last 36 bytes hash alike (and are told apart by comparison)...
        assert_eq!(hash(&one), hash(&same_result_elsewhere));
        assert!(Key(one.result_path().into()) != Key(same_result_elsewhere.result_path().into()));
        // ...and different results spread over the map instead of sharing one bucket.
        let distinct: std::collections::HashSet<u64> =
            (0..64).map(|n| hash(&target(&guid(n)))).collect();
        assert_eq!(distinct.len(), 64);
    }

    #[test]
    fn its_debug_form_shows_how_many_resumes_run() {
        let d = Deduplicator::default();
        assert_eq!(format!("{d:?}"), "Deduplicator { running: 0, .. }");
    }
}
