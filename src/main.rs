//! `handler`: the executable the Azure Functions host starts (see host.json).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use resume_gateway::cli::{self, Cli, Command};
use resume_gateway::config::Config;
// A setting that cannot work exits with EXIT_USAGE: the host restarts the handler (non-zero),
// and the one line on stderr says which setting to fix.
use resume_gateway::logging::{self, LogFormat};
use resume_gateway::ops::{EXIT_FAILED, EXIT_USAGE as EXIT_BAD_SETTING};
use resume_gateway::server;

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
    match runtime.block_on(server::serve(config, shutdown_requested())) {
        // Exit 0 only after a requested shutdown: it tells the host not to restart us.
        Ok(()) => {
            tracing::info!(target: "resume_gateway::server", "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(target: "resume_gateway::server", error = %e, "resume gateway stopped");
            match e {
                // The app's own files or platform settings: fixing them is the remedy.
                server::StartError::Layout(_) | server::StartError::Credential(_) => {
                    ExitCode::from(EXIT_BAD_SETTING)
                }
                _ => ExitCode::from(EXIT_FAILED),
            }
        }
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
    tracing::info!(target: "resume_gateway::server", "shutdown requested: finishing requests in flight");
}
