//! End-to-end tests: one binary, real server over HTTP (see `harness`).

// Test code: panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

mod cli;
mod idp_accounts;
mod oidc_attacks;
mod oidc_flow;
mod oidc_misuse;
mod oidc_support;
mod plumbing;
mod routing;
mod tenancy;
