//! `handler`: the executable the Azure Functions host starts (see host.json).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use resume_gateway::config::Config;
use resume_gateway::ops::cli::{self, Cli, Command};
// A setting that cannot work exits with EXIT_USAGE: the host restarts the handler (non-zero),
// and the one line on stderr says which setting to fix.
use resume_gateway::http;
use resume_gateway::logging::{self, LogFormat};
use resume_gateway::ops::{EXIT_FAILED, EXIT_USAGE as EXIT_BAD_SETTING};

fn main() -> ExitCode {
    // One TLS crypto provider for the whole process (reqwest is built without a default one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The host starts the handler without arguments: that, or `serve`, serves.
    match Cli::try_parse() {
        Ok(Cli {
            command: None | Some(Command::Serve),
        }) => serve(),
        Ok(Cli {
            command: Some(command),
        }) => cli::run(command),
        Err(e) => cli::refuse(e),
    }
}

/// The gateway, as the Functions host runs it.
fn serve() -> ExitCode {
    let rust_log = std::env::var("RUST_LOG").ok();
    let settings = Config::from_env().and_then(|c| {
        let filter = logging::filter(rust_log.clone())?;
        let format = LogFormat::from_setting(
            std::env::var("LOG_FORMAT").ok(),
            std::io::stdout().is_terminal(),
        )?;
        Ok((c, filter, format))
    });
    let (config, filter, format) = match settings {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("resume-gateway: {e}");
            return ExitCode::from(EXIT_BAD_SETTING);
        }
    };
    // Held to the end of main: dropping it writes out the queued log lines.
    let _logs = logging::init(filter, format, rust_log.as_deref().unwrap_or("info"));
    return_large_blocks();

    // One worker: the gateway waits on Graph far more than it computes, and a second worker
    // mostly adds cross-core wake-ups. Measured with `cargo run --release -p bench` (median of
    // 3 runs each): two workers gave 0.56x instead of 0.50x the baseline's requests/s at
    // concurrency 64, but p99 there +1.3 ms instead of -0.2 ms and peak memory at 256 40.1 MB
    // instead of 34.8 MB, both over their targets. Blocking work still has its own pool.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("resume-gateway: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let served = runtime.block_on(async {
        let listener = http::bind(config.port).await?;
        http::serve(config, listener, shutdown_requested()).await
    });
    match served {
        // Exit 0 only after a requested shutdown: it tells the host not to restart us.
        Ok(()) => {
            tracing::info!(target: "resume_gateway::http", "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(target: "resume_gateway::http", error = %e, "resume gateway stopped");
            match e {
                // The app's own files or platform settings: fixing them is the remedy.
                http::StartError::Layout(_) | http::StartError::Credential(_) => {
                    ExitCode::from(EXIT_BAD_SETTING)
                }
                _ => ExitCode::from(EXIT_FAILED),
            }
        }
    }
}

/// glibc raises its mmap threshold each time a large mapped block is freed, so after the first
/// big body every later one (up to 4 MiB) comes from the heap, and the heap keeps it resident:
/// 100 envelopes of 4 MiB left about 10 MB more than the first did (`tests/memory.rs`). Fixed
/// at glibc's default of 128 KiB, blocks that large are mapped and returned when freed; the
/// requests of a normal day never allocate one. musl's allocator returns them anyway.
fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: a plain setting of the C allocator, made before any request runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Completes on SIGTERM (what the host and App Service send) or Ctrl-C.
async fn shutdown_requested() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!(target: "resume_gateway::http", "shutdown requested: finishing requests in flight");
}
