//! Querying resources (RFC 7644 §3.4.2, §3.4.3): filters, sorting, paging, projection, `.search`.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use crate::discovery;
use crate::error::{ScimError, ScimResult};
use crate::filter::{self, AttrPath, CompareOp, Filter};
use crate::store::{StoreError, User, UserStore};
use crate::user::{self, attribute};

/// The ListResponse message schema.
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The SearchRequest message schema.
pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// How many users one store call returns during a full pass: large enough that the boundary
/// is crossed rarely, small enough that one slice stays a few hundred KiB.
const SCAN_SLICE: u32 = 500;

/// The parameters of a query, from the URL or from a `.search` body.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrPath>,
    pub descending: bool,
    /// One-based, at least 1.
    pub start_index: u64,
    /// At most the advertised `maxResults`.
    pub count: u64,
    pub projection: Projection,
}

/// Which attributes a response carries (RFC 7644 §3.4.2.5).
#[derive(Debug, Clone, Default)]
pub struct Projection {
    pub attributes: Vec<AttrPath>,
    pub excluded: Vec<AttrPath>,
}

impl Query {
    /// Reads the URL's query parameters (RFC 7644 §3.4.2).
    pub fn from_params(params: &[(String, String)]) -> ScimResult<Query> {
        let mut fields = Map::new();
        for (name, value) in params {
            fields.insert(name.clone(), Value::String(value.clone()));
        }
        Query::from_fields(&fields, true)
    }

    /// Reads a `.search` request body (RFC 7644 §3.4.3).
    pub fn from_search(body: &Value) -> ScimResult<Query> {
        let Some(fields) = body.as_object() else {
            return Err(ScimError::invalid_syntax(
                "the body must be a SearchRequest object",
            ));
        };
        Query::from_fields(fields, false)
    }

    fn from_fields(fields: &Map<String, Value>, from_url: bool) -> ScimResult<Query> {
        let filter = match attribute(fields, "filter") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.trim().is_empty() => None,
            Some(Value::String(text)) => Some(check_orderable(filter::parse(text)?)?),
            Some(_) => return Err(ScimError::invalid_filter("filter must be a string")),
        };
        let sort_by = match attribute(fields, "sortBy") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.trim().is_empty() => None,
            Some(Value::String(text)) => Some(filter::parse_path(text)?.attr),
            Some(_) => return Err(ScimError::invalid_value("sortBy must be a string")),
        };
        let descending = match attribute(fields, "sortOrder") {
            None | Some(Value::Null) => false,
            Some(Value::String(order)) if order.eq_ignore_ascii_case("ascending") => false,
            Some(Value::String(order)) if order.eq_ignore_ascii_case("descending") => true,
            Some(_) => {
                return Err(ScimError::invalid_value(
                    "sortOrder is ascending or descending",
                ));
            }
        };

        // RFC 7644 §3.4.2.4: a startIndex below 1 is read as 1, a negative count as 0, and a
        // count above the maximum is capped by the server.
        let max = discovery::max_results() as u64;
        let start_index = integer(fields, "startIndex")?.unwrap_or(1).max(1) as u64;
        let count =
            integer(fields, "count")?.map_or(max, |count| count.clamp(0, max as i64) as u64);

        let projection = Projection {
            attributes: attribute_list(fields, "attributes", from_url)?,
            excluded: attribute_list(fields, "excludedAttributes", from_url)?,
        };
        Ok(Query {
            filter,
            sort_by,
            descending,
            start_index,
            count,
            projection,
        })
    }
}

/// RFC 7644 §3.4.2.2: `gt`, `ge`, `lt` and `le` on a Boolean attribute fail with
/// `invalidFilter`. The User schema's Booleans are `active` and `emails.primary`; a Boolean
/// literal on the right of an ordering is refused the same way, whatever the attribute.
fn check_orderable(parsed: Filter) -> ScimResult<Filter> {
    fn walk(filter: &Filter) -> ScimResult<()> {
        match filter {
            Filter::Compare { path, op, value } => {
                let ordering = matches!(
                    op,
                    CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
                );
                let boolean = value.is_boolean()
                    || path.is("active")
                    || path.is("emails.primary")
                    || path.attr.eq_ignore_ascii_case("primary");
                if ordering && boolean {
                    return Err(ScimError::invalid_filter(
                        "gt, ge, lt and le do not apply to Boolean attributes",
                    ));
                }
                Ok(())
            }
            Filter::Present(_) => Ok(()),
            Filter::And(left, right) | Filter::Or(left, right) => {
                walk(left)?;
                walk(right)
            }
            Filter::Not(inner) | Filter::ValuePath { filter: inner, .. } => walk(inner),
        }
    }
    walk(&parsed)?;
    Ok(parsed)
}

/// An integer parameter; absurdly large values saturate instead of failing.
fn integer(fields: &Map<String, Value>, name: &str) -> ScimResult<Option<i64>> {
    let invalid = || ScimError::invalid_value(format!("{name} must be an integer"));
    match attribute(fields, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(value), _, _) => Ok(Some(value)),
            (None, Some(_), _) => Ok(Some(i64::MAX)),
            (None, None, Some(value)) if value.fract() == 0.0 => Ok(Some(value as i64)),
            _ => Err(invalid()),
        },
        Some(Value::String(text)) => {
            let text = text.trim();
            let (negative, digits) = match text.strip_prefix('-') {
                Some(digits) => (true, digits),
                None => (false, text.strip_prefix('+').unwrap_or(text)),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            let magnitude = digits.parse::<i64>().unwrap_or(i64::MAX);
            Ok(Some(if negative { -magnitude } else { magnitude }))
        }
        Some(_) => Err(invalid()),
    }
}

/// `attributes` or `excludedAttributes`: comma-separated in a URL, a list in a `.search` body.
fn attribute_list(
    fields: &Map<String, Value>,
    name: &str,
    from_url: bool,
) -> ScimResult<Vec<AttrPath>> {
    let names: Vec<String> = match attribute(fields, name) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) if from_url || !text.is_empty() => {
            text.split(',').map(|s| s.trim().to_string()).collect()
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ScimError::invalid_value(format!("{name} must list strings")))?,
        Some(_) => {
            return Err(ScimError::invalid_value(format!(
                "{name} must list attributes"
            )));
        }
    };
    names
        .iter()
        .filter(|name| !name.is_empty())
        .map(|name| filter::parse_path(name).map(|path| path.attr))
        .collect()
}

/// Answers a query over the store with a ListResponse.
pub fn list(store: &dyn UserStore, query: &Query, base_url: &str) -> ScimResult<Value> {
    let (total, users) = match (&query.filter, &query.sort_by) {
        (None, None) => {
            let page = store
                .page(query.start_index - 1, query.count as u32)
                .map_err(store_error)?;
            (
                page.total,
                page.users
                    .iter()
                    .map(|u| user::to_json(u, base_url))
                    .collect(),
            )
        }
        (filter, sort_by) => matching(store, filter.as_ref(), sort_by.is_some(), query, base_url)?,
    };

    let resources: Vec<Value> = users
        .into_iter()
        .map(|resource| query.projection.apply(resource))
        .collect();
    Ok(json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "startIndex": query.start_index,
        "Resources": resources,
    }))
}

/// The total number of matches and the requested window of them, in order.
fn matching(
    store: &dyn UserStore,
    filter: Option<&Filter>,
    sorted: bool,
    query: &Query,
    base_url: &str,
) -> ScimResult<(u64, Vec<Value>)> {
    let skip = query.start_index - 1;
    let take = query.count;
    let mut total = 0u64;
    let mut kept = Vec::new();
    let mut consider = |resource: Value| {
        if filter.is_none_or(|filter| filter.matches(&resource)) {
            // Without a sort, only the window is kept; the rest is counted and dropped.
            if sorted || (total >= skip && total < skip.saturating_add(take)) {
                kept.push(resource);
            }
            total += 1;
        }
    };

    if let Some(candidates) =
        filter.and_then(|filter| indexed_candidates(store, filter).transpose())
    {
        for candidate in candidates? {
            consider(user::to_json(&candidate, base_url));
        }
    } else {
        let mut cursor: Option<String> = None;
        loop {
            let slice = store
                .scan(cursor.as_deref(), SCAN_SLICE)
                .map_err(store_error)?;
            for candidate in &slice.users {
                consider(user::to_json(candidate, base_url));
            }
            match slice.next {
                Some(next) if !slice.users.is_empty() => cursor = Some(next),
                _ => break,
            }
        }
    }

    if sorted && let Some(sort_by) = &query.sort_by {
        kept.sort_by(|a, b| compare_for_sort(sort_value(a, sort_by), sort_value(b, sort_by)));
        if query.descending {
            kept.reverse();
        }
        kept = kept
            .into_iter()
            .skip(skip as usize)
            .take(take as usize)
            .collect();
    }
    Ok((total, kept))
}

/// A keyed look-up that yields every user the filter can match, when the filter's shape allows
/// one: `eq` on `id`, `userName`, `externalId` or an email value, alone or in an `and`.
fn indexed_candidates(store: &dyn UserStore, filter: &Filter) -> ScimResult<Option<Vec<User>>> {
    let Some((key, value)) = index_key(filter) else {
        return Ok(None);
    };
    let found = match key {
        IndexKey::Id => store.get(&value).map(|user| user.into_iter().collect()),
        IndexKey::UserName => store
            .find_by_user_name(&value)
            .map(|user| user.into_iter().collect()),
        IndexKey::ExternalId => store.find_by_external_id(&value),
        IndexKey::Email => store
            .find_by_email(&value)
            .map(|user| user.into_iter().collect()),
    };
    found.map(Some).map_err(store_error)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndexKey {
    Id,
    UserName,
    ExternalId,
    Email,
}

fn index_key(filter: &Filter) -> Option<(IndexKey, String)> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Value::String(value),
        } => {
            if path.schema.is_some() {
                return None;
            }
            let attr = path.attr.as_str();
            let key = match (attr, path.sub_attr.as_deref()) {
                (a, None) if a.eq_ignore_ascii_case("id") => IndexKey::Id,
                (a, None) if a.eq_ignore_ascii_case("userName") => IndexKey::UserName,
                (a, None) if a.eq_ignore_ascii_case("externalId") => IndexKey::ExternalId,
                (a, None) if a.eq_ignore_ascii_case("emails") => IndexKey::Email,
                (a, Some(s))
                    if a.eq_ignore_ascii_case("emails") && s.eq_ignore_ascii_case("value") =>
                {
                    IndexKey::Email
                }
                _ => return None,
            };
            Some((key, value.clone()))
        }
        Filter::ValuePath { attr, filter }
            if attr.schema.is_none() && attr.attr.eq_ignore_ascii_case("emails") =>
        {
            email_value(filter).map(|value| (IndexKey::Email, value))
        }
        Filter::And(left, right) => index_key(left).or_else(|| index_key(right)),
        _ => None,
    }
}

/// The `value eq "…"` inside an email value filter.
fn email_value(filter: &Filter) -> Option<String> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Value::String(value),
        } if path.attr.eq_ignore_ascii_case("value") && path.sub_attr.is_none() => {
            Some(value.clone())
        }
        Filter::And(left, right) => email_value(left).or_else(|| email_value(right)),
        _ => None,
    }
}

/// The value a resource sorts by: for a multi-valued attribute, its primary value or else its
/// first (RFC 7644 §3.4.2.3).
fn sort_value<'a>(resource: &'a Value, path: &AttrPath) -> Option<&'a Value> {
    let object = resource.as_object()?;
    let object = match &path.schema {
        None => object,
        Some(schema) => attribute(object, schema)?.as_object()?,
    };
    let mut value = attribute(object, &path.attr)?;
    if let Value::Array(values) = value {
        value = values
            .iter()
            .find(|v| v.get("primary").and_then(Value::as_bool) == Some(true))
            .or_else(|| values.first())?;
        if path.sub_attr.is_none() {
            return value.get("value");
        }
    }
    match &path.sub_attr {
        None => Some(value),
        Some(sub_attr) => attribute(value.as_object()?, sub_attr),
    }
}

/// Strings compare case-insensitively; a missing value sorts after every present one.
fn compare_for_sort(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(Value::String(a)), Some(Value::String(b))) => a.to_lowercase().cmp(&b.to_lowercase()),
        (Some(Value::Bool(a)), Some(Value::Bool(b))) => a.cmp(b),
        (Some(Value::Number(a)), Some(Value::Number(b))) => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(Ordering::Equal),
        _ => Ordering::Equal,
    }
}

impl Projection {
    /// Reads `attributes` and `excludedAttributes` from the URL of a single-resource request.
    pub fn from_params(params: &[(String, String)]) -> ScimResult<Projection> {
        let mut fields = Map::new();
        for (name, value) in params {
            fields.insert(name.clone(), Value::String(value.clone()));
        }
        Ok(Projection {
            attributes: attribute_list(&fields, "attributes", true)?,
            excluded: attribute_list(&fields, "excludedAttributes", true)?,
        })
    }

    /// Keeps what was asked for. `id` and `schemas` are returned always (RFC 7643 §7).
    pub fn apply(&self, resource: Value) -> Value {
        let Value::Object(mut object) = resource else {
            return resource;
        };
        if !self.attributes.is_empty() {
            let mut kept = Map::new();
            for key in ["schemas", "id"] {
                if let Some(value) = object.remove(key) {
                    kept.insert(key.to_string(), value);
                }
            }
            for path in &self.attributes {
                copy_path(&object, &mut kept, path);
            }
            return Value::Object(kept);
        }
        for path in &self.excluded {
            remove_path(&mut object, path);
        }
        Value::Object(object)
    }
}

/// Whether a name is one of the attributes returned always.
fn always_returned(path: &AttrPath) -> bool {
    path.sub_attr.is_none()
        && (path.attr.eq_ignore_ascii_case("id") || path.attr.eq_ignore_ascii_case("schemas"))
}

fn copy_path(from: &Map<String, Value>, to: &mut Map<String, Value>, path: &AttrPath) {
    let (from, to) = match &path.schema {
        None => (from, to),
        Some(schema) => {
            let Some((key, Value::Object(inner))) = from
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(schema))
            else {
                return;
            };
            let slot = to
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(slot) = slot else { return };
            copy_path(
                inner,
                slot,
                &AttrPath {
                    schema: None,
                    ..path.clone()
                },
            );
            return;
        }
    };
    let Some((key, value)) = from
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(&path.attr))
    else {
        return;
    };
    match (&path.sub_attr, value) {
        (None, value) => {
            to.insert(key.clone(), value.clone());
        }
        (Some(sub_attr), Value::Object(inner)) => {
            if let Some((sub_key, sub_value)) =
                inner.iter().find(|(k, _)| k.eq_ignore_ascii_case(sub_attr))
            {
                let slot = to
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(slot) = slot {
                    slot.insert(sub_key.clone(), sub_value.clone());
                }
            }
        }
        (Some(sub_attr), Value::Array(values)) => {
            let projected: Vec<Value> = values
                .iter()
                .filter_map(|value| {
                    let inner = value.as_object()?;
                    let (sub_key, sub_value) = inner
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(sub_attr))?;
                    Some(json!({ sub_key.clone(): sub_value.clone() }))
                })
                .collect();
            to.insert(key.clone(), Value::Array(projected));
        }
        _ => {}
    }
}

fn remove_path(object: &mut Map<String, Value>, path: &AttrPath) {
    if always_returned(path) {
        return;
    }
    if let Some(schema) = &path.schema {
        if let Some(Value::Object(inner)) = object
            .iter_mut()
            .find(|(key, _)| key.eq_ignore_ascii_case(schema))
            .map(|(_, v)| v)
        {
            remove_path(
                inner,
                &AttrPath {
                    schema: None,
                    ..path.clone()
                },
            );
        }
        return;
    }
    let Some(key) = object
        .keys()
        .find(|key| key.eq_ignore_ascii_case(&path.attr))
        .cloned()
    else {
        return;
    };
    match &path.sub_attr {
        None => {
            object.remove(&key);
        }
        Some(sub_attr) => match object.get_mut(&key) {
            Some(Value::Object(inner)) => {
                inner.retain(|k, _| !k.eq_ignore_ascii_case(sub_attr));
            }
            Some(Value::Array(values)) => {
                for value in values {
                    if let Value::Object(inner) = value {
                        inner.retain(|k, _| !k.eq_ignore_ascii_case(sub_attr));
                    }
                }
            }
            _ => {}
        },
    }
}

/// A store failure as the SCIM error the client sees. The store's words for a conflict name
/// only the attribute, never the other user holding the value.
pub fn store_error(error: StoreError) -> ScimError {
    match error {
        StoreError::NotFound => ScimError::not_found("no user has this id"),
        StoreError::Conflict(attribute) => {
            ScimError::uniqueness(format!("{attribute} is already taken by another user"))
        }
        StoreError::VersionMismatch => {
            ScimError::new(412, "the user changed since the version in If-Match")
        }
        StoreError::Refused(reason) => ScimError::new(409, reason),
        StoreError::Unavailable(reason) => ScimError::unavailable(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn paging_parameters_are_clamped_as_rfc_7644_says() {
        let query = Query::from_params(&params(&[("startIndex", "-3"), ("count", "-1")])).unwrap();
        assert_eq!((query.start_index, query.count), (1, 0));
        let query = Query::from_params(&params(&[("count", "99999999999999999999999")])).unwrap();
        assert_eq!(query.count, discovery::max_results() as u64);
    }

    #[test]
    fn ordering_a_boolean_is_invalid_filter() {
        for filter in [
            "active gt true",
            "active le false",
            "emails[primary ge true]",
        ] {
            let error = Query::from_params(&params(&[("filter", filter)])).unwrap_err();
            assert_eq!(error.to_json()["scimType"], "invalidFilter", "{filter}");
        }
        assert!(Query::from_params(&params(&[("filter", "active eq true")])).is_ok());
    }

    #[test]
    fn non_numeric_count_is_invalid_value() {
        let error = Query::from_params(&params(&[("count", "ten")])).unwrap_err();
        assert_eq!(error.to_json()["scimType"], "invalidValue");
    }

    #[test]
    fn indexable_shapes_pick_a_keyed_look_up() {
        let key = |text: &str| index_key(&filter::parse(text).unwrap()).map(|(key, _)| key);
        assert_eq!(key("userName eq \"a\""), Some(IndexKey::UserName));
        assert_eq!(key("externalId eq 0a21"), Some(IndexKey::ExternalId));
        assert_eq!(key("id eq \"x\" and active eq true"), Some(IndexKey::Id));
        assert_eq!(
            key("emails[type eq \"work\"].value eq \"a@b.c\""),
            Some(IndexKey::Email)
        );
        assert_eq!(key("emails.value eq \"a@b.c\""), Some(IndexKey::Email));
        assert_eq!(key("userName co \"a\""), None);
        assert_eq!(key("userName eq \"a\" or userName eq \"b\""), None);
        assert_eq!(key("not (userName eq \"a\")"), None);
    }

    #[test]
    fn projection_keeps_id_and_schemas_and_what_is_asked() {
        let resource = json!({
            "schemas": ["s"], "id": "1", "userName": "u",
            "name": {"givenName": "g", "familyName": "f"}, "active": true,
        });
        let only = Projection::from_params(&params(&[("attributes", "NAME.givenName")])).unwrap();
        assert_eq!(
            only.apply(resource.clone()),
            json!({"schemas": ["s"], "id": "1", "name": {"givenName": "g"}})
        );
        let without =
            Projection::from_params(&params(&[("excludedAttributes", "id,name,active")])).unwrap();
        assert_eq!(
            without.apply(resource),
            json!({"schemas": ["s"], "id": "1", "userName": "u"})
        );
    }

    #[test]
    fn missing_values_sort_last() {
        let (a, b) = (json!("a"), json!("B"));
        assert_eq!(compare_for_sort(Some(&a), Some(&b)), Ordering::Less);
        assert_eq!(compare_for_sort(None, Some(&a)), Ordering::Greater);
    }
}
