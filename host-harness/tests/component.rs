//! The real component, built by the build script, run through wasmtime: authentication,
//! discovery, reads through the `user-store` import, and the bounds that keep one bad request
//! from touching the next.

use std::sync::Arc;
use std::time::Duration;

use scim_host::component::shared_embedded;
use scim_host::settings::{MemorySettings, SettingsSource};
use scim_host::store::{MemoryStore, ScanPage, StoreResult, User, UserFields, UserPage};
use scim_host::{Limits, PluginHost};
use scim_plugin::{Request, Response, UserStore as _};
use serde_json::{Value, json};

const TOKEN: &str = "test-token-4f1c";
const BASE: &str = "https://vault.example.com/scim/v2";

fn host() -> &'static PluginHost {
    shared_embedded().expect("the embedded component loads")
}

fn request(method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Request {
    let mut headers = vec![("User-Agent".to_string(), "component-test".to_string())];
    if let Some(token) = token {
        headers.push(("Authorization".into(), format!("Bearer {token}")));
    }
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    Request {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers,
        body: body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default(),
    }
}

fn body(response: &Response) -> Value {
    serde_json::from_slice(&response.body).expect("a JSON body")
}

struct Fixture {
    store: Arc<MemoryStore>,
    settings: Arc<MemorySettings>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            store: Arc::new(MemoryStore::new()),
            settings: Arc::new(MemorySettings::with_token(TOKEN, BASE)),
        }
    }

    fn send(&self, host: &PluginHost, request: &Request) -> Response {
        host.handle(request, self.store.clone(), self.settings.clone())
    }

    fn seed(&self, user_name: &str) -> User {
        self.store
            .create(UserFields {
                email: format!("{user_name}@example.com"),
                user_name: user_name.into(),
                given_name: Some("Barbara".into()),
                family_name: Some("Jensen".into()),
                active: true,
                external_id: None,
            })
            .unwrap()
    }
}

fn assert_scim_error(response: &Response, status: u16) -> Value {
    assert_eq!(
        response.status,
        status,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(
        response.header("Content-Type"),
        Some("application/scim+json")
    );
    let error = body(response);
    assert_eq!(
        error["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(error["status"], status.to_string());
    error
}

#[test]
fn service_provider_config_is_served_with_a_valid_token() {
    let fixture = Fixture::new();
    let response = fixture.send(
        host(),
        &request("GET", "/ServiceProviderConfig", Some(TOKEN), None),
    );
    assert_eq!(response.status, 200);
    let config = body(&response);
    assert_eq!(config["patch"]["supported"], true);
    assert_eq!(config["bulk"]["supported"], false);
    assert_eq!(
        config["meta"]["location"],
        format!("{BASE}/ServiceProviderConfig")
    );
}

#[test]
fn missing_token_is_401_with_a_bearer_challenge() {
    let fixture = Fixture::new();
    let response = fixture.send(
        host(),
        &request("GET", "/ServiceProviderConfig", None, None),
    );
    assert_scim_error(&response, 401);
    assert!(
        response
            .header("WWW-Authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
}

#[test]
fn wrong_token_is_401_invalid_token() {
    let fixture = Fixture::new();
    let response = fixture.send(
        host(),
        &request("GET", "/Users", Some("not-the-token"), None),
    );
    assert_scim_error(&response, 401);
    assert!(
        response
            .header("WWW-Authenticate")
            .unwrap()
            .contains("invalid_token")
    );
}

#[test]
fn user_is_read_through_the_store_import() {
    let fixture = Fixture::new();
    let user = fixture.seed("bjensen");
    let response = fixture.send(
        host(),
        &request("GET", &format!("/Users/{}", user.id), Some(TOKEN), None),
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header("ETag"), Some("W/\"1\""));
    let resource = body(&response);
    assert_eq!(resource["id"], user.id.as_str());
    assert_eq!(resource["userName"], "bjensen");
    assert_eq!(resource["emails"][0]["value"], "bjensen@example.com");
    assert_eq!(
        resource["meta"]["location"],
        format!("{BASE}/Users/{}", user.id)
    );
}

#[test]
fn unknown_user_is_404() {
    let fixture = Fixture::new();
    let response = fixture.send(
        host(),
        &request("GET", "/Users/no-such-id", Some(TOKEN), None),
    );
    assert_scim_error(&response, 404);
}

#[test]
fn disabled_scim_refuses_everything_even_with_a_valid_token() {
    let fixture = Fixture::new();
    let user = fixture.seed("bjensen");
    fixture.settings.update(|settings| settings.enabled = false);
    for (method, path) in [
        ("GET", "/ServiceProviderConfig".to_string()),
        ("GET", format!("/Users/{}", user.id)),
        ("DELETE", format!("/Users/{}", user.id)),
    ] {
        let response = fixture.send(host(), &request(method, &path, Some(TOKEN), None));
        assert_scim_error(&response, 403);
    }
    assert!(fixture.store.get(&user.id).unwrap().is_some());
}

#[test]
fn request_over_the_memory_cap_is_500_and_the_next_one_is_served() {
    let fixture = Fixture::new();
    let small = host().with_limits(Limits {
        memory_bytes: 3 << 20,
        ..host().limits()
    });
    // A 4 MiB body cannot even be copied into a 3 MiB instance.
    let huge = json!({"userName": "x@example.com", "padding": "p".repeat(4 << 20)});
    let response = fixture.send(&small, &request("POST", "/Users", Some(TOKEN), Some(huge)));
    let error = assert_scim_error(&response, 500);
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("could not be completed")
    );

    let next = fixture.send(
        &small,
        &request("GET", "/ServiceProviderConfig", Some(TOKEN), None),
    );
    assert_eq!(next.status, 200);
}

/// A store whose full scans are slow, so that a request runs past its deadline.
struct SlowScanStore(MemoryStore);

impl scim_plugin::UserStore for SlowScanStore {
    fn get(&self, id: &str) -> StoreResult<Option<User>> {
        self.0.get(id)
    }
    fn find_by_user_name(&self, user_name: &str) -> StoreResult<Option<User>> {
        self.0.find_by_user_name(user_name)
    }
    fn find_by_external_id(&self, external_id: &str) -> StoreResult<Vec<User>> {
        self.0.find_by_external_id(external_id)
    }
    fn find_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        self.0.find_by_email(email)
    }
    fn page(&self, offset: u64, limit: u32) -> StoreResult<UserPage> {
        self.0.page(offset, limit)
    }
    fn scan(&self, _cursor: Option<&str>, _limit: u32) -> StoreResult<ScanPage> {
        std::thread::sleep(Duration::from_millis(30));
        // Never finishes: every slice holds a user and points to another slice.
        let user = User {
            id: "slow".into(),
            email: "slow@example.com".into(),
            user_name: "slow@example.com".into(),
            given_name: None,
            family_name: None,
            active: true,
            external_id: None,
            created: 0,
            modified: 0,
            version: 1,
        };
        Ok(ScanPage {
            users: vec![user],
            next: Some("again".into()),
        })
    }
    fn create(&self, fields: UserFields) -> StoreResult<User> {
        self.0.create(fields)
    }
    fn update(&self, id: &str, version: u64, fields: UserFields) -> StoreResult<User> {
        self.0.update(id, version, fields)
    }
    fn delete(&self, id: &str) -> StoreResult<Option<User>> {
        self.0.delete(id)
    }
}

#[test]
fn request_past_its_deadline_is_500_and_the_next_one_is_served() {
    let settings: Arc<dyn SettingsSource> = Arc::new(MemorySettings::with_token(TOKEN, BASE));
    let quick = host().with_limits(Limits {
        deadline: Duration::from_millis(200),
        ..host().limits()
    });
    let slow = Arc::new(SlowScanStore(MemoryStore::new()));

    let response = quick.handle(
        &request(
            "GET",
            "/Users?filter=userName%20co%20%22a%22",
            Some(TOKEN),
            None,
        ),
        slow.clone(),
        settings.clone(),
    );
    let error = assert_scim_error(&response, 500);
    assert!(error["detail"].as_str().unwrap().contains("deadline"));

    let next = quick.handle(
        &request("GET", "/ServiceProviderConfig", Some(TOKEN), None),
        slow,
        settings,
    );
    assert_eq!(next.status, 200);
}

#[test]
fn the_built_file_is_a_component_not_a_core_module() {
    let bytes = scim_host::component::EMBEDDED_COMPONENT;
    assert_eq!(&bytes[0..4], b"\0asm");
    // Bytes 4..8: version 0x0d and layer 1 mark a component (a core module has version 1, layer 0).
    assert_eq!(&bytes[4..8], &[0x0d, 0x00, 0x01, 0x00]);
}
