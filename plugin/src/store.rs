//! The host's side of the protocol: its users and its settings, as the plugin sees them.
//!
//! These types mirror the `user-store` and `settings` interfaces of the WIT contract. Inside the
//! component they are backed by the imports; a native host implements [`UserStore`] directly,
//! which lets the same protocol code run without WebAssembly (unit tests, fuzzing, the native
//! baseline of the benchmarks).

/// One user of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// SCIM `id`: the host's stable identifier.
    pub id: String,
    /// The login email; immutable through SCIM.
    pub email: String,
    /// SCIM `userName`.
    pub user_name: String,
    /// SCIM `name.givenName`.
    pub given_name: Option<String>,
    /// SCIM `name.familyName`.
    pub family_name: Option<String>,
    /// SCIM `active`; false means suspended.
    pub active: bool,
    /// SCIM `externalId`.
    pub external_id: Option<String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created: u64,
    /// Last change, milliseconds since the Unix epoch.
    pub modified: u64,
    /// Increases on every change; `meta.version`.
    pub version: u64,
}

/// The attributes SCIM sets on a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFields {
    pub email: String,
    pub user_name: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub active: bool,
    pub external_id: Option<String>,
}

impl User {
    /// The user's SCIM-settable attributes.
    pub fn fields(&self) -> UserFields {
        UserFields {
            email: self.email.clone(),
            user_name: self.user_name.clone(),
            given_name: self.given_name.clone(),
            family_name: self.family_name.clone(),
            active: self.active,
            external_id: self.external_id.clone(),
        }
    }
}

/// Why a store call did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No user has that id.
    NotFound,
    /// A unique attribute (`userName`, `email`) is taken by another user.
    Conflict(String),
    /// The user changed since the version the caller read.
    VersionMismatch,
    /// The host's policy refuses the change; the reason is fit for the client's log.
    Refused(String),
    /// The store cannot answer now; the client may retry.
    Unavailable(String),
}

/// One page of users in the store's stable order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserPage {
    pub users: Vec<User>,
    pub total: u64,
}

/// One slice of a full pass over the users.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanPage {
    pub users: Vec<User>,
    pub next: Option<String>,
}

impl ScanPage {
    /// A slice of a pass ordered by a numeric sequence, whose cursor is the last sequence in it.
    /// A slice shorter than `limit` ends the pass.
    pub fn from_sequenced(slice: Vec<(u64, User)>, limit: u32) -> ScanPage {
        let next = match slice.last() {
            Some((last, _)) if slice.len() == limit as usize => Some(last.to_string()),
            _ => None,
        };
        ScanPage {
            users: slice.into_iter().map(|(_, user)| user).collect(),
            next,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The host's users (the WIT `user-store` interface).
///
/// Implementations enforce uniqueness of `user_name` and `email` case-insensitively, and make
/// every write durable before returning.
pub trait UserStore {
    fn get(&self, id: &str) -> StoreResult<Option<User>>;
    fn find_by_user_name(&self, user_name: &str) -> StoreResult<Option<User>>;
    fn find_by_external_id(&self, external_id: &str) -> StoreResult<Vec<User>>;
    fn find_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    fn page(&self, offset: u64, limit: u32) -> StoreResult<UserPage>;
    fn scan(&self, cursor: Option<&str>, limit: u32) -> StoreResult<ScanPage>;
    fn create(&self, fields: UserFields) -> StoreResult<User>;
    fn update(&self, id: &str, expected_version: u64, fields: UserFields) -> StoreResult<User>;
    fn delete(&self, id: &str) -> StoreResult<Option<User>>;
}

/// One valid bearer token, as its SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub digest: Vec<u8>,
    /// Seconds since the Unix epoch after which the token no longer works.
    pub expires_at: Option<u64>,
}

/// The administrator's settings for one request (the WIT `settings` interface).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub enabled: bool,
    pub tokens: Vec<Token>,
    /// The public SCIM base URL, without a trailing slash.
    pub base_url: String,
    /// Seconds since the Unix epoch.
    pub now: u64,
}
