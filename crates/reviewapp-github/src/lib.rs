//! The GitHub component: pull-request webhooks in as `ReviewApp`s, and each app's state out to
//! its pull request as GitHub Deployments. A client of the Kubernetes API like any other
//! creator of `ReviewApp`s (see `docs/contract.md`); the operator never calls GitHub.
//!
//! ```text
//!  GitHub ──webhook──► webhook (verify, parse) ──► per-PR scheduler ──► sync: GET the PR,
//!                                                                       decide (pure) ──► ReviewApp
//!  ReviewApp watch ──► Classifier ──► per-app scheduler ──► reporter: github_state (pure)
//!                                                           ──► Deployment + status ──► GitHub
//! ```
//!
//! The decisions are pure and unit-tested: [`decide`] (pull request + configuration file → the
//! app's spec, or none and why), [`report::github_state`] (a `ReviewApp` → the deployment
//! state), [`naming`], [`signature`], [`config`]. GitHub is behind the [`port::GitHub`] trait,
//! with the octocrab adapter [`octo::OctocrabGitHub`] and, for tests and benchmarks, a fake API
//! served over HTTP ([`fake`]). Settings, permissions and every decision: `docs/github.md`.

pub mod config;
pub mod decide;
pub mod fake;
pub mod metrics;
pub mod naming;
pub mod octo;
pub mod payload;
pub mod port;
pub mod report;
pub mod reporter;
pub mod service;
pub mod signature;
pub mod sync;
pub mod webhook;

pub use config::{Auth, Credentials, GithubConfig, Secret};
pub use metrics::Metrics;
pub use octo::OctocrabGitHub;
pub use port::{GitHub, GitHubError};
pub use service::{Options, ServiceError, run};
