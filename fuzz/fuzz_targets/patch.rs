//! PATCH (RFC 7644 §3.5.2): any body either applies to a user's JSON and reads back as valid
//! fields, or is refused with a 4xx SCIM error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_plugin::{User, patch, user};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let current = User {
        id: "2819c223".into(),
        email: "bjensen@example.com".into(),
        user_name: "bjensen".into(),
        given_name: Some("Barbara".into()),
        family_name: Some("Jensen".into()),
        active: true,
        external_id: Some("ext".into()),
        created: 1_700_000_000_000,
        modified: 1_700_000_000_000,
        version: 3,
    };
    let mut resource = user::to_json(&current, "https://vault.example.com/scim/v2");
    match patch::apply(&mut resource, &body) {
        Ok(()) => {
            if let Err(error) = user::fields_from_json(&resource, Some(&current)) {
                assert!((400..500).contains(&error.status), "{error:?}");
            }
        }
        Err(error) => assert!((400..500).contains(&error.status), "{error:?}"),
    }
});
