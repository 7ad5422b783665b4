//! The SQLite database file that holds the users, the settings and the activity log: its
//! connections, their pragmas and the schema's migrations.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

/// How long a connection waits for another writer (another request, or the `scim-host` command
/// line) before giving up with SQLITE_BUSY. A write transaction here lasts well under a
/// millisecond, so 5 s only runs out when the file is held by something stuck; the client then
/// gets a 503 with Retry-After instead of a request that hangs.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections kept open for reuse. The component's work runs on tokio's blocking threads,
/// one request at a time per thread; 16 covers the requests a small machine serves at once, and
/// a connection beyond it is closed after use rather than held forever.
const MAX_IDLE_CONNECTIONS: usize = 16;

/// The schema, one step per version. `PRAGMA user_version` holds how many steps the file has;
/// a step, once shipped, never changes: a new version adds a step.
const MIGRATIONS: &[&str] = &[
    // 1: users, settings, tokens and the activity log.
    "
    CREATE TABLE users (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL,
        email TEXT NOT NULL,
        email_folded TEXT NOT NULL,
        user_name TEXT NOT NULL,
        user_name_folded TEXT NOT NULL,
        given_name TEXT,
        family_name TEXT,
        role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'administrator')),
        suspended INTEGER NOT NULL DEFAULT 0,
        invited INTEGER NOT NULL DEFAULT 0,
        external_id TEXT,
        created INTEGER NOT NULL,
        modified INTEGER NOT NULL,
        version INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX users_id ON users (id);
    CREATE UNIQUE INDEX users_user_name ON users (user_name_folded);
    CREATE UNIQUE INDEX users_email ON users (email_folded);
    CREATE INDEX users_external_id ON users (external_id);

    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        digest BLOB NOT NULL,
        created INTEGER NOT NULL,
        expires_at INTEGER
    );

    CREATE TABLE activity (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        outcome TEXT NOT NULL,
        target TEXT,
        detail TEXT,
        user_agent TEXT
    );
    ",
    // 2: the places in the stable order (`seq`) left by removed users. A user's position is its
    // seq less the places vacated before it, so that a page at any offset is found by a seek
    // (and the total without counting the table): SQLite's OFFSET steps over every row it skips.
    // AUTOINCREMENT never hands out a seq twice, so every seq up to `sqlite_sequence` is either
    // a user or a vacated place; the trigger keeps it so, and existing holes are filled here.
    "
    CREATE TABLE users_vacated (seq INTEGER PRIMARY KEY);
    INSERT INTO users_vacated (seq)
        WITH RECURSIVE
            last(n) AS (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'users'),
            places(n) AS (SELECT 1 UNION ALL SELECT places.n + 1 FROM places, last
                          WHERE places.n < last.n)
        SELECT places.n FROM places, last
        WHERE places.n <= last.n AND places.n NOT IN (SELECT seq FROM users);
    CREATE TRIGGER users_vacate AFTER DELETE ON users
    BEGIN
        INSERT INTO users_vacated (seq) VALUES (old.seq);
    END;
    ",
];

/// One database file, shared by the store, the settings and the activity log of a process.
pub struct Database {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    busy_timeout: Duration,
}

impl Database {
    /// Opens (or creates) the file and brings its schema up to date.
    pub fn open(path: &Path) -> anyhow::Result<Arc<Database>> {
        Database::open_with_busy_timeout(path, BUSY_TIMEOUT)
    }

    /// Opens the file with connections that wait `busy_timeout` for another writer. Tests that
    /// hold the write lock on purpose use a short one, to see the 503 without waiting 5 s.
    pub fn open_with_busy_timeout(
        path: &Path,
        busy_timeout: Duration,
    ) -> anyhow::Result<Arc<Database>> {
        let mut connection = open_connection(path, busy_timeout)?;
        migrate(&mut connection)
            .with_context(|| format!("migrating the schema of {}", path.display()))?;
        Ok(Arc::new(Database {
            path: path.to_path_buf(),
            idle: Mutex::new(vec![connection]),
            busy_timeout,
        }))
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A connection of its own, outside the pool, for a caller that keeps per-connection state
    /// (`PRAGMA data_version` counts the commits of the other connections).
    pub fn dedicated_connection(&self) -> anyhow::Result<Connection> {
        open_connection(&self.path, self.busy_timeout)
    }

    /// Runs `work` on a pooled connection. In WAL mode the readers of several connections run
    /// in parallel with the one writer.
    pub fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        let mut connection = match pooled {
            Some(connection) => connection,
            None => connect(&self.path, self.busy_timeout)?,
        };
        let outcome = work(&mut connection);
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < MAX_IDLE_CONNECTIONS && connection.is_autocommit() {
            idle.push(connection);
        }
        outcome
    }

    /// Runs `work` in a write transaction, committed before this returns. `BEGIN IMMEDIATE`
    /// takes the write lock up front, so that the busy timeout applies to it: a read that later
    /// upgrades to a write could fail at once with SQLITE_BUSY in WAL mode.
    pub fn write<T>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.with(|connection| commit(connection, work))
    }

    /// Runs `work` in a write transaction whose commit is not synced to disk before this
    /// returns: it reaches the disk with the next synced commit of any connection (which syncs
    /// the whole WAL) or the next checkpoint. For records that describe writes rather than
    /// being acknowledged writes themselves (the activity log): a process crash loses nothing,
    /// a power loss at worst the latest entries, and each write request pays one fsync, not two.
    pub fn write_unsynced<T>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.with(|connection| {
            connection.pragma_update(None, "synchronous", "NORMAL")?;
            let outcome = commit(connection, work);
            // Back to FULL before the connection returns to the pool, whatever happened.
            connection.pragma_update(None, "synchronous", "FULL")?;
            outcome
        })
    }

    /// Runs `work` in a read transaction: every query in it sees the same snapshot.
    pub fn read<T>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.with(|connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Deferred)?;
            work(&transaction)
        })
    }
}

/// Runs `work` in a write transaction on this connection and commits it.
fn commit<T>(
    connection: &mut Connection,
    work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let value = work(&transaction)?;
    transaction.commit()?;
    Ok(value)
}

fn open_connection(path: &Path, busy_timeout: Duration) -> anyhow::Result<Connection> {
    connect(path, busy_timeout).with_context(|| format!("opening the database {}", path.display()))
}

/// A connection with this host's pragmas.
fn connect(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(busy_timeout)?;
    // WAL: readers never wait for the writer, and a commit appends to one file.
    connection.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: every commit syncs the WAL before it returns. NORMAL would survive kill -9 (the WAL
    // is in the OS cache) but not a power loss, and the store promises that an acknowledged
    // write is durable; the price is one fsync per write request.
    connection.pragma_update(None, "synchronous", "FULL")?;
    Ok(connection)
}

/// Applies the migrations the file has not seen yet, all in one write transaction, so that two
/// processes opening a fresh file at once migrate it once.
fn migrate(connection: &mut Connection) -> anyhow::Result<()> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("locking the database for migration")?;
    let applied: usize = transaction
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .context("reading the schema version")?;
    if applied > MIGRATIONS.len() {
        anyhow::bail!(
            "the database has schema version {applied}, newer than this scim-host knows ({})",
            MIGRATIONS.len()
        );
    }
    for (index, step) in MIGRATIONS.iter().enumerate().skip(applied) {
        transaction
            .execute_batch(step)
            .with_context(|| format!("applying schema migration {}", index + 1))?;
    }
    transaction
        .pragma_update(None, "user_version", MIGRATIONS.len())
        .context("recording the schema version")?;
    transaction
        .commit()
        .context("committing the schema migration")?;
    Ok(())
}

/// Whether an error means the file is held by another writer for now (a retry may succeed).
pub fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// The column a failed UNIQUE constraint names, if that is what `error` is
/// (`UNIQUE constraint failed: users.email_folded`).
pub fn unique_violation(error: &rusqlite::Error) -> Option<&str> {
    match error {
        rusqlite::Error::SqliteFailure(failure, Some(message))
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            message.rsplit('.').next()
        }
        _ => None,
    }
}
