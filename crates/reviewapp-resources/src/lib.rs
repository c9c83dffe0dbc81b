//! Pure rendering of a `ReviewApp`'s child manifests.
//!
//! [`render`] turns the [`Intent`](reviewapp_state::Intent)s of a transition into a [`Plan`]:
//! concrete Kubernetes objects to server-side apply, objects to delete by name, and the
//! bookkeeping steps around them. No IO and no clock; every manifest is golden-tested.
//!
//! One module per child, each a pure function returning a typed object: [`build_job`],
//! [`deployment`], [`service`], [`ingress`], [`tls_secret`], [`database`] (KubeDB or
//! CloudNativePG) and [`db_copy`]; [`meta`] holds the labels and owner reference they share.
//! Every name comes from [`AppNames`](reviewapp_api::names::AppNames), never re-derived here.

pub mod activator_route;
pub mod build_job;
mod child;
pub mod database;
pub mod db_copy;
pub mod deployment;
mod env;
pub mod ingress;
pub mod meta;
mod plan;
pub mod service;
pub mod tls_secret;

pub use child::{ChildKind, ChildRef};
pub use plan::{
    Action, Manifest, Plan, RenderError, all_children, apply_children, apply_children_in,
    build_job_ref, prune, render, start_build, tear_down,
};
