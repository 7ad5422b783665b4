//! The host's users behind the component's `user-store` import.

pub mod sqlite;

pub use scim_plugin::memory::MemoryStore;
pub use scim_plugin::{ScanPage, StoreError, StoreResult, User, UserFields, UserPage};
pub use sqlite::SqliteStore;

/// A store the host can share across the threads that serve requests.
///
/// It is the protocol's own [`scim_plugin::UserStore`]: the same trait serves the component's
/// import and a native run of the protocol.
pub trait UserStore: scim_plugin::UserStore + Send + Sync {}

impl<T: scim_plugin::UserStore + Send + Sync> UserStore for T {}

/// Milliseconds since the Unix epoch, the store's clock.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
