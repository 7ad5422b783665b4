//! One SCIM request (RFC 7644 §3): settings, authentication, routing, and the body's JSON.

use serde_json::Value;

use crate::auth;
use crate::discovery;
use crate::error::{ScimError, ScimResult};
use crate::http::{Request, Response};
use crate::query::Query;
use crate::store::{Settings, UserStore};
use crate::users;

/// Answers one request. Every failure becomes a SCIM error response; nothing here panics on
/// anything a client sends.
pub fn handle(request: &Request, store: &dyn UserStore, settings: &Settings) -> Response {
    match respond(request, store, settings) {
        Ok(response) => response,
        Err(error) => error.into(),
    }
}

fn respond(request: &Request, store: &dyn UserStore, settings: &Settings) -> ScimResult<Response> {
    if !settings.enabled {
        return Err(ScimError::new(
            403,
            "SCIM provisioning is turned off on this server",
        ));
    }
    auth::authenticate(request, settings)?;

    let base_url = settings.base_url.trim_end_matches('/');
    let method = routed_method(request);
    let segments = request.path_segments()?;
    let segments: Vec<&str> = segments
        .iter()
        .enumerate()
        .map(|(position, segment)| canonical_segment(position, segment))
        .collect();

    match segments.as_slice() {
        // RFC 7644 §3.4.2 and §3.4.3: a query at the server root spans every resource type,
        // and Users is the only one served.
        [] => match method.as_str() {
            "GET" => users::list(
                store,
                &Query::from_params(&request.query_params()?)?,
                base_url,
            ),
            _ => Err(method_not_allowed("GET, HEAD")),
        },
        [".search"] => match method.as_str() {
            "POST" => users::list(store, &Query::from_search(&json_body(request)?)?, base_url),
            _ => Err(method_not_allowed("POST")),
        },
        ["Users"] => match method.as_str() {
            "GET" => users::list(
                store,
                &Query::from_params(&request.query_params()?)?,
                base_url,
            ),
            "POST" => users::create(store, request, &json_body(request)?, base_url),
            _ => Err(method_not_allowed("GET, HEAD, POST")),
        },
        ["Users", ".search"] => match method.as_str() {
            "POST" => users::list(store, &Query::from_search(&json_body(request)?)?, base_url),
            _ => Err(method_not_allowed("POST")),
        },
        ["Users", id] => match method.as_str() {
            "GET" => users::get(store, id, request, base_url),
            "PUT" => users::replace(store, id, request, &json_body(request)?, base_url),
            "PATCH" => users::modify(store, id, request, &json_body(request)?, base_url),
            "DELETE" => users::delete(store, id, request),
            _ => Err(method_not_allowed("GET, HEAD, PUT, PATCH, DELETE")),
        },
        ["ServiceProviderConfig"] => {
            discovery_get(&method, request)?;
            Ok(Response::json(
                200,
                &discovery::service_provider_config(base_url),
            ))
        }
        ["ResourceTypes"] => {
            discovery_get(&method, request)?;
            Ok(Response::json(200, &discovery::resource_types(base_url)))
        }
        ["ResourceTypes", id] => {
            discovery_get(&method, request)?;
            Ok(Response::json(
                200,
                &discovery::resource_type(base_url, id)?,
            ))
        }
        ["Schemas"] => {
            discovery_get(&method, request)?;
            Ok(Response::json(200, &discovery::schemas(base_url)))
        }
        ["Schemas", id] => {
            discovery_get(&method, request)?;
            Ok(Response::json(200, &discovery::schema(base_url, id)?))
        }
        ["Groups", ..] => Err(ScimError::not_found(
            "Groups are not provisioned: joining a group shares encrypted secrets, which needs \
             the members' own keys",
        )),
        // RFC 7644 §3.7 and §3.11: a service provider without bulk or /Me answers 501.
        ["Bulk", ..] => Err(ScimError::new(501, "bulk operations are not supported")),
        ["Me", ..] => Err(ScimError::new(501, "/Me is not supported")),
        _ => Err(ScimError::not_found("no such SCIM endpoint")),
    }
}

/// The method the router answers: the request's, except that HEAD is answered as GET on every
/// endpoint that serves GET, with the same status and headers (RFC 9110 §9.3.2).
///
/// The body of GET is left in the response. The plugin does not see the transport, and an HTTP
/// server sends no body after the headers of a HEAD response while keeping the Content-Length
/// that the body gives (hyper does both), so the headers match GET's to the byte. Emptying the
/// body here would instead make a host that derives Content-Length from it announce 0.
fn routed_method(request: &Request) -> String {
    let method = request.method.to_ascii_uppercase();
    if method == "HEAD" {
        "GET".to_string()
    } else {
        method
    }
}

/// The endpoints' own names, matched in any case: Microsoft's SCIM validation collection asks for
/// `/users`, and URL paths are otherwise case-sensitive only where they carry an id or a URN.
const ENDPOINTS: [&str; 8] = [
    "Users",
    "Groups",
    "ServiceProviderConfig",
    "ResourceTypes",
    "Schemas",
    "Bulk",
    "Me",
    ".search",
];

/// The segment as the router names it: an endpoint in the first position, `.search` in the
/// second; anything else (an id, a schema URN) exactly as sent.
fn canonical_segment(position: usize, segment: &str) -> &str {
    let candidates: &[&'static str] = match position {
        0 => &ENDPOINTS,
        1 => &[".search"],
        _ => &[],
    };
    candidates
        .iter()
        .find(|name| name.eq_ignore_ascii_case(segment))
        .copied()
        .unwrap_or(segment)
}

/// The request's body as JSON (RFC 7644 §3.1). `application/scim+json` and `application/json`
/// alike; serde_json's recursion limit (128 levels) bounds nesting, and deeper input is a 400.
fn json_body(request: &Request) -> ScimResult<Value> {
    if request.body.is_empty() {
        return Err(ScimError::invalid_syntax("the request needs a JSON body"));
    }
    serde_json::from_slice(&request.body)
        .map_err(|error| ScimError::invalid_syntax(format!("the body is not valid JSON: {error}")))
}

/// The discovery endpoints (RFC 7644 §4) answer GET only, and no `filter`: a service provider
/// SHOULD refuse one with 403, so that a client cannot read the whole document as the part that
/// matched. A blank `filter` is no filter, as on `/Users`.
fn discovery_get(method: &str, request: &Request) -> ScimResult<()> {
    if method != "GET" {
        return Err(method_not_allowed("GET, HEAD"));
    }
    let filtered = request
        .query_params()?
        .iter()
        .any(|(name, value)| name.eq_ignore_ascii_case("filter") && !value.trim().is_empty());
    if filtered {
        return Err(ScimError::new(
            403,
            "the discovery endpoints cannot be filtered: each answers its whole document",
        ));
    }
    Ok(())
}

fn method_not_allowed(allowed: &'static str) -> ScimError {
    ScimError {
        allow: Some(allowed),
        ..ScimError::new(405, "method not allowed on this endpoint")
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{Host, json};

    const DISCOVERY: [&str; 5] = [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/ResourceTypes/User",
        "/Schemas",
        "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
    ];

    #[test]
    fn head_is_answered_like_get_on_every_get_route() {
        let host = Host::new();
        let body = serde_json::json!({"userName": "head@example.com"});
        let created = host.send("POST", "/Users", &[], Some(&body));
        let id = json(&created)["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let user = format!("/Users/{id}");
        let unknown = "/Users/no-such-user".to_string();
        let mut targets = vec![
            "/".to_string(),
            "/?filter=userName%20eq%20%22head%40example.com%22".to_string(),
            "/Users".to_string(),
            "/Users?attributes=userName".to_string(),
            user.clone(),
            format!("{user}?excludedAttributes=emails"),
            unknown,
        ];
        targets.extend(DISCOVERY.iter().map(|path| path.to_string()));
        for target in &targets {
            let get = host.send("GET", target, &[], None);
            let head = host.send("HEAD", target, &[], None);
            assert_eq!(head, get, "HEAD {target}");
        }

        let etag = created.header("ETag").unwrap_or_default().to_string();
        let cached = host.send("head", &user, &[("If-None-Match", &etag)], None);
        assert_eq!(cached.status, 304);
        assert_eq!(cached.header("ETag"), Some(etag.as_str()));
    }

    #[test]
    fn allow_names_head_wherever_get_is_served() {
        let host = Host::new();
        for (method, target, allow) in [
            ("DELETE", "/", "GET, HEAD"),
            ("DELETE", "/Users", "GET, HEAD, POST"),
            ("POST", "/Users/some-id", "GET, HEAD, PUT, PATCH, DELETE"),
            ("PUT", "/Schemas", "GET, HEAD"),
            ("HEAD", "/Users/.search", "POST"),
            ("HEAD", "/.search", "POST"),
        ] {
            let response = host.send(method, target, &[], None);
            assert_eq!(response.status, 405, "{method} {target}");
            assert_eq!(response.header("Allow"), Some(allow), "{method} {target}");
        }
    }

    #[test]
    fn discovery_with_a_filter_is_403() {
        let host = Host::new();
        for path in DISCOVERY {
            for query in ["filter=id%20eq%20%22User%22", "FILTER=name+pr"] {
                let response = host.send("GET", &format!("{path}?{query}"), &[], None);
                assert_eq!(response.status, 403, "{path}?{query}");
                let body = json(&response);
                assert_eq!(body["status"], "403", "{path}?{query}");
                assert_eq!(
                    body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
                    "{path}?{query}"
                );
            }
        }
    }

    #[test]
    fn discovery_without_a_filter_is_served() {
        let host = Host::new();
        for path in DISCOVERY {
            for query in ["", "?filter=", "?attributes=id"] {
                let response = host.send("GET", &format!("{path}{query}"), &[], None);
                assert_eq!(response.status, 200, "{path}{query}");
            }
        }
    }
}
