//! The cost of the WebAssembly boundary: the same SCIM requests answered by the protocol compiled
//! natively, by the component with a fresh instance per request, and a fixed answer through the
//! same host path (the floor).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use scim_plugin::{Request, Response, UserFields, UserStore as _};

use crate::component::PluginHost;
use crate::db::Database;
use crate::settings::{MemorySettings, SettingsSource};
use crate::store::{MemoryStore, SqliteStore, UserStore};

const TOKEN: &str = "bench-token";
const BASE: &str = "http://127.0.0.1/scim/v2";

/// One row of the report: a request's mean cost natively, through the component, and the floor.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: &'static str,
    pub native: Duration,
    pub component: Duration,
}

/// The rows of one store, and the floor measured over it.
#[derive(Debug, Clone)]
pub struct Table {
    pub store: &'static str,
    pub rows: Vec<Row>,
    pub floor: Duration,
}

/// The users a benchmark seeds: `user{n}@example.com`, with `ext-{n}` as externalId.
pub fn seed_user(n: usize) -> UserFields {
    UserFields {
        email: format!("user{n}@example.com"),
        user_name: format!("user{n}@example.com"),
        given_name: Some("Bench".into()),
        family_name: Some(format!("User{n}")),
        active: true,
        external_id: Some(format!("ext-{n}")),
    }
}

/// A folder of the host's own under the system's temporary one, removed when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(purpose: &str) -> Result<ScratchDir> {
        let path = std::env::temp_dir().join(format!(
            "scim-host-{purpose}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("creating the scratch folder {}", path.display()))?;
        Ok(ScratchDir(path))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The boundary over the in-memory store, then over SQLite in a temporary file (synchronous
/// FULL, as `scim-host serve` runs it). The writes over SQLite run at most `write_iterations`
/// times: each waits for a sync of the disk.
pub fn both_stores(
    host: &PluginHost,
    users: usize,
    iterations: u32,
    write_iterations: u32,
) -> Result<Vec<Table>> {
    let memory = Arc::new(MemoryStore::new());
    for n in 0..users {
        memory
            .create(seed_user(n))
            .map_err(|e| anyhow::anyhow!("seeding the store: {e:?}"))?;
    }
    let (rows, floor) = boundary(host, memory, users, iterations, iterations)?;
    let mut tables = vec![Table {
        store: "in memory",
        rows,
        floor,
    }];

    let scratch = ScratchDir::new("bench")?;
    let db = Database::open(&scratch.path().join("bench.db"))?;
    let sqlite = Arc::new(SqliteStore::new(db));
    sqlite
        .create_many((0..users).map(seed_user))
        .map_err(|e| anyhow::anyhow!("seeding the store: {e:?}"))?;
    let (rows, floor) = boundary(host, sqlite, users, iterations, write_iterations)?;
    tables.push(Table {
        store: "SQLite (temporary file)",
        rows,
        floor,
    });
    Ok(tables)
}

/// Runs every request `iterations` times each way (the writes `write_iterations` times) over a
/// store seeded with [`seed_user`] `0..users`, and returns the rows and the floor.
pub fn boundary(
    host: &PluginHost,
    store: Arc<dyn UserStore>,
    users: usize,
    iterations: u32,
    write_iterations: u32,
) -> Result<(Vec<Row>, Duration)> {
    let settings = Arc::new(MemorySettings::with_token(TOKEN, BASE));
    let middle = users / 2;
    let target = store
        .find_by_user_name(&format!("user{middle}@example.com"))
        .map_err(|e| anyhow::anyhow!("reading the seeded store: {e:?}"))?
        .context("the store holds the seeded users")?
        .id;
    let target_name = format!("user{middle}%40example.com");

    let native = |request: &Request| -> Response {
        scim_plugin::handle(request, store.as_ref(), &settings.current())
    };
    let wasm = |request: &Request| -> Response {
        host.handle(
            request,
            store.clone(),
            settings.clone() as Arc<dyn SettingsSource>,
        )
    };

    let get = request("GET", &format!("/Users/{target}"), "", None);
    let lookup = request(
        "GET",
        "/Users",
        &format!("filter=userName%20eq%20%22{target_name}%22"),
        None,
    );
    let patch = |n: u32| {
        let body = format!(
            r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{{"op":"replace","path":"name.givenName","value":"G{n}"}}]}}"#
        );
        request("PATCH", &format!("/Users/{target}"), "", Some(body))
    };
    let post = |prefix: &str, n: u32| {
        let body =
            format!(r#"{{"userName":"{prefix}{n}@example.com","name":{{"givenName":"New"}}}}"#);
        request("POST", "/Users", "", Some(body))
    };

    let writes = write_iterations;
    let rows = vec![
        Row {
            name: "GET /Users/{id}",
            native: time(iterations, |_| expect(native(&get), 200))?,
            component: time(iterations, |_| expect(wasm(&get), 200))?,
        },
        Row {
            name: "GET /Users?filter=userName eq",
            native: time(iterations, |_| expect(native(&lookup), 200))?,
            component: time(iterations, |_| expect(wasm(&lookup), 200))?,
        },
        Row {
            name: "POST /Users",
            native: time(writes, |n| expect(native(&post("native", n)), 201))?,
            component: time(writes, |n| expect(wasm(&post("wasm", n)), 201))?,
        },
        Row {
            name: "PATCH /Users/{id}",
            native: time(writes, |n| expect(native(&patch(n)), 200))?,
            component: time(writes, |n| expect(wasm(&patch(n + writes)), 200))?,
        },
    ];

    // The floor: SCIM turned off, so the component reads the settings once and answers a fixed
    // 403. What remains is the instance, the crossing and the copying of one request.
    let disabled: Arc<dyn SettingsSource> = Arc::new(MemorySettings::new(Default::default()));
    let floor = time(iterations, |_| {
        expect(host.handle(&get, store.clone(), disabled.clone()), 403)
    })?;
    Ok((rows, floor))
}

fn request(method: &str, path: &str, query: &str, body: Option<String>) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers: vec![
            ("Authorization".into(), format!("Bearer {TOKEN}")),
            ("Content-Type".into(), "application/scim+json".into()),
        ],
        body: body.map(String::into_bytes).unwrap_or_default(),
    }
}

fn expect(response: Response, status: u16) -> Result<()> {
    if response.status == status {
        Ok(())
    } else {
        anyhow::bail!(
            "expected {status}, got {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        )
    }
}

/// The mean time of `iterations` runs, after a tenth as many to warm up.
fn time(iterations: u32, mut run: impl FnMut(u32) -> Result<()>) -> Result<Duration> {
    let warm_up = iterations / 10;
    for n in 0..warm_up {
        run(u32::MAX - n)?;
    }
    let start = Instant::now();
    for n in 0..iterations {
        run(n)?;
    }
    Ok(start.elapsed() / iterations.max(1))
}

/// Prints the report: one table per store.
pub fn print(tables: &[Table], out: &mut dyn std::io::Write) -> Result<()> {
    for table in tables {
        writeln!(out, "\n{}", table.store)?;
        writeln!(
            out,
            "{:<32} {:>12} {:>12} {:>8}",
            "request", "native", "component", "b/a"
        )?;
        for row in &table.rows {
            writeln!(
                out,
                "{:<32} {:>9.1} µs {:>9.1} µs {:>7.2}x",
                row.name,
                micros(row.native),
                micros(row.component),
                micros(row.component) / micros(row.native).max(f64::MIN_POSITIVE)
            )?;
        }
        writeln!(
            out,
            "{:<32} {:>12} {:>9.1} µs",
            "floor (fixed 403)",
            "",
            micros(table.floor)
        )?;
    }
    Ok(())
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
