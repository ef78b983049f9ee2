//! Resume gateway for Microsoft Entra Lifecycle Workflows, run as an Azure Functions custom
//! handler. A Logic App (or an operator) posts a task's completion; the gateway validates it,
//! gets a Graph token with the Function App's managed identity, and calls Graph's
//! `taskProcessingResult: resume` with retries inside a deadline.
//!
//! The data path, top to bottom: [`routes`] (request in) → [`callout`] and [`resume_path`]
//! (validated resume) → [`credential`] (token) → [`graph`] (Graph) → [`problem`] (answer),
//! with [`resume`] driving retries.
//! With `CALLER_AUTH=entra`, [`caller_auth`] first verifies the caller's Entra ID token against
//! the tenant keys that [`jwks`] caches, and [`scope`] checks that the task's custom task
//! extension authorizes that caller (`CALLER_SCOPE=extension`).

pub mod caller_auth;
pub mod callout;
pub mod cli;
pub mod config;
pub mod credential;
pub mod dedupe;
mod device_code;
pub mod echo;
pub mod graph;
pub mod host;
pub mod ids;
pub mod jwks;
pub mod logging;
pub mod ops;
pub mod problem;
pub mod pruned;
pub mod resume;
pub mod resume_path;
pub mod routes;
pub mod scope;
pub mod server;
