//! Concurrent clients over real HTTP on 127.0.0.1: versioned read-modify-write cycles with
//! `If-Match` lose no update (RFC 7644 §3.14), and parallel creates, updates and deletes of
//! different users leave the store consistent. Concurrent creates of one userName are pinned in
//! `http.rs`.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{Reply, TestServer, enable, new_user, send, send_with, temp_db};
use serde_json::{Value, json};

const USERS: &str = "/scim/v2/Users";

/// Every loop below stops by this time, whatever the server does.
const TIME_LIMIT: Duration = Duration::from_secs(60);

fn body_text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

fn create(addr: SocketAddr, token: &str, user_name: &str, email: &str) -> Reply {
    let body = serde_json::to_vec(&new_user(user_name, email)).unwrap();
    send(addr, "POST", USERS, Some(token), Some(&body))
}

fn replace(path: &str, value: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": path, "value": value }],
    }))
    .unwrap()
}

/// Every user the server lists, page by page (the server caps a page at 200).
fn list_all(addr: SocketAddr, token: &str) -> Vec<Value> {
    let mut users = Vec::new();
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < TIME_LIMIT, "listing did not finish");
        let path = format!("{USERS}?startIndex={}&count=100", users.len() + 1);
        let reply = send(addr, "GET", &path, Some(token), None);
        assert_eq!(reply.status, 200, "{}", body_text(&reply));
        let page = reply.json();
        let resources = page["Resources"].as_array().cloned().unwrap_or_default();
        let total = page["totalResults"].as_u64().unwrap() as usize;
        if resources.is_empty() {
            assert_eq!(users.len(), total);
            return users;
        }
        users.extend(resources);
    }
}

#[test]
fn concurrent_if_match_patches_lose_no_update() {
    const CLIENTS: usize = 8;
    const CYCLES: usize = 25;
    let (_dir, db) = temp_db();
    let token = enable(&db);
    let server = TestServer::start(&db);
    let created = create(
        server.addr,
        &token,
        "counter@example.com",
        "counter@example.com",
    );
    assert_eq!(created.status, 201, "{}", body_text(&created));
    let user_path = format!("{USERS}/{}", created.json()["id"].as_str().unwrap());
    let start = Arc::new(Barrier::new(CLIENTS));

    // Each cycle reads the counter in externalId, adds one and writes it back guarded by the
    // version it read: an applied PATCH (200) adds exactly one, a stale one is refused (412).
    let outcomes: Vec<(usize, usize)> = (0..CLIENTS)
        .map(|_| {
            let (addr, token, path, start) =
                (server.addr, token.clone(), user_path.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let (mut applied, mut refused) = (0, 0);
                let started = Instant::now();
                for _ in 0..CYCLES {
                    assert!(started.elapsed() < TIME_LIMIT, "the cycles did not finish");
                    let read = send(addr, "GET", &path, Some(&token), None);
                    assert_eq!(read.status, 200, "{}", body_text(&read));
                    let user = read.json();
                    let version = user["meta"]["version"].as_str().unwrap().to_string();
                    let etag = read.header("ETag").unwrap_or(&version).to_string();
                    assert_eq!(etag, version, "the ETag header is meta.version");
                    let counter: u64 = user["externalId"]
                        .as_str()
                        .map_or(0, |value| value.parse().unwrap());

                    let body = replace("externalId", json!((counter + 1).to_string()));
                    let headers = [
                        ("Authorization", format!("Bearer {token}")),
                        ("If-Match", etag),
                    ];
                    let headers: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(name, value)| (*name, value.as_str()))
                        .collect();
                    let written = send_with(addr, "PATCH", &path, &headers, Some(&body));
                    match written.status {
                        200 => applied += 1,
                        412 => refused += 1,
                        other => panic!("PATCH answered {other}: {}", body_text(&written)),
                    }
                }
                (applied, refused)
            })
        })
        // Every client must be started before any is waited for, or the barrier never opens.
        .collect::<Vec<_>>()
        .into_iter()
        .map(|client| client.join().unwrap())
        .collect();

    let applied: usize = outcomes.iter().map(|(applied, _)| applied).sum();
    let refused: usize = outcomes.iter().map(|(_, refused)| refused).sum();
    println!("{applied} PATCHes applied (200), {refused} refused as stale (412)");
    assert_eq!(applied + refused, CLIENTS * CYCLES);
    assert!(applied > 0);

    let last = server.send("GET", &user_path, Some(&token), None).json();
    assert_eq!(
        last["externalId"],
        applied.to_string(),
        "an update was lost"
    );
    assert_eq!(last["meta"]["version"], format!("W/\"{}\"", applied + 1));
}

/// What one client did, as the server acknowledged it.
#[derive(Default)]
struct Acknowledged {
    /// userName → (id, the givenName last acknowledged).
    alive: HashMap<String, (String, String)>,
    deleted: Vec<String>,
    /// The contested userNames this client got a 201 for.
    contested_wins: Vec<String>,
}

#[test]
fn parallel_creates_updates_and_deletes_leave_the_store_consistent() {
    const CLIENTS: usize = 6;
    const USERS_EACH: usize = 12;
    /// userNames every client tries to create, with an email of its own: one 201 each.
    const CONTESTED: usize = 4;
    let (_dir, db) = temp_db();
    let token = enable(&db);
    let server = TestServer::start(&db);
    let start = Arc::new(Barrier::new(CLIENTS));

    let clients: Vec<Acknowledged> = (0..CLIENTS)
        .map(|client| {
            let (addr, token, start) = (server.addr, token.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut done = Acknowledged::default();
                for n in 0..USERS_EACH {
                    let user_name = format!("c{client}-u{n}@example.com");
                    let reply = create(addr, &token, &user_name, &user_name);
                    assert_eq!(reply.status, 201, "{}", body_text(&reply));
                    let id = reply.json()["id"].as_str().unwrap().to_string();
                    let path = format!("{USERS}/{id}");

                    // Every other user is renamed, every third deleted; the rest stay as made.
                    let mut given = "Barbara".to_string();
                    if n % 2 == 0 {
                        given = format!("Given-{client}-{n}");
                        let body = replace("name.givenName", json!(given));
                        let reply = send(addr, "PATCH", &path, Some(&token), Some(&body));
                        assert_eq!(reply.status, 200, "{}", body_text(&reply));
                    }
                    if n % 3 == 0 {
                        let reply = send(addr, "DELETE", &path, Some(&token), None);
                        assert_eq!(reply.status, 204, "{}", body_text(&reply));
                        done.deleted.push(id);
                    } else {
                        done.alive.insert(user_name, (id, given));
                    }

                    if n < CONTESTED {
                        let contested = format!("contested-{n}@example.com");
                        let email = format!("contested-{n}-c{client}@example.com");
                        let reply = create(addr, &token, &contested, &email);
                        match reply.status {
                            201 => done.contested_wins.push(contested),
                            409 => {}
                            other => panic!("create answered {other}: {}", body_text(&reply)),
                        }
                    }
                }
                done
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|client| client.join().unwrap())
        .collect();

    let wins: Vec<&String> = clients.iter().flat_map(|c| &c.contested_wins).collect();
    let unique_wins: HashSet<&String> = wins.iter().copied().collect();
    assert_eq!(
        wins.len(),
        CONTESTED,
        "one 201 per contested userName: {wins:?}"
    );
    assert_eq!(unique_wins.len(), CONTESTED);

    let listed = list_all(server.addr, &token);
    let user_names: HashSet<String> = listed
        .iter()
        .map(|user| user["userName"].as_str().unwrap().to_lowercase())
        .collect();
    let emails: HashSet<String> = listed
        .iter()
        .map(|user| user["emails"][0]["value"].as_str().unwrap().to_lowercase())
        .collect();
    assert_eq!(user_names.len(), listed.len(), "a userName is listed twice");
    assert_eq!(emails.len(), listed.len(), "an email is listed twice");

    let alive: usize = clients.iter().map(|c| c.alive.len()).sum();
    let deleted: usize = clients.iter().map(|c| c.deleted.len()).sum();
    println!(
        "{} users listed: {alive} kept, {CONTESTED} contested; {deleted} deleted",
        listed.len()
    );
    assert_eq!(listed.len(), alive + CONTESTED);

    let by_user_name: HashMap<&str, &Value> = listed
        .iter()
        .map(|user| (user["userName"].as_str().unwrap(), user))
        .collect();
    for client in &clients {
        for (user_name, (id, given)) in &client.alive {
            let user = by_user_name
                .get(user_name.as_str())
                .unwrap_or_else(|| panic!("{user_name} was acknowledged and is gone"));
            assert_eq!(user["id"], id.as_str());
            assert_eq!(user["name"]["givenName"], given.as_str());
        }
        for id in &client.deleted {
            server
                .send("GET", &format!("{USERS}/{id}"), Some(&token), None)
                .assert_scim_error(404);
        }
    }
}
