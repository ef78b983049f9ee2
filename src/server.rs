//! Starting, serving and stopping the gateway.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::caller_auth::{Authenticator, CallerAuth};
use crate::config::Config;
use crate::credential::TokenSource;
use crate::dedupe::Deduplicator;
use crate::host;
use crate::resume::Resumer;
use crate::routes::{AppState, router};
use crate::scope::{Authorizer, CallerScope};

/// Beyond the request deadline, what a request in flight gets to finish after SIGTERM.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(5);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Credential(#[from] crate::credential::CredentialSetupError),
    #[error(transparent)]
    Layout(#[from] crate::host::LayoutError),
    #[error(
        "cannot listen on {addr}: {source}; the port comes from FUNCTIONS_CUSTOMHANDLER_PORT{}",
        bind_hint(source)
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

/// The usual local cause, a second gateway or `func start` already on the port, has a fix.
fn bind_hint(error: &std::io::Error) -> &'static str {
    if error.kind() == std::io::ErrorKind::AddrInUse {
        ": another process is listening there; stop it or set FUNCTIONS_CUSTOMHANDLER_PORT to a free port"
    } else {
        ""
    }
}

/// Builds the gateway from `config` and serves until `shutdown` completes, then lets
/// in-flight requests finish.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let tokens = Arc::new(TokenSource::from_config(&config)?);
    let functions = host::discover(&config.app_root)?;
    // IPv4 loopback: the host polls http://127.0.0.1:<port>/ and nothing else should reach us.
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    tracing::info!(
        %addr,
        graph = %config.graph_base,
        api_version = config.api_version.as_str(),
        credential = tokens.source().name(),
        user_assigned_client_id = config.managed_identity_client_id.as_deref(),
        dry_run = config.dry_run,
        deadline_s = config.deadline.as_secs(),
        version = env!("CARGO_PKG_VERSION"),
        functions = %functions.iter().map(|f| format!("{} at {}", f.name, f.path)).collect::<Vec<_>>().join(", "),
        "resume gateway listening"
    );
    if config.dry_run {
        tracing::warn!(
            "RESUME_DRY_RUN is on: requests are validated and answered, but nothing is sent to Graph"
        );
    }
    let callers = match &config.caller_auth {
        CallerAuth::FunctionKey => None,
        CallerAuth::Entra(settings) => {
            tracing::info!(
                tenant_id = %settings.tenant_id,
                authority = %settings.authority,
                audiences = settings.audiences.join(",").as_str(),
                allowed_app_ids = settings.allowed_app_ids.join(",").as_str(),
                allowed_object_ids = settings.allowed_object_ids.as_ref().map(|o| o.join(",")).as_deref(),
                caller_scope = settings.scope.as_str(),
                "callers must present an Entra ID app token; CALLER_SCOPE={}: {}",
                settings.scope.as_str(),
                match settings.scope {
                    CallerScope::Extension => "each caller resumes only the tasks of custom task extensions that list it in authorizedApps",
                    CallerScope::Tenant => "each allowed caller may resume any task the gateway's identity may resume",
                }
            );
            if config.dry_run && settings.scope == CallerScope::Extension {
                tracing::warn!(
                    "RESUME_DRY_RUN is on: the per-extension check reads Graph, so it is skipped; answers say \"authorization\": \"skipped (dry-run)\" and nothing is resumed"
                );
            }
            Some(Authenticator::start(settings.clone()))
        }
    };
    let dedupe = Arc::new(Deduplicator::default());
    let resumer = Resumer::new(&config, Arc::clone(&tokens));
    let scope = match &config.caller_auth {
        CallerAuth::Entra(settings) if settings.scope == CallerScope::Extension => {
            Some(Authorizer::new(&config, resumer.graph().clone(), tokens))
        }
        _ => None,
    };
    let state = Arc::new(AppState {
        resumer: Arc::new(resumer),
        dedupe: Arc::clone(&dedupe),
        callers,
        scope,
    });

    // Requests in flight get their deadline plus a margin to finish after a shutdown request;
    // the host stops waiting for us soon after anyway, so the wait is bounded.
    let grace = config.deadline + SHUTDOWN_MARGIN;
    let (stopping_tx, mut stopping) = watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    };
    let serving = axum::serve(listener, router(state, &functions)).with_graceful_shutdown(signal);
    let deadline = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = serving => served.map_err(StartError::Serve)?,
        () = deadline => {
            tracing::warn!(grace_s = grace.as_secs(), "requests still open after the shutdown grace period; stopping anyway");
        }
    }
    // Resumes whose callers went away still run to the end: Graph may be about to take them.
    if !dedupe.drain(grace).await {
        tracing::warn!(running = dedupe.running(), "resumes still running at exit");
    }
    Ok(())
}
