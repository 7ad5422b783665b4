//! `scim-host serve` as a script runs it: one command on a fresh database gives a working
//! endpoint and token, and SIGTERM stops it cleanly.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use common::{send, temp_db};

#[test]
fn serve_on_a_fresh_database_prints_a_working_endpoint_and_token_and_stops_on_sigterm() {
    let (_dir, db) = temp_db();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scim-host"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = || lines.next().unwrap().unwrap();

    let endpoint = next_line();
    let token = next_line();
    let listening = next_line();
    let address = listening
        .strip_prefix("listening: http://")
        .unwrap()
        .strip_suffix("/scim/v2")
        .unwrap();
    assert_eq!(endpoint, format!("endpoint: http://{address}/scim/v2"));
    let token = token
        .strip_prefix("token: scim_")
        .map(|rest| format!("scim_{rest}"))
        .unwrap();

    let reply = send(
        address.parse().unwrap(),
        "GET",
        "/scim/v2/Users",
        Some(&token),
        None,
    );
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success());
}
