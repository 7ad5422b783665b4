//! The administrator's settings behind the component's `settings` import.

use std::sync::RwLock;

pub use scim_plugin::{Settings, Token};

/// Where the host reads the settings in force; asked once per request, so a change applies to
/// the next request without a restart.
pub trait SettingsSource: Send + Sync {
    fn current(&self) -> Settings;
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
