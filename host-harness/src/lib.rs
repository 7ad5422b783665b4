//! `scim-host`: the reference host of the SCIM provisioning component.
//!
//! It loads the component with wasmtime ([`component::PluginHost`]), binds its `user-store` and
//! `settings` imports to the host's own ([`store`], [`settings`]), and serves it over HTTP
//! ([`server`]) with its users, settings and [`activity`] log in one SQLite file ([`db`]). A Rust
//! server embeds this library; the `scim-host` binary runs it on its own.

pub mod activity;
pub mod bench;
pub mod cache;
pub mod component;
pub mod conformance;
pub mod db;
pub mod rate_limit;
pub mod server;
pub mod settings;
pub mod store;

pub use component::{Limits, PluginHost};
