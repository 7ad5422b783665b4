//! Filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2): any text either parses or is refused
//! with a SCIM error, and a parsed filter evaluates against a user without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_plugin::filter;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Barbara Jensen"},
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
        "active": true,
        "meta": {"created": "2026-01-23T04:56:22.000Z", "lastModified": "2026-05-13T04:42:34.000Z",
                 "version": "W/\"3\"", "resourceType": "User"},
    });
    if let Ok(parsed) = filter::parse(text) {
        let _ = parsed.matches(&user);
    } else if let Err(error) = filter::parse(text) {
        assert_eq!(error.status, 400);
    }
    if let Ok(path) = filter::parse_path(text)
        && let Some(value_filter) = &path.value_filter
    {
        let _ = value_filter.matches_value(&path.attr, &user["emails"][0]);
    }
});
