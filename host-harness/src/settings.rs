//! The administrator's settings behind the component's `settings` import.

use std::num::NonZeroU32;
use std::sync::RwLock;

pub use scim_plugin::{Settings, Token};

pub mod sqlite;

pub use sqlite::SqliteSettings;

/// What `DELETE /Users/{id}` does on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeleteAction {
    /// The user is removed; their id answers 404 from then on.
    #[default]
    Delete,
    /// The user is suspended and kept, with the same id.
    Suspend,
}

impl DeleteAction {
    /// The word the command line and the database use.
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteAction::Delete => "delete",
            DeleteAction::Suspend => "suspend",
        }
    }
}

impl std::str::FromStr for DeleteAction {
    type Err = anyhow::Error;

    fn from_str(word: &str) -> anyhow::Result<DeleteAction> {
        match word {
            "delete" => Ok(DeleteAction::Delete),
            "suspend" => Ok(DeleteAction::Suspend),
            other => anyhow::bail!("delete-action is `delete` or `suspend`, not `{other}`"),
        }
    }
}

/// The host's policy switches over what SCIM may do to its users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policies {
    /// What DELETE does.
    pub delete_action: DeleteAction,
    /// Whether administrators are out of SCIM's reach (no suspend, no delete). Even when they
    /// are not, the last active administrator is never suspended or deleted through SCIM.
    pub protect_admins: bool,
}

impl Default for Policies {
    fn default() -> Self {
        // An identity provider's mistake must not lock the administrators out of the server.
        Policies {
            delete_action: DeleteAction::Delete,
            protect_admins: true,
        }
    }
}

/// Where the host reads the settings in force; asked once per request, so a change applies to
/// the next request without a restart.
pub trait SettingsSource: Send + Sync {
    fn current(&self) -> Settings;

    /// The host's own limit on the requests each token may make per second, if one is set
    /// (see [`crate::rate_limit`]). The component never sees it.
    fn rate_limit(&self) -> Option<NonZeroU32> {
        None
    }
}

/// Settings held in memory, changeable while requests are served.
#[derive(Default)]
pub struct MemorySettings {
    settings: RwLock<Settings>,
}

impl MemorySettings {
    /// Enabled, with one token (stored as its digest) and the given base URL.
    pub fn with_token(token: &str, base_url: &str) -> MemorySettings {
        MemorySettings::new(Settings {
            enabled: true,
            tokens: vec![Token {
                digest: scim_plugin::auth::token_digest(token).to_vec(),
                expires_at: None,
            }],
            base_url: base_url.to_string(),
            now: 0,
        })
    }

    pub fn new(settings: Settings) -> MemorySettings {
        MemorySettings {
            settings: RwLock::new(settings),
        }
    }

    /// Changes the settings; the next request sees the change.
    pub fn update(&self, change: impl FnOnce(&mut Settings)) {
        let mut settings = self
            .settings
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut settings);
    }
}

impl SettingsSource for MemorySettings {
    fn current(&self) -> Settings {
        let settings = self
            .settings
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Settings {
            now: now_seconds(),
            ..settings.clone()
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
