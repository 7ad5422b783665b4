//! The settings kept in the SQLite database: whether SCIM is on, the bearer tokens' digests,
//! the public base URL and the policy switches, shared by the server and the command line.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use rusqlite::{Connection, OptionalExtension as _, params};

use super::{DeleteAction, Policies, Settings, SettingsSource, Token, now_seconds};
use crate::db::Database;

/// How long a new token works unless told otherwise: a year, so that a forgotten token dies on
/// its own while an identity provider's configuration outlives a few maintenance windows.
pub const DEFAULT_TOKEN_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// What distinguishes this host's tokens from other secrets (in a leaked log, a secret scanner).
const TOKEN_PREFIX: &str = "scim_";

/// 32 random bytes: 256 bits, beyond guessing whatever the rate of tries.
const TOKEN_BYTES: usize = 32;

const ENABLED: &str = "enabled";
const BASE_URL: &str = "base_url";
const DELETE_ACTION: &str = "delete_action";
const PROTECT_ADMINS: &str = "protect_admins";
const RATE_LIMIT: &str = "rate_limit";

/// The settings as stored, for the command line (`settings show`); never a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSettings {
    pub enabled: bool,
    /// The configured public base URL; none means the server derives it from its address.
    pub base_url: Option<String>,
    pub policies: Policies,
    /// Requests a second each token may make; none: no limit.
    pub rate_limit: Option<NonZeroU32>,
    pub tokens: Vec<TokenRecord>,
}

/// One token as stored: when it was made and when it stops working, in seconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub created: u64,
    pub expires_at: Option<u64>,
    digest: Vec<u8>,
}

/// Whether SCIM was ever set up in this database (enabled or disabled since).
pub fn is_initialized(db: &Database) -> anyhow::Result<bool> {
    db.read(|connection| value(connection, ENABLED))
        .map(|enabled| enabled.is_some())
        .context("reading the settings")
}

/// The settings as stored.
pub fn load(db: &Database) -> anyhow::Result<StoredSettings> {
    db.read(|connection| {
        Ok(StoredSettings {
            enabled: value(connection, ENABLED)?.as_deref() == Some("true"),
            base_url: value(connection, BASE_URL)?,
            policies: read_policies(connection)?,
            rate_limit: read_rate_limit(connection)?,
            tokens: tokens(connection)?,
        })
    })
    .context("reading the settings")
}

/// Turns SCIM on with a new token, which replaces any earlier one; returns the token, which
/// exists nowhere else from then on (only its digest is stored).
pub fn enable(db: &Database, base_url: Option<&str>, validity: Duration) -> anyhow::Result<String> {
    let mut issued = String::new();
    enable_delivering(db, base_url, validity, |token| {
        issued = token.to_string();
        Ok(())
    })?;
    Ok(issued)
}

/// Like [`enable`], but the new token goes to `deliver` (the administrator's terminal) before
/// the change commits. If it cannot be delivered (standard output closed or full), nothing
/// changes and the earlier token still works: otherwise it would be revoked with its
/// replacement shown to no one, and provisioning would stop until someone noticed.
pub fn enable_delivering(
    db: &Database,
    base_url: Option<&str>,
    validity: Duration,
    deliver: impl FnOnce(&str) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let base_url = base_url.map(normalize_base_url).transpose()?;
    write_new_token(db, validity, deliver, |transaction| {
        set(transaction, ENABLED, "true")?;
        match &base_url {
            Some(Some(base_url)) => set(transaction, BASE_URL, base_url),
            Some(None) => unset(transaction, BASE_URL),
            None => Ok(()),
        }
    })
    .context("turning SCIM on")
}

/// Turns SCIM off: every request is refused with 403 until it is enabled again.
pub fn disable(db: &Database) -> anyhow::Result<()> {
    db.write(|transaction| set(transaction, ENABLED, "false"))
        .context("turning SCIM off")
}

/// Replaces the tokens with a new one; the old ones stop working at the next request.
pub fn rotate_token(db: &Database, validity: Duration) -> anyhow::Result<String> {
    let mut issued = String::new();
    rotate_token_delivering(db, validity, |token| {
        issued = token.to_string();
        Ok(())
    })?;
    Ok(issued)
}

/// Like [`rotate_token`], with the new token delivered before the change commits, as
/// [`enable_delivering`] does: if it cannot be shown, the old token stays the valid one.
pub fn rotate_token_delivering(
    db: &Database,
    validity: Duration,
    deliver: impl FnOnce(&str) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    write_new_token(db, validity, deliver, |_| Ok(())).context("rotating the SCIM token")
}

/// One write that makes `change`, replaces the tokens with a new one and delivers it, all or
/// nothing: a failed delivery rolls the write back.
fn write_new_token(
    db: &Database,
    validity: Duration,
    deliver: impl FnOnce(&str) -> std::io::Result<()>,
    change: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> anyhow::Result<()> {
    let token = new_token()?;
    let mut undelivered = None;
    let written = db.write(|transaction| {
        change(transaction)?;
        replace_tokens(transaction, &token, validity)?;
        deliver(&token).map_err(|error| {
            undelivered = Some(error.to_string());
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the new token was not delivered".into()),
            )
        })
    });
    if let Some(why) = undelivered {
        anyhow::bail!(
            "the new token could not be shown ({why}), so nothing was changed: the earlier \
             token still works"
        );
    }
    Ok(written?)
}

/// Sets the public base URL used in `Location` and `meta.location`; an empty one clears it, so
/// that the server derives it from the address it listens on.
pub fn set_base_url(db: &Database, base_url: &str) -> anyhow::Result<()> {
    let base_url = normalize_base_url(base_url)?;
    db.write(|transaction| match &base_url {
        Some(base_url) => set(transaction, BASE_URL, base_url),
        None => unset(transaction, BASE_URL),
    })
    .context("setting the base URL")
}

/// Sets what DELETE does.
pub fn set_delete_action(db: &Database, action: DeleteAction) -> anyhow::Result<()> {
    db.write(|transaction| set(transaction, DELETE_ACTION, action.as_str()))
        .context("setting the delete action")
}

/// Sets whether administrators are out of SCIM's reach.
pub fn set_protect_admins(db: &Database, protect: bool) -> anyhow::Result<()> {
    let value = if protect { "true" } else { "false" };
    db.write(|transaction| set(transaction, PROTECT_ADMINS, value))
        .context("setting protect-admins")
}

/// Sets the requests a second each token may make; 0 lifts the limit.
pub fn set_rate_limit(db: &Database, per_second: u32) -> anyhow::Result<()> {
    db.write(|transaction| set(transaction, RATE_LIMIT, &per_second.to_string()))
        .context("setting the rate limit")
}

/// The rate limit; none when it was never set, or set to 0.
fn read_rate_limit(connection: &Connection) -> rusqlite::Result<Option<NonZeroU32>> {
    Ok(value(connection, RATE_LIMIT)?.and_then(|limit| limit.parse().ok()))
}

/// The policy switches, with their defaults for what was never set.
pub fn read_policies(connection: &Connection) -> rusqlite::Result<Policies> {
    let defaults = Policies::default();
    let delete_action = match value(connection, DELETE_ACTION)?.as_deref() {
        Some("suspend") => DeleteAction::Suspend,
        Some("delete") => DeleteAction::Delete,
        _ => defaults.delete_action,
    };
    let protect_admins = match value(connection, PROTECT_ADMINS)?.as_deref() {
        Some("false") => false,
        Some("true") => true,
        _ => defaults.protect_admins,
    };
    Ok(Policies {
        delete_action,
        protect_admins,
    })
}

/// A new bearer token: `scim_` and 32 random bytes in base64url without padding.
pub fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|error| anyhow::anyhow!("{error}"))
        .context("drawing random bytes for a token")?;
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Ok(format!("{TOKEN_PREFIX}{encoded}"))
}

/// A base URL as `Location` headers and `meta.location` will carry it: an absolute `http` or
/// `https` URL with a host and no credentials, query or fragment, without a trailing slash;
/// none for an empty one (cleared). Control characters are refused outright, since a URL
/// parser would silently drop a CR or LF that would otherwise end up in a response header.
pub fn normalize_base_url(base_url: &str) -> anyhow::Result<Option<String>> {
    let trimmed = base_url.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.chars().any(char::is_control) {
        anyhow::bail!("the base URL must not contain control characters");
    }
    let url = url::Url::parse(trimmed)
        .with_context(|| format!("the base URL `{trimmed}` is not a valid URL"))?;
    if !matches!(url.scheme(), "https" | "http") {
        anyhow::bail!("the base URL must start with https:// or http://, not `{trimmed}`");
    }
    if url.host_str().is_none_or(str::is_empty) {
        anyhow::bail!("the base URL `{trimmed}` has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        anyhow::bail!("the base URL must not carry credentials");
    }
    if url.query().is_some() || url.fragment().is_some() {
        anyhow::bail!("the base URL `{trimmed}` must not have a query or a fragment");
    }
    Ok(Some(url.as_str().trim_end_matches('/').to_string()))
}

fn value(connection: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    connection
        .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()
}

fn set(connection: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

fn unset(connection: &Connection, key: &str) -> rusqlite::Result<()> {
    connection.execute("DELETE FROM settings WHERE key = ?1", [key])?;
    Ok(())
}

fn tokens(connection: &Connection) -> rusqlite::Result<Vec<TokenRecord>> {
    let mut statement =
        connection.prepare_cached("SELECT digest, created, expires_at FROM tokens ORDER BY id")?;
    let rows = statement.query_map([], |row| {
        Ok(TokenRecord {
            digest: row.get(0)?,
            created: row.get(1)?,
            expires_at: row.get(2)?,
        })
    })?;
    rows.collect()
}

fn replace_tokens(
    connection: &Connection,
    token: &str,
    validity: Duration,
) -> rusqlite::Result<()> {
    let now = now_seconds();
    let digest = scim_plugin::auth::token_digest(token);
    connection.execute("DELETE FROM tokens", [])?;
    connection.execute(
        "INSERT INTO tokens (digest, created, expires_at) VALUES (?1, ?2, ?3)",
        params![&digest[..], now, now.saturating_add(validity.as_secs())],
    )?;
    Ok(())
}

/// The settings in force for the server, read from the database.
///
/// Reading them costs a `PRAGMA data_version` per request: the number changes only when another
/// connection (the command line, or a write of this server) commits, and only then are the
/// settings read again. So `scim-host settings …` applies to the next request, without a
/// restart.
pub struct SqliteSettings {
    db: Arc<Database>,
    /// The base URL when none is configured: the server's own address.
    default_base_url: String,
    cache: Mutex<Cache>,
}

struct Cache {
    /// A connection of its own: `data_version` is only meaningful on the same connection.
    connection: Connection,
    data_version: Option<i64>,
    settings: Settings,
    rate_limit: Option<NonZeroU32>,
}

impl SqliteSettings {
    pub fn new(db: Arc<Database>, default_base_url: &str) -> anyhow::Result<SqliteSettings> {
        let connection = db.dedicated_connection()?;
        Ok(SqliteSettings {
            db,
            default_base_url: default_base_url.trim_end_matches('/').to_string(),
            cache: Mutex::new(Cache {
                connection,
                data_version: None,
                settings: Settings::default(),
                rate_limit: None,
            }),
        })
    }

    /// The database these settings live in.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the settings again if anything committed since the last read.
    fn refresh(&self, cache: &mut Cache) -> rusqlite::Result<()> {
        let version: i64 = cache
            .connection
            .pragma_query_value(None, "data_version", |row| row.get(0))?;
        if cache.data_version == Some(version) {
            return Ok(());
        }
        let transaction = cache.connection.transaction()?;
        let settings = Settings {
            enabled: value(&transaction, ENABLED)?.as_deref() == Some("true"),
            tokens: tokens(&transaction)?
                .into_iter()
                .map(|token| Token {
                    digest: token.digest,
                    expires_at: token.expires_at,
                })
                .collect(),
            base_url: value(&transaction, BASE_URL)?
                .unwrap_or_else(|| self.default_base_url.clone()),
            now: 0,
        };
        let rate_limit = read_rate_limit(&transaction)?;
        drop(transaction);
        cache.settings = settings;
        cache.rate_limit = rate_limit;
        cache.data_version = Some(version);
        Ok(())
    }
}

impl SqliteSettings {
    /// The cache, brought up to date.
    fn refreshed(&self) -> MutexGuard<'_, Cache> {
        let mut cache = self.lock();
        if let Err(error) = self.refresh(&mut cache) {
            // The settings last read stay in force: a busy file must not turn SCIM off, and
            // before the first successful read they are the default (SCIM off).
            tracing::error!(error = %error, "reading the SCIM settings failed; the last ones stay");
        }
        cache
    }
}

impl SettingsSource for SqliteSettings {
    fn current(&self) -> Settings {
        Settings {
            now: now_seconds(),
            ..self.refreshed().settings.clone()
        }
    }

    fn rate_limit(&self) -> Option<NonZeroU32> {
        self.refreshed().rate_limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_prefixed_base64url_of_32_bytes_and_differs_each_time() {
        let first = new_token().unwrap();
        let second = new_token().unwrap();
        assert!(first.starts_with("scim_"));
        assert_eq!(first.len(), "scim_".len() + 43);
        assert!(
            first[5..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(first, second);
    }

    #[test]
    fn settings_change_from_another_connection_is_seen_by_the_next_read() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("scim.db")).unwrap();
        let settings = SqliteSettings::new(db.clone(), "http://127.0.0.1:1/scim/v2").unwrap();
        assert!(!settings.current().enabled);

        let token = enable(&db, None, DEFAULT_TOKEN_VALIDITY).unwrap();
        let current = settings.current();
        assert!(current.enabled);
        assert_eq!(current.base_url, "http://127.0.0.1:1/scim/v2");
        assert_eq!(current.tokens.len(), 1);
        assert_eq!(
            current.tokens[0].digest,
            scim_plugin::auth::token_digest(&token).to_vec()
        );

        // Another process: a connection of its own on the same file.
        let other = Database::open(db.path()).unwrap();
        disable(&other).unwrap();
        set_base_url(&other, "https://vault.example.com/scim/v2/").unwrap();
        let current = settings.current();
        assert!(!current.enabled);
        assert_eq!(current.base_url, "https://vault.example.com/scim/v2");
    }

    #[test]
    fn rotation_replaces_the_token_and_sets_a_year_of_validity() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("scim.db")).unwrap();
        let first = enable(&db, None, DEFAULT_TOKEN_VALIDITY).unwrap();
        let second = rotate_token(&db, DEFAULT_TOKEN_VALIDITY).unwrap();
        let stored = load(&db).unwrap();
        assert_eq!(stored.tokens.len(), 1);
        assert_eq!(
            stored.tokens[0].digest,
            scim_plugin::auth::token_digest(&second).to_vec()
        );
        assert_ne!(
            stored.tokens[0].digest,
            scim_plugin::auth::token_digest(&first).to_vec()
        );
        let validity = stored.tokens[0].expires_at.unwrap() - stored.tokens[0].created;
        assert_eq!(validity, 365 * 24 * 60 * 60);
    }

    #[test]
    fn policies_default_to_delete_and_protected_admins() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("scim.db")).unwrap();
        assert_eq!(load(&db).unwrap().policies, Policies::default());
        set_delete_action(&db, DeleteAction::Suspend).unwrap();
        set_protect_admins(&db, false).unwrap();
        let policies = load(&db).unwrap().policies;
        assert_eq!(
            policies,
            Policies {
                delete_action: DeleteAction::Suspend,
                protect_admins: false
            }
        );
    }

    #[test]
    fn a_token_that_cannot_be_shown_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("scim.db")).unwrap();
        let first = enable(&db, None, DEFAULT_TOKEN_VALIDITY).unwrap();
        let closed = || Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe));

        let error = rotate_token_delivering(&db, DEFAULT_TOKEN_VALIDITY, |_| closed()).unwrap_err();
        let error = format!("{error:#}");
        assert!(error.contains("nothing was changed"), "{error}");
        disable(&db).unwrap();
        let error = enable_delivering(&db, None, DEFAULT_TOKEN_VALIDITY, |_| closed()).unwrap_err();
        let error = format!("{error:#}");
        assert!(error.contains("nothing was changed"), "{error}");

        let stored = load(&db).unwrap();
        assert!(!stored.enabled, "the failed enable left SCIM off");
        assert_eq!(stored.tokens.len(), 1);
        assert_eq!(
            stored.tokens[0].digest,
            scim_plugin::auth::token_digest(&first).to_vec(),
            "the first token is still the valid one"
        );
    }

    #[test]
    fn base_urls_are_absolute_http_urls_without_control_characters() {
        for refused in [
            "vault.example.com/scim/v2",
            "ftp://vault.example.com/scim/v2",
            "https://a b.com/x",
            "https://vault.example.com/x\r\nX-Injected: 1",
            "https://user:secret@vault.example.com/scim/v2",
            "https://vault.example.com/scim/v2?x=1",
            "https://vault.example.com/scim/v2#top",
        ] {
            assert!(normalize_base_url(refused).is_err(), "{refused:?}");
        }
        assert_eq!(
            normalize_base_url(" https://Vault.example.com:8443/scim/v2/ ").unwrap(),
            Some("https://vault.example.com:8443/scim/v2".to_string())
        );
        assert_eq!(normalize_base_url("").unwrap(), None);

        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("scim.db")).unwrap();
        set_base_url(&db, "https://vault.example.com/scim/v2").unwrap();
        set_base_url(&db, "").unwrap();
        assert_eq!(
            load(&db).unwrap().base_url,
            None,
            "an empty base URL clears it"
        );
    }
}
