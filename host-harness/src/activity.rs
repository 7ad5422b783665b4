//! The activity log: every provisioning write (create, update, suspend, restore, delete) and
//! every refused write request, with its time, outcome and the client's User-Agent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use rusqlite::{Connection, params};

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

    /// Appends an entry on its own, for what is not a store's change (a refusal, the command
    /// line's actions). A failure is logged and does not fail the request. Under load the entry
    /// shares a batch, and its fsync, with other writes (see [`Database::write`]).
    pub fn record(&self, entry: &Entry) {
        let outcome = self.db.write(|connection| insert(connection, entry));
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

/// Describes a creation from the user created.
pub type CreateEntry<'a> = &'a dyn Fn(&User) -> Entry;
/// Describes an update from the user before and after it.
pub type UpdateEntry<'a> = &'a dyn Fn(&User, &User) -> Entry;
/// Describes a deletion from the user before it and, where the host suspends instead of
/// deleting, the suspended user it kept.
pub type DeleteEntry<'a> = &'a dyn Fn(&User, Option<&User>) -> Entry;

/// A store that commits each change's activity entry in the change's own transaction: the log
/// then holds every committed change and nothing that was rolled back, even across a `kill -9`,
/// and a change waits for one commit, not two.
///
/// Each `entry` function describes the change from the users it wrote, and runs inside the
/// transaction, after the change and before the commit.
pub trait JournaledStore: UserStore {
    /// [`scim_plugin::UserStore::create`], with `entry(created)` logged.
    fn create_journaled(&self, fields: UserFields, entry: CreateEntry<'_>) -> StoreResult<User>;

    /// [`scim_plugin::UserStore::update`], with `entry(before, after)` logged.
    fn update_journaled(
        &self,
        id: &str,
        expected_version: u64,
        fields: UserFields,
        entry: UpdateEntry<'_>,
    ) -> StoreResult<User>;

    /// [`scim_plugin::UserStore::delete`], with `entry(before, kept)` logged: `kept` is the
    /// suspended user where the host's policy suspends instead of deleting.
    fn delete_journaled(&self, id: &str, entry: DeleteEntry<'_>) -> StoreResult<Option<User>>;
}

/// Appends `entry` to the log in `connection`'s open transaction.
pub fn insert(connection: &Connection, entry: &Entry) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO activity (at, action, outcome, target, detail, user_agent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            entry.at,
            entry.action,
            entry.outcome,
            entry.target,
            entry.detail,
            entry.user_agent
        ])?;
    Ok(())
}

/// One request's view of the store: every write it makes goes to the activity log with the
/// client's User-Agent, in the write's own transaction, and every refusal of the host's policy
/// goes there too.
pub struct RecordingStore {
    inner: Arc<dyn JournaledStore>,
    log: Arc<ActivityLog>,
    user_agent: Option<String>,
    refusal_recorded: AtomicBool,
}

impl RecordingStore {
    pub fn new(
        inner: Arc<dyn JournaledStore>,
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

    /// The entry of a change that went through.
    fn done(&self, action: &str, target: String) -> Entry {
        Entry {
            at: now_millis(),
            action: action.to_string(),
            outcome: "ok".to_string(),
            target: Some(target),
            detail: None,
            user_agent: self.user_agent.clone(),
        }
    }

    /// Logs a change that the host's policy refused: `describe` names the action and its
    /// target, and runs only then. Other failures (conflicts, races, a busy store) are the
    /// protocol's answers, logged by the HTTP layer from the status they become.
    fn record_refusal<T>(
        &self,
        outcome: &StoreResult<T>,
        describe: impl FnOnce() -> (&'static str, String),
    ) {
        let Err(StoreError::Refused(reason)) = outcome else {
            return;
        };
        let (action, target) = describe();
        self.refusal_recorded.store(true, Ordering::Relaxed);
        tracing::warn!(
            action,
            target = %target,
            reason = %reason,
            "the host's policy refused a SCIM write"
        );
        self.log.record(&Entry {
            at: now_millis(),
            action: action.to_string(),
            outcome: "refused".to_string(),
            target: Some(target),
            detail: Some(reason.clone()),
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
        let outcome = self
            .inner
            .create_journaled(fields, &|user| self.done("create", describe(user)));
        self.record_refusal(&outcome, || ("create", user_name));
        outcome
    }

    fn update(&self, id: &str, expected_version: u64, fields: UserFields) -> StoreResult<User> {
        let user_name = fields.user_name.clone();
        let suspending = !fields.active;
        let outcome =
            self.inner
                .update_journaled(id, expected_version, fields, &|before, after| {
                    self.done(change(before, after.active), describe(after))
                });
        self.record_refusal(&outcome, || {
            // A refused change left the user as it was.
            let action = match self.inner.get(id) {
                Ok(Some(before)) => change(&before, !suspending),
                _ => "update",
            };
            (action, format!("{user_name} ({id})"))
        });
        outcome
    }

    fn delete(&self, id: &str) -> StoreResult<Option<User>> {
        let outcome = self.inner.delete_journaled(id, &|before, kept| {
            // Where the host suspends instead of deleting, the user stays.
            let action = if kept.is_some() { "suspend" } else { "delete" };
            self.done(action, describe(before))
        });
        self.record_refusal(&outcome, || {
            let target = match self.inner.get(id) {
                Ok(Some(user)) => describe(&user),
                _ => id.to_string(),
            };
            ("delete", target)
        });
        outcome
    }
}

/// What an update of `before` that leaves it `active` or not is: a suspension, a restoration,
/// or another change.
fn change(before: &User, active: bool) -> &'static str {
    match (before.active, active) {
        (true, false) => "suspend",
        (false, true) => "restore",
        _ => "update",
    }
}
