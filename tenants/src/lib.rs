//! # kollegium-tenants — the tenancy layer
//!
//! Owns everything that makes one installation serve many practices: the central
//! registry (`data/registry.sqlite`), provisioning and lifecycle of practices, the node
//! key and per-practice secrets, `Host` → practice resolution, per-practice storage
//! handles and database pools (opened lazily, closed when idle, LRU-capped), and the
//! request plumbing shared by the apps (security headers, CSRF, error pages, request ids,
//! metrics, static assets, base layout), the background-job mechanism every app's follow-up
//! work runs on (`jobs`: the table, the signal, the one node worker; the kinds are registered
//! by their owners), and what every app shares about a practice: the
//! catalogues of roles, specialties and KV regions (`catalog`) and the practice's local
//! time (`time`); and the operator's signed broadcasts (`broadcast`: the operator's feed
//! database, each node's verified copy in `data/broadcasts.sqlite`, the sync task).
//!
//! It must never know about a practice's users, content or logs: no table here has a
//! practice's people or data, and nothing here reads `idp.sqlite` or `platform.sqlite`
//! beyond opening and migrating them for the app that owns them. It must never import
//! `kollegium-idp` or `kollegium-platform`.

pub mod broadcast;
pub mod catalog;
pub mod cause;
pub mod clock;
pub mod db;
pub mod email;
pub mod group_commit;
pub mod http;
pub mod jobs;
pub mod kv;
pub mod mail;
pub mod memory;
pub mod perms;
pub mod prepared;
pub mod provision;
pub mod registry;
pub mod secrets;
pub mod slug;
pub mod store;
pub mod time;
pub mod web;
pub mod worker;

pub use clock::{Clock, SharedClock, SystemClock, UnixTime};
pub use db::{DbKind, PooledConn};
pub use email::Email;
pub use slug::Slug;
pub use store::{Tenant, TenantStore};
