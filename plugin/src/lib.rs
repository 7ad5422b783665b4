//! A SCIM 2.0 service provider for Users (RFC 7643, RFC 7644) for a password-manager server.
//!
//! The protocol lives here as plain Rust: [`handle`] answers one HTTP request given the host's
//! [`UserStore`] and [`Settings`]. Compiled for `wasm32-wasip2`, the crate is a WebAssembly
//! component whose imports are that store and those settings (see `wit/`); compiled natively,
//! the same code serves tests, fuzzing and benchmarks.

pub mod auth;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod handler;
pub mod http;
#[cfg(any(test, feature = "memory-store"))]
pub mod memory;
pub mod patch;
pub mod query;
pub mod store;
pub mod user;
pub mod users;

#[cfg(target_arch = "wasm32")]
mod component;
#[cfg(test)]
mod testing;

pub use error::{ScimError, ScimResult, ScimType};
pub use handler::handle;
pub use http::{Request, Response};
pub use store::{
    ScanPage, Settings, StoreError, StoreResult, Token, User, UserFields, UserPage, UserStore,
};
