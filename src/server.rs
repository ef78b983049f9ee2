//! Starting, serving and stopping the gateway.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::caller_auth::{Authenticator, CallerAuth};
use crate::config::Config;
use crate::credential::TokenSource;
use crate::resume::Resumer;
use crate::routes::{AppState, router};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Credential(#[from] crate::credential::CredentialSetupError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

/// Builds the gateway from `config` and serves until `shutdown` completes, then lets
/// in-flight requests finish.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let tokens = Arc::new(TokenSource::from_config(&config)?);
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
                "callers must present an Entra ID app token"
            );
            Some(Authenticator::start(settings.clone()))
        }
    };
    let state = Arc::new(AppState {
        resumer: Resumer::new(&config, tokens),
        callers,
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(StartError::Serve)
}
