//! Requests recorded from Microsoft Entra ID (Azure AD) and Okta provisioning, replayed against
//! the component, both in-process over the in-memory store and over HTTP to a server on the
//! SQLite store, as an identity provider reaches `scim-host serve`. Each recording holds the
//! request and the answer a compliant server gave; this product answers the same, except where
//! the password manager's rules say otherwise: an email change is refused with 400
//! `mutability`, and groups are not provisioned.
//!
//! The recordings live in the shared conformance material beside the repository
//! (`../shared/conformance/recorded-idp-requests`).

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{TestServer, enable, temp_db};
use scim_host::component::shared_embedded;
use scim_host::db::Database;
use scim_host::settings::MemorySettings;
use scim_host::store::{MemoryStore, SqliteStore};
use scim_plugin::{Request, User, UserFields, UserStore};
use serde_json::Value;

const TOKEN: &str = "recorded-idp-token";
const BASE: &str = "https://vault.example.com/scim/v2";

/// The attributes this product keeps, compared between the recorded answer and ours.
const KEPT: [&str; 6] = [
    "/userName",
    "/externalId",
    "/active",
    "/name/givenName",
    "/name/familyName",
    "/emails/0/value",
];

struct Recording {
    name: String,
    method: String,
    path: String,
    request: Option<Value>,
    response: Option<Value>,
    status: u16,
}

fn recordings() -> Vec<Recording> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/conformance/recorded-idp-requests");
    let mut found = Vec::new();
    for idp in ["azuread", "okta"] {
        let dir = root.join(idp);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("the recorded requests are at {}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        paths.sort();
        for path in paths {
            let recorded: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            found.push(Recording {
                name: format!("{idp}/{}", path.file_name().unwrap().to_string_lossy()),
                method: recorded["method"].as_str().unwrap().to_string(),
                path: recorded["path"].as_str().unwrap().to_string(),
                request: recorded.get("request").cloned(),
                response: recorded.get("response").cloned(),
                status: recorded["statusCode"].as_u64().unwrap() as u16,
            });
        }
    }
    found
}

/// The user a recording's request was about, as it stood before the request: the user its
/// recorded answer describes, active (as every user starts), and for the recorded Entra ID email
/// change, with the address it had before.
fn seed_for(recording: &Recording) -> Option<UserFields> {
    let resource = match &recording.response {
        Some(list) if list.get("Resources").is_some() => list["Resources"].get(0)?.clone(),
        Some(resource) => resource.clone(),
        None => return None,
    };
    let user_name = resource["userName"].as_str()?.to_string();
    let recorded_email = resource.pointer("/emails/0/value").and_then(Value::as_str);
    let email = match recorded_email {
        Some(email) if changes_email(recording) => format!("before.{email}"),
        Some(email) => email.to_string(),
        None => format!("{user_name}@example.com"),
    };
    let text = |pointer: &str| {
        resource
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(String::from)
    };
    Some(UserFields {
        email,
        user_name,
        given_name: text("/name/givenName"),
        family_name: text("/name/familyName"),
        active: recording.method == "GET" && resource["active"] != Value::Bool(false),
        external_id: text("/externalId"),
    })
    .map(|fields| UserFields {
        active: fields.active || recording.method != "GET",
        ..fields
    })
}

/// Whether a recorded PATCH touches the email.
fn changes_email(recording: &Recording) -> bool {
    recording
        .request
        .as_ref()
        .and_then(|request| request["Operations"].as_array())
        .is_some_and(|ops| {
            ops.iter()
                .any(|op| op["path"].as_str().is_some_and(|p| p.starts_with("emails")))
        })
}

/// Where a recording is replayed: a store to seed and inspect, and a way to send the request.
trait Target {
    fn store(&self) -> &dyn UserStore;
    /// Sends the request (`target` relative to the SCIM base) and returns the status and body.
    fn send(&self, method: &str, target: &str, body: Option<&Value>) -> (u16, Vec<u8>);
}

/// The component called in-process, over a fresh in-memory store.
struct InProcess {
    store: Arc<MemoryStore>,
}

impl Target for InProcess {
    fn store(&self) -> &dyn UserStore {
        &*self.store
    }

    fn send(&self, method: &str, target: &str, body: Option<&Value>) -> (u16, Vec<u8>) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let request = Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: vec![
                ("Authorization".into(), format!("Bearer {TOKEN}")),
                ("Content-Type".into(), "application/scim+json".into()),
            ],
            body: body
                .map(|b| serde_json::to_vec(b).unwrap())
                .unwrap_or_default(),
        };
        let host = shared_embedded().unwrap();
        let response = host.handle(
            &request,
            self.store.clone(),
            Arc::new(MemorySettings::with_token(TOKEN, BASE)),
        );
        (response.status, response.body)
    }
}

/// A server on 127.0.0.1 over a fresh SQLite file, as `scim-host serve` runs; the recording's
/// user is seeded into the same file.
struct OverHttp {
    server: TestServer,
    token: String,
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

impl OverHttp {
    fn start() -> OverHttp {
        let (dir, db_path) = temp_db();
        let token = enable(&db_path);
        OverHttp {
            server: TestServer::start(&db_path),
            token,
            store: SqliteStore::new(Database::open(&db_path).unwrap()),
            _dir: dir,
        }
    }
}

impl Target for OverHttp {
    fn store(&self) -> &dyn UserStore {
        &self.store
    }

    fn send(&self, method: &str, target: &str, body: Option<&Value>) -> (u16, Vec<u8>) {
        let reply = self.server.send(
            method,
            &format!("/scim/v2{target}"),
            Some(&self.token),
            body,
        );
        assert_eq!(
            reply.header("Content-Type"),
            Some("application/scim+json"),
            "{method} {target}"
        );
        (reply.status, reply.body)
    }
}

/// Replays one recording and says what differed, if anything.
fn replay(recording: &Recording, to: &dyn Target) -> Result<(), String> {
    let store = to.store();
    let mut target = recording.path.clone();

    let about_users = recording.path.starts_with("/Users");
    let mut seeded_id = None;
    if about_users
        && recording.method != "POST"
        && let Some(fields) = seed_for(recording)
    {
        let seeded = store.create(fields).unwrap();
        if let Some(recorded_id) = recording.path.strip_prefix("/Users/") {
            target = target.replace(recorded_id, &seeded.id);
        }
        seeded_id = Some(seeded.id);
    }

    let (status, body) = to.send(&recording.method, &target, recording.request.as_ref());
    let body: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let scim_type = body["scimType"].as_str().unwrap_or("");

    if !about_users {
        // Groups are not provisioned: a SCIM error, never a 5xx.
        return match (status, body["schemas"][0].as_str()) {
            (404, Some("urn:ietf:params:scim:api:messages:2.0:Error")) => Ok(()),
            _ => Err(format!("a group request answered {} {body}", status)),
        };
    }

    if changes_email(recording) {
        if status != 400 || scim_type != "mutability" {
            return Err(format!("an email change answered {} {body}", status));
        }
        let unchanged: Option<User> = seeded_id.and_then(|id| store.get(&id).unwrap());
        return match unchanged {
            Some(user) if user.version == 1 => Ok(()),
            other => Err(format!("the refused change touched the user: {other:?}")),
        };
    }

    if status != recording.status {
        return Err(format!(
            "answered {} instead of {}: {body}",
            status, recording.status
        ));
    }
    let (ours, theirs) = match &recording.response {
        Some(list) if list.get("Resources").is_some() => {
            if body["totalResults"] != list["totalResults"] {
                return Err(format!(
                    "totalResults {} instead of {}",
                    body["totalResults"], list["totalResults"]
                ));
            }
            match (body["Resources"].get(0), list["Resources"].get(0)) {
                (Some(ours), Some(theirs)) => (ours.clone(), theirs.clone()),
                _ => return Ok(()),
            }
        }
        Some(theirs) => (body.clone(), theirs.clone()),
        None => return Ok(()),
    };
    for pointer in KEPT {
        if let Some(expected) = theirs.pointer(pointer)
            && ours.pointer(pointer) != Some(expected)
        {
            return Err(format!(
                "{pointer} is {:?}, recorded {expected}",
                ours.pointer(pointer)
            ));
        }
    }
    Ok(())
}

/// Replays every recording, each against a fresh target, and fails with all that differed.
fn replay_all(fresh_target: impl Fn() -> Box<dyn Target>) {
    let recordings = recordings();
    assert!(
        recordings.len() >= 18,
        "found {} recordings",
        recordings.len()
    );
    let failures: Vec<String> = recordings
        .iter()
        .filter_map(|recording| {
            replay(recording, &*fresh_target())
                .err()
                .map(|why| format!("{}: {why}", recording.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "recordings answered wrongly:\n{}",
        failures.join("\n")
    );
}

#[test]
fn recorded_entra_id_and_okta_requests_get_the_answers_the_rules_allow() {
    replay_all(|| {
        Box::new(InProcess {
            store: Arc::new(MemoryStore::new()),
        })
    });
}

#[test]
fn recorded_requests_over_http_get_the_same_answers_from_the_sqlite_server() {
    replay_all(|| Box::new(OverHttp::start()));
}
