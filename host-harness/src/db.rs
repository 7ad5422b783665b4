//! The SQLite database file that holds the users, the settings and the activity log: its
//! connections, their pragmas and the schema's migrations.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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
    writer: GroupWriter,
}

/// Group commit: the writes of concurrent requests share one transaction, each in a savepoint
/// of its own, and one synced commit acknowledges them all. SQLite has one writer at a time and
/// `synchronous=FULL` costs an fsync per commit, so committing each request on its own caps
/// writes at one per fsync; a batch pays that fsync once. No write is acknowledged before the
/// commit that contains it has returned, so durability is what it was.
struct GroupWriter {
    state: Mutex<WriterState>,
    /// Signalled when a batch has committed (or failed to).
    batch_done: Condvar,
    /// Writers that have entered `write` and not yet run their work: while any is on its way,
    /// the open batch waits for it instead of committing.
    arriving: AtomicUsize,
}

/// How a batch ended: committed, or the SQLite error code and message that stopped it.
type BatchEnd = Result<(), (i32, String)>;

#[derive(Default)]
struct WriterState {
    /// The one connection that writes, opened on first use.
    connection: Option<Connection>,
    /// The batch whose transaction is open, if one is.
    open: Option<u64>,
    /// Writers whose work is in the open batch, waiting for its commit.
    members: usize,
    next_batch: u64,
    /// Batches are opened and finished in order: every batch below this one has finished.
    finished_below: u64,
    /// How each finished batch ended, while some of its writers have yet to read it.
    finished: HashMap<u64, (BatchEnd, usize)>,
}

impl WriterState {
    /// Records how the open batch ended, for the writers waiting on it.
    fn finish(&mut self, batch: u64, ended: BatchEnd) {
        let members = std::mem::take(&mut self.members);
        if members > 0 {
            self.finished.insert(batch, (ended, members));
        }
        self.finished_below = batch + 1;
    }
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
            writer: GroupWriter {
                state: Mutex::new(WriterState::default()),
                batch_done: Condvar::new(),
                arriving: AtomicUsize::new(0),
            },
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

    /// Runs `work` as a write, committed (and synced) before this returns: in a savepoint of
    /// the open batch, which commits once no other writer is on its way to join it. If `work`
    /// fails, its savepoint is rolled back and the rest of the batch is untouched. `BEGIN
    /// IMMEDIATE` takes the write lock up front, so that the busy timeout applies to it.
    pub fn write<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let writer = &self.writer;
        writer.arriving.fetch_add(1, Ordering::SeqCst);
        let mut state = lock(&writer.state);
        let outcome = self.run_in_batch(&mut state, work);
        writer.arriving.fetch_sub(1, Ordering::SeqCst);

        if outcome.is_ok() {
            state.members += 1;
        }
        let batch = state.open;
        if writer.arriving.load(Ordering::SeqCst) == 0 {
            commit_batch(&mut state);
            writer.batch_done.notify_all();
        }

        // Every writer that took part waits for the batch, a failed one too: its caller may
        // read again and retry, and must then see what the batch committed.
        let Some(batch) = batch else {
            return outcome;
        };
        while state.finished_below <= batch {
            state = writer
                .batch_done
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let value = outcome?;
        let committed = match state.finished.get_mut(&batch) {
            Some((committed, unread)) => {
                let committed = committed.clone();
                *unread = unread.saturating_sub(1);
                if *unread == 0 {
                    state.finished.remove(&batch);
                }
                committed
            }
            None => Ok(()),
        };
        committed.map(|()| value).map_err(|(code, message)| {
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message))
        })
    }

    /// Runs `work` in a savepoint of the open batch, opening one if none is.
    fn run_in_batch<T>(
        &self,
        state: &mut WriterState,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        if state.connection.is_none() {
            state.connection = Some(connect(&self.path, self.busy_timeout)?);
        }
        let Some(connection) = state.connection.as_ref() else {
            return Err(rusqlite::Error::InvalidQuery);
        };
        if state.open.is_none() {
            connection.execute_batch("BEGIN IMMEDIATE")?;
            state.open = Some(state.next_batch);
            state.next_batch += 1;
        }
        connection.execute_batch("SAVEPOINT request")?;
        // A panic in `work` (a bug) must neither leave its half-done savepoint in the batch nor
        // strand the writers waiting on the batch: it becomes this write's error, and the
        // savepoint is rolled back below like any failed write's.
        let worked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(connection)))
            .unwrap_or_else(|_| {
                Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                    Some("a store write panicked".into()),
                ))
            });
        match worked {
            Ok(value) => {
                connection.execute_batch("RELEASE request")?;
                Ok(value)
            }
            Err(error) => {
                // Undo this writer's part only; the savepoint's own failure would leave the
                // batch in doubt, so it fails the batch's commit instead.
                if connection
                    .execute_batch("ROLLBACK TO request; RELEASE request")
                    .is_err()
                {
                    let _ = connection.execute_batch("ROLLBACK");
                    if let Some(batch) = state.open.take() {
                        let ended = Err((rusqlite::ffi::SQLITE_ERROR, "rolled back".into()));
                        state.finish(batch, ended);
                    }
                }
                Err(error)
            }
        }
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

/// Commits the open batch, if there is one, and records how it ended for its writers.
fn commit_batch(state: &mut WriterState) {
    let Some(batch) = state.open.take() else {
        return;
    };
    let ended = match state.connection.as_ref() {
        Some(connection) => connection.execute_batch("COMMIT").map_err(|error| {
            let _ = connection.execute_batch("ROLLBACK");
            let code = match &error {
                rusqlite::Error::SqliteFailure(failure, _) => failure.extended_code,
                _ => rusqlite::ffi::SQLITE_ERROR,
            };
            (code, error.to_string())
        }),
        None => Err((rusqlite::ffi::SQLITE_ERROR, "no write connection".into())),
    };
    state.finish(batch, ended);
}

fn lock(state: &Mutex<WriterState>) -> MutexGuard<'_, WriterState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writes_all_commit_and_a_failed_one_leaves_the_batch_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("group.db")).unwrap();
        db.write(|c| c.execute_batch("CREATE TABLE t (n INTEGER NOT NULL UNIQUE)"))
            .unwrap();

        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let db = db.clone();
                std::thread::spawn(move || {
                    for n in 0..50 {
                        let value = thread * 1000 + n;
                        db.write(|c| c.execute("INSERT INTO t (n) VALUES (?1)", [value]))
                            .unwrap();
                        // A duplicate fails in its own savepoint and takes nothing else with it.
                        let duplicate =
                            db.write(|c| c.execute("INSERT INTO t (n) VALUES (?1)", [value]));
                        assert!(unique_violation(&duplicate.unwrap_err()).is_some());
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }

        // What every writer was told is committed is visible to a fresh connection.
        let other = db.dedicated_connection().unwrap();
        let count: i64 = other
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 400);
    }

    #[test]
    fn a_write_that_panics_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("panic.db")).unwrap();
        db.write(|c| c.execute_batch("CREATE TABLE t (n INTEGER)"))
            .unwrap();
        let failed = db.write(|c| -> rusqlite::Result<()> {
            c.execute("INSERT INTO t (n) VALUES (1)", [])?;
            panic!("a bug in a store write");
        });
        assert!(failed.is_err());
        db.write(|c| c.execute("INSERT INTO t (n) VALUES (2)", []))
            .unwrap();
        let other = db.dedicated_connection().unwrap();
        let rows: Vec<i64> = other
            .prepare("SELECT n FROM t")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, [2]);
    }
}
