//! The SQLite user store: the host's accounts in one file, with the unique indexes that make
//! SCIM's uniqueness hold under concurrent writers, and the host's policies on suspending and
//! deleting administrators.

use std::sync::Arc;

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use super::{ScanPage, StoreError, StoreResult, User, UserFields, UserPage, now_millis};
use crate::activity::{self, CreateEntry, DeleteEntry, UpdateEntry};
use crate::db::{self, Database};
use crate::settings::sqlite::read_policies;
use crate::settings::{DeleteAction, Policies};

/// The columns [`user_from_row`] reads, in its order.
const USER_COLUMNS: &str = "id, email, user_name, given_name, family_name, suspended, \
                            external_id, created, modified, version";

/// One new account; the parameters are in [`insert_params`]'s order.
const INSERT_USER: &str = "INSERT INTO users (id, email, email_folded, user_name, user_name_folded,
         given_name, family_name, role, suspended, invited, external_id, created, modified, version)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

/// A user's role in the password manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Administrator,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Administrator => "administrator",
        }
    }
}

/// One account as the host sees it: the SCIM user and what SCIM does not show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: User,
    pub administrator: bool,
    /// Created through SCIM and not yet set up by its owner.
    pub invited: bool,
}

impl Account {
    /// `suspended`, `invited` or `active`, in that order of precedence.
    pub fn state(&self) -> &'static str {
        if !self.user.active {
            "suspended"
        } else if self.invited {
            "invited"
        } else {
            "active"
        }
    }
}

/// Users in a SQLite file.
pub struct SqliteStore {
    db: Arc<Database>,
}

impl SqliteStore {
    pub fn new(db: Arc<Database>) -> SqliteStore {
        SqliteStore { db }
    }

    /// Every account in the store's stable order, with its role and state.
    pub fn accounts(&self) -> anyhow::Result<Vec<Account>> {
        self.db
            .read(|connection| {
                let mut statement = connection.prepare(&format!(
                    "SELECT {USER_COLUMNS}, role, invited FROM users ORDER BY seq"
                ))?;
                let rows = statement.query_map([], |row| {
                    Ok(Account {
                        user: user_from_row(row)?,
                        administrator: row.get::<_, String>(10)? == Role::Administrator.as_str(),
                        invited: row.get(11)?,
                    })
                })?;
                rows.collect()
            })
            .context("listing the users")
    }

    /// Adds an account that did not come from SCIM (set up, not invited), with the email as its
    /// userName.
    pub fn add_account(&self, email: &str, role: Role) -> anyhow::Result<User> {
        // The same rule as for users that SCIM creates: the login email is where they sign in.
        if scim_plugin::user::check_login_email(email).is_err() {
            anyhow::bail!("`{email}` is not an email address of at most 254 bytes");
        }
        let fields = UserFields {
            email: email.to_string(),
            user_name: email.to_string(),
            given_name: None,
            family_name: None,
            active: true,
            external_id: None,
        };
        match self.insert(fields, role, false, None) {
            Ok(user) => Ok(user),
            Err(StoreError::Conflict(_)) => anyhow::bail!("a user with the email {email} exists"),
            Err(error) => Err(anyhow::anyhow!("{error:?}")).context("adding the user"),
        }
    }

    /// Makes the user with this login email an administrator, or a plain user.
    pub fn set_role(&self, email: &str, role: Role) -> anyhow::Result<()> {
        let changed = self
            .db
            .write(|transaction| {
                transaction.execute(
                    "UPDATE users SET role = ?1 WHERE email_folded = ?2",
                    params![role.as_str(), email.to_lowercase()],
                )
            })
            .context("changing the user's role")?;
        if changed == 0 {
            anyhow::bail!("no user has the email {email}");
        }
        Ok(())
    }

    fn insert(
        &self,
        fields: UserFields,
        role: Role,
        invited: bool,
        entry: Option<CreateEntry<'_>>,
    ) -> StoreResult<User> {
        let user = new_user(fields, now_millis());
        self.db
            .write(|transaction| {
                let mut statement = transaction.prepare_cached(INSERT_USER)?;
                insert_params(&mut statement, &user, role, invited)?;
                if let Some(entry) = entry {
                    activity::insert(transaction, &entry(&user))?;
                }
                Ok(())
            })
            .map_err(store_error)?;
        Ok(user)
    }

    /// Adds many users as SCIM would create them (invited), in one transaction through one
    /// prepared statement: an import of a whole directory pays for one commit, not one per user.
    /// All or nothing: a taken userName or email rolls the whole batch back. Returns how many
    /// were added.
    pub fn create_many(&self, users: impl IntoIterator<Item = UserFields>) -> StoreResult<u64> {
        let now = now_millis();
        self.db
            .write(|transaction| {
                let mut statement = transaction.prepare_cached(INSERT_USER)?;
                let mut added = 0;
                for fields in users {
                    insert_params(&mut statement, &new_user(fields, now), Role::User, true)?;
                    added += 1;
                }
                Ok(added)
            })
            .map_err(store_error)
    }

    fn one(&self, condition: &str, key: &str) -> StoreResult<Option<User>> {
        self.db
            .with(|connection| {
                connection
                    .prepare_cached(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE {condition}"
                    ))?
                    .query_row([key], user_from_row)
                    .optional()
            })
            .map_err(store_error)
    }
}

impl scim_plugin::UserStore for SqliteStore {
    fn get(&self, id: &str) -> StoreResult<Option<User>> {
        self.one("id = ?1", id)
    }

    fn find_by_user_name(&self, user_name: &str) -> StoreResult<Option<User>> {
        self.one("user_name_folded = ?1", &user_name.to_lowercase())
    }

    fn find_by_external_id(&self, external_id: &str) -> StoreResult<Vec<User>> {
        self.db
            .with(|connection| {
                let mut statement = connection.prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE external_id = ?1 ORDER BY seq"
                ))?;
                let rows = statement.query_map([external_id], user_from_row)?;
                rows.collect()
            })
            .map_err(store_error)
    }

    fn find_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        self.one("email_folded = ?1", &email.to_lowercase())
    }

    fn page(&self, offset: u64, limit: u32) -> StoreResult<UserPage> {
        self.db
            .read(|connection| {
                let total = last_seq(connection)? - vacated_before(connection, i64::MAX)?;
                let total = u64::try_from(total).unwrap_or(0);
                let Ok(offset) = i64::try_from(offset) else {
                    return Ok(UserPage {
                        users: Vec::new(),
                        total,
                    });
                };
                let users = match first_seq_at(connection, offset)? {
                    Some(first) => connection
                        .prepare_cached(&format!(
                            "SELECT {USER_COLUMNS} FROM users WHERE seq >= ?1 ORDER BY seq \
                             LIMIT ?2"
                        ))?
                        .query_map(params![first, limit], user_from_row)?
                        .collect::<Result<_, _>>()?,
                    // Vacated places too scattered to settle on: the slow way is still right.
                    None => connection
                        .prepare_cached(&format!(
                            "SELECT {USER_COLUMNS} FROM users ORDER BY seq LIMIT ?1 OFFSET ?2"
                        ))?
                        .query_map(params![limit, offset], user_from_row)?
                        .collect::<Result<_, _>>()?,
                };
                Ok(UserPage { users, total })
            })
            .map_err(store_error)
    }

    fn scan(&self, cursor: Option<&str>, limit: u32) -> StoreResult<ScanPage> {
        let after = match cursor {
            None => 0,
            Some(cursor) => cursor.parse::<i64>().map_err(|_| {
                StoreError::Unavailable("the scan cursor is not this store's".into())
            })?,
        };
        let slice: Vec<(u64, User)> = self
            .db
            .with(|connection| {
                let mut statement = connection.prepare_cached(&format!(
                    "SELECT {USER_COLUMNS}, seq FROM users WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ))?;
                let rows = statement.query_map(params![after, limit], |row| {
                    Ok((row.get(10)?, user_from_row(row)?))
                })?;
                rows.collect()
            })
            .map_err(store_error)?;
        Ok(ScanPage::from_sequenced(slice, limit))
    }

    fn create(&self, fields: UserFields) -> StoreResult<User> {
        self.create_with_entry(fields, None)
    }

    fn update(&self, id: &str, expected_version: u64, fields: UserFields) -> StoreResult<User> {
        self.update_with_entry(id, expected_version, fields, None)
    }

    fn delete(&self, id: &str) -> StoreResult<Option<User>> {
        self.delete_with_entry(id, None)
    }
}

impl activity::JournaledStore for SqliteStore {
    fn create_journaled(&self, fields: UserFields, entry: CreateEntry<'_>) -> StoreResult<User> {
        self.create_with_entry(fields, Some(entry))
    }

    fn update_journaled(
        &self,
        id: &str,
        expected_version: u64,
        fields: UserFields,
        entry: UpdateEntry<'_>,
    ) -> StoreResult<User> {
        self.update_with_entry(id, expected_version, fields, Some(entry))
    }

    fn delete_journaled(&self, id: &str, entry: DeleteEntry<'_>) -> StoreResult<Option<User>> {
        self.delete_with_entry(id, Some(entry))
    }
}

/// The writes, each with its activity entry in its transaction where one is given.
impl SqliteStore {
    fn create_with_entry(
        &self,
        fields: UserFields,
        entry: Option<CreateEntry<'_>>,
    ) -> StoreResult<User> {
        // A user that SCIM creates is invited: its owner has not set up their account yet.
        self.insert(fields, Role::User, true, entry)
    }

    fn update_with_entry(
        &self,
        id: &str,
        expected_version: u64,
        fields: UserFields,
        entry: Option<UpdateEntry<'_>>,
    ) -> StoreResult<User> {
        self.db
            .write(|transaction| {
                let Some(current) = current(transaction, id)? else {
                    return Ok(Err(StoreError::NotFound));
                };
                if current.user.version != expected_version {
                    return Ok(Err(StoreError::VersionMismatch));
                }
                if !fields.email.eq_ignore_ascii_case(&current.user.email) {
                    return Ok(Err(StoreError::Refused(
                        "the login email cannot change".into(),
                    )));
                }
                if current.user.active && !fields.active {
                    let policies = read_policies(transaction)?;
                    if let Some(reason) = admin_refusal(transaction, &current, &policies)? {
                        return Ok(Err(StoreError::Refused(reason.into())));
                    }
                }

                let modified = now_millis().max(current.user.modified);
                // The version in the WHERE clause is the guard: a change that slipped in since
                // the read leaves no row to update.
                let changed = transaction.execute(
                    "UPDATE users SET user_name = ?1, user_name_folded = ?2, given_name = ?3,
                         family_name = ?4, suspended = ?5, external_id = ?6, modified = ?7,
                         version = version + 1
                     WHERE id = ?8 AND version = ?9",
                    params![
                        fields.user_name,
                        fields.user_name.to_lowercase(),
                        fields.given_name,
                        fields.family_name,
                        !fields.active,
                        fields.external_id,
                        modified,
                        id,
                        expected_version,
                    ],
                )?;
                if changed == 0 {
                    return Ok(Err(StoreError::VersionMismatch));
                }
                let updated = User {
                    user_name: fields.user_name,
                    given_name: fields.given_name,
                    family_name: fields.family_name,
                    active: fields.active,
                    external_id: fields.external_id,
                    modified,
                    version: expected_version + 1,
                    ..current.user.clone()
                };
                if let Some(entry) = entry {
                    activity::insert(transaction, &entry(&current.user, &updated))?;
                }
                Ok(Ok(updated))
            })
            .map_err(store_error)?
    }

    fn delete_with_entry(
        &self,
        id: &str,
        entry: Option<DeleteEntry<'_>>,
    ) -> StoreResult<Option<User>> {
        self.db
            .write(|transaction| {
                let Some(current) = current(transaction, id)? else {
                    return Ok(Err(StoreError::NotFound));
                };
                let policies = read_policies(transaction)?;
                if let Some(reason) = admin_refusal(transaction, &current, &policies)? {
                    return Ok(Err(StoreError::Refused(reason.into())));
                }
                let kept = match policies.delete_action {
                    DeleteAction::Delete => {
                        transaction.execute("DELETE FROM users WHERE id = ?1", [id])?;
                        None
                    }
                    DeleteAction::Suspend if !current.user.active => Some(current.user.clone()),
                    DeleteAction::Suspend => {
                        let modified = now_millis().max(current.user.modified);
                        transaction.execute(
                            "UPDATE users SET suspended = 1, modified = ?1, version = version + 1
                             WHERE id = ?2",
                            params![modified, id],
                        )?;
                        Some(User {
                            active: false,
                            modified,
                            version: current.user.version + 1,
                            ..current.user.clone()
                        })
                    }
                };
                if let Some(entry) = entry {
                    activity::insert(transaction, &entry(&current.user, kept.as_ref()))?;
                }
                Ok(Ok(kept))
            })
            .map_err(store_error)?
    }
}

/// A user about to be added: a fresh id, version 1.
fn new_user(fields: UserFields, now: u64) -> User {
    User {
        id: uuid::Uuid::new_v4().to_string(),
        email: fields.email,
        user_name: fields.user_name,
        given_name: fields.given_name,
        family_name: fields.family_name,
        active: fields.active,
        external_id: fields.external_id,
        created: now,
        modified: now,
        version: 1,
    }
}

/// Runs [`INSERT_USER`] for one user.
fn insert_params(
    statement: &mut rusqlite::CachedStatement<'_>,
    user: &User,
    role: Role,
    invited: bool,
) -> rusqlite::Result<usize> {
    statement.execute(params![
        user.id,
        user.email,
        user.email.to_lowercase(),
        user.user_name,
        user.user_name.to_lowercase(),
        user.given_name,
        user.family_name,
        role.as_str(),
        !user.active,
        invited,
        user.external_id,
        user.created,
        user.modified,
        user.version,
    ])
}

/// How many times [`first_seq_at`] refines its guess before it gives up: each round passes at
/// least one more vacated place, and real directories settle in two or three.
const MAX_SEEK_ROUNDS: usize = 32;

/// The seq from which the user at `offset` (0-based, in the stable order) is the first one:
/// the smallest `s` with `s = offset + 1 + (places vacated before s)`. Each round counts the
/// vacated places (an index range, as long as the removals), never the users.
fn first_seq_at(connection: &Connection, offset: i64) -> rusqlite::Result<Option<i64>> {
    let mut seq = offset.saturating_add(1);
    for _ in 0..MAX_SEEK_ROUNDS {
        let next = offset
            .saturating_add(1)
            .saturating_add(vacated_before(connection, seq)?);
        if next == seq {
            return Ok(Some(seq));
        }
        seq = next;
    }
    Ok(None)
}

/// How many places before `seq` were vacated by removed users.
fn vacated_before(connection: &Connection, seq: i64) -> rusqlite::Result<i64> {
    connection
        .prepare_cached("SELECT count(*) FROM users_vacated WHERE seq < ?1")?
        .query_row([seq], |row| row.get(0))
}

/// The last seq handed out: users ever added.
fn last_seq(connection: &Connection) -> rusqlite::Result<i64> {
    connection
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'users'")?
        .query_row([], |row| row.get(0))
}

/// The user and their role, read inside a write transaction.
fn current(connection: &Connection, id: &str) -> rusqlite::Result<Option<Account>> {
    connection
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS}, role, invited FROM users WHERE id = ?1"
        ))?
        .query_row([id], |row| {
            Ok(Account {
                user: user_from_row(row)?,
                administrator: row.get::<_, String>(10)? == Role::Administrator.as_str(),
                invited: row.get(11)?,
            })
        })
        .optional()
}

/// Why the host refuses to suspend or delete this user through SCIM, if it does.
fn admin_refusal(
    connection: &Connection,
    account: &Account,
    policies: &Policies,
) -> rusqlite::Result<Option<&'static str>> {
    if !account.administrator {
        return Ok(None);
    }
    if policies.protect_admins {
        return Ok(Some(
            "administrators cannot be suspended or deleted through SCIM on this server",
        ));
    }
    if account.user.active {
        let others: u64 = connection.query_row(
            "SELECT count(*) FROM users
             WHERE role = 'administrator' AND suspended = 0 AND id != ?1",
            [&account.user.id],
            |row| row.get(0),
        )?;
        if others == 0 {
            return Ok(Some(
                "the last active administrator cannot be suspended or deleted",
            ));
        }
    }
    Ok(None)
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        email: row.get(1)?,
        user_name: row.get(2)?,
        given_name: row.get(3)?,
        family_name: row.get(4)?,
        active: !row.get::<_, bool>(5)?,
        external_id: row.get(6)?,
        created: row.get(7)?,
        modified: row.get(8)?,
        version: row.get(9)?,
    })
}

/// The store's answer for a database error: a taken unique key is a conflict on that SCIM
/// attribute; anything else (busy, locked, I/O) means the store cannot answer now, which the
/// client sees as a 503 with Retry-After rather than a 500.
fn store_error(error: rusqlite::Error) -> StoreError {
    match db::unique_violation(&error) {
        Some("user_name_folded") => return StoreError::Conflict("userName".into()),
        Some("email_folded") => return StoreError::Conflict("email".into()),
        _ => {}
    }
    if db::is_busy(&error) {
        tracing::warn!(error = %error, "the database is busy");
        return StoreError::Unavailable("the user store is busy; retry later".into());
    }
    tracing::error!(error = %error, "the user store failed");
    StoreError::Unavailable("the user store cannot answer now".into())
}

#[cfg(test)]
mod tests {
    use scim_plugin::UserStore as _;

    use super::*;
    use crate::settings::sqlite::{set_delete_action, set_protect_admins};

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("users.db")).unwrap();
        (dir, SqliteStore::new(db))
    }

    fn suspended(user: &User) -> UserFields {
        UserFields {
            active: false,
            ..user.fields()
        }
    }

    #[test]
    fn scim_created_users_are_invited_and_cli_added_ones_are_not() {
        let (_dir, store) = store();
        let invited = store
            .create(UserFields {
                active: true,
                ..fields("new@example.com")
            })
            .unwrap();
        store.add_account("set-up@example.com", Role::User).unwrap();
        let accounts = store.accounts().unwrap();
        assert_eq!(accounts[0].user.id, invited.id);
        assert_eq!(accounts[0].state(), "invited");
        assert_eq!(accounts[1].state(), "active");
    }

    #[test]
    fn a_local_user_needs_an_email_address() {
        let (_dir, store) = store();
        for refused in [
            "",
            "not-an-email",
            "two@at@example.com",
            "space @example.com",
        ] {
            assert!(
                store.add_account(refused, Role::User).is_err(),
                "{refused:?}"
            );
        }
        let too_long = format!("{}@example.com", "a".repeat(250));
        assert!(store.add_account(&too_long, Role::User).is_err());
        assert!(store.accounts().unwrap().is_empty());
    }

    #[test]
    fn protected_admin_refuses_suspend_and_delete_and_stays_unchanged() {
        let (_dir, store) = store();
        let admin = store
            .add_account("boss@example.com", Role::Administrator)
            .unwrap();
        store
            .add_account("other-boss@example.com", Role::Administrator)
            .unwrap();

        let refused = store.update(&admin.id, admin.version, suspended(&admin));
        assert!(
            matches!(refused, Err(StoreError::Refused(_))),
            "{refused:?}"
        );
        assert!(matches!(
            store.delete(&admin.id),
            Err(StoreError::Refused(_))
        ));
        assert_eq!(store.get(&admin.id).unwrap(), Some(admin.clone()));

        // Other changes to an administrator are SCIM's to make.
        let renamed = UserFields {
            given_name: Some("Boss".into()),
            ..admin.fields()
        };
        assert!(store.update(&admin.id, admin.version, renamed).is_ok());
    }

    #[test]
    fn unprotected_admins_go_except_the_last_active_one() {
        let (_dir, store) = store();
        set_protect_admins(&store.db, false).unwrap();
        let first = store
            .add_account("first@example.com", Role::Administrator)
            .unwrap();
        let second = store
            .add_account("second@example.com", Role::Administrator)
            .unwrap();

        assert!(
            store
                .update(&first.id, first.version, suspended(&first))
                .is_ok()
        );
        let last = store.update(&second.id, second.version, suspended(&second));
        assert_eq!(
            last,
            Err(StoreError::Refused(
                "the last active administrator cannot be suspended or deleted".into()
            ))
        );
        assert!(matches!(
            store.delete(&second.id),
            Err(StoreError::Refused(_))
        ));
        // The suspended one may be deleted: it takes no active administrator away.
        assert_eq!(store.delete(&first.id), Ok(None));
    }

    #[test]
    fn delete_action_suspend_keeps_the_user_inactive_with_a_new_version() {
        let (_dir, store) = store();
        set_delete_action(&store.db, DeleteAction::Suspend).unwrap();
        let user = store.create(fields("leaver@example.com")).unwrap();
        let kept = store.delete(&user.id).unwrap().unwrap();
        assert!(!kept.active);
        assert_eq!(kept.version, user.version + 1);
        assert_eq!(store.get(&user.id).unwrap(), Some(kept));
    }

    #[test]
    fn pages_after_removals_match_the_stable_order() {
        let (_dir, store) = store();
        store
            .create_many((0..40).map(|n| fields(&format!("user{n}@example.com"))))
            .unwrap();
        let all = store.accounts().unwrap();
        // The first, the last, a run and scattered ones: every shape of hole.
        for n in [0, 7, 8, 9, 10, 21, 33, 39] {
            store.delete(&all[n].user.id).unwrap();
        }
        let kept: Vec<User> = store
            .accounts()
            .unwrap()
            .into_iter()
            .map(|account| account.user)
            .collect();
        assert_eq!(kept.len(), 32);

        for offset in 0..=34 {
            let page = store.page(offset, 5).unwrap();
            let expected: Vec<User> = kept.iter().skip(offset as usize).take(5).cloned().collect();
            assert_eq!(page.users, expected, "offset {offset}");
            assert_eq!(page.total, 32);
        }
        let added = store.create(fields("late@example.com")).unwrap();
        let last = store.page(32, 5).unwrap();
        assert_eq!((last.users, last.total), (vec![added], 33));
    }

    #[test]
    fn holes_left_before_the_paging_migration_are_found_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        let store = SqliteStore::new(Database::open(&path).unwrap());
        store
            .create_many((0..10).map(|n| fields(&format!("user{n}@example.com"))))
            .unwrap();
        // The file as the first schema version left it: users removed, no record of where.
        store
            .db
            .with(|connection| {
                connection.execute_batch(
                    "DROP TRIGGER users_vacate; DROP TABLE users_vacated;
                     DELETE FROM users WHERE seq IN (1, 4, 5, 10);
                     PRAGMA user_version = 1;",
                )
            })
            .unwrap();
        drop(store);

        let store = SqliteStore::new(Database::open(&path).unwrap());
        let kept: Vec<User> = store
            .accounts()
            .unwrap()
            .into_iter()
            .map(|a| a.user)
            .collect();
        let page = store.page(2, 3).unwrap();
        assert_eq!(page.users, kept[2..5].to_vec());
        assert_eq!(page.total, 6);
    }

    #[test]
    fn journaled_writes_log_exactly_the_committed_changes() {
        use crate::activity::{ActivityLog, Entry, JournaledStore as _};

        let (_dir, store) = store();
        let log = ActivityLog::new(store.db.clone());
        let entry = |action: &str, user: &User| Entry {
            at: 1,
            action: action.into(),
            outcome: "ok".into(),
            target: Some(user.user_name.clone()),
            detail: None,
            user_agent: None,
        };

        let alice = store
            .create_journaled(fields("alice@example.com"), &|user| entry("create", user))
            .unwrap();
        let taken =
            store.create_journaled(fields("ALICE@example.com"), &|user| entry("create", user));
        assert!(matches!(taken, Err(StoreError::Conflict(_))));
        let suspended_alice = store
            .update_journaled(&alice.id, 1, suspended(&alice), &|before, after| {
                assert!(before.active && !after.active);
                entry("suspend", after)
            })
            .unwrap();
        let stale = store.update_journaled(&alice.id, 1, alice.fields(), &|_, after| {
            entry("restore", after)
        });
        assert_eq!(stale, Err(StoreError::VersionMismatch));
        set_delete_action(&store.db, DeleteAction::Suspend).unwrap();
        let kept = store
            .delete_journaled(&alice.id, &|before, kept| {
                assert_eq!(kept, Some(before));
                entry("suspend", before)
            })
            .unwrap();
        assert_eq!(kept, Some(suspended_alice));

        let logged: Vec<(String, Option<String>)> = log
            .recent(10)
            .unwrap()
            .into_iter()
            .rev()
            .map(|entry| (entry.action, entry.target))
            .collect();
        let alice_name = Some("alice@example.com".to_string());
        assert_eq!(
            logged,
            [
                ("create".to_string(), alice_name.clone()),
                ("suspend".to_string(), alice_name.clone()),
                ("suspend".to_string(), alice_name),
            ]
        );
    }

    #[test]
    fn create_many_is_all_or_nothing() {
        let (_dir, store) = store();
        store.create(fields("taken@example.com")).unwrap();
        let batch = ["a@example.com", "TAKEN@example.com", "b@example.com"].map(fields);
        assert!(matches!(
            store.create_many(batch),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.page(0, 10).unwrap().total, 1);
        assert_eq!(store.create_many([fields("c@example.com")]), Ok(1));
    }

    fn fields(email: &str) -> UserFields {
        UserFields {
            email: email.into(),
            user_name: email.into(),
            given_name: None,
            family_name: None,
            active: true,
            external_id: None,
        }
    }
}
