//! Whole-process benchmark of the resume gateway against a pass-through baseline, on one
//! machine in one run:
//!
//! ```sh
//! cargo run --release -p bench            # full measurement (about two minutes)
//! cargo run --release -p bench -- --quick # CI: checks that it all works, no timing verdicts
//! ```
//!
//! It builds the release `handler` (`cargo build --release --bin handler`), starts a mock Graph
//! and a mock managed identity endpoint in this process, then for each run starts the gateway
//! and the baseline (`baseline`, this package's second binary) as the Functions host does, and
//! loads each at concurrency 1, 64 and 256. The table holds the median over the runs; ratios
//! and added latency compare the two processes of the same run.

mod inproc;
mod load;
mod mocks;
mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use load::{Bodies, Phase};
use mocks::{Counters, Mocks};
use process::{Memory, Server};

const CONCURRENCY: [usize; 3] = [1, 64, 256];
const SETTLE: Duration = Duration::from_millis(200);
const USAGE: &str = "usage: cargo run --release -p bench [-- [--quick] [--runs N] [--handler PATH]]
  --quick         a short run that checks everything works (CI); no timing verdicts
  --runs N        how many runs the medians are taken over (default 5, quick 1)
  --handler PATH  measure this handler binary instead of building target/release/handler";

struct Options {
    quick: bool,
    runs: Option<usize>,
    handler: Option<PathBuf>,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut o = Self {
            quick: false,
            runs: None,
            handler: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => o.quick = true,
                "--runs" => {
                    let n = args.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0);
                    o.runs = Some(n.ok_or("--runs takes a positive number")?);
                }
                "--handler" => {
                    o.handler = Some(args.next().ok_or("--handler takes a path")?.into())
                }
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(o)
    }
}

/// How much load, how long: bounded in both count and time in either mode.
struct Plan {
    runs: usize,
    /// Starts per run and target that only measure readiness, besides the loaded one.
    extra_starts: usize,
    /// Warm-up before each measured phase (count, time); none in quick mode.
    warmup: Option<(u64, Duration)>,
    /// Per concurrency level: (max requests, max time).
    phases: [(u64, Duration); 3],
    /// In-process loop: batches and iterations per batch.
    inproc: (usize, u32),
    /// Under callgrind: warm-up requests, then counted requests.
    counted: (u64, u64),
}

impl Plan {
    fn new(quick: bool, runs: Option<usize>) -> Self {
        if quick {
            Self {
                runs: runs.unwrap_or(1),
                extra_starts: 1,
                warmup: None,
                phases: [16, 128, 512].map(|n| (n, Duration::from_secs(30))),
                inproc: (20, 100),
                counted: (20, 100),
            }
        } else {
            let s = Duration::from_secs;
            Self {
                runs: runs.unwrap_or(5),
                extra_starts: 3,
                warmup: Some((100_000, Duration::from_millis(500))),
                phases: [(1_000_000, s(2)), (1_000_000, s(3)), (1_000_000, s(3))],
                inproc: (200, 2000),
                counted: (300, 3000),
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Gateway,
    Baseline,
}

/// One measured phase.
#[derive(Debug, Clone, Copy, Default)]
struct Level {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    /// `VmHWM` since the phase (with its warm-up) began.
    memory: Memory,
    /// The measured process's CPU time (all threads, user + system) per answered request.
    cpu_us: f64,
    /// The same for this process: load generator and mocks, identical work for both targets.
    driver_cpu_us: f64,
}

/// One target's figures from one run.
#[derive(Debug, Default)]
struct TargetRun {
    ready: Vec<Duration>,
    idle: Memory,
    levels: Vec<Level>,
    after: Memory,
    ok: u64,
    failed: u64,
    first_failure: Option<String>,
    processes: u64,
    identity_calls: u64,
}

struct Bench {
    rt: tokio::runtime::Runtime,
    mocks: Mocks,
    bodies: Bodies,
    plan: Plan,
    next_tag: u32,
}

impl Bench {
    fn measure(&mut self, exe: &Path) -> Result<TargetRun, String> {
        let env = self.mocks.env();
        let counters = self.mocks.counters.clone();
        let identity_before = Counters::get(&counters.identity_calls);
        let mut run = TargetRun::default();
        let err = |what: &str, e: std::io::Error| format!("{}: {what}: {e}", exe.display());
        for _ in 0..self.plan.extra_starts {
            let s = Server::start(exe, &env).map_err(|e| err("start", e))?;
            run.ready.push(s.ready_after);
            run.processes += 1;
        }
        let server = Server::start(exe, &env).map_err(|e| err("start", e))?;
        run.ready.push(server.ready_after);
        run.processes += 1;
        std::thread::sleep(SETTLE);
        run.idle = server.memory().map_err(|e| err("memory", e))?;

        for (i, &concurrency) in CONCURRENCY.iter().enumerate() {
            if let Err(e) = server.reset_peak() {
                // Without it the peak is the process's so far, still a true upper bound.
                eprintln!("bench: cannot reset VmHWM ({e}); peaks are since start");
            }
            if let Some((max_requests, max_time)) = self.plan.warmup {
                let warm = self.phase(server.addr, concurrency, max_requests, max_time);
                run.count(&warm);
            }
            let (max_requests, max_time) = self.plan.phases[i];
            let cpu_before = server.cpu_time().map_err(|e| err("cpu time", e))?;
            let driver_before =
                process::cpu_time("/proc/self/stat").map_err(|e| err("cpu time", e))?;
            let m = self.phase(server.addr, concurrency, max_requests, max_time);
            let cpu = server.cpu_time().map_err(|e| err("cpu time", e))? - cpu_before;
            let driver = process::cpu_time("/proc/self/stat").map_err(|e| err("cpu time", e))?
                - driver_before;
            run.count(&m);
            // Under one 10 ms tick (a quick phase) there is nothing to divide: not measured.
            let per_request = |d: Duration| {
                if d.is_zero() {
                    f64::NAN
                } else {
                    d.as_secs_f64() * 1e6 / m.ok.max(1) as f64
                }
            };
            run.levels.push(Level {
                per_second: m.per_second(),
                p50: m.latency(0.50),
                p99: m.latency(0.99),
                memory: server.memory().map_err(|e| err("memory", e))?,
                cpu_us: per_request(cpu),
                driver_cpu_us: per_request(driver),
            });
        }
        std::thread::sleep(SETTLE);
        run.after = server.memory().map_err(|e| err("memory", e))?;
        if run.failed > 0 {
            run.first_failure = run
                .first_failure
                .map(|f| format!("{f}\nlast output:\n{}", server.tail()));
        }
        drop(server);
        run.identity_calls = Counters::get(&counters.identity_calls) - identity_before;
        Ok(run)
    }

    /// User-space instructions per request, counted by callgrind over a fixed number of
    /// requests at concurrency 8 after a warm-up: unlike time, a count that the other work on
    /// a shared machine does not move. `Ok(None)` without valgrind.
    fn instructions(&mut self, exe: &Path) -> Result<Option<Counted>, String> {
        if !has_program("valgrind", "--version") || !has_program("callgrind_control", "-h") {
            return Ok(None);
        }
        let err = |what: &str, e: &dyn std::fmt::Display| format!("{}: {what}: {e}", exe.display());
        let name = exe
            .file_name()
            .map_or("target".into(), |n| n.to_string_lossy());
        let out =
            std::env::temp_dir().join(format!("bench-callgrind-{}-{name}", std::process::id()));
        let wrapper = [
            "valgrind".to_owned(),
            "--tool=callgrind".to_owned(),
            format!("--callgrind-out-file={}", out.display()),
        ];
        let server = Server::start_under(&wrapper, exe, &self.mocks.env())
            .map_err(|e| err("start under callgrind", &e))?;
        let (warm, counted) = self.plan.counted;
        let limit = Duration::from_secs(300);
        let warmed = self.phase(server.addr, 4, warm, limit);
        callgrind_control("-z", server.pid()).map_err(|e| err("callgrind_control -z", &e))?;
        let m = self.phase(server.addr, 8, counted, limit);
        callgrind_control("-d", server.pid()).map_err(|e| err("callgrind_control -d", &e))?;
        // The first dump is `<file>.1`; it counts only what ran since the zeroing.
        let dump = PathBuf::from(format!("{}.1", out.display()));
        let text = std::fs::read_to_string(&dump).map_err(|e| err("read the dump", &e))?;
        drop(server);
        for leftover in [dump, out] {
            let _ = std::fs::remove_file(leftover);
        }
        let total: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("summary:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| err("read the dump", &"no summary line"))?;
        let mut requests = TargetRun::default();
        requests.count(&warmed);
        requests.count(&m);
        Ok(Some(Counted {
            per_request: total / m.ok.max(1) as f64,
            requests,
        }))
    }

    fn phase(
        &mut self,
        addr: std::net::SocketAddr,
        concurrency: usize,
        max_requests: u64,
        max_time: Duration,
    ) -> load::Measured {
        self.next_tag += 1;
        let phase = Phase {
            concurrency,
            max_requests,
            max_time,
            tag: self.next_tag,
        };
        self.rt.block_on(load::run(addr, phase, &self.bodies))
    }
}

/// What callgrind counted for one target.
#[derive(Debug, Default)]
struct Counted {
    per_request: f64,
    /// Its requests, answered and failed (only the tally of a `TargetRun` is used).
    requests: TargetRun,
}

fn has_program(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

/// `callgrind_control <command> <pid>`; it returns once the process has done it.
fn callgrind_control(command: &str, pid: u32) -> std::io::Result<()> {
    let out = Command::new("callgrind_control")
        .args([command, &pid.to_string()])
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

impl TargetRun {
    fn count(&mut self, m: &load::Measured) {
        self.ok += m.ok;
        self.failed += m.failed;
        if self.first_failure.is_none() {
            self.first_failure.clone_from(&m.first_failure);
        }
    }
}

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs everything; `Ok(false)` when a request failed or a mock saw something unexpected.
fn run(options: Options) -> Result<bool, String> {
    if cfg!(debug_assertions) {
        return Err("run it optimized: cargo run --release -p bench".into());
    }
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or("cannot find this binary's directory")?;
    // `cargo run` builds only this binary; the baseline is this package's other one.
    cargo_build(&["-p", "bench", "--bin", "baseline"])?;
    let handler = match options.handler {
        Some(path) => path,
        None => {
            // Alone, so that it gets exactly the features `cargo build --release` gives it.
            cargo_build(&["--bin", "handler"])?;
            dir.join("handler")
        }
    };
    let baseline = dir.join("baseline");
    for exe in [&handler, &baseline] {
        if !exe.is_file() {
            return Err(format!("{} is missing", exe.display()));
        }
    }
    let plan = Plan::new(options.quick, options.runs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let mocks = rt
        .block_on(Mocks::start())
        .map_err(|e| format!("mocks: {e}"))?;
    let load_before = loadavg();
    let mut bench = Bench {
        rt,
        mocks,
        bodies: Bodies::default(),
        plan,
        next_tag: 0,
    };

    let mut runs: Vec<(TargetRun, TargetRun)> = Vec::new();
    for r in 0..bench.plan.runs {
        // Alternate who goes first so that drift on a shared machine hits both alike.
        let order = if r % 2 == 0 {
            [Target::Baseline, Target::Gateway]
        } else {
            [Target::Gateway, Target::Baseline]
        };
        let (mut gateway, mut base) = (None, None);
        for target in order {
            eprintln!("bench: run {}/{}: {target:?}", r + 1, bench.plan.runs);
            match target {
                Target::Gateway => gateway = Some(bench.measure(&handler)?),
                Target::Baseline => base = Some(bench.measure(&baseline)?),
            }
        }
        runs.push((gateway.expect("measured"), base.expect("measured")));
    }
    eprintln!("bench: counting instructions under callgrind");
    let counted = match (
        bench.instructions(&handler)?,
        bench.instructions(&baseline)?,
    ) {
        (Some(g), Some(b)) => Some((g, b)),
        _ => {
            eprintln!("bench: valgrind is not installed; instructions per request not counted");
            None
        }
    };
    let (batches, per_batch) = bench.plan.inproc;
    let inproc = inproc::parse_build(Bodies::sample(), batches, per_batch);
    let load_after = loadavg();

    let ok = report(
        &bench,
        &runs,
        counted.as_ref(),
        &handler,
        &baseline,
        inproc,
        options.quick,
    );
    println!(
        "\nMachine: {} cores, {}; load average {load_before} before, {load_after} after.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    Ok(ok)
}

/// `cargo build --release --locked <args>` in the workspace root.
fn cargo_build(args: &[&str]) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // What `cargo run` sets for this package would look like a changed environment to build
    // scripts that track it (ring does) and rebuild half the tree on every run.
    let package_vars = std::env::vars_os().filter_map(|(k, _)| {
        let k = k.to_string_lossy().into_owned();
        let set_by_cargo_run = k.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&k.as_str());
        set_by_cargo_run.then_some(k)
    });
    let mut command = Command::new(cargo);
    for k in package_vars {
        command.env_remove(k);
    }
    let status = command
        .current_dir(root)
        .args(["build", "--release", "--locked"])
        .args(args)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "cargo build --release {}: {status}",
            args.join(" ")
        ))
    }
}

/// The median of the figures that were measured (not NaN).
fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| !v.is_nan());
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// How a figure compares with the baseline.
#[derive(Clone, Copy)]
enum Compare {
    /// gateway / baseline, e.g. `1.30×`.
    Ratio,
    /// gateway − baseline, e.g. `+0.21`.
    Added,
}

/// A figure's target: the text shown and the check on (gateway, ratio, added).
struct Goal {
    text: &'static str,
    met: fn(f64, f64, f64) -> bool,
}

/// Prints the table; returns whether every request succeeded and the mocks saw what they should.
fn report(
    bench: &Bench,
    runs: &[(TargetRun, TargetRun)],
    counted: Option<&(Counted, Counted)>,
    handler: &Path,
    baseline: &Path,
    inproc: Duration,
    quick: bool,
) -> bool {
    let mut rows: Vec<String> = Vec::new();
    let verdict = |goal: &Option<Goal>, g: f64, ratio: f64, added: f64| match goal {
        None => String::new(),
        Some(_) if quick => "(quick run)".into(),
        Some(goal) if (goal.met)(g, ratio, added) => "met".into(),
        Some(_) => "**missed**".into(),
    };
    let mut figure = |name: String,
                      unit: &str,
                      f: &dyn Fn(&TargetRun) -> f64,
                      compare: Compare,
                      goal: Option<Goal>| {
        let g = median(runs.iter().map(|(g, _)| f(g)).collect());
        let b = median(runs.iter().map(|(_, b)| f(b)).collect());
        let ratio = median(runs.iter().map(|(g, b)| f(g) / f(b)).collect());
        let added = median(runs.iter().map(|(g, b)| f(g) - f(b)).collect());
        let shown = |v: f64, text: String| if v.is_finite() { text } else { "n/a".into() };
        let versus = match compare {
            Compare::Ratio => shown(ratio, format!("{ratio:.2}×")),
            Compare::Added => shown(added, format!("{added:+.2} {unit}")),
        };
        rows.push(format!(
            "| {name} | {} | {} | {versus} | {} | {} |",
            shown(g, format!("{g:.2} {unit}")),
            shown(b, format!("{b:.2} {unit}")),
            goal.as_ref().map_or("", |t| t.text),
            verdict(&goal, g, ratio, added),
        ));
    };

    figure(
        "Ready: exec to first answer on `GET /`".into(),
        "ms",
        &|r| median(r.ready.iter().map(|d| ms(*d)).collect()),
        Compare::Ratio,
        Some(Goal {
            text: "< 10 ms",
            met: |g, _, _| g < 10.0,
        }),
    );
    figure(
        "RSS idle (after start, before any request)".into(),
        "MB",
        &|r| mb(r.idle.rss_kib),
        Compare::Ratio,
        Some(Goal {
            text: "< 15 MB",
            met: |g, _, _| g < 15.0,
        }),
    );
    for (i, c) in CONCURRENCY.iter().enumerate() {
        let goal = (*c == 256).then_some(Goal {
            text: "< 40 MB",
            met: |g, _, _| g < 40.0,
        });
        figure(
            format!("RSS peak at concurrency {c}"),
            "MB",
            &|r| mb(r.levels[i].memory.peak_kib),
            Compare::Ratio,
            goal,
        );
    }
    figure(
        "RSS idle after the load".into(),
        "MB",
        &|r| mb(r.after.rss_kib),
        Compare::Ratio,
        None,
    );
    for (i, c) in CONCURRENCY.iter().enumerate() {
        let goal = (*c > 1).then_some(Goal {
            text: ">= 0.9× baseline",
            met: |_, ratio, _| ratio >= 0.9,
        });
        figure(
            format!("Requests/s at concurrency {c}"),
            "/s",
            &|r| r.levels[i].per_second,
            Compare::Ratio,
            goal,
        );
    }
    for (i, c) in CONCURRENCY.iter().enumerate() {
        figure(
            format!("CPU time per request at concurrency {c}"),
            "µs",
            &|r| r.levels[i].cpu_us,
            Compare::Ratio,
            None,
        );
    }
    for (i, c) in CONCURRENCY.iter().enumerate() {
        figure(
            format!("Load generator + mocks CPU per request at concurrency {c}"),
            "µs",
            &|r| r.levels[i].driver_cpu_us,
            Compare::Ratio,
            None,
        );
    }
    for (i, c) in CONCURRENCY.iter().enumerate() {
        figure(
            format!("Latency p50 at concurrency {c}"),
            "ms",
            &|r| ms(r.levels[i].p50),
            Compare::Added,
            None,
        );
        let goal = (*c == 64).then_some(Goal {
            text: "added < 1 ms",
            met: |_, _, added| added < 1.0,
        });
        figure(
            format!("Latency p99 at concurrency {c}"),
            "ms",
            &|r| ms(r.levels[i].p99),
            Compare::Added,
            goal,
        );
    }

    let calls: u64 = runs.iter().map(|(g, _)| g.identity_calls).sum();
    let processes: u64 = runs.iter().map(|(g, _)| g.processes).sum();
    let served: u64 = runs.iter().map(|(g, _)| g.ok).sum();
    let base_calls: u64 = runs.iter().map(|(_, b)| b.identity_calls).sum();
    // Every process lives far less than a token (1 h), so one call each at most.
    let identity_ok = calls <= processes && calls >= runs.len() as u64;
    rows.push(format!(
        "| Identity calls, whole run | {calls} ({processes} processes, {served} requests) | {base_calls} | | 1 per token lifetime (1 h) per process | {} |",
        if identity_ok { "met" } else { "**missed**" }
    ));

    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let (g_size, b_size) = (size(handler), size(baseline));
    let stripped = !contains(handler, b".symtab\0");
    let size_ok = stripped && (g_size as f64) < 12e6;
    rows.push(format!(
        "| Binary size{} | {:.2} MB | {:.2} MB | {:.2}× | < 12 MB stripped | {} |",
        if stripped {
            " (stripped)"
        } else {
            " (NOT stripped)"
        },
        g_size as f64 / 1e6,
        b_size as f64 / 1e6,
        g_size as f64 / b_size as f64,
        if size_ok { "met" } else { "**missed**" }
    ));
    if let Some((g, b)) = counted {
        rows.push(format!(
            "| User-space instructions per request (callgrind, concurrency 8) | {:.0} | {:.0} | {:.2}× | | |",
            g.per_request,
            b.per_request,
            g.per_request / b.per_request
        ));
    }
    rows.push(format!(
        "| In-process parse + validate + build + serialize, per request | {:.2} µs | | | | |",
        inproc.as_secs_f64() * 1e6
    ));

    let mode = if quick { "quick" } else { "full" };
    println!(
        "\nResume gateway vs pass-through baseline: {mode} mode, median of {} run(s); ratios and added latency per run, then median.\n",
        runs.len()
    );
    println!("| Figure | Gateway | Baseline | Gateway vs baseline | Target | |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }

    // Correctness, in every mode: all answered 200, Graph got exactly one resume per answer.
    let counters = &bench.mocks.counters;
    let mut ok = true;
    let tallies: Vec<(&str, &TargetRun)> = runs
        .iter()
        .flat_map(|(g, b)| [("gateway", g), ("baseline", b)])
        .chain(counted.iter().flat_map(|(g, b)| {
            [
                ("gateway under callgrind", &g.requests),
                ("baseline under callgrind", &b.requests),
            ]
        }))
        .collect();
    for (name, r) in &tallies {
        if r.failed > 0 {
            ok = false;
            eprintln!(
                "bench: {name}: {} of {} requests failed; first: {}",
                r.failed,
                r.failed + r.ok,
                r.first_failure.as_deref().unwrap_or("?")
            );
        }
    }
    let answered: u64 = tallies.iter().map(|(_, r)| r.ok).sum();
    let resumes = Counters::get(&counters.graph_resumes);
    let other = Counters::get(&counters.graph_other);
    let refused = Counters::get(&counters.identity_refused);
    println!(
        "\nRequests answered 200: {answered}; resumes Graph received: {resumes}; other Graph requests: {other}; identity requests refused: {refused}."
    );
    if resumes != answered || other > 0 || refused > 0 || !identity_ok {
        ok = false;
        eprintln!(
            "bench: the mocks saw something unexpected (see the line above and the identity row)"
        );
    }
    ok
}

fn contains(path: &Path, needle: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
