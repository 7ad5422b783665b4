//! The `/Users` endpoint (RFC 7644 §3.3 create, §3.4.1 retrieve, §3.5.1 replace, §3.5.2 modify,
//! §3.6 delete) with versions (§3.14) and the password manager's rules.

use serde_json::Value;

use crate::error::{ScimError, ScimResult};
use crate::http::{Request, Response};
use crate::patch;
use crate::query::{Projection, Query, store_error};
use crate::store::{StoreError, User, UserFields, UserStore};
use crate::user;

/// A read-modify-write that loses a race with another writer reads again and retries; after
/// this many tries the client is told to come back later.
const MAX_WRITE_ATTEMPTS: usize = 8;

/// `POST /Users`.
pub fn create(
    store: &dyn UserStore,
    request: &Request,
    body: &Value,
    base_url: &str,
) -> ScimResult<Response> {
    let projection = Projection::from_params(&request.query_params()?)?;
    let fields = user::fields_from_json(body, None)?;
    let created = store.create(fields).map_err(store_error)?;
    Ok(resource_response(201, &created, base_url, &projection)
        .with_header("Location", user::location(&created, base_url)))
}

/// `GET /Users/{id}`, with `If-None-Match` (RFC 7644 §3.14).
pub fn get(
    store: &dyn UserStore,
    id: &str,
    request: &Request,
    base_url: &str,
) -> ScimResult<Response> {
    let projection = Projection::from_params(&request.query_params()?)?;
    let found = read(store, id)?;
    if let Some(tags) = request.header("If-None-Match")
        && etag_listed(tags, &found)
    {
        return Ok(Response::empty(304).with_header("ETag", user::etag(&found)));
    }
    Ok(resource_response(200, &found, base_url, &projection))
}

/// `GET /Users` and `POST /Users/.search`.
pub fn list(store: &dyn UserStore, query: &Query, base_url: &str) -> ScimResult<Response> {
    let body = crate::query::list(store, query, base_url)?;
    Ok(Response::json(200, &body))
}

/// `PUT /Users/{id}`: the body is the user's full new state; `id` and `meta` in it are ignored.
pub fn replace(
    store: &dyn UserStore,
    id: &str,
    request: &Request,
    body: &Value,
    base_url: &str,
) -> ScimResult<Response> {
    let projection = Projection::from_params(&request.query_params()?)?;
    let updated = write(store, id, request, |current| {
        user::fields_from_json(body, Some(current))
    })?;
    Ok(resource_response(200, &updated, base_url, &projection))
}

/// `PATCH /Users/{id}`: every operation applies or none does.
pub fn modify(
    store: &dyn UserStore,
    id: &str,
    request: &Request,
    body: &Value,
    base_url: &str,
) -> ScimResult<Response> {
    let projection = Projection::from_params(&request.query_params()?)?;
    let updated = write(store, id, request, |current| {
        let mut resource = user::to_json(current, base_url);
        patch::apply(&mut resource, body)?;
        let emails_left = resource
            .get("emails")
            .and_then(Value::as_array)
            .is_some_and(|emails| !emails.is_empty());
        if !emails_left {
            return Err(ScimError::mutability(
                "emails cannot be removed: the login email is part of the user's cryptographic \
                 identity",
            ));
        }
        user::fields_from_json(&resource, Some(current))
    })?;
    Ok(resource_response(200, &updated, base_url, &projection))
}

/// `DELETE /Users/{id}`: 204, and 404 from then on. Where the host suspends instead of
/// deleting, the user stays readable with `active: false`.
pub fn delete(store: &dyn UserStore, id: &str, request: &Request) -> ScimResult<Response> {
    if request.header("If-Match").is_some() || request.header("If-None-Match").is_some() {
        let current = read(store, id)?;
        check_preconditions(request, &current)?;
    }
    store.delete(id).map_err(store_error)?;
    Ok(Response::empty(204))
}

/// Reads the user, applies `change`, and writes the result guarded by the version that was read.
fn write(
    store: &dyn UserStore,
    id: &str,
    request: &Request,
    change: impl Fn(&User) -> ScimResult<UserFields>,
) -> ScimResult<User> {
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let current = read(store, id)?;
        check_preconditions(request, &current)?;
        let fields = change(&current)?;
        if fields == current.fields() {
            return Ok(current);
        }
        match store.update(id, current.version, fields) {
            Ok(updated) => return Ok(updated),
            // Someone wrote in between. With If-Match the client asked for exactly the version
            // it saw, so the next pass answers 412; without it, the change is applied afresh.
            Err(StoreError::VersionMismatch) => continue,
            Err(error) => return Err(store_error(error)),
        }
    }
    Err(ScimError::unavailable(
        "the user is changing too often; retry later",
    ))
}

fn read(store: &dyn UserStore, id: &str) -> ScimResult<User> {
    store
        .get(id)
        .map_err(store_error)?
        .ok_or_else(|| ScimError::not_found("no user has this id"))
}

/// The preconditions of a write (PUT, PATCH, DELETE), in the order of RFC 9110 §13.2.2:
/// `If-Match`, then `If-None-Match`. Either one failing is a 412 before anything is written.
fn check_preconditions(request: &Request, current: &User) -> ScimResult<()> {
    check_if_match(request, current)?;
    check_if_none_match(request, current)
}

/// `If-Match` (RFC 7644 §3.14, RFC 9110 §13.1.1): the client's version must be the current one.
fn check_if_match(request: &Request, current: &User) -> ScimResult<()> {
    match request.header("If-Match") {
        Some(tags) if !etag_listed(tags, current) => Err(ScimError::new(
            412,
            "the user changed since the version in If-Match",
        )),
        _ => Ok(()),
    }
}

/// `If-None-Match` on a write (RFC 9110 §13.1.2): the client wants the change only if the user
/// is not in a version it names, and `*` names any version. The user exists here, so `*` or
/// its current tag fails the write. On GET the same match is a 304 instead, in [`get`].
fn check_if_none_match(request: &Request, current: &User) -> ScimResult<()> {
    match request.header("If-None-Match") {
        Some(tags) if etag_listed(tags, current) => Err(ScimError::new(
            412,
            "the user exists in a version that If-None-Match names",
        )),
        _ => Ok(()),
    }
}

/// Whether a header's list of entity tags names the user's current version. Weak comparison:
/// `W/"3"` and `"3"` are the same version.
fn etag_listed(tags: &str, current: &User) -> bool {
    let version = current.version.to_string();
    tags.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == version)
}

/// A user as the answer to any operation that returns it: GET, POST, PUT and PATCH all shape it
/// by the request's `attributes` and `excludedAttributes` (RFC 7644 §3.9), with the projection
/// that lists use.
fn resource_response(
    status: u16,
    found: &User,
    base_url: &str,
    projection: &Projection,
) -> Response {
    let body = projection.apply(user::to_json(found, base_url));
    Response::json(status, &body).with_header("ETag", user::etag(found))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testing::{Host, json};

    #[test]
    fn writes_return_the_resource_projected_by_attributes() {
        let host = Host::new();
        let body = json!({"userName": "proj@example.com", "externalId": "p-1"});
        let created = host.send("POST", "/Users?attributes=userName", &[], Some(&body));
        assert_eq!(created.status, 201);
        assert!(created.header("Location").is_some());
        let id = json(&created)["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            json(&created),
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": id,
                "userName": "proj@example.com",
            })
        );

        let path = format!("/Users/{id}?attributes=externalId,name.familyName");
        let put = json!({"userName": "proj@example.com", "name": {"familyName": "Doe"}});
        let replaced = json(&host.send("PUT", &path, &[], Some(&put)));
        assert_eq!(replaced["name"], json!({"familyName": "Doe"}));
        assert!(replaced.get("userName").is_none() && replaced.get("externalId").is_none());

        let patch = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "externalId", "value": "p-2"}],
        });
        let modified = json(&host.send("PATCH", &path, &[], Some(&patch)));
        assert_eq!(modified["externalId"], "p-2");
        assert!(modified.get("emails").is_none() && modified.get("meta").is_none());
    }

    #[test]
    fn writes_return_the_resource_without_excluded_attributes() {
        let host = Host::new();
        let body = json!({"userName": "excl@example.com", "externalId": "e-1"});
        let created = json(&host.send(
            "POST",
            "/Users?excludedAttributes=emails,meta",
            &[],
            Some(&body),
        ));
        assert_eq!(created["externalId"], "e-1");
        assert!(created.get("emails").is_none() && created.get("meta").is_none());

        let id = created["id"].as_str().unwrap_or_default();
        let patch = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": false}],
        });
        let path = format!("/Users/{id}?excludedAttributes=active,externalId");
        let modified = json(&host.send("PATCH", &path, &[], Some(&patch)));
        assert!(modified.get("active").is_none() && modified.get("externalId").is_none());
        assert_eq!(modified["userName"], "excl@example.com");
        let read = json(&host.send("GET", &format!("/Users/{id}"), &[], None));
        assert_eq!(
            read["active"], false,
            "the excluded attribute was still written"
        );
    }

    #[test]
    fn if_none_match_on_a_write_of_an_existing_user_is_412_and_changes_nothing() {
        let host = Host::new();
        let body = json!({"userName": "inm@example.com", "externalId": "inm-1"});
        let id = host.create(&body);
        let path = format!("/Users/{id}");
        let put = json!({"userName": "inm@example.com", "externalId": "inm-2"});
        let patch = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "externalId", "value": "inm-2"}],
        });

        for tags in ["*", "W/\"1\"", "\"1\"", "W/\"7\", W/\"1\""] {
            for (method, body) in [
                ("PUT", Some(&put)),
                ("PATCH", Some(&patch)),
                ("DELETE", None),
            ] {
                let response = host.send(method, &path, &[("If-None-Match", tags)], body);
                assert_eq!(response.status, 412, "{method} If-None-Match: {tags}");
                assert_eq!(
                    json(&response)["status"],
                    "412",
                    "{method} If-None-Match: {tags}"
                );
            }
        }

        let after = host.send("GET", &path, &[], None);
        assert_eq!(after.status, 200);
        assert_eq!(after.header("ETag"), Some("W/\"1\""));
        assert_eq!(json(&after)["externalId"], "inm-1");
    }

    #[test]
    fn if_none_match_naming_another_version_lets_the_write_through() {
        let host = Host::new();
        let body = json!({"userName": "inm2@example.com"});
        let id = host.create(&body);
        let path = format!("/Users/{id}");
        let put = json!({"userName": "inm2@example.com", "externalId": "new"});
        let stale = [("If-None-Match", "W/\"9\"")];
        assert_eq!(host.send("PUT", &path, &stale, Some(&put)).status, 200);
        assert_eq!(host.send("DELETE", &path, &stale, None).status, 204);
        let gone = host.send("DELETE", &path, &[("If-None-Match", "*")], None);
        assert_eq!(
            gone.status, 404,
            "a user that is not there has no version to match"
        );
    }

    #[test]
    fn the_login_email_is_work_and_primary_whatever_the_client_sends() {
        let host = Host::new();
        let login = json!([{"value": "ro@example.com", "type": "work", "primary": true}]);
        let body = json!({
            "userName": "ro",
            "emails": [{"value": "ro@example.com", "type": "home", "primary": false}],
        });
        let created = json(&host.send("POST", "/Users", &[], Some(&body)));
        assert_eq!(created["emails"], login);

        let path = format!("/Users/{}", created["id"].as_str().unwrap_or_default());
        let put = json!({
            "userName": "ro",
            "emails": [{"value": "ro@example.com", "type": "other", "primary": "False"}],
        });
        assert_eq!(
            json(&host.send("PUT", &path, &[], Some(&put)))["emails"],
            login
        );
        let patch = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "emails[type eq \"work\"].type", "value": "home"}],
        });
        let modified = host.send("PATCH", &path, &[], Some(&patch));
        assert_eq!(modified.status, 200);
        assert_eq!(json(&modified)["emails"], login);
    }

    #[test]
    fn a_bad_attributes_parameter_on_a_write_changes_nothing() {
        let host = Host::new();
        let body = json!({"userName": "bad-proj@example.com"});
        let refused = host.send("POST", "/Users?attributes=emails[", &[], Some(&body));
        assert_eq!(refused.status, 400);
        let listed = json(&host.send("GET", "/Users", &[], None));
        assert_eq!(listed["totalResults"], 0);
    }
}
