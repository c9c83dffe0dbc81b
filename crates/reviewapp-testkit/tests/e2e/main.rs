//! End-to-end tests of the emulator through the real kube client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod apply;
mod common;
mod crd;
mod crud;
mod delete;
mod deployments;
mod faults;
mod jobs;
mod lease;
mod log;
mod outage;
mod pages;
mod patch;
mod status;
mod ttl;
mod validation;
mod watch;
