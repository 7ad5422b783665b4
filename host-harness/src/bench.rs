//! The cost of the WebAssembly boundary: the same SCIM requests answered by the protocol compiled
//! natively, by the component with a fresh instance per request, and a fixed answer through the
//! same host path (the floor).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use scim_plugin::{Request, Response, UserFields, UserStore as _};

use crate::component::PluginHost;
use crate::settings::{MemorySettings, SettingsSource};
use crate::store::MemoryStore;

const TOKEN: &str = "bench-token";
const BASE: &str = "http://127.0.0.1/scim/v2";

/// One row of the report: a request's mean cost natively, through the component, and the floor.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: &'static str,
    pub native: Duration,
    pub component: Duration,
}

/// Runs every request `iterations` times each way over a store of `users` users, and returns the
/// rows and the floor.
pub fn boundary(host: &PluginHost, users: usize, iterations: u32) -> Result<(Vec<Row>, Duration)> {
    let store = Arc::new(MemoryStore::new());
    let settings = Arc::new(MemorySettings::with_token(TOKEN, BASE));
    let mut ids = Vec::with_capacity(users);
    for n in 0..users {
        let user = store
            .create(UserFields {
                email: format!("user{n}@example.com"),
                user_name: format!("user{n}@example.com"),
                given_name: Some("Bench".into()),
                family_name: Some(format!("User{n}")),
                active: true,
                external_id: Some(format!("ext-{n}")),
            })
            .map_err(|e| anyhow::anyhow!("seeding the store: {e:?}"))?;
        ids.push(user.id);
    }
    let target = ids[ids.len() / 2].clone();
    let target_name = format!("user{}%40example.com", ids.len() / 2);

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
            native: time(iterations, |n| expect(native(&post("native", n)), 201))?,
            component: time(iterations, |n| expect(wasm(&post("wasm", n)), 201))?,
        },
        Row {
            name: "PATCH /Users/{id}",
            native: time(iterations, |n| expect(native(&patch(n)), 200))?,
            component: time(iterations, |n| expect(wasm(&patch(n + iterations)), 200))?,
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

/// Prints the report.
pub fn print(rows: &[Row], floor: Duration, out: &mut dyn std::io::Write) -> Result<()> {
    writeln!(
        out,
        "{:<32} {:>12} {:>12} {:>8}",
        "request", "native", "component", "b/a"
    )?;
    for row in rows {
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
        micros(floor)
    )?;
    Ok(())
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
