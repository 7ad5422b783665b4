//! Faults over real HTTP on 127.0.0.1: a database held by another writer is a 503 with
//! `Retry-After` (RFC 7644 §3.12) that changes nothing, and a request that traps the component
//! leaves the next one served. `kill -9` in the middle of writes is `tests/faults/kill9.sh`.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, enable, new_user, temp_db};
use rusqlite::Connection;
use scim_host::db::Database;
use scim_host::server::DEFAULT_MAX_BODY_BYTES;
use scim_host::{Limits, component::shared_embedded};
use serde_json::json;

const USERS: &str = "/scim/v2/Users";

#[test]
fn write_while_another_connection_holds_the_database_is_503_with_retry_after() {
    let (_dir, db_path) = temp_db();
    let token = enable(&db_path);
    // A short busy timeout: the default (5 s) is what production waits, not what this test
    // needs to see the store give up.
    let db = Database::open_with_busy_timeout(&db_path, Duration::from_millis(200)).unwrap();
    let shared = shared_embedded().unwrap();
    let server = TestServer::start_with(
        db,
        shared.with_limits(shared.limits()),
        DEFAULT_MAX_BODY_BYTES,
        |service| service,
    );
    let existing = server.send(
        "POST",
        USERS,
        Some(&token),
        Some(&new_user("kept@example.com", "kept@example.com")),
    );
    assert_eq!(existing.status, 201);
    let existing_path = format!("{USERS}/{}", existing.json()["id"].as_str().unwrap());

    // Another process's write transaction, held while the requests arrive.
    let holder = Connection::open(&db_path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let started = Instant::now();
    let create = server.send(
        "POST",
        USERS,
        Some(&token),
        Some(&new_user("blocked@example.com", "blocked@example.com")),
    );
    let error = create.assert_scim_error(503);
    assert!(
        create
            .header("Retry-After")
            .is_some_and(|seconds| seconds.parse::<u64>().is_ok()),
        "{:?}",
        create.headers
    );
    assert!(
        error["detail"].as_str().unwrap().contains("busy"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the request hung"
    );

    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": "name.givenName", "value": "Blocked" }],
    });
    let update = server.send("PATCH", &existing_path, Some(&token), Some(&patch));
    update.assert_scim_error(503);
    assert!(update.header("Retry-After").is_some());
    server
        .send("DELETE", &existing_path, Some(&token), None)
        .assert_scim_error(503);

    // In WAL mode readers are not blocked by the writer.
    assert_eq!(
        server
            .send("GET", &existing_path, Some(&token), None)
            .status,
        200
    );

    holder.execute_batch("ROLLBACK").unwrap();
    let kept = server
        .send("GET", &existing_path, Some(&token), None)
        .json();
    assert_eq!(
        kept["name"]["givenName"], "Barbara",
        "a 503 changed the user"
    );
    let retried = server.send(
        "POST",
        USERS,
        Some(&token),
        Some(&new_user("blocked@example.com", "blocked@example.com")),
    );
    assert_eq!(retried.status, 201, "the retry after the 503 is served");
}

#[test]
fn request_that_traps_the_component_is_500_and_the_next_is_served_over_http() {
    let (_dir, db_path) = temp_db();
    let token = enable(&db_path);
    let shared = shared_embedded().unwrap();
    // A 3 MiB instance cannot take a 4 MiB body in; the body cap is raised so that the
    // component, not the HTTP layer, is what fails.
    let small = shared.with_limits(Limits {
        memory_bytes: 3 << 20,
        ..shared.limits()
    });
    let server = TestServer::start_with(
        Database::open(&db_path).unwrap(),
        small,
        8 << 20,
        |service| service,
    );

    let huge = json!({ "userName": "x@example.com", "padding": "p".repeat(4 << 20) });
    let error = server
        .send("POST", USERS, Some(&token), Some(&huge))
        .assert_scim_error(500);
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("could not be completed"),
        "{error}"
    );

    let next = server.send(
        "POST",
        USERS,
        Some(&token),
        Some(&new_user("after@example.com", "after@example.com")),
    );
    assert_eq!(next.status, 201, "{}", String::from_utf8_lossy(&next.body));
}
