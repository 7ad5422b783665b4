//! The User resource (RFC 7643 §4.1): its JSON representation and the password manager's rules.
//!
//! A user is rendered from the host's record, and a request's JSON is read back into the fields
//! the host stores. Both directions go through here, so POST, PUT and PATCH share one reading of
//! the schema: attribute names in any case, booleans sent as strings, unknown attributes ignored.

use serde_json::{Map, Value, json};

use crate::error::{ScimError, ScimResult};
use crate::store::{User, UserFields};

/// The core User schema URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

// Lengths the host's columns hold. A longer value is refused rather than cut, so that what the
// identity provider sent is what it reads back.
/// The longest `userName`, `name.givenName` or `name.familyName` accepted.
pub const MAX_NAME_LEN: usize = 256;
/// The longest email address that can be delivered (RFC 5321 §4.5.3.1: a 256-octet path).
pub const MAX_EMAIL_LEN: usize = 254;
/// The longest `externalId` accepted: identity providers send GUIDs or short keys.
pub const MAX_EXTERNAL_ID_LEN: usize = 512;

/// The User resource as JSON, with every attribute the schema advertises.
pub fn to_json(user: &User, base_url: &str) -> Value {
    let mut name = Map::new();
    if let Some(given) = &user.given_name {
        name.insert("givenName".into(), Value::from(given.as_str()));
    }
    if let Some(family) = &user.family_name {
        name.insert("familyName".into(), Value::from(family.as_str()));
    }

    let mut resource = json!({
        "schemas": [USER_SCHEMA],
        "id": user.id,
        "userName": user.user_name,
    });
    if let Some(external_id) = &user.external_id {
        resource["externalId"] = Value::from(external_id.as_str());
    }
    if !name.is_empty() {
        resource["name"] = Value::Object(name);
    }
    resource["emails"] = json!([{ "value": user.email, "type": "work", "primary": true }]);
    resource["active"] = Value::Bool(user.active);
    resource["meta"] = json!({
        "resourceType": "User",
        "created": rfc3339(user.created),
        "lastModified": rfc3339(user.modified),
        "location": location(user, base_url),
        "version": etag(user),
    });
    resource
}

/// The user's URL (RFC 7644 §3.1 `Location`, RFC 7643 §3.1 `meta.location`).
pub fn location(user: &User, base_url: &str) -> String {
    format!("{}/Users/{}", base_url.trim_end_matches('/'), user.id)
}

/// The user's entity tag (RFC 7644 §3.14): weak, since the representation may vary.
pub fn etag(user: &User) -> String {
    format!("W/\"{}\"", user.version)
}

/// Reads a request's User JSON into the fields the host stores.
///
/// `current` is the stored user for PUT and PATCH, none for POST. The password manager's rules
/// are applied here: the login email never changes, nor does a `userName` that is the email.
pub fn fields_from_json(body: &Value, current: Option<&User>) -> ScimResult<UserFields> {
    let Some(object) = body.as_object() else {
        return Err(ScimError::invalid_syntax("the body must be a JSON object"));
    };

    check_schemas(object)?;

    let user_name = match attribute(object, "userName") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.trim().to_string(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ScimError::invalid_value("userName is required"));
        }
        Some(_) => return Err(ScimError::invalid_value("userName must be a string")),
    };
    check_length("userName", &user_name, MAX_NAME_LEN)?;

    let (given_name, family_name) = match attribute(object, "name") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(name)) => (
            optional_string(name, "givenName")?,
            optional_string(name, "familyName")?,
        ),
        Some(_) => return Err(ScimError::invalid_value("name must be a complex attribute")),
    };
    for (attr, value) in [
        ("name.givenName", &given_name),
        ("name.familyName", &family_name),
    ] {
        if let Some(value) = value {
            check_length(attr, value, MAX_NAME_LEN)?;
        }
    }

    let external_id = optional_string(object, "externalId")?;
    if let Some(external_id) = &external_id {
        check_length("externalId", external_id, MAX_EXTERNAL_ID_LEN)?;
    }

    let active = match attribute(object, "active") {
        None | Some(Value::Null) => current.is_none_or(|user| user.active),
        Some(value) => boolean("active", value)?,
    };

    let requested_email = login_email(object)?;
    let email = match current {
        None => new_email(requested_email, &user_name)?,
        Some(user) => {
            // `emails` sent with no address left in it (`[]`, or a value removed by PATCH) would
            // take the login email away.
            let emails_sent = attribute(object, "emails").is_some_and(|emails| !emails.is_null());
            if emails_sent && requested_email.is_none() {
                return Err(ScimError::mutability(
                    "emails cannot be removed: the login email is part of the user's \
                     cryptographic identity",
                ));
            }
            unchanged_email(user, requested_email.as_deref(), &user_name)?
        }
    };

    Ok(UserFields {
        email,
        user_name,
        given_name,
        family_name,
        active,
        external_id,
    })
}

/// RFC 7643 §3: `schemas` lists the URNs of the schemas the resource conforms to, so a User's
/// names the core User schema (in any case: URNs compare case-insensitively, RFC 8141 §3.1). A
/// body that names only others (a Group, the enterprise extension alone) is not a User, and is
/// refused rather than read as one.
///
/// A body with no `schemas` at all is still read as a User: the attribute is required, but the
/// endpoint already says what the resource is, and refusing would gain nothing over ignoring
/// the omission.
fn check_schemas(object: &Map<String, Value>) -> ScimResult<()> {
    let urns = match attribute(object, "schemas") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(urns)) if urns.iter().all(Value::is_string) => urns,
        Some(_) => {
            return Err(ScimError::invalid_value(
                "schemas must be a list of schema URNs",
            ));
        }
    };
    let names_user = urns
        .iter()
        .filter_map(Value::as_str)
        .any(|urn| urn.eq_ignore_ascii_case(USER_SCHEMA));
    if !names_user {
        return Err(ScimError::invalid_value(format!(
            "schemas must include {USER_SCHEMA}"
        )));
    }
    Ok(())
}

/// The login email of a new user: the primary (or work, or first) email, or else a `userName`
/// that is an email address.
fn new_email(requested: Option<String>, user_name: &str) -> ScimResult<String> {
    let email = match requested {
        Some(email) => email,
        None if looks_like_email(user_name) => user_name.to_string(),
        None => {
            return Err(ScimError::invalid_value(
                "a login email is required: send emails, or a userName that is an email address",
            ));
        }
    };
    check_login_email(&email)?;
    Ok(email)
}

/// Whether an address can be a login email: the rule for users created through SCIM, and for
/// the users a host adds itself.
pub fn check_login_email(email: &str) -> ScimResult<()> {
    if !looks_like_email(email) {
        return Err(ScimError::invalid_value(
            "emails.value is not an email address",
        ));
    }
    check_length("emails.value", email, MAX_EMAIL_LEN)
}

/// Checks that a PUT or PATCH leaves the login email as it is. Sending the same address again
/// (in any case) is not a change; leaving `emails` out of a PUT keeps it.
fn unchanged_email(user: &User, requested: Option<&str>, user_name: &str) -> ScimResult<String> {
    if let Some(email) = requested
        && !email.eq_ignore_ascii_case(&user.email)
    {
        return Err(ScimError::mutability(
            "emails cannot change: the login email is part of the user's cryptographic identity",
        ));
    }
    if user.user_name.eq_ignore_ascii_case(&user.email)
        && !user_name.eq_ignore_ascii_case(&user.user_name)
    {
        return Err(ScimError::mutability(
            "userName cannot change: it is the user's login email, which is part of the \
             user's cryptographic identity",
        ));
    }
    Ok(user.email.clone())
}

/// The email a request asks for as the login email, if it sends any: the one marked primary,
/// else the one of type `work`, else the first.
fn login_email(object: &Map<String, Value>) -> ScimResult<Option<String>> {
    let emails = match attribute(object, "emails") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(emails)) => emails,
        Some(Value::Object(_)) => {
            return Err(ScimError::invalid_value(
                "emails must be a multi-valued attribute",
            ));
        }
        Some(_) => return Err(ScimError::invalid_value("emails must be a list of emails")),
    };

    let mut candidates = Vec::with_capacity(emails.len());
    for email in emails {
        let Some(email) = email.as_object() else {
            return Err(ScimError::invalid_value(
                "each email must be a complex value",
            ));
        };
        let Some(value) = optional_string(email, "value")? else {
            continue;
        };
        let primary = match attribute(email, "primary") {
            None | Some(Value::Null) => false,
            Some(primary) => boolean("emails.primary", primary)?,
        };
        let work = matches!(attribute(email, "type"), Some(Value::String(t)) if t.eq_ignore_ascii_case("work"));
        candidates.push((value, primary, work));
    }

    let chosen = candidates
        .iter()
        .position(|(_, primary, _)| *primary)
        .or_else(|| candidates.iter().position(|(_, _, work)| *work))
        .or(if candidates.is_empty() { None } else { Some(0) });
    Ok(chosen.map(|index| candidates.swap_remove(index).0))
}

/// An attribute of a JSON object by case-insensitive name (RFC 7643 §2.1: attribute names are
/// case-insensitive).
pub fn attribute<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// A string attribute that may be absent or null.
fn optional_string(object: &Map<String, Value>, name: &str) -> ScimResult<Option<String>> {
    match attribute(object, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) if value.is_empty() => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
    }
}

/// A boolean attribute. Entra ID sends `"True"` and `"False"` as strings; they are read as the
/// booleans they mean.
pub fn boolean(name: &str, value: &Value) -> ScimResult<bool> {
    match value {
        Value::Bool(value) => Ok(*value),
        Value::String(text) if text.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(text) if text.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ScimError::invalid_value(format!(
            "{name} must be a boolean"
        ))),
    }
}

fn check_length(name: &str, value: &str, max: usize) -> ScimResult<()> {
    if value.len() > max {
        return Err(ScimError::invalid_value(format!(
            "{name} is longer than {max} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ScimError::invalid_value(format!(
            "{name} contains control characters"
        )));
    }
    Ok(())
}

/// A deliberately loose check: one `@` with something on each side and no spaces. The
/// password manager sends the invitation; delivery is the real test of an address.
fn looks_like_email(value: &str) -> bool {
    match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// Milliseconds since the Unix epoch as an RFC 3339 UTC timestamp (RFC 7643 §2.3.5).
pub fn rfc3339(millis: u64) -> String {
    let seconds = millis / 1000;
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let time = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        time / 3600,
        time % 3600 / 60,
        time % 60,
        millis % 1000
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(email: &str, user_name: &str) -> User {
        User {
            id: "u1".into(),
            email: email.into(),
            user_name: user_name.into(),
            given_name: Some("Barbara".into()),
            family_name: Some("Jensen".into()),
            active: true,
            external_id: Some("ext-1".into()),
            created: 1_700_000_000_123,
            modified: 1_700_000_000_123,
            version: 3,
        }
    }

    #[test]
    fn renders_every_advertised_attribute() {
        let user = stored("bjensen@example.com", "bjensen");
        let json = to_json(&user, "https://vault.example.com/scim/v2/");
        assert_eq!(json["userName"], "bjensen");
        assert_eq!(json["name"]["familyName"], "Jensen");
        assert!(json["name"].get("formatted").is_none());
        assert_eq!(json["emails"][0]["value"], "bjensen@example.com");
        assert_eq!(json["emails"][0]["primary"], true);
        assert_eq!(json["active"], true);
        assert_eq!(json["externalId"], "ext-1");
        assert_eq!(json["meta"]["version"], "W/\"3\"");
        assert_eq!(
            json["meta"]["location"],
            "https://vault.example.com/scim/v2/Users/u1"
        );
        assert_eq!(json["meta"]["created"], "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn attribute_names_are_case_insensitive_and_string_booleans_are_read() {
        let body = json!({
            "USERNAME": "bjensen@example.com",
            "Active": "False",
            "name": {"GivenName": "Barbara"},
            "password": "never stored",
        });
        let fields = fields_from_json(&body, None).unwrap();
        assert_eq!(fields.user_name, "bjensen@example.com");
        assert_eq!(fields.email, "bjensen@example.com");
        assert!(!fields.active);
        assert_eq!(fields.given_name.as_deref(), Some("Barbara"));
    }

    #[test]
    fn primary_email_is_the_login_email() {
        let body = json!({
            "userName": "bjensen",
            "emails": [
                {"value": "home@example.com", "type": "home"},
                {"value": "Work@Example.com", "type": "work", "primary": "True"},
            ],
        });
        assert_eq!(
            fields_from_json(&body, None).unwrap().email,
            "Work@Example.com"
        );
    }

    #[test]
    fn create_without_any_email_is_invalid_value() {
        let error = fields_from_json(&json!({"userName": "bjensen"}), None).unwrap_err();
        assert_eq!(error.status, 400);
        assert_eq!(error.to_json()["scimType"], "invalidValue");
    }

    #[test]
    fn put_that_changes_the_email_is_refused_with_mutability() {
        let user = stored("bjensen@example.com", "bjensen");
        let body = json!({"userName": "bjensen", "emails": [{"value": "other@example.com"}]});
        let error = fields_from_json(&body, Some(&user)).unwrap_err();
        assert_eq!(error.to_json()["scimType"], "mutability");
    }

    #[test]
    fn resending_the_same_email_in_another_case_is_not_a_change() {
        let user = stored("bjensen@example.com", "bjensen");
        let body = json!({"userName": "bjensen", "emails": [{"value": "BJensen@Example.com"}]});
        assert_eq!(
            fields_from_json(&body, Some(&user)).unwrap().email,
            "bjensen@example.com"
        );
    }

    #[test]
    fn emails_without_an_address_on_update_is_a_removal() {
        let user = stored("bjensen@example.com", "bjensen");
        for emails in [json!([]), json!([{"type": "work", "primary": true}])] {
            let body = json!({"userName": "bjensen", "emails": emails});
            let error = fields_from_json(&body, Some(&user)).unwrap_err();
            assert_eq!(error.to_json()["scimType"], "mutability", "{body}");
        }
    }

    #[test]
    fn user_name_that_is_the_email_cannot_change() {
        let user = stored("bjensen@example.com", "bjensen@example.com");
        let body = json!({"userName": "babs@example.com"});
        let error = fields_from_json(&body, Some(&user)).unwrap_err();
        assert_eq!(error.to_json()["scimType"], "mutability");
        let same = json!({"userName": "BJENSEN@example.com"});
        assert!(fields_from_json(&same, Some(&user)).is_ok());
    }

    #[test]
    fn wrong_types_are_invalid_value() {
        for body in [
            json!({"userName": 42}),
            json!({"userName": "a@b.c", "active": "maybe"}),
            json!({"userName": "a@b.c", "name": "Barbara"}),
            json!({"userName": "a@b.c", "emails": "a@b.c"}),
            json!({"userName": "a@b.c", "externalId": 7}),
            json!({"userName": "x".repeat(MAX_NAME_LEN + 1)}),
            json!({"userName": "a\u{0}b@c.d"}),
            json!({"userName": "a@b.c", "schemas": "urn:ietf:params:scim:schemas:core:2.0:User"}),
        ] {
            let error = fields_from_json(&body, None).unwrap_err();
            assert_eq!(error.to_json()["scimType"], "invalidValue", "{body}");
        }
    }

    #[test]
    fn schemas_without_the_user_schema_is_invalid_value() {
        let user = stored("bjensen@example.com", "bjensen");
        for schemas in [
            json!([]),
            json!(["urn:ietf:params:scim:schemas:core:2.0:Group"]),
            json!(["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]),
            json!(["urn:ietf:params:scim:schemas:core:2.0:User:extra"]),
        ] {
            let body = json!({"userName": "bjensen", "emails": [{"value": "bjensen@example.com"}],
                "schemas": schemas});
            for current in [None, Some(&user)] {
                let error = fields_from_json(&body, current).unwrap_err();
                assert_eq!(error.status, 400, "{body}");
                assert_eq!(error.to_json()["scimType"], "invalidValue", "{body}");
            }
        }
    }

    #[test]
    fn schemas_naming_the_user_schema_in_any_case_or_absent_is_a_user() {
        for schemas in [
            json!(["urn:ietf:params:scim:schemas:core:2.0:User"]),
            json!(["URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER"]),
            json!([
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                "urn:ietf:params:scim:schemas:core:2.0:User",
            ]),
            Value::Null,
        ] {
            let body = json!({"userName": "bjensen@example.com", "schemas": schemas});
            assert!(fields_from_json(&body, None).is_ok(), "{body}");
        }
        let without = json!({"userName": "bjensen@example.com"});
        assert!(fields_from_json(&without, None).is_ok());
    }

    #[test]
    fn rfc3339_renders_dates_across_eras() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }
}
