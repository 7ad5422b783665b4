//! The activity log: every provisioning write (create, update, suspend, restore, delete) and
//! every refused write request, with its time, outcome and the client's User-Agent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use rusqlite::params;

use crate::db::Database;
use crate::store::{
    ScanPage, StoreError, StoreResult, User, UserFields, UserPage, UserStore, now_millis,
};

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    /// `create`, `update`, `suspend`, `restore`, `delete`, or the CLI's own actions.
    pub action: String,
    /// `ok`, `refused`, or `refused (STATUS)` for a request the protocol turned down.
    pub outcome: String,
    /// The user concerned (`userName (id)`) or, for a refused request, its path.
    pub target: Option<String>,
    /// Why it was refused.
    pub detail: Option<String>,
    pub user_agent: Option<String>,
}

/// The activity table of the database.
pub struct ActivityLog {
    db: Arc<Database>,
}

impl ActivityLog {
    pub fn new(db: Arc<Database>) -> ActivityLog {
        ActivityLog { db }
    }

    /// Appends an entry. A failure is logged and does not fail the request: the write it
    /// describes is already committed. Under load the entry shares a batch, and its fsync, with
    /// other writes (see [`Database::write`]).
    pub fn record(&self, entry: &Entry) {
        let outcome = self.db.write(|transaction| {
            transaction.execute(
                "INSERT INTO activity (at, action, outcome, target, detail, user_agent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    entry.at,
                    entry.action,
                    entry.outcome,
                    entry.target,
                    entry.detail,
                    entry.user_agent
                ],
            )
        });
        if let Err(error) = outcome {
            tracing::error!(error = %error, action = %entry.action, "recording activity failed");
        }
    }

    /// The latest `limit` entries, newest first.
    pub fn recent(&self, limit: u32) -> anyhow::Result<Vec<Entry>> {
        self.db
            .read(|connection| {
                let mut statement = connection.prepare(
                    "SELECT at, action, outcome, target, detail, user_agent FROM activity
                     ORDER BY seq DESC LIMIT ?1",
                )?;
                let rows = statement.query_map([limit], |row| {
                    Ok(Entry {
                        at: row.get(0)?,
                        action: row.get(1)?,
                        outcome: row.get(2)?,
                        target: row.get(3)?,
                        detail: row.get(4)?,
                        user_agent: row.get(5)?,
                    })
                })?;
                rows.collect()
            })
            .context("reading the activity log")
    }
}

/// One request's view of the store: every write it makes, and every refusal of the host's
/// policy, goes to the activity log with the client's User-Agent.
pub struct RecordingStore {
    inner: Arc<dyn UserStore>,
    log: Arc<ActivityLog>,
    user_agent: Option<String>,
    refusal_recorded: AtomicBool,
}

impl RecordingStore {
    pub fn new(
        inner: Arc<dyn UserStore>,
        log: Arc<ActivityLog>,
        user_agent: Option<String>,
    ) -> RecordingStore {
        RecordingStore {
            inner,
            log,
            user_agent,
            refusal_recorded: AtomicBool::new(false),
        }
    }

    /// Whether a refusal of this request is in the log already (so the HTTP layer does not
    /// record it twice).
    pub fn recorded_refusal(&self) -> bool {
        self.refusal_recorded.load(Ordering::Relaxed)
    }

    fn record<T>(&self, action: &str, target: String, outcome: &StoreResult<T>) {
        let (outcome, detail) = match outcome {
            Ok(_) => ("ok", None),
            Err(StoreError::Refused(reason)) => {
                self.refusal_recorded.store(true, Ordering::Relaxed);
                tracing::warn!(
                    action,
                    target = %target,
                    reason = %reason,
                    "the host's policy refused a SCIM write"
                );
                ("refused", Some(reason.clone()))
            }
            // Conflicts, races and a busy store are the protocol's answers, logged by the
            // HTTP layer from the status they become.
            Err(_) => return,
        };
        self.log.record(&Entry {
            at: now_millis(),
            action: action.to_string(),
            outcome: outcome.to_string(),
            target: Some(target),
            detail,
            user_agent: self.user_agent.clone(),
        });
    }
}

/// `userName (id)`: who an entry is about, readable and unambiguous.
fn describe(user: &User) -> String {
    format!("{} ({})", user.user_name, user.id)
}

impl scim_plugin::UserStore for RecordingStore {
    fn get(&self, id: &str) -> StoreResult<Option<User>> {
        self.inner.get(id)
    }

    fn find_by_user_name(&self, user_name: &str) -> StoreResult<Option<User>> {
        self.inner.find_by_user_name(user_name)
    }

    fn find_by_external_id(&self, external_id: &str) -> StoreResult<Vec<User>> {
        self.inner.find_by_external_id(external_id)
    }

    fn find_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        self.inner.find_by_email(email)
    }

    fn page(&self, offset: u64, limit: u32) -> StoreResult<UserPage> {
        self.inner.page(offset, limit)
    }

    fn scan(&self, cursor: Option<&str>, limit: u32) -> StoreResult<ScanPage> {
        self.inner.scan(cursor, limit)
    }

    fn create(&self, fields: UserFields) -> StoreResult<User> {
        let user_name = fields.user_name.clone();
        let outcome = self.inner.create(fields);
        let target = match &outcome {
            Ok(user) => describe(user),
            Err(_) => user_name,
        };
        self.record("create", target, &outcome);
        outcome
    }

    fn update(&self, id: &str, expected_version: u64, fields: UserFields) -> StoreResult<User> {
        // The state before, to tell a suspension or a restoration from another change.
        let was_active = self.inner.get(id).ok().flatten().map(|user| user.active);
        let action = match (was_active, fields.active) {
            (Some(true), false) => "suspend",
            (Some(false), true) => "restore",
            _ => "update",
        };
        let target = format!("{} ({id})", fields.user_name);
        let outcome = self.inner.update(id, expected_version, fields);
        self.record(action, target, &outcome);
        outcome
    }

    fn delete(&self, id: &str) -> StoreResult<Option<User>> {
        let before = self.inner.get(id).ok().flatten();
        let target = before.as_ref().map_or_else(|| id.to_string(), describe);
        let outcome = self.inner.delete(id);
        // Where the host suspends instead of deleting, the user comes back.
        let action = match &outcome {
            Ok(Some(_)) => "suspend",
            _ => "delete",
        };
        self.record(action, target, &outcome);
        outcome
    }
}
