//! Discovery endpoints (RFC 7644 §4): ServiceProviderConfig, ResourceTypes and Schemas.
//!
//! The documents live as JSON under `plugin/discovery/` so that what the service provider
//! advertises can be read and reviewed without reading Rust. Their `meta.location` values are
//! relative to the SCIM base; the base URL is only known per request (it is a host setting),
//! so each answer is a copy of the parsed document with the base prefixed.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::error::{ScimError, ScimResult};

/// The `urn:ietf:params:scim:api:messages:2.0:ListResponse` schema (RFC 7644 §3.4.2).
const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

const SERVICE_PROVIDER_CONFIG_JSON: &str =
    include_str!("../discovery/service-provider-config.json");
const RESOURCE_TYPES_JSON: &str = include_str!("../discovery/resource-types.json");
const SCHEMAS_JSON: &str = include_str!("../discovery/schemas.json");

/// The parsed documents, with relative `meta.location` values.
struct Documents {
    service_provider_config: Value,
    resource_types: Vec<Value>,
    schemas: Vec<Value>,
}

/// Parses the embedded files on first use. They are build inputs, checked by the tests below,
/// so a parse failure is a build defect rather than a request error.
fn documents() -> &'static Documents {
    static DOCUMENTS: OnceLock<Documents> = OnceLock::new();
    DOCUMENTS.get_or_init(|| Documents {
        service_provider_config: serde_json::from_str(SERVICE_PROVIDER_CONFIG_JSON)
            .expect("discovery/service-provider-config.json is a JSON object"),
        resource_types: serde_json::from_str(RESOURCE_TYPES_JSON)
            .expect("discovery/resource-types.json is a JSON array"),
        schemas: serde_json::from_str(SCHEMAS_JSON)
            .expect("discovery/schemas.json is a JSON array"),
    })
}

/// A copy of `document` whose relative `meta.location` is made absolute under `base_url`.
fn with_base(document: &Value, base_url: &str) -> Value {
    let mut document = document.clone();
    if let Some(location) = document.pointer_mut("/meta/location")
        && let Some(relative) = location.as_str()
    {
        // The base may or may not end in a slash depending on how the administrator typed it;
        // the relative paths always start with one.
        let absolute = format!("{}{}", base_url.trim_end_matches('/'), relative);
        *location = Value::String(absolute);
    }
    document
}

/// A ListResponse (RFC 7644 §3.4.2) holding every resource on a single page: discovery lists
/// are tiny, so they are never paged.
fn list_response(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": resources.len(),
        "itemsPerPage": resources.len(),
        "startIndex": 1,
        "Resources": resources,
    })
}

/// `GET /ServiceProviderConfig` (RFC 7643 §5). The documents are parsed once per process, so
/// this is cheap to call per request.
pub fn service_provider_config(base_url: &str) -> Value {
    with_base(&documents().service_provider_config, base_url)
}

/// `GET /ResourceTypes`: a ListResponse (RFC 7644 §3.4.2) of all resource types.
pub fn resource_types(base_url: &str) -> Value {
    let resource_types = &documents().resource_types;
    list_response(
        resource_types
            .iter()
            .map(|r| with_base(r, base_url))
            .collect(),
    )
}

/// `GET /ResourceTypes/{id}`, with `id` already percent-decoded; 404 for an unknown id.
///
/// Resource ids are case-exact (RFC 7643 §3.1), so only `User` matches, not `user`.
pub fn resource_type(base_url: &str, id: &str) -> ScimResult<Value> {
    documents()
        .resource_types
        .iter()
        .find(|r| r["id"].as_str() == Some(id))
        .map(|r| with_base(r, base_url))
        .ok_or_else(|| ScimError::not_found(format!("no resource type has the id \"{id}\"")))
}

/// `GET /Schemas`: a ListResponse of all schemas.
pub fn schemas(base_url: &str) -> Value {
    let schemas = &documents().schemas;
    list_response(schemas.iter().map(|s| with_base(s, base_url)).collect())
}

/// `GET /Schemas/{urn}`, with `id` already percent-decoded; 404 if unknown.
///
/// The `urn` prefix and namespace compare case-insensitively (RFC 8141 §3.1); matching the
/// whole URN that way accepts clients that change the case of the rest as well, and cannot
/// confuse two schemas because the served URNs differ by more than case.
pub fn schema(base_url: &str, id: &str) -> ScimResult<Value> {
    documents()
        .schemas
        .iter()
        .find(|s| {
            s["id"]
                .as_str()
                .is_some_and(|urn| urn.eq_ignore_ascii_case(id))
        })
        .map(|s| with_base(s, base_url))
        .ok_or_else(|| ScimError::not_found(format!("no schema has the id \"{id}\"")))
}

/// The most resources one list response returns (`filter.maxResults`). A constant rather than a
/// read of the ServiceProviderConfig document: each request runs in a fresh instance, where a
/// read would parse the document every time. A test keeps the two equal.
pub const MAX_RESULTS: usize = 200;

/// See [`MAX_RESULTS`].
pub fn max_results() -> usize {
    MAX_RESULTS
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://vault.example.com/scim/v2";
    const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

    /// Every file with its name, for tests that look at all of them.
    const FILES: [(&str, &str); 3] = [
        ("service-provider-config.json", SERVICE_PROVIDER_CONFIG_JSON),
        ("resource-types.json", RESOURCE_TYPES_JSON),
        ("schemas.json", SCHEMAS_JSON),
    ];

    fn user_schema() -> Value {
        schema(BASE, USER_SCHEMA).expect("the User schema is served")
    }

    fn attribute<'a>(attributes: &'a Value, name: &str) -> &'a Value {
        attributes
            .as_array()
            .expect("attributes is an array")
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("attribute {name} is listed"))
    }

    /// Checks one attribute definition against RFC 7643 §7, so that a misspelt characteristic
    /// in the JSON (which a client would silently read as its default) fails the build.
    fn check_attribute(path: &str, a: &Value) {
        const TYPES: [&str; 8] = [
            "string",
            "boolean",
            "decimal",
            "integer",
            "dateTime",
            "binary",
            "reference",
            "complex",
        ];
        const KEYS: [&str; 12] = [
            "name",
            "type",
            "multiValued",
            "description",
            "required",
            "caseExact",
            "canonicalValues",
            "mutability",
            "returned",
            "uniqueness",
            "referenceTypes",
            "subAttributes",
        ];
        let object = a
            .as_object()
            .unwrap_or_else(|| panic!("{path} is an object"));
        for key in object.keys() {
            assert!(
                KEYS.contains(&key.as_str()),
                "{path} has unknown characteristic {key}"
            );
        }
        let kind = a["type"]
            .as_str()
            .unwrap_or_else(|| panic!("{path} has a type"));
        assert!(TYPES.contains(&kind), "{path} has unknown type {kind}");
        assert!(
            a["multiValued"].is_boolean(),
            "{path} says whether it is multi-valued"
        );
        assert!(
            a["required"].is_boolean(),
            "{path} says whether it is required"
        );
        assert!(a["description"].is_string(), "{path} has a description");
        let mutability = a["mutability"].as_str().unwrap_or_default();
        assert!(
            ["readOnly", "readWrite", "immutable", "writeOnly"].contains(&mutability),
            "{path} has a valid mutability"
        );
        let returned = a["returned"].as_str().unwrap_or_default();
        assert!(
            ["always", "never", "default", "request"].contains(&returned),
            "{path} has a valid returned"
        );
        if let Some(uniqueness) = a.get("uniqueness") {
            assert!(
                ["none", "server", "global"].contains(&uniqueness.as_str().unwrap_or_default()),
                "{path} has a valid uniqueness"
            );
        }
        if kind == "string" {
            assert!(
                a["caseExact"].is_boolean(),
                "{path} says whether it is case-exact"
            );
        }
        if kind == "complex" {
            let subs = a["subAttributes"].as_array();
            let subs = subs.unwrap_or_else(|| panic!("{path} has subAttributes"));
            for sub in subs {
                assert!(sub["type"] != "complex", "{path} nests a complex attribute");
                check_attribute(
                    &format!("{path}.{}", sub["name"].as_str().unwrap_or("?")),
                    sub,
                );
            }
        } else {
            assert!(a.get("subAttributes").is_none(), "{path} is not complex");
        }
    }

    #[test]
    fn every_file_parses() {
        for (name, text) in FILES {
            let parsed: Result<Value, _> = serde_json::from_str(text);
            assert!(parsed.is_ok(), "{name} does not parse: {:?}", parsed.err());
        }
        assert!(documents().service_provider_config.is_object());
        assert_eq!(documents().resource_types.len(), 1);
        assert!(!documents().schemas.is_empty());
    }

    #[test]
    fn relative_locations_start_with_a_slash() {
        let docs = documents();
        let all = docs.resource_types.iter().chain(&docs.schemas);
        for doc in all.chain([&docs.service_provider_config]) {
            let location = doc["meta"]["location"]
                .as_str()
                .expect("every document has a location");
            assert!(
                location.starts_with('/'),
                "{location} is relative to the base"
            );
        }
    }

    #[test]
    fn user_schema_marks_emails_immutable_and_its_type_and_primary_read_only() {
        let user = user_schema();
        let emails = attribute(&user["attributes"], "emails");
        assert_eq!(emails["mutability"], "immutable");
        assert_eq!(emails["multiValued"], true);
        assert_eq!(emails["required"], true);
        let subs = &emails["subAttributes"];
        assert_eq!(attribute(subs, "value")["mutability"], "immutable");
        // The login email is always rendered as `type: "work", primary: true`, whatever a client
        // sent: a client may not set either, which is readOnly (RFC 7643 §7).
        for sub in ["type", "primary"] {
            assert_eq!(attribute(subs, sub)["mutability"], "readOnly", "{sub}");
        }
        assert_eq!(attribute(subs, "type")["canonicalValues"], json!(["work"]));
        let value = attribute(&emails["subAttributes"], "value");
        assert_eq!(value["uniqueness"], "server");
        assert_eq!(value["caseExact"], false);
    }

    #[test]
    fn user_schema_lists_exactly_the_stored_attributes() {
        let user = user_schema();
        let names: Vec<&str> = user["attributes"]
            .as_array()
            .expect("attributes is an array")
            .iter()
            .filter_map(|a| a["name"].as_str())
            .collect();
        // `id`, `externalId` and `meta` are common attributes (RFC 7643 §3.1), not schema ones.
        assert_eq!(names, ["userName", "name", "emails", "active"]);

        let user_name = attribute(&user["attributes"], "userName");
        assert_eq!(user_name["required"], true);
        assert_eq!(user_name["caseExact"], false);
        assert_eq!(user_name["uniqueness"], "server");
        let name = attribute(&user["attributes"], "name");
        // `formatted` is not kept: a client's formatted name is accepted and ignored.
        assert!(
            name["subAttributes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["name"] != "formatted")
        );
        assert_eq!(
            attribute(&name["subAttributes"], "givenName")["mutability"],
            "readWrite"
        );
        assert_eq!(
            attribute(&name["subAttributes"], "familyName")["mutability"],
            "readWrite"
        );
        assert_eq!(attribute(&user["attributes"], "active")["type"], "boolean");
    }

    #[test]
    fn every_attribute_has_valid_characteristics() {
        for doc in &documents().schemas {
            assert_eq!(
                doc["schemas"],
                json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"])
            );
            let id = doc["id"].as_str().expect("every schema has an id");
            assert!(doc["name"].is_string() && doc["description"].is_string());
            assert_eq!(doc["meta"]["resourceType"], "Schema");
            assert_eq!(doc["meta"]["location"], format!("/Schemas/{id}"));
            for a in doc["attributes"]
                .as_array()
                .expect("attributes is an array")
            {
                check_attribute(a["name"].as_str().unwrap_or("?"), a);
            }
        }
    }

    #[test]
    fn no_document_mentions_groups() {
        // Groups are not provisioned: advertising them would invite identity providers to push
        // memberships the product cannot honour.
        for (name, text) in FILES {
            assert!(
                !text.to_ascii_lowercase().contains("group"),
                "{name} mentions groups"
            );
        }
        assert!(!SCHEMAS_JSON.contains("urn:ietf:params:scim:schemas:core:2.0:Group"));
        assert!(resource_type(BASE, "Group").is_err());
        assert!(schema(BASE, "urn:ietf:params:scim:schemas:core:2.0:Group").is_err());
    }

    #[test]
    fn service_provider_config_advertises_the_product() {
        let config = service_provider_config(BASE);
        assert_eq!(
            config["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"])
        );
        assert_eq!(
            config["bulk"],
            json!({"supported": false, "maxOperations": 0, "maxPayloadSize": 0})
        );
        assert_eq!(config["patch"]["supported"], true);
        assert_eq!(config["filter"]["supported"], true);
        assert_eq!(config["changePassword"]["supported"], false);
        assert_eq!(config["sort"]["supported"], true);
        assert_eq!(config["etag"]["supported"], true);
        let schemes = config["authenticationSchemes"]
            .as_array()
            .expect("schemes are an array");
        assert_eq!(schemes.len(), 1);
        assert_eq!(schemes[0]["type"], "oauthbearertoken");
        assert_eq!(schemes[0]["primary"], true);
        assert_eq!(
            schemes[0]["specUri"],
            "https://www.rfc-editor.org/info/rfc6750"
        );
        assert_eq!(config["meta"]["resourceType"], "ServiceProviderConfig");
    }

    #[test]
    fn locations_are_absolute_under_the_base() {
        for base in [BASE, "https://vault.example.com/scim/v2/"] {
            let config = service_provider_config(base);
            assert_eq!(
                config["meta"]["location"],
                format!("{BASE}/ServiceProviderConfig")
            );
            let types = resource_types(base);
            assert_eq!(
                types["Resources"][0]["meta"]["location"],
                format!("{BASE}/ResourceTypes/User")
            );
            let user = schema(base, USER_SCHEMA).expect("the User schema is served");
            assert_eq!(
                user["meta"]["location"],
                format!("{BASE}/Schemas/{USER_SCHEMA}")
            );
            let listed = schemas(base);
            for s in listed["Resources"]
                .as_array()
                .expect("Resources is an array")
            {
                let location = s["meta"]["location"].as_str().expect("a location");
                assert!(location.starts_with(BASE));
                let after_scheme = location.strip_prefix("https://").expect("an https URL");
                assert!(
                    !after_scheme.contains("//"),
                    "{location} has a double slash"
                );
            }
        }
    }

    #[test]
    fn list_responses_hold_every_document_on_one_page() {
        for (list, count) in [
            (resource_types(BASE), documents().resource_types.len()),
            (schemas(BASE), documents().schemas.len()),
        ] {
            assert_eq!(list["schemas"], json!([LIST_RESPONSE_SCHEMA]));
            assert_eq!(list["totalResults"], count);
            assert_eq!(list["itemsPerPage"], count);
            assert_eq!(list["startIndex"], 1);
            assert_eq!(list["Resources"].as_array().map(Vec::len), Some(count));
        }
    }

    #[test]
    fn resource_type_user_is_found_by_exact_id() {
        let user = resource_type(BASE, "User").expect("User is served");
        assert_eq!(user["endpoint"], "/Users");
        assert_eq!(user["schema"], USER_SCHEMA);
        assert_eq!(user["schemaExtensions"], json!([]));
        assert_eq!(resource_type(BASE, "user").map_err(|e| e.status), Err(404));
        assert_eq!(resource_type(BASE, "Users").map_err(|e| e.status), Err(404));
    }

    #[test]
    fn every_resource_type_schema_is_served() {
        for r in &documents().resource_types {
            let urn = r["schema"]
                .as_str()
                .expect("a resource type names its schema");
            assert!(schema(BASE, urn).is_ok(), "{urn} is not served");
        }
    }

    #[test]
    fn unknown_schema_is_not_found() {
        let err = schema(BASE, "urn:ietf:params:scim:schemas:core:2.0:Nothing").unwrap_err();
        assert_eq!(err.status, 404);
        assert_eq!(err.to_json()["status"], "404");
    }

    #[test]
    fn schema_urn_matches_case_insensitively() {
        let user = schema(BASE, "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER").expect("found");
        assert_eq!(user["id"], USER_SCHEMA);
    }

    #[test]
    fn max_results_is_the_one_the_service_provider_config_advertises() {
        assert_eq!(max_results(), 200);
        assert_eq!(
            service_provider_config(BASE)["filter"]["maxResults"],
            MAX_RESULTS
        );
    }
}
