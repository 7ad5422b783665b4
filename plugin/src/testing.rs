//! Whole requests through [`handle`](crate::handle) over the in-memory store, for the unit tests
//! of the modules whose behaviour shows only in a full exchange (routing, versions, projection).

use serde_json::Value;

use crate::auth::token_digest;
use crate::handle;
use crate::http::{Request, Response};
use crate::memory::MemoryStore;
use crate::store::{Settings, Token};

const TOKEN: &str = "unit-test-token";

/// A store and settings that accept [`TOKEN`], as a host would keep them between requests.
pub struct Host {
    pub store: MemoryStore,
    settings: Settings,
}

impl Host {
    pub fn new() -> Host {
        Host {
            store: MemoryStore::new(),
            settings: Settings {
                enabled: true,
                tokens: vec![Token {
                    digest: token_digest(TOKEN).to_vec(),
                    expires_at: None,
                }],
                base_url: "https://vault.example.com/scim/v2".into(),
                now: 1_000,
            },
        }
    }

    /// Sends `method target`, where `target` is the path under the SCIM base with its query,
    /// still percent-encoded, as it appears on the request line.
    pub fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Response {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut all_headers = vec![("Authorization".to_string(), format!("Bearer {TOKEN}"))];
        all_headers.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        let request = Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: all_headers,
            body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        };
        handle(&request, &self.store, &self.settings)
    }

    /// Creates a user from this body and returns its `id`; panics unless the create succeeds.
    pub fn create(&self, body: &Value) -> String {
        let created = self.send("POST", "/Users", &[], Some(body));
        assert_eq!(
            created.status,
            201,
            "{}",
            String::from_utf8_lossy(&created.body)
        );
        json(&created)["id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A response's body as JSON (`Null` when there is none).
pub fn json(response: &Response) -> Value {
    serde_json::from_slice(&response.body).unwrap_or(Value::Null)
}
