//! Resume gateway for Microsoft Entra Lifecycle Workflows (and Entitlement Management's
//! access-package custom extensions), run as an Azure Functions custom handler. A Logic App (or
//! an operator) posts a task's completion, or an access-package request's callout; the gateway
//! validates it, gets a Graph token with the Function App's managed identity, and calls Graph's
//! `taskProcessingResult: resume` (or `accessPackageAssignmentRequest: resume`) with retries
//! inside a deadline.
//!
//! # Code map, in call order
//!
//! | step | module | job |
//! |---|---|---|
//! | request in | [`http`] | listener, connections, routes, the Functions host's two ways of handing requests over |
//! | who is calling | `caller` | caller tokens (`CALLER_AUTH=entra`), their signing keys, and the per-extension check (`CALLER_SCOPE`) |
//! | validated request | [`request`] | the body, the callbackUriPath grammars, GUIDs: a [`request::Resume`] of either kind or a precise refusal |
//! | dedupe, resume | `resume` | one Graph call per target however many ask (dedupe), the resume with its reconcile read |
//! | token | `identity` | the managed identity (or an operator's sign-in) through `azure_identity`, cached single-flight |
//! | Graph | [`graph`] | one attempt of each Graph call, its answer classified |
//! | retries | `retry` | the one retry engine every Graph and identity call goes through: backoff, `Retry-After`, deadline |
//! | answer | `http::problem` | every error mapped once to an RFC 9457 problem with a stable type and a remedy |
//!
//! Beside the path: [`config`] reads and checks every setting once at start; [`logging`] writes
//! the log lines; [`ops`] runs the operator commands (`handler pending|resume|check|grant`) on
//! the same pieces. Dependencies only point down this table (a test, `tests/architecture.rs`,
//! fails on an import cycle between these modules).

pub mod config;
pub mod graph;
pub mod http;
pub mod logging;
pub mod ops;
pub mod request;

mod caller;
mod identity;
mod outbound;
mod resume;
mod retry;
