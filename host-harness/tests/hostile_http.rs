//! Hostile requests over real HTTP on 127.0.0.1: every way a bearer token can be wrong is a 401,
//! tokens never reach the logs, each deliberate limit is answered with a SCIM error, and a
//! deterministic corpus of malformed requests gets 4xx SCIM errors only (RFC 7644 §3.12), never
//! a 5xx or a dropped connection, with the server answering afterwards. Bodies that stop short
//! or stall are answered too, and bytes that are not HTTP get hyper's own 4xx.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Reply, TestServer, enable, new_user, send_with, temp_db, try_exchange};
use scim_host::component::shared_embedded;
use scim_host::db::Database;
use scim_host::server::DEFAULT_MAX_BODY_BYTES;
use scim_host::settings::sqlite::{self as stored, DEFAULT_TOKEN_VALIDITY};
use serde_json::{Value, json};

const USERS: &str = "/scim/v2/Users";
const CONFIG: &str = "/scim/v2/ServiceProviderConfig";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn get_config(addr: SocketAddr, authorization: Option<&str>, extra: &[(&str, &str)]) -> Reply {
    let mut headers: Vec<(&str, &str)> = authorization
        .map(|value| ("Authorization", value))
        .into_iter()
        .collect();
    headers.extend_from_slice(extra);
    send_with(addr, "GET", CONFIG, &headers, None)
}

#[test]
fn missing_malformed_wrong_expired_and_rotated_tokens_are_401() {
    let (_dir, db_path) = temp_db();
    let token = enable(&db_path);
    let server = TestServer::start(&db_path);
    assert_eq!(
        get_config(server.addr, Some(&bearer(&token)), &[]).status,
        200
    );

    let long = "x".repeat(10 << 10);
    let refused = [
        None,
        Some(String::new()),
        Some("Bearer".to_string()),
        Some("Bearer ".to_string()),
        Some(token.clone()),
        Some(format!("Basic {token}")),
        Some(format!("Token {token}")),
        Some(format!("Bearer {token}x")),
        Some(format!("Bearer {}", &token[..token.len() - 1])),
        Some(format!("Bearer {token} {token}")),
        Some(format!("Bearer {}", token.to_uppercase())),
        Some("Bearer scim_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string()),
        Some(format!("Bearer {long}")),
        Some(long.clone()),
    ];
    for authorization in &refused {
        let reply = get_config(server.addr, authorization.as_deref(), &[]);
        let error = reply.assert_scim_error(401);
        assert!(
            reply.header("WWW-Authenticate").is_some(),
            "{authorization:?}: {error}"
        );
    }

    // A cookie means a browser's ambient session: refused even with the right token.
    get_config(
        server.addr,
        Some(&bearer(&token)),
        &[("Cookie", "session=abc")],
    )
    .assert_scim_error(401);

    // Rotated away: the old token stops at the next request.
    let db = Database::open(&db_path).unwrap();
    let rotated = stored::rotate_token(&db, DEFAULT_TOKEN_VALIDITY).unwrap();
    get_config(server.addr, Some(&bearer(&token)), &[]).assert_scim_error(401);
    assert_eq!(
        get_config(server.addr, Some(&bearer(&rotated)), &[]).status,
        200
    );

    // Expired: the same token, once its expiry is in the past.
    db.write(|transaction| transaction.execute("UPDATE tokens SET expires_at = created - 1", []))
        .unwrap();
    get_config(server.addr, Some(&bearer(&rotated)), &[]).assert_scim_error(401);
}

#[test]
fn tokens_never_appear_in_the_server_log_at_debug_level() {
    let (_dir, db_path) = temp_db();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scim-host"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db_path)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the log while the server runs: a full pipe would block the server's writes.
    let mut stderr = child.stderr.take().unwrap();
    let draining = std::thread::spawn(move || {
        let mut log = String::new();
        stderr.read_to_string(&mut log).unwrap();
        log
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut value_of = |name: &str| {
        let line = lines.next().unwrap().unwrap();
        line.strip_prefix(&format!("{name}: "))
            .unwrap_or_else(|| panic!("expected `{name}:`, got {line}"))
            .to_string()
    };
    value_of("endpoint");
    let token = value_of("token");
    let listening = value_of("listening");
    let addr: SocketAddr = listening
        .trim_start_matches("http://")
        .trim_end_matches("/scim/v2")
        .parse()
        .unwrap();

    let wrong = "scim_wrongwrongwrongwrongwrongwrongwrongwrong1";
    let body = serde_json::to_vec(&new_user("logged@example.com", "logged@example.com")).unwrap();
    let valid = bearer(&token);
    let headers = [("Authorization", valid.as_str())];
    assert_eq!(
        send_with(addr, "POST", USERS, &headers, Some(&body)).status,
        201
    );
    assert_eq!(send_with(addr, "GET", USERS, &headers, None).status, 200);
    let wrong_bearer = bearer(wrong);
    let reply = send_with(
        addr,
        "GET",
        USERS,
        &[("Authorization", &wrong_bearer)],
        None,
    );
    reply.assert_scim_error(401);
    let cookie = [("Authorization", valid.as_str()), ("Cookie", "sid=1")];
    send_with(addr, "GET", USERS, &cookie, None).assert_scim_error(401);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success());
    let log = draining.join().unwrap();

    // The log is there (so the test can fail), and holds neither token, nor the cookie.
    assert!(log.contains("request"), "{log}");
    assert!(log.contains("401"), "{log}");
    assert!(!log.contains(&token), "the valid token was logged");
    assert!(
        !log.contains(&token[5..]),
        "the valid token's secret part was logged"
    );
    assert!(!log.contains(wrong), "a presented token was logged");
    assert!(!log.contains("sid=1"), "the cookie was logged");
}

/// One request of the corpus or of the limits, and what it exercises.
struct Case {
    name: String,
    bytes: Vec<u8>,
}

/// A whole HTTP/1.1 request with a Content-Length body.
fn raw(method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// xorshift64*: a few lines that make the corpus the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    /// Between 1 and `max` random bytes.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = 1 + self.below(max);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn patch_op(op: Value) -> Value {
    json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [op] })
}

fn nested(open: &str, close: &str, depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// The malformed requests: every one is the client's fault and must be a 4xx SCIM error.
fn corpus(token: &str, user_path: &str) -> Vec<Case> {
    let mut rng = Rng(0x5c1a_2024_dead_beef);
    let auth = || ("Authorization", bearer(token));
    let json_type = || ("Content-Type", "application/scim+json".to_string());
    let mut cases = Vec::new();
    let mut add = |name: String, bytes: Vec<u8>| cases.push(Case { name, bytes });
    let post = |body: &[u8]| raw("POST", USERS, &[auth(), json_type()], body);
    let put = |body: &[u8]| raw("PUT", user_path, &[auth(), json_type()], body);
    let patch = |body: &[u8]| raw("PATCH", user_path, &[auth(), json_type()], body);
    let get = |path: &str| raw("GET", path, &[auth()], b"");

    // Random bytes as the body of every write.
    for i in 0..60 {
        let body = rng.bytes(2000);
        let (method, bytes) = match i % 3 {
            0 => ("POST", post(&body)),
            1 => ("PUT", put(&body)),
            _ => ("PATCH", patch(&body)),
        };
        add(format!("{method} random bytes #{i}"), bytes);
    }

    // A valid body cut short anywhere.
    let user = serde_json::to_vec(&new_user("cut@example.com", "cut@example.com")).unwrap();
    let rename = serde_json::to_vec(&patch_op(
        json!({ "op": "replace", "path": "name.givenName", "value": "Cut" }),
    ))
    .unwrap();
    for i in 0..40 {
        let (method, bytes) = if i % 2 == 0 {
            ("POST", post(&user[..rng.below(user.len() - 1) + 1]))
        } else {
            ("PATCH", patch(&rename[..rng.below(rename.len() - 1) + 1]))
        };
        add(format!("{method} truncated JSON #{i}"), bytes);
    }

    // Wrong types, huge numbers, control characters and overlong strings in a create.
    let long = |n: usize| "a".repeat(n);
    let email = |local: usize| format!("{}@example.com", "a".repeat(local));
    let bodies: Vec<(&str, String)> = vec![
        ("userName is a number", r#"{"userName": 5}"#.into()),
        (
            "userName is an array",
            r#"{"userName": ["a@example.com"]}"#.into(),
        ),
        ("userName is an object", r#"{"userName": {"v": 1}}"#.into()),
        ("userName is null", r#"{"userName": null}"#.into()),
        ("userName is true", r#"{"userName": true}"#.into()),
        ("userName is empty", r#"{"userName": ""}"#.into()),
        (
            "userName is missing",
            r#"{"name": {"givenName": "A"}}"#.into(),
        ),
        (
            "active is a string",
            r#"{"userName": "t1@example.com", "active": "yes"}"#.into(),
        ),
        (
            "active is a number",
            r#"{"userName": "t2@example.com", "active": 1}"#.into(),
        ),
        (
            "name is a string",
            r#"{"userName": "t3@example.com", "name": "A B"}"#.into(),
        ),
        (
            "givenName is a number",
            r#"{"userName": "t4@example.com", "name": {"givenName": 7}}"#.into(),
        ),
        (
            "emails is an object",
            r#"{"userName": "t5@example.com", "emails": {"value": "t5@example.com"}}"#.into(),
        ),
        (
            "emails value is a number",
            r#"{"userName": "t6@example.com", "emails": [{"value": 6}]}"#.into(),
        ),
        (
            "emails value is not an email",
            r#"{"userName": "t7", "emails": [{"value": "not an email"}]}"#.into(),
        ),
        (
            "externalId is a number",
            r#"{"userName": "t8@example.com", "externalId": 8}"#.into(),
        ),
        (
            "body is an array",
            r#"[{"userName": "t10@example.com"}]"#.into(),
        ),
        ("body is a string", r#""t11@example.com""#.into()),
        ("body is null", "null".into()),
        ("body is a huge number", "1".repeat(5000)),
        ("body is 1e999999", "1e999999".into()),
        (
            "active is a huge number",
            r#"{"userName": "t12@example.com", "active": 1e400}"#.into(),
        ),
        (
            "userName is a huge number",
            format!(r#"{{"userName": {}}}"#, "9".repeat(400)),
        ),
        ("empty body", String::new()),
        ("whitespace body", "   \n\t ".into()),
        (
            "duplicate keys of different types",
            r#"{"userName": "t13@example.com", "userName": 13}"#.into(),
        ),
        (
            "raw NUL in a string",
            "{\"userName\": \"a\u{0}b@example.com\"}".into(),
        ),
        (
            "raw escape in a string",
            "{\"userName\": \"a\u{1b}[31mb@example.com\"}".into(),
        ),
        (
            "raw newline in a string",
            "{\"userName\": \"a\nb@example.com\"}".into(),
        ),
        (
            "lone surrogate escape",
            r#"{"userName": "\ud800@example.com"}"#.into(),
        ),
        ("invalid escape", r#"{"userName": "\q@example.com"}"#.into()),
        (
            "userName of 257 characters",
            format!(r#"{{"userName": "{}"}}"#, long(257)),
        ),
        (
            "userName of 100 KiB",
            format!(r#"{{"userName": "{}"}}"#, long(100 << 10)),
        ),
        (
            "email of 255 characters",
            format!(
                r#"{{"userName": "t14", "emails": [{{"value": "{}"}}]}}"#,
                email(243)
            ),
        ),
        (
            "email of 50 KiB",
            format!(
                r#"{{"userName": "t15", "emails": [{{"value": "{}"}}]}}"#,
                email(50 << 10)
            ),
        ),
        (
            "givenName of 257 characters",
            format!(
                r#"{{"userName": "t16@example.com", "name": {{"givenName": "{}"}}}}"#,
                long(257)
            ),
        ),
        (
            "familyName of 100 KiB",
            format!(
                r#"{{"userName": "t17@example.com", "name": {{"familyName": "{}"}}}}"#,
                long(100 << 10)
            ),
        ),
        (
            "externalId of 513 characters",
            format!(
                r#"{{"userName": "t18@example.com", "externalId": "{}"}}"#,
                long(513)
            ),
        ),
        ("arrays nested 200 deep", nested("[", "]", 200, "")),
        ("arrays nested 100000 deep", nested("[", "]", 100_000, "")),
        ("objects nested 200 deep", nested("{\"a\":", "}", 200, "1")),
        (
            "name nested 10000 deep",
            format!(
                r#"{{"userName": "t19@example.com", "name": {}}}"#,
                nested("{\"givenName\":", "}", 10_000, "1")
            ),
        ),
        (
            "not UTF-8",
            String::from_utf8_lossy(&[0x7b, 0xff, 0xfe, 0x7d]).into_owned(),
        ),
    ];
    for (name, body) in &bodies {
        add(format!("POST {name}"), post(body.as_bytes()));
    }
    add(
        "POST bytes that are not UTF-8".into(),
        post(b"{\"userName\": \"\xff\xfe@example.com\"}"),
    );

    // PATCH bodies that break the PatchOp message (RFC 7644 §3.5.2).
    let ops = |count: usize| {
        let op = json!({ "op": "replace", "path": "name.givenName", "value": "A" });
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": vec![op; count],
        })
        .to_string()
    };
    let patches: Vec<(&str, String)> = vec![
        ("257 operations", ops(257)),
        ("10000 operations", ops(10_000)),
        ("no Operations", r#"{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}"#.into()),
        ("Operations is an object", r#"{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": {"op": "add"}}"#.into()),
        ("unknown op", patch_op(json!({ "op": "explode", "path": "active", "value": true })).to_string()),
        ("op is a number", patch_op(json!({ "op": 3, "path": "active", "value": true })).to_string()),
        ("replace without a value", patch_op(json!({ "op": "replace", "path": "active" })).to_string()),
        ("active set to a string", patch_op(json!({ "op": "replace", "path": "active", "value": "no" })).to_string()),
        ("givenName set to an object", patch_op(json!({ "op": "replace", "path": "name.givenName", "value": {"a": 1} })).to_string()),
        ("givenName of 257 characters", patch_op(json!({ "op": "replace", "path": "name.givenName", "value": long(257) })).to_string()),
        ("externalId of 100 KiB", patch_op(json!({ "op": "replace", "path": "externalId", "value": long(100 << 10) })).to_string()),
        ("userName set to null", patch_op(json!({ "op": "replace", "path": "userName", "value": null })).to_string()),
        ("path with an open bracket", patch_op(json!({ "op": "replace", "path": "emails[type eq", "value": "x" })).to_string()),
        ("path of 5000 characters", patch_op(json!({ "op": "replace", "path": long(5000), "value": "x" })).to_string()),
        ("path is a number", patch_op(json!({ "op": "replace", "path": 12, "value": "x" })).to_string()),
        ("remove userName", patch_op(json!({ "op": "remove", "path": "userName" })).to_string()),
        ("email change", patch_op(json!({ "op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com" })).to_string()),
        ("value filter nested 100 deep", patch_op(json!({ "op": "replace", "path": format!("emails[{}].value", nested("(", ")", 100, "type eq \"work\"")), "value": "x" })).to_string()),
        ("no schemas", r#"{"Operations": [{"op": "replace", "path": "active", "value": true}]}"#.into()),
    ];
    for (name, body) in &patches {
        add(format!("PATCH {name}"), patch(body.as_bytes()));
    }

    // Filters and query parameters that do not parse or pass the limits (RFC 7644 §3.4.2).
    let deep = nested("(", ")", 100, "userName eq \"a\"");
    let many_ands = vec!["userName eq \"a\""; 300].join(" and ");
    let filters: Vec<(&str, String)> = vec![
        ("unbalanced parenthesis", "(userName eq \"a\"".into()),
        ("unclosed string", "userName eq \"a".into()),
        ("missing value", "userName eq".into()),
        ("unknown operator", "userName xx \"a\"".into()),
        ("operator only", "eq".into()),
        ("dangling and", "userName eq \"a\" and".into()),
        ("not without parentheses", "not userName eq \"a\"".into()),
        ("unclosed value filter", "emails[type eq \"work\"".into()),
        ("nested 100 deep", deep),
        ("5000 characters", format!("userName eq \"{}\"", long(5000))),
        ("300 conjuncts", many_ands),
        ("control characters", "userName eq \"\u{1}\u{2}\"".into()),
    ];
    for (name, filter) in &filters {
        add(
            format!("GET filter {name}"),
            get(&format!("{USERS}?filter={}", percent_encode(filter))),
        );
    }
    for i in 0..15 {
        let filter = percent_encode_bytes(&rng.bytes(200));
        add(
            format!("GET filter of random bytes #{i}"),
            get(&format!("{USERS}?filter={filter}")),
        );
    }
    for query in [
        "startIndex=abc",
        "count=abc",
        "startIndex=1e400",
        "sortOrder=sideways",
        "attributes=%ff%fe",
    ] {
        add(format!("GET ?{query}"), get(&format!("{USERS}?{query}")));
    }

    // Methods the endpoints do not serve, and paths that name nothing.
    for method in ["FOO", "TRACE", "PROPFIND", "MKCOL", "LINK", "PURGE"] {
        add(
            format!("{method} /Users"),
            raw(method, USERS, &[auth()], b""),
        );
    }
    add("PUT /Users".into(), put_to(USERS, token, &user));
    add("DELETE /Users".into(), raw("DELETE", USERS, &[auth()], b""));
    add(
        "POST /Users/{id}".into(),
        raw("POST", user_path, &[auth(), json_type()], &user),
    );
    add(
        "PATCH /ServiceProviderConfig".into(),
        raw("PATCH", CONFIG, &[auth(), json_type()], &rename),
    );
    add(
        "DELETE /Schemas".into(),
        raw("DELETE", "/scim/v2/Schemas", &[auth()], b""),
    );
    let long_id = long(8 << 10);
    for path in [
        "/scim/v2/Users/does-not-exist".to_string(),
        "/scim/v2/Users/%00".to_string(),
        "/scim/v2/Users/%ff%fe".to_string(),
        "/scim/v2/Users/a/b/c".to_string(),
        "/scim/v2/Users/../../etc/passwd".to_string(),
        "/scim/v2/Users/%2e%2e/%2e%2e/etc/passwd".to_string(),
        format!("/scim/v2/Users/{long_id}"),
        "/scim/v2/Groups".to_string(),
        "/scim/v2/Groups/1".to_string(),
        "/scim/v2/Nothing".to_string(),
        "/scim/v2/Schemas/urn:nothing".to_string(),
        "/scim/v2/ResourceTypes/Nothing".to_string(),
        "/scim/v2/Users/.search".to_string(),
        "/scim/v3/Users".to_string(),
        "/".to_string(),
        "/favicon.ico".to_string(),
        "/scim/v2Users".to_string(),
    ] {
        add(format!("GET {}", shorten(&path)), get(&path));
    }
    add(
        "DELETE /Users/does-not-exist".into(),
        raw("DELETE", "/scim/v2/Users/does-not-exist", &[auth()], b""),
    );

    // Headers that are wrong, oversized or mismatched.
    let huge_header = "A".repeat(10 << 10);
    let header_cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "10 KiB Authorization",
            vec![("Authorization", huge_header.clone())],
        ),
        (
            "10 KiB bearer token",
            vec![("Authorization", bearer(&huge_header))],
        ),
        (
            "Basic credentials",
            vec![("Authorization", "Basic YTpi".into())],
        ),
        (
            "empty Authorization",
            vec![("Authorization", String::new())],
        ),
        (
            "token with a cookie",
            vec![auth(), ("Cookie", "sid=1".into())],
        ),
        (
            "non-ASCII Authorization",
            vec![("Authorization", "Bearer \u{e9}\u{e9}".into())],
        ),
        (
            "If-Match of another version",
            vec![auth(), ("If-Match", "W/\"999\"".into())],
        ),
        (
            "10 KiB If-Match",
            vec![auth(), ("If-Match", huge_header.clone())],
        ),
    ];
    for (name, headers) in header_cases {
        let mut headers = headers;
        headers.push(json_type());
        add(
            format!("PATCH with {name}"),
            raw("PATCH", user_path, &headers, &rename),
        );
    }
    add(
        "POST over the body cap".into(),
        post(&vec![b' '; (1 << 20) + 1]),
    );
    cases
}

fn put_to(path: &str, token: &str, body: &[u8]) -> Vec<u8> {
    let headers = [
        ("Authorization", bearer(token)),
        ("Content-Type", "application/scim+json".to_string()),
    ];
    raw("PUT", path, &headers, body)
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 60 {
        let start: String = text.chars().take(60).collect();
        format!("{start}… ({} bytes)", text.len())
    } else {
        text.to_string()
    }
}

fn percent_encode(text: &str) -> String {
    percent_encode_bytes(text.as_bytes())
}

fn percent_encode_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (*byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Why an answer is not a 4xx SCIM error, if it is not.
fn not_a_client_error(reply: &Reply) -> Option<String> {
    if !(400..500).contains(&reply.status) {
        return Some(format!("status {}", reply.status));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&reply.body) else {
        return Some(format!(
            "status {} without a JSON body: {:?}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        ));
    };
    let schemas = body["schemas"].as_array().cloned().unwrap_or_default();
    if !schemas.iter().any(|schema| schema == ERROR_SCHEMA) {
        return Some(format!(
            "status {} without the Error schema: {body}",
            reply.status
        ));
    }
    let status = reply.status.to_string();
    if body["status"] != status.as_str() {
        return Some(format!(
            "status {} but the body says {}",
            reply.status, body["status"]
        ));
    }
    None
}

#[test]
fn malformed_request_corpus_gets_only_4xx_scim_errors_and_the_server_keeps_answering() {
    let (_dir, db_path) = temp_db();
    let token = enable(&db_path);
    let server = TestServer::start(&db_path);
    let created = server.send(
        "POST",
        USERS,
        Some(&token),
        Some(&new_user("target@example.com", "target@example.com")),
    );
    assert_eq!(created.status, 201);
    let created = created.json();
    let user_path = format!("{USERS}/{}", created["id"].as_str().unwrap());

    let cases = corpus(&token, &user_path);
    let mut failures = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for case in &cases {
        match try_exchange(server.addr, &case.bytes) {
            Ok(reply) => {
                *statuses.entry(reply.status).or_default() += 1;
                if let Some(problem) = not_a_client_error(&reply) {
                    failures.push(format!("{}: {problem}", case.name));
                }
            }
            Err(problem) => failures.push(format!("{}: {}", case.name, shorten(&problem))),
        }
    }
    println!(
        "{} malformed requests: {} answered with a 4xx SCIM error, {} not; statuses {statuses:?}",
        cases.len(),
        cases.len() - failures.len(),
        failures.len()
    );
    assert!(cases.len() >= 200, "the corpus shrank to {}", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Still serving, and the target user is as it was made.
    let after = server.send("GET", &user_path, Some(&token), None);
    assert_eq!(after.status, 200);
    assert_eq!(after.json()["meta"]["version"], created["meta"]["version"]);
    let listed = server.send("GET", USERS, Some(&token), None).json();
    assert_eq!(
        listed["totalResults"], 1,
        "a malformed request created a user"
    );
    let next = server.send(
        "POST",
        USERS,
        Some(&token),
        Some(&new_user("after@example.com", "after@example.com")),
    );
    assert_eq!(next.status, 201);
}

#[test]
fn body_shorter_than_its_content_length_is_a_4xx_scim_error_not_a_hang() {
    let (_dir, db_path) = temp_db();
    let token = enable(&db_path);
    let server = TestServer::start(&db_path);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST {USERS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: 100\r\n\r\n{{\"userName\""
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The client gives up on sending: the server sees the end of the body early.
    stream.shutdown(Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no answer: {text:?}"));
    assert!((400..500).contains(&status), "{text}");
    assert!(text.contains(ERROR_SCHEMA), "{text}");
    assert_eq!(
        get_config(server.addr, Some(&bearer(&token)), &[]).status,
        200
    );
}

#[test]
fn requests_hyper_cannot_parse_get_a_4xx_and_the_server_keeps_answering() {
    let (_dir, db_path) = temp_db();
    let token = enable(&db_path);
    let server = TestServer::start(&db_path);
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let garbage: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\x03\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET /scim/v2/Users HTTP/9.9\r\n\r\n".to_vec(),
        b"G E T /scim/v2/Users HTTP/1.1\r\n\r\n".to_vec(),
        b"GET /scim/v2/Users HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(),
        b"GET /scim/v2/Users HTTP/1.1\r\nX: a\x00b\r\n\r\n".to_vec(),
        b"GET /scim/v2/Users HTTP/1.1\r\nIf-Match: \x01garbage\r\n\r\n".to_vec(),
        format!("GET /scim/v2/Users HTTP/1.1\r\nHost: a\r\n{many_headers}\r\n").into_bytes(),
        b"POST /scim/v2/Users HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"
            .to_vec(),
        b"POST /scim/v2/Users HTTP/1.1\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"POST /scim/v2/Users HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
    ];
    for (i, request) in garbage.iter().enumerate() {
        // Hyper answers what it cannot parse itself, before the SCIM service sees a request:
        // a bare 4xx, or a closed connection for bytes that are not HTTP at all.
        match try_exchange(server.addr, request) {
            Ok(reply) => assert!((400..500).contains(&reply.status), "#{i}: {}", reply.status),
            Err(problem) => println!("#{i}: {}", shorten(&problem)),
        }
    }
    assert_eq!(
        get_config(server.addr, Some(&bearer(&token)), &[]).status,
        200
    );
}

#[test]
fn bulk_and_me_are_501_scim_errors_as_rfc_7644_asks_of_what_is_not_served() {
    let (_dir, db_path) = temp_db();
    let token = enable(&db_path);
    let server = TestServer::start(&db_path);
    // RFC 7644 §3.7 and §3.11: a provider without Bulk or /Me answers 501 Not Implemented.
    for path in ["/scim/v2/Bulk", "/scim/v2/Me"] {
        server
            .send("GET", path, Some(&token), None)
            .assert_scim_error(501);
    }
}

#[test]
fn body_that_stops_arriving_is_408_once_the_body_timeout_passes() {
    let (_dir, db_path) = temp_db();
    let token = enable(&db_path);
    let shared = shared_embedded().unwrap();
    // Shortened from the default 30 s so that the test sees the bound.
    let server = TestServer::start_with(
        Database::open(&db_path).unwrap(),
        shared.with_limits(shared.limits()),
        DEFAULT_MAX_BODY_BYTES,
        |service| service.with_body_read_timeout(Duration::from_millis(500)),
    );
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST {USERS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: 100\r\n\r\n{{\"userName\""
    );
    // The client keeps the connection open and sends nothing more.
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(text.contains(ERROR_SCHEMA), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        get_config(server.addr, Some(&bearer(&token)), &[]).status,
        200
    );
}

#[test]
fn each_limit_is_answered_with_a_400_scim_error_of_its_scim_type() {
    let (_dir, db_path) = temp_db();
    let token = enable(&db_path);
    let server = TestServer::start(&db_path);
    let created = server.send(
        "POST",
        USERS,
        Some(&token),
        Some(&new_user("limits@example.com", "limits@example.com")),
    );
    assert_eq!(created.status, 201);
    let user_path = format!("{USERS}/{}", created.json()["id"].as_str().unwrap());
    let create_with = |field: &str, value: Value| {
        let mut user = new_user("over@example.com", "over@example.com");
        user[field] = value;
        user.to_string()
    };
    let operations = |count: usize| {
        let op = json!({ "op": "replace", "path": "name.givenName", "value": "A" });
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": vec![op; count],
        })
        .to_string()
    };
    let filter = |filter: String| format!("{USERS}?filter={}", percent_encode(&filter));

    // (what, method, path, body, scimType)
    let limits: Vec<(&str, &str, String, String, &str)> = vec![
        (
            "JSON nested deeper than serde_json's 128 levels",
            "POST",
            USERS.into(),
            nested("[", "]", 200, ""),
            "invalidSyntax",
        ),
        (
            "filter nested deeper than 64 levels",
            "GET",
            filter(nested("(", ")", 65, "userName eq \"a\"")),
            String::new(),
            "invalidFilter",
        ),
        (
            "filter longer than 4096 characters",
            "GET",
            filter(format!("userName eq \"{}\"", "a".repeat(4100))),
            String::new(),
            "invalidFilter",
        ),
        (
            "PATCH of more than 256 operations",
            "PATCH",
            user_path.clone(),
            operations(257),
            "invalidValue",
        ),
        (
            "userName longer than 256 characters",
            "POST",
            USERS.into(),
            create_with("userName", json!("a".repeat(257))),
            "invalidValue",
        ),
        (
            "givenName longer than 256 characters",
            "POST",
            USERS.into(),
            create_with("name", json!({ "givenName": "a".repeat(257) })),
            "invalidValue",
        ),
        (
            "email longer than 254 characters",
            "POST",
            USERS.into(),
            create_with(
                "emails",
                json!([{ "value": format!("{}@example.com", "a".repeat(243)) }]),
            ),
            "invalidValue",
        ),
        (
            "externalId longer than 512 characters",
            "POST",
            USERS.into(),
            create_with("externalId", json!("a".repeat(513))),
            "invalidValue",
        ),
        (
            "userName of the wrong type",
            "POST",
            USERS.into(),
            create_with("userName", json!(42)),
            "invalidValue",
        ),
        (
            "active of the wrong type",
            "POST",
            USERS.into(),
            create_with("active", json!("yes")),
            "invalidValue",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, method, path, body, scim_type) in &limits {
        let authorization = bearer(&token);
        let headers = [("Authorization", authorization.as_str())];
        let body = (!body.is_empty()).then_some(body.as_bytes());
        let reply = send_with(server.addr, method, path, &headers, body);
        let error = reply.assert_scim_error(400);
        if error["scimType"] != *scim_type || !error["detail"].is_string() {
            wrong.push(format!("{what}: {error}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
