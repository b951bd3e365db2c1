//! End-to-end tests: one binary, real server over HTTP (see `harness`).

// Test code: panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod apps;
mod harness;
mod smtp;

mod a11y;
mod at_rest;
mod bench_paths;
mod browser;
mod browser_chat;
mod chat;
mod chat_live;
mod chat_moderation;
mod chat_notify;
mod chat_rooms;
mod chat_search;
mod cli;
mod client_address;
mod demo_workspace;
mod edge_answers;
mod fail_closed;
mod idp_accounts;
mod idp_admin;
mod idp_admin_forms;
mod idp_clients;
mod idp_devices;
mod idp_lockout;
mod idp_mfa;
mod idp_mfa_guard;
mod idp_notices;
mod idp_owner_guard;
mod idp_password_rehash;
mod idp_passwords;
mod idp_phone;
mod idp_security;
mod idp_session_devices;
mod idp_sessions;
mod idp_stale_forms;
mod idp_unlock;
mod local_time;
mod mail;
mod mail_admin;
mod members_directory;
mod new_colleagues;
mod oidc_attacks;
mod oidc_egress;
mod oidc_flow;
mod oidc_misuse;
mod oidc_recheck;
mod oidc_request_params;
mod oidc_signing;
mod oidc_support;
mod oidc_token_lifetimes;
mod plumbing;
mod portal;
mod routing;
mod schema_check;
mod search;
mod signin_hardening;
mod smtp_tls;
mod tasks_routines;
mod tenancy;
mod workspace_auth;
