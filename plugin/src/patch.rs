//! Modifying with PATCH (RFC 7644 §3.5.2): `add`, `replace` and `remove` on a User's JSON.
//!
//! The operations are applied, in order, to a copy of the user's JSON representation; the result
//! is then read back like a PUT body. Nothing reaches the store unless every operation applied,
//! which makes a PATCH atomic. Attributes the product does not keep (an identity provider's
//! `displayName`, `addresses`, the enterprise extension) are changed in the copy and then
//! dropped, which accepts and ignores them.

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::filter::{self, Filter, PatchPath};
use crate::user::{USER_SCHEMA, attribute, boolean};

/// The PatchOp message schema.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The enterprise User extension (RFC 7643 §4.3). Its attributes are accepted and ignored.
const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Identity providers send one operation per changed attribute, a few dozen at most; the bound
/// keeps one request's work small.
pub const MAX_OPERATIONS: usize = 256;

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// Applies a PatchOp request body to a resource's JSON. On error the resource is left as it was
/// passed in only if the caller passes a copy; the handler always does.
pub fn apply(resource: &mut Value, body: &Value) -> ScimResult<()> {
    let Some(body) = body.as_object() else {
        return Err(ScimError::invalid_syntax(
            "the body must be a PatchOp JSON object",
        ));
    };
    check_schema(body)?;

    let Some(operations) = attribute(body, "Operations") else {
        return Err(ScimError::invalid_syntax("Operations is required"));
    };
    let Some(operations) = operations.as_array() else {
        return Err(ScimError::invalid_syntax("Operations must be a list"));
    };
    if operations.is_empty() {
        return Err(ScimError::invalid_syntax("Operations must not be empty"));
    }
    if operations.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_value(format!(
            "a PATCH carries at most {MAX_OPERATIONS} operations"
        )));
    }

    let Some(resource) = resource.as_object_mut() else {
        return Err(ScimError::new(500, "the resource is not a JSON object"));
    };
    for operation in operations {
        apply_operation(resource, operation)?;
    }
    Ok(())
}

fn check_schema(body: &Map<String, Value>) -> ScimResult<()> {
    let declared = attribute(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|schemas| {
            schemas.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
            })
        });
    if declared {
        Ok(())
    } else {
        Err(ScimError::invalid_syntax(format!(
            "schemas must contain {PATCH_OP_SCHEMA}"
        )))
    }
}

fn apply_operation(resource: &mut Map<String, Value>, operation: &Value) -> ScimResult<()> {
    let Some(operation) = operation.as_object() else {
        return Err(ScimError::invalid_syntax(
            "each operation must be a JSON object",
        ));
    };

    // Entra ID capitalises the op ("Replace", "Add"); RFC 7644 spells it in lower case.
    let op = match attribute(operation, "op").and_then(Value::as_str) {
        Some(op) if op.eq_ignore_ascii_case("add") => Op::Add,
        Some(op) if op.eq_ignore_ascii_case("replace") => Op::Replace,
        Some(op) if op.eq_ignore_ascii_case("remove") => Op::Remove,
        Some(_) => {
            return Err(ScimError::invalid_syntax(
                "op must be add, replace or remove",
            ));
        }
        None => return Err(ScimError::invalid_syntax("each operation needs an op")),
    };
    let path = match attribute(operation, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(path)) if path.trim().is_empty() => None,
        Some(Value::String(path)) => Some(path.as_str()),
        Some(_) => return Err(ScimError::invalid_path("path must be a string")),
    };
    let value = attribute(operation, "value");

    match (op, path) {
        (Op::Remove, None) => Err(ScimError::no_target("remove needs a path")),
        (Op::Remove, Some(path)) => apply_path(resource, op, &writable_path(path)?, None),
        (_, Some(path)) => {
            let value = required_value(value)?;
            apply_path(resource, op, &writable_path(path)?, Some(value))
        }
        (_, None) => apply_pathless(resource, op, required_value(value)?),
    }
}

/// A path an operation may target: `id` and `meta` are set by the service provider alone
/// (RFC 7643 §3.1, mutability readOnly), so naming them is refused rather than ignored.
fn writable_path(path: &str) -> ScimResult<PatchPath> {
    let parsed = filter::parse_path(path)?;
    if parsed.attr.schema.is_none()
        && (parsed.attr.attr.eq_ignore_ascii_case("id")
            || parsed.attr.attr.eq_ignore_ascii_case("meta"))
    {
        return Err(ScimError::mutability(format!(
            "{} is set by the service provider and cannot be modified",
            parsed.attr.attr
        )));
    }
    Ok(parsed)
}

fn required_value(value: Option<&Value>) -> ScimResult<&Value> {
    match value {
        None | Some(Value::Null) => Err(ScimError::invalid_value("add and replace need a value")),
        Some(value) => Ok(value),
    }
}

/// An add or replace without a path: the value's keys are attribute paths, plain (`active`),
/// dotted (`name.givenName`, as Entra ID sends them) or URN-qualified, or a schema URN whose
/// object holds that schema's attributes.
fn apply_pathless(resource: &mut Map<String, Value>, op: Op, value: &Value) -> ScimResult<()> {
    let Some(value) = value.as_object() else {
        return Err(ScimError::invalid_value(
            "an operation without a path needs an object value",
        ));
    };
    for (key, item) in value {
        let schema_container = key.eq_ignore_ascii_case(USER_SCHEMA)
            || key.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA);
        match item {
            Value::Object(inner) if schema_container => {
                for (inner_key, inner_item) in inner {
                    let path = filter::parse_path(&format!("{key}:{inner_key}"))?;
                    apply_path(resource, op, &path, Some(inner_item))?;
                }
            }
            _ => apply_path(resource, op, &filter::parse_path(key)?, Some(item))?,
        }
    }
    Ok(())
}

/// Applies one operation at a parsed path.
fn apply_path(
    resource: &mut Map<String, Value>,
    op: Op,
    path: &PatchPath,
    value: Option<&Value>,
) -> ScimResult<()> {
    // An extension's attributes live in an object named by its URN; the core schema's at the top.
    let container = match &path.attr.schema {
        None => resource,
        Some(schema) => {
            let key = key_for(resource, schema);
            let slot = resource
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            match slot.as_object_mut() {
                Some(object) => object,
                None => return Ok(()),
            }
        }
    };

    match (&path.value_filter, &path.attr.sub_attr) {
        (Some(value_filter), _) => {
            let known = path.attr.schema.is_none() && path.attr.attr.eq_ignore_ascii_case("emails");
            apply_filtered(container, op, path, value_filter, value, known)
        }
        (None, Some(sub_attr)) => {
            let key = key_for(container, &path.attr.attr);
            // On a multi-valued attribute (`emails.value`), the sub-attribute of every value is
            // the target (RFC 7644 §3.5.2: an attribute path without a filter selects all values).
            if let Some(Value::Array(values)) = container.get_mut(&key) {
                for element in values.iter_mut().filter_map(Value::as_object_mut) {
                    let sub_key = key_for(element, sub_attr);
                    match value {
                        None => {
                            element.remove(&sub_key);
                        }
                        Some(value) => set(element, sub_key, op, value),
                    }
                }
                return Ok(());
            }
            if op == Op::Remove {
                if let Some(Value::Object(parent)) = container.get_mut(&key) {
                    let sub_key = key_for(parent, sub_attr);
                    parent.remove(&sub_key);
                }
                return Ok(());
            }
            let slot = container
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let (Some(parent), Some(value)) = (slot.as_object_mut(), value) {
                let sub_key = key_for(parent, sub_attr);
                set(parent, sub_key, op, value);
            }
            Ok(())
        }
        (None, None) => {
            let key = key_for(container, &path.attr.attr);
            match value {
                None => {
                    container.remove(&key);
                }
                Some(value) => set(container, key, op, value),
            }
            Ok(())
        }
    }
}

/// An operation on the values of a multi-valued attribute selected by a filter
/// (`emails[type eq "work"].value`).
fn apply_filtered(
    container: &mut Map<String, Value>,
    op: Op,
    path: &PatchPath,
    value_filter: &Filter,
    value: Option<&Value>,
    known: bool,
) -> ScimResult<()> {
    let key = key_for(container, &path.attr.attr);
    let values = match container.get_mut(&key) {
        Some(Value::Array(values)) => values,
        _ if op == Op::Remove => return Ok(()),
        _ => {
            container.insert(key.clone(), Value::Array(Vec::new()));
            match container.get_mut(&key) {
                Some(Value::Array(values)) => values,
                _ => return Ok(()),
            }
        }
    };

    let matching: Vec<usize> = (0..values.len())
        .filter(|&i| value_filter.matches_value(&path.attr, &values[i]))
        .collect();

    if op == Op::Remove {
        match &path.sub_attr {
            None => {
                for index in matching.into_iter().rev() {
                    values.remove(index);
                }
            }
            Some(sub_attr) => {
                for index in matching {
                    if let Some(element) = values[index].as_object_mut() {
                        let sub_key = key_for(element, sub_attr);
                        element.remove(&sub_key);
                    }
                }
            }
        }
        return Ok(());
    }

    let Some(value) = value else { return Ok(()) };
    if matching.is_empty() {
        if op == Op::Replace && known {
            return Err(ScimError::no_target(format!(
                "no value of {} matches the filter",
                path.attr.attr
            )));
        }
        // An add (or a replace on an attribute the product does not keep) creates the value the
        // filter describes, as Entra ID expects for `addresses[type eq "work"].formatted`.
        let mut element = Map::new();
        seed_from_filter(&mut element, value_filter);
        values.push(Value::Object(element));
        let last = values.len() - 1;
        write_element(&mut values[last], path, value)?;
        keep_one_primary(values, last);
        return Ok(());
    }
    for index in matching {
        write_element(&mut values[index], path, value)?;
        keep_one_primary(values, index);
    }
    Ok(())
}

/// Whether a value of a multi-valued attribute is marked primary (`true`, or the string
/// `"True"` that Entra ID sends).
fn is_primary(value: &Value) -> bool {
    value
        .as_object()
        .and_then(|object| attribute(object, "primary"))
        .is_some_and(|primary| boolean("primary", primary).unwrap_or(false))
}

/// If the value at `chosen` is primary, no other is: "primary" is true for one value at most
/// (RFC 7643 §2.4), and a value added or set as primary takes it from the others (RFC 7644
/// §3.5.2). Without this, adding a new primary email would leave the old one primary too, and
/// the change of login email that it asks for would go unseen.
fn keep_one_primary(values: &mut [Value], chosen: usize) {
    if !values.get(chosen).is_some_and(is_primary) {
        return;
    }
    for (index, value) in values.iter_mut().enumerate() {
        if index == chosen || !is_primary(value) {
            continue;
        }
        if let Some(object) = value.as_object_mut() {
            let key = key_for(object, "primary");
            object.insert(key, Value::Bool(false));
        }
    }
}

/// Appends a value to a multi-valued attribute; a primary one takes primary from the others.
fn append(values: &mut Vec<Value>, item: &Value) {
    values.push(item.clone());
    let last = values.len() - 1;
    keep_one_primary(values, last);
}

fn write_element(element: &mut Value, path: &PatchPath, value: &Value) -> ScimResult<()> {
    let Some(element) = element.as_object_mut() else {
        return Err(ScimError::invalid_value(
            "the selected value is not a complex value",
        ));
    };
    match (&path.sub_attr, value) {
        (Some(sub_attr), value) => {
            let sub_key = key_for(element, sub_attr);
            element.insert(sub_key, value.clone());
        }
        (None, Value::Object(fields)) => {
            for (field, item) in fields {
                let field_key = key_for(element, field);
                element.insert(field_key, item.clone());
            }
        }
        (None, _) => {
            return Err(ScimError::invalid_value(
                "the value must be a complex value",
            ));
        }
    }
    Ok(())
}

/// The `eq` comparisons of a value filter, as the sub-attributes of a new value.
fn seed_from_filter(element: &mut Map<String, Value>, value_filter: &Filter) {
    match value_filter {
        Filter::Compare {
            path,
            op: filter::CompareOp::Eq,
            value,
        } => {
            element.insert(path.attr.clone(), value.clone());
        }
        Filter::And(left, right) => {
            seed_from_filter(element, left);
            seed_from_filter(element, right);
        }
        _ => {}
    }
}

/// Sets an attribute: `replace` overwrites (merging sub-attributes of a complex value), `add`
/// appends to a multi-valued attribute and otherwise behaves as `replace` (RFC 7644 §3.5.2.1).
fn set(container: &mut Map<String, Value>, key: String, op: Op, value: &Value) {
    match (container.get_mut(&key), value) {
        (Some(Value::Array(existing)), Value::Array(new)) if op == Op::Add => {
            for item in new {
                if !existing.contains(item) {
                    append(existing, item);
                }
            }
        }
        (Some(Value::Array(existing)), item) if op == Op::Add && !item.is_array() => {
            append(existing, item);
        }
        (Some(Value::Object(existing)), Value::Object(new)) => {
            for (field, item) in new {
                let field_key = key_for(existing, field);
                existing.insert(field_key, item.clone());
            }
        }
        _ => {
            container.insert(key, value.clone());
        }
    }
}

/// The key under which an attribute already is, in whatever case; else the name as given.
fn key_for(object: &Map<String, Value>, name: &str) -> String {
    object
        .keys()
        .find(|key| key.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": [USER_SCHEMA],
            "id": "u1",
            "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
            "active": true,
        })
    }

    fn patch(operations: Value) -> Value {
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": operations})
    }

    fn applied(operations: Value) -> ScimResult<Value> {
        let mut resource = user();
        apply(&mut resource, &patch(operations))?;
        Ok(resource)
    }

    #[test]
    fn capitalised_ops_are_accepted() {
        let resource = applied(json!([
            {"op": "Replace", "path": "name.givenName", "value": "Babs"},
            {"op": "Add", "path": "externalId", "value": "e-1"},
        ]))
        .unwrap();
        assert_eq!(resource["name"]["givenName"], "Babs");
        assert_eq!(resource["name"]["familyName"], "Jensen");
        assert_eq!(resource["externalId"], "e-1");
    }

    #[test]
    fn pathless_replace_with_dotted_and_urn_keys() {
        let resource = applied(json!([{"op": "replace", "value": {
            "name.familyName": "Smith",
            "urn:ietf:params:scim:schemas:core:2.0:User:userName": "babs",
            "active": false,
        }}]))
        .unwrap();
        assert_eq!(resource["name"]["familyName"], "Smith");
        assert_eq!(resource["userName"], "babs");
        assert_eq!(resource["active"], false);
    }

    #[test]
    fn pathless_schema_container_applies_its_attributes() {
        let resource = applied(json!([{"op": "replace", "value": {
            USER_SCHEMA: {"userName": "babs"},
            ENTERPRISE_USER_SCHEMA: {"department": "Sales"},
        }}]))
        .unwrap();
        assert_eq!(resource["userName"], "babs");
        assert_eq!(resource[ENTERPRISE_USER_SCHEMA]["department"], "Sales");
    }

    #[test]
    fn value_filter_path_replaces_the_matching_value() {
        let resource = applied(json!([{
            "op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com"
        }]))
        .unwrap();
        assert_eq!(resource["emails"][0]["value"], "new@example.com");
    }

    #[test]
    fn replace_with_unmatched_filter_on_emails_is_no_target() {
        let error = applied(json!([{
            "op": "replace", "path": "emails[type eq \"home\"].value", "value": "x@example.com"
        }]))
        .unwrap_err();
        assert_eq!(error.to_json()["scimType"], "noTarget");
    }

    #[test]
    fn add_on_unkept_filtered_attribute_creates_the_value() {
        let resource = applied(json!([{
            "op": "add", "path": "addresses[type eq \"work\"].formatted", "value": "1 Main St"
        }]))
        .unwrap();
        assert_eq!(resource["addresses"][0]["type"], "work");
        assert_eq!(resource["addresses"][0]["formatted"], "1 Main St");
    }

    #[test]
    fn remove_without_path_is_no_target() {
        let error = applied(json!([{"op": "remove"}])).unwrap_err();
        assert_eq!(error.to_json()["scimType"], "noTarget");
    }

    #[test]
    fn remove_deletes_attributes_and_sub_attributes() {
        let resource = applied(json!([
            {"op": "remove", "path": "name.givenName"},
            {"op": "remove", "path": "externalId"},
            {"op": "remove", "path": "emails[type eq \"work\"]"},
        ]))
        .unwrap();
        assert!(resource["name"].get("givenName").is_none());
        assert!(resource.get("externalId").is_none());
        assert_eq!(resource["emails"], json!([]));
    }

    #[test]
    fn dotted_path_on_a_multi_valued_attribute_targets_every_value() {
        let resource = applied(json!([{"op": "remove", "path": "emails.value"}])).unwrap();
        assert_eq!(
            resource["emails"],
            json!([{"type": "work", "primary": true}])
        );
        let resource =
            applied(json!([{"op": "replace", "path": "emails.type", "value": "home"}])).unwrap();
        assert_eq!(resource["emails"][0]["type"], "home");
    }

    #[test]
    fn read_only_paths_are_refused_with_mutability() {
        for path in ["id", "meta.version", "META"] {
            let error =
                applied(json!([{"op": "replace", "path": path, "value": "x"}])).unwrap_err();
            assert_eq!(error.to_json()["scimType"], "mutability", "{path}");
        }
    }

    #[test]
    fn malformed_requests_are_rejected() {
        let mut resource = user();
        let cases = [
            (json!({"Operations": []}), "invalidSyntax"),
            (json!({"schemas": [PATCH_OP_SCHEMA]}), "invalidSyntax"),
            (patch(json!([])), "invalidSyntax"),
            (
                patch(json!([{"op": "move", "path": "userName"}])),
                "invalidSyntax",
            ),
            (
                patch(json!([{"op": "replace", "path": "userName"}])),
                "invalidValue",
            ),
            (
                patch(json!([{"op": "replace", "value": "x"}])),
                "invalidValue",
            ),
            (
                patch(json!([{"op": "replace", "path": "name[", "value": "x"}])),
                "invalidPath",
            ),
            (patch(json!(["replace"])), "invalidSyntax"),
        ];
        for (body, scim_type) in cases {
            let error = apply(&mut resource, &body).unwrap_err();
            assert_eq!(error.to_json()["scimType"], scim_type, "{body}");
        }
    }

    #[test]
    fn too_many_operations_are_refused() {
        let operations: Vec<Value> = (0..=MAX_OPERATIONS)
            .map(|_| json!({"op": "replace", "path": "active", "value": true}))
            .collect();
        let error = applied(Value::Array(operations)).unwrap_err();
        assert_eq!(error.status, 400);
    }

    #[test]
    fn a_value_added_as_primary_takes_primary_from_the_others() {
        let resource = applied(json!([{
            "op": "add", "path": "emails", "value": [{"value": "new@example.com", "primary": "True"}]
        }]))
        .unwrap();
        assert_eq!(resource["emails"][0]["primary"], false);
        assert_eq!(resource["emails"][1]["primary"], "True");

        let resource = applied(json!([{
            "op": "add", "path": "emails[type eq \"home\"]",
            "value": {"value": "home@example.com", "primary": true}
        }]))
        .unwrap();
        assert_eq!(resource["emails"][0]["primary"], false);
        assert_eq!(resource["emails"][1]["type"], "home");
        assert_eq!(resource["emails"][1]["primary"], true);
    }

    #[test]
    fn a_value_added_without_primary_leaves_the_primary_as_it_is() {
        let resource = applied(json!([{
            "op": "add", "path": "emails", "value": [{"value": "home@example.com", "type": "home"}]
        }]))
        .unwrap();
        assert_eq!(resource["emails"][0]["primary"], true);
    }

    #[test]
    fn add_appends_to_multi_valued_attributes() {
        let resource = applied(json!([{
            "op": "add", "path": "emails", "value": [{"value": "home@example.com", "type": "home"}]
        }]))
        .unwrap();
        assert_eq!(resource["emails"].as_array().unwrap().len(), 2);
    }
}
