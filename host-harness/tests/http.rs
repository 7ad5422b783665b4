//! The host over real HTTP on 127.0.0.1: persistence, settings changed by the command line while
//! the server runs, the administrator policies, the body cap, concurrent creates, and the
//! activity log.

mod common;

use std::sync::{Arc, Barrier};

use common::{TestServer, cli, enable, line_value, new_user, send, set_active, temp_db};
use scim_host::activity::ActivityLog;
use scim_host::db::Database;
use serde_json::Value;

const USERS: &str = "/scim/v2/Users";

fn create(server: &TestServer, token: &str, user_name: &str) -> Value {
    let reply = server.send(
        "POST",
        USERS,
        Some(token),
        Some(&new_user(user_name, user_name)),
    );
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

fn user_path(user: &Value) -> String {
    format!("{USERS}/{}", user["id"].as_str().unwrap())
}

#[test]
fn user_created_over_http_is_found_after_a_restart() {
    let (_dir, db) = temp_db();
    let token = enable(&db);
    let server = TestServer::start(&db);
    let created = create(&server, &token, "bjensen@example.com");
    server.stop();

    let server = TestServer::start(&db);
    let reply = server.send("GET", &user_path(&created), Some(&token), None);
    assert_eq!(reply.status, 200);
    let found = reply.json();
    assert_eq!(found["userName"], "bjensen@example.com");
    assert_eq!(found["meta"]["version"], created["meta"]["version"]);
}

#[test]
fn token_rotation_and_disable_apply_to_a_running_server() {
    let (_dir, db) = temp_db();
    let first = enable(&db);
    let server = TestServer::start(&db);
    let config = "/scim/v2/ServiceProviderConfig";
    assert_eq!(server.send("GET", config, Some(&first), None).status, 200);

    let second = line_value(&cli(&db, &["settings", "rotate-token"]), "token");
    server
        .send("GET", config, Some(&first), None)
        .assert_scim_error(401);
    assert_eq!(server.send("GET", config, Some(&second), None).status, 200);

    cli(&db, &["settings", "disable"]);
    server
        .send("GET", config, Some(&second), None)
        .assert_scim_error(403);

    let output = cli(
        &db,
        &[
            "settings",
            "enable",
            "--base-url",
            "https://vault.example.com/scim/v2",
        ],
    );
    assert_eq!(
        line_value(&output, "endpoint"),
        "https://vault.example.com/scim/v2"
    );
    let third = line_value(&output, "token");
    let reply = server.send("GET", config, Some(&third), None);
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json()["meta"]["location"],
        "https://vault.example.com/scim/v2/ServiceProviderConfig"
    );
}

#[test]
fn a_token_past_its_rate_limit_gets_429_with_retry_after_until_lifted() {
    let (_dir, db) = temp_db();
    let token = enable(&db);
    let server = TestServer::start(&db);
    let config = "/scim/v2/ServiceProviderConfig";
    let set = cli(&db, &["settings", "set", "rate-limit", "1"]);
    assert_eq!(line_value(&set, "rate-limit"), "1/s per token");

    // One request a second: the first passes, the one right after it must wait.
    assert_eq!(server.send("GET", config, Some(&token), None).status, 200);
    let refused = server.send("GET", config, Some(&token), None);
    let error = refused.assert_scim_error(429);
    assert_eq!(refused.header("Retry-After"), Some("1"));
    assert!(error["detail"].as_str().unwrap().contains("limit: 1/s"));
    // Only valid tokens are counted; a wrong one still gets its 401.
    server
        .send("GET", config, Some("scim_wrong"), None)
        .assert_scim_error(401);
    // A write refused for the rate is a refused request in the activity log, like any other.
    server
        .send(
            "POST",
            "/scim/v2/Users",
            Some(&token),
            Some(&new_user("rate@example.com", "rate@example.com")),
        )
        .assert_scim_error(429);
    let latest = ActivityLog::new(Database::open(&db).unwrap())
        .recent(1)
        .unwrap();
    assert_eq!(
        (latest[0].action.as_str(), latest[0].outcome.as_str()),
        ("create", "refused (429)")
    );

    cli(&db, &["settings", "set", "rate-limit", "0"]);
    assert_eq!(
        line_value(&cli(&db, &["settings", "show"]), "rate-limit"),
        "none"
    );
    assert_eq!(server.send("GET", config, Some(&token), None).status, 200);
}

#[test]
fn settings_show_never_prints_the_token() {
    let (_dir, db) = temp_db();
    let token = line_value(&cli(&db, &["settings", "enable"]), "token");
    assert!(token.starts_with("scim_"));
    let shown = cli(&db, &["settings", "show"]);
    assert!(!shown.contains(&token));
    assert_eq!(line_value(&shown, "enabled"), "true");
    assert_eq!(line_value(&shown, "delete-action"), "delete");
    assert_eq!(line_value(&shown, "protect-admins"), "true");
    assert!(line_value(&shown, "token").starts_with("created "));
}

#[test]
fn administrators_cannot_be_suspended_or_deleted_through_scim_by_default() {
    let (_dir, db) = temp_db();
    let token = enable(&db);
    let server = TestServer::start(&db);
    let admin = create(&server, &token, "boss@example.com");
    cli(&db, &["users", "make-admin", "BOSS@example.com"]);

    let error = server
        .send(
            "PATCH",
            &user_path(&admin),
            Some(&token),
            Some(&set_active(false)),
        )
        .assert_scim_error(409);
    assert!(
        error["detail"].as_str().unwrap().contains("administrators"),
        "{error}"
    );
    server
        .send("DELETE", &user_path(&admin), Some(&token), None)
        .assert_scim_error(409);

    let unchanged = server
        .send("GET", &user_path(&admin), Some(&token), None)
        .json();
    assert_eq!(unchanged["active"], true);
    assert_eq!(unchanged["meta"]["version"], admin["meta"]["version"]);

    let users = cli(&db, &["users"]);
    let row = users
        .lines()
        .find(|line| line.starts_with("boss@example.com"))
        .unwrap();
    assert!(row.contains("\tinvited\tadministrator\t"), "{row}");
}

#[test]
fn without_protection_admins_can_be_suspended_except_the_last_active_one() {
    let (_dir, db) = temp_db();
    let token = enable(&db);
    let server = TestServer::start(&db);
    let first = create(&server, &token, "first@example.com");
    cli(&db, &["users", "make-admin", "first@example.com"]);
    cli(&db, &["users", "add", "second@example.com", "--admin"]);
    cli(&db, &["settings", "set", "protect-admins", "false"]);

    let reply = server.send(
        "PATCH",
        &user_path(&first),
        Some(&token),
        Some(&set_active(false)),
    );
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["active"], false);

    let list = server
        .send("GET", &format!("{USERS}?count=10"), Some(&token), None)
        .json();
    let second = list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["userName"] == "second@example.com")
        .unwrap()
        .clone();
    let error = server
        .send(
            "PATCH",
            &user_path(&second),
            Some(&token),
            Some(&set_active(false)),
        )
        .assert_scim_error(409);
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("last active administrator"),
        "{error}"
    );
    server
        .send("DELETE", &user_path(&second), Some(&token), None)
        .assert_scim_error(409);
    assert_eq!(
        server
            .send("GET", &user_path(&second), Some(&token), None)
            .json()["active"],
        true
    );

    // Once the first administrator is back, the second one is no longer the last.
    let reply = server.send(
        "PATCH",
        &user_path(&first),
        Some(&token),
        Some(&set_active(true)),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        server
            .send("DELETE", &user_path(&second), Some(&token), None)
            .status,
        204
    );
}

#[test]
fn delete_suspends_instead_when_the_host_says_so() {
    let (_dir, db) = temp_db();
    let token = enable(&db);
    let server = TestServer::start(&db);
    let user = create(&server, &token, "leaver@example.com");
    cli(&db, &["settings", "set", "delete-action", "suspend"]);

    assert_eq!(
        server
            .send("DELETE", &user_path(&user), Some(&token), None)
            .status,
        204
    );
    let kept = server.send("GET", &user_path(&user), Some(&token), None);
    assert_eq!(kept.status, 200);
    assert_eq!(kept.json()["active"], false);
}

#[test]
fn body_over_the_cap_is_413_and_the_server_keeps_answering() {
    let (_dir, db) = temp_db();
    let token = enable(&db);
    let server = TestServer::start(&db);
    let two_mib = vec![b' '; 2 << 20];

    // Refused from Content-Length, before the body is read.
    let reply = send(server.addr, "POST", USERS, Some(&token), Some(&two_mib));
    let error = reply.assert_scim_error(413);
    assert!(error["detail"].as_str().unwrap().contains("exceeds"));

    // Refused while reading a chunked body that has no Content-Length.
    let mut chunked = format!(
        "POST {USERS} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .into_bytes();
    for chunk in two_mib.chunks(64 << 10) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    common::exchange(server.addr, &chunked).assert_scim_error(413);

    assert_eq!(
        server
            .send("GET", "/scim/v2/ServiceProviderConfig", Some(&token), None)
            .status,
        200
    );
}

#[test]
fn concurrent_creates_of_one_user_name_give_one_201_and_the_rest_409() {
    const CLIENTS: usize = 20;
    let (_dir, db) = temp_db();
    let token = enable(&db);
    let server = TestServer::start(&db);
    let start = Arc::new(Barrier::new(CLIENTS));

    let statuses: Vec<u16> = (0..CLIENTS)
        .map(|i| {
            let (addr, token, start) = (server.addr, token.clone(), start.clone());
            std::thread::spawn(move || {
                let body = new_user("racer", &format!("racer{i}@example.com"));
                let body = serde_json::to_vec(&body).unwrap();
                start.wait();
                send(addr, "POST", USERS, Some(&token), Some(&body)).status
            })
        })
        // Every client must be started before any is waited for, or the barrier never opens.
        .collect::<Vec<_>>()
        .into_iter()
        .map(|client| client.join().unwrap())
        .collect();

    assert_eq!(
        statuses.iter().filter(|status| **status == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|status| **status == 409).count(),
        CLIENTS - 1,
        "{statuses:?}"
    );
}

#[test]
fn paths_outside_the_scim_base_are_scim_404s() {
    let (_dir, db) = temp_db();
    let token = enable(&db);
    let server = TestServer::start(&db);
    for path in ["/", "/Users", "/scim/v1/Users", "/scim/v2Users"] {
        server
            .send("GET", path, Some(&token), None)
            .assert_scim_error(404);
    }
}

#[test]
fn activity_log_records_writes_and_refusals_with_the_user_agent() {
    let (_dir, db) = temp_db();
    let token = enable(&db);
    let server = TestServer::start(&db);
    let user = create(&server, &token, "bjensen@example.com");
    server.send(
        "PATCH",
        &user_path(&user),
        Some(&token),
        Some(&set_active(false)),
    );
    server.send(
        "PATCH",
        &user_path(&user),
        Some(&token),
        Some(&set_active(true)),
    );
    // A duplicate and a request without a token are refused writes.
    server.send(
        "POST",
        USERS,
        Some(&token),
        Some(&new_user("bjensen@example.com", "bjensen@example.com")),
    );
    server.send("DELETE", &user_path(&user), None, None);
    server.send("DELETE", &user_path(&user), Some(&token), None);

    let entries = ActivityLog::new(Database::open(&db).unwrap())
        .recent(10)
        .unwrap();
    let seen: Vec<(&str, &str)> = entries
        .iter()
        .rev()
        .map(|entry| (entry.action.as_str(), entry.outcome.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("create", "ok"),
            ("suspend", "ok"),
            ("restore", "ok"),
            ("create", "refused (409)"),
            ("delete", "refused (401)"),
            ("delete", "ok"),
        ]
    );
    assert!(
        entries
            .iter()
            .all(|entry| entry.user_agent.as_deref() == Some("scim-host-tests"))
    );

    let printed = cli(&db, &["activity", "--limit", "3"]);
    assert_eq!(printed.lines().count(), 4, "{printed}");
}

#[test]
fn an_http_1_1_request_without_host_gets_a_400_scim_error() {
    let (_dir, db) = temp_db();
    let token = enable(&db);
    let server = TestServer::start(&db);
    let request = format!(
        "GET /scim/v2/Users HTTP/1.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    common::exchange(server.addr, request.as_bytes()).assert_scim_error(400);
    // HTTP/1.0 has no Host requirement.
    let request = format!("GET /scim/v2/Users HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n");
    assert_eq!(
        common::exchange(server.addr, request.as_bytes()).status,
        200
    );
}

/// Runs `scim-host` with these arguments and its standard output sent to `stdout`; returns
/// whether it succeeded and what it wrote to stderr.
fn cli_to(stdout: std::process::Stdio, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_scim-host"))
        .args(args)
        .stdout(stdout)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
#[cfg(target_os = "linux")]
fn a_rotated_token_that_cannot_be_printed_leaves_the_old_one_working() {
    let (_dir, db) = temp_db();
    let token = enable(&db);
    let server = TestServer::start(&db);
    let db_arg = db.to_str().unwrap();

    // /dev/full: every write fails with "no space left on device".
    let full = std::fs::File::create("/dev/full").unwrap();
    let (ok, stderr) = cli_to(full.into(), &["--db", db_arg, "settings", "rotate-token"]);
    assert!(!ok);
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    let config = "/scim/v2/ServiceProviderConfig";
    assert_eq!(server.send("GET", config, Some(&token), None).status, 200);
}

#[test]
fn a_database_in_a_missing_folder_or_a_missing_one_to_read_is_refused() {
    let (dir, db) = temp_db();
    let missing_folder = dir.path().join("no-such-folder").join("scim-host.db");
    let (ok, stderr) = cli_to(
        std::process::Stdio::null(),
        &[
            "--db",
            missing_folder.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(
        !dir.path().join("no-such-folder").exists(),
        "no folder was created"
    );

    for read in [&["users"][..], &["activity"], &["settings", "show"]] {
        let mut args = vec!["--db", db.to_str().unwrap()];
        args.extend_from_slice(read);
        let (ok, stderr) = cli_to(std::process::Stdio::null(), &args);
        assert!(!ok, "{read:?}");
        assert!(
            stderr.contains("there is no database"),
            "{read:?}: {stderr}"
        );
    }
    assert!(!db.exists(), "reading created no database");
}
