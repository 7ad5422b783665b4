//! Whole requests (RFC 7644 §3), answered natively over the in-memory store: whatever a client
//! sends, the answer is a well-formed response, never a panic, and never a 5xx.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_plugin::memory::MemoryStore;
use scim_plugin::{Request, Settings, Token, UserFields, UserStore, auth, handle};

const TOKEN: &str = "fuzz-token";
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// A fresh store per input, so that each run is repeatable, seeded with users the requests can
/// find, change and delete.
fn store() -> MemoryStore {
    let store = MemoryStore::new();
    for n in 0..20 {
        let _ = store.create(UserFields {
            email: format!("user{n}@example.com"),
            user_name: if n % 2 == 0 {
                format!("user{n}@example.com")
            } else {
                format!("user{n}")
            },
            given_name: Some("Given".into()),
            family_name: None,
            active: n % 3 != 0,
            external_id: Some(format!("ext-{n}")),
        });
    }
    store
}

// Input layout: one byte picks the method, then three NUL-separated parts (path, query, body).
fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |b| *b == 0);
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default().to_vec();

    let request = Request {
        method: METHODS[usize::from(selector) % METHODS.len()].into(),
        path: format!("/{path}"),
        query,
        headers: vec![
            ("Authorization".into(), format!("Bearer {TOKEN}")),
            (
                "If-Match".into(),
                if selector & 0x80 != 0 {
                    "W/\"1\"".into()
                } else {
                    "*".into()
                },
            ),
        ],
        body,
    };
    let settings = Settings {
        enabled: true,
        tokens: vec![Token {
            digest: auth::token_digest(TOKEN).to_vec(),
            expires_at: None,
        }],
        base_url: "https://vault.example.com/scim/v2".into(),
        now: 1_800_000_000,
    };

    let response = handle(&request, &store(), &settings);
    assert!(
        response.status < 500 || response.status == 501,
        "{} {:?}",
        response.status,
        request
    );
    if !response.body.is_empty() {
        assert!(serde_json::from_slice::<serde_json::Value>(&response.body).is_ok());
    }
});
