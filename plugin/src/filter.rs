//! Filters (RFC 7644 §3.4.2.2) and PATCH paths (RFC 7644 §3.5.2).
//!
//! One hand-written recursive-descent parser serves both grammars: a PATCH `path` is an
//! `attrPath`, or a `valuePath` whose brackets hold the same `valFilter` a filter uses.
//! Matching works on the JSON the server renders, so it needs no schema objects; the few
//! schema facts it does need (which attributes compare case-exactly, which are dateTimes)
//! live in [`case_exact`] and [`is_date_time`].

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use crate::error::{ScimError, ScimResult};

/// The longest filter or path accepted, in bytes. Real filters are a few hundred bytes at
/// most; the bound keeps the cost of parsing and of every `matches` call small and known,
/// whatever a client sends.
pub const MAX_LENGTH: usize = 4096;

/// The deepest nesting accepted: open `(`, `not (` and `[` while parsing, and the depth of
/// the resulting tree (where each `and`/`or` of a chain adds a level). Parsing and matching
/// recurse once per level, so this bound is what keeps hostile input such as 100,000 `(` from
/// exhausting the stack; 64 is far beyond any filter a person or an identity provider writes.
pub const MAX_DEPTH: usize = 64;

/// The core User schema (RFC 7643 §4.1). A path qualified with it means the same as an
/// unqualified one.
const CORE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// An attribute reference: optional schema URN, attribute, optional sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub schema: Option<String>,
    pub attr: String,
    pub sub_attr: Option<String>,
}

impl AttrPath {
    /// Whether this names `name` (`"attr"` or `"attr.subAttr"`) of the core User schema.
    /// Attribute names are case-insensitive (RFC 7643 §2.1), and paths keep the client's
    /// spelling, so compare through this rather than with `==`.
    pub fn is(&self, name: &str) -> bool {
        if self.schema.is_some() {
            return false;
        }
        match name.split_once('.') {
            Some((attr, sub)) => {
                self.attr.eq_ignore_ascii_case(attr)
                    && self
                        .sub_attr
                        .as_deref()
                        .is_some_and(|s| s.eq_ignore_ascii_case(sub))
            }
            None => self.attr.eq_ignore_ascii_case(name) && self.sub_attr.is_none(),
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{schema}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub_attr) = &self.sub_attr {
            write!(f, ".{sub_attr}")?;
        }
        Ok(())
    }
}

/// The `compareOp` of RFC 7644 §3.4.2.2; `pr` is [`Filter::Present`], since it takes no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Lt,
    Ge,
    Le,
}

impl CompareOp {
    /// The operator as the RFC spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Lt => "lt",
            CompareOp::Ge => "ge",
            CompareOp::Le => "le",
        }
    }

    fn from_keyword(word: &str) -> Option<Self> {
        [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Lt,
            CompareOp::Ge,
            CompareOp::Le,
        ]
        .into_iter()
        .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }
}

/// A comparison value: JSON literal (string, number, true, false, null).
pub type CompValue = serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: CompValue,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work" and primary eq true]`: `attr` is the multi-valued attribute,
    /// `filter`'s paths are relative to each value (sub-attributes named as plain attrs).
    ValuePath {
        attr: AttrPath,
        filter: Box<Filter>,
    },
}

/// Parses a `filter` query parameter or search body member. Errors are 400 `invalidFilter`.
pub fn parse(input: &str) -> ScimResult<Filter> {
    parse_filter(input).map_err(ScimError::invalid_filter)
}

/// A PATCH `path`: attrPath, or valuePath with an optional trailing `.subAttr`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub value_filter: Option<Filter>,
    pub sub_attr: Option<String>,
}

/// Parses a PATCH operation's `path` (the `PATH` rule of RFC 7644 §3.5.2). Every error,
/// including a malformed filter inside `[ ]`, is 400 `invalidPath`.
pub fn parse_path(input: &str) -> ScimResult<PatchPath> {
    parse_patch_path(input).map_err(ScimError::invalid_path)
}

impl Filter {
    /// Whether a resource (the SCIM JSON representation of a User, as rendered by the server,
    /// with canonical attribute names) matches.
    pub fn matches(&self, resource: &serde_json::Value) -> bool {
        self.within_depth() && self.eval(Scope::Resource(resource))
    }

    /// Whether one value of the multi-valued attribute `attr` satisfies this filter, read as
    /// the `valFilter` inside `attr[ ]`: what a PATCH with a value-filtered path selects.
    pub fn matches_value(&self, attr: &AttrPath, value: &serde_json::Value) -> bool {
        self.within_depth() && self.eval(Scope::Value { attr, value })
    }

    /// Whether the tree is no deeper than [`MAX_DEPTH`]. Parsed filters always are, but a
    /// filter built in code is not bounded by the parser, and [`Filter::eval`] recurses; the
    /// walk here uses a heap stack so that checking cannot overflow either.
    fn within_depth(&self) -> bool {
        let mut pending = vec![(self, 1)];
        while let Some((filter, depth)) = pending.pop() {
            if depth > MAX_DEPTH {
                return false;
            }
            match filter {
                Filter::And(left, right) | Filter::Or(left, right) => {
                    pending.push((left, depth + 1));
                    pending.push((right, depth + 1));
                }
                Filter::Not(inner) | Filter::ValuePath { filter: inner, .. } => {
                    pending.push((inner, depth + 1));
                }
                Filter::Compare { .. } | Filter::Present(_) => {}
            }
        }
        true
    }

    fn eval(&self, scope: Scope<'_>) -> bool {
        match self {
            Filter::Compare { path, op, value } => compare(scope, path, *op, value),
            Filter::Present(path) => values(scope.attribute(path), path.sub_attr.as_deref(), false)
                .into_iter()
                .any(is_present),
            Filter::And(left, right) => left.eval(scope) && right.eval(scope),
            Filter::Or(left, right) => left.eval(scope) || right.eval(scope),
            Filter::Not(inner) => !inner.eval(scope),
            Filter::ValuePath { attr, filter } => {
                // Brackets do not nest (RFC 7644 §3.4.2.2 `valFilter`), so a value path only
                // means something at the top of a resource.
                let Scope::Resource(_) = scope else {
                    return false;
                };
                // Each value of the attribute; a single-valued complex one is a list of one.
                let items = values(scope.attribute(attr), attr.sub_attr.as_deref(), false);
                items
                    .into_iter()
                    .any(|value| filter.eval(Scope::Value { attr, value }))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

fn parse_filter(input: &str) -> Result<Filter, String> {
    check_length(input, "filter")?;
    let mut parser = Parser::new(input);
    parser.skip_ws();
    if parser.at_end() {
        return Err("the filter is empty".into());
    }
    let (filter, _) = parser.or_expr()?;
    parser.skip_ws();
    if !parser.at_end() {
        return parser.fail("unexpected text after the filter");
    }
    Ok(filter)
}

fn parse_patch_path(input: &str) -> Result<PatchPath, String> {
    check_length(input, "path")?;
    let mut parser = Parser::new(input);
    parser.skip_ws();
    if parser.at_end() {
        return Err("the path is empty".into());
    }
    let attr = parser.attr_path()?;
    let (value_filter, sub_attr) = if parser.peek() == Some(b'[') {
        if attr.sub_attr.is_some() {
            return parser.fail("a value filter applies to an attribute, not a sub-attribute");
        }
        let (filter, _) = parser.bracket()?;
        let sub_attr = if parser.eat(b'.') {
            Some(parser.attr_name()?)
        } else {
            None
        };
        (Some(filter), sub_attr)
    } else {
        (None, None)
    };
    parser.skip_ws();
    if !parser.at_end() {
        return parser.fail("unexpected text after the path");
    }
    Ok(PatchPath {
        attr,
        value_filter,
        sub_attr,
    })
}

fn check_length(input: &str, what: &str) -> Result<(), String> {
    if input.len() > MAX_LENGTH {
        return Err(format!("the {what} is longer than {MAX_LENGTH} bytes"));
    }
    Ok(())
}

/// A parsed subtree and its depth, carried along so that `and`/`or` chains are bounded
/// without walking the tree again.
type Node = (Filter, usize);

fn node(filter: Filter, depth: usize) -> Result<Node, String> {
    if depth > MAX_DEPTH {
        return Err(format!("the filter nests deeper than {MAX_DEPTH} levels"));
    }
    Ok((filter, depth))
}

fn join(
    logical: fn(Box<Filter>, Box<Filter>) -> Filter,
    (left, left_depth): Node,
    (right, right_depth): Node,
) -> Result<Node, String> {
    node(
        logical(Box::new(left), Box::new(right)),
        left_depth.max(right_depth) + 1,
    )
}

struct Parser<'a> {
    src: &'a str,
    /// A byte offset, always on a char boundary: it only ever stops before or after ASCII.
    pos: usize,
    /// Open `(`, `not (` and `[` around `pos`.
    nesting: usize,
    /// Inside `[ ]`, where paths name sub-attributes and brackets cannot open again.
    in_value_filter: bool,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser {
            src,
            pos: 0,
            nesting: 0,
            in_value_filter: false,
        }
    }

    fn fail<T>(&self, what: &str) -> Result<T, String> {
        // Offsets, not quotes: the detail goes back in an error body and into logs.
        Err(format!("{what} at offset {}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Skips spaces, tabs and line breaks; says whether there were any.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// The run of attribute-path characters at `pos` (possibly empty), not consumed. Keywords
    /// are read the same way, so `order` is never `or` and `notes` is never `not`.
    fn word(&self) -> &'a str {
        let rest = self.src.get(self.pos..).unwrap_or("");
        let len = rest.bytes().take_while(|&b| is_path_byte(b)).count();
        rest.get(..len).unwrap_or("")
    }

    /// Consumes `keyword` (case-insensitively) and the whitespace around it, if it comes next.
    fn keyword(&mut self, keyword: &str) -> bool {
        let start = self.pos;
        self.skip_ws();
        if self.word().eq_ignore_ascii_case(keyword) {
            self.pos += keyword.len();
            self.skip_ws();
            return true;
        }
        self.pos = start;
        false
    }

    fn enter(&mut self) -> Result<(), String> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return self.fail(&format!("the filter nests deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn close(&mut self, byte: u8) -> Result<(), String> {
        self.skip_ws();
        if !self.eat(byte) {
            return self.fail(&format!("expected `{}`", char::from(byte)));
        }
        self.nesting -= 1;
        Ok(())
    }

    /// `or` binds loosest and associates to the left.
    fn or_expr(&mut self) -> Result<Node, String> {
        let mut left = self.and_expr()?;
        while self.keyword("or") {
            let right = self.and_expr()?;
            left = join(Filter::Or, left, right)?;
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Node, String> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            let right = self.unary()?;
            left = join(Filter::And, left, right)?;
        }
        Ok(left)
    }

    /// A group, a `not ( … )`, or an attribute expression.
    fn unary(&mut self) -> Result<Node, String> {
        self.skip_ws();
        if self.eat(b'(') {
            self.enter()?;
            let inner = self.or_expr()?;
            self.close(b')')?;
            return Ok(inner);
        }
        if self.word().eq_ignore_ascii_case("not") {
            self.pos += "not".len();
            self.skip_ws();
            // RFC 7644's `*1"not" "(" FILTER ")"`: the parentheses are not optional.
            if !self.eat(b'(') {
                return self.fail("expected `(` after `not`");
            }
            self.enter()?;
            let (inner, depth) = self.or_expr()?;
            self.close(b')')?;
            return node(Filter::Not(Box::new(inner)), depth + 1);
        }
        self.attr_expr()
    }

    /// `attrPath SP "pr"`, `attrPath SP compareOp SP compValue`, or a value path.
    fn attr_expr(&mut self) -> Result<Node, String> {
        let path = self.attr_path()?;
        if self.peek() == Some(b'[') {
            return self.value_path(path);
        }
        self.comparison(path)
    }

    fn comparison(&mut self, path: AttrPath) -> Result<Node, String> {
        if !self.skip_ws() {
            return self.fail("expected an operator after the attribute");
        }
        let word = self.word();
        if word.eq_ignore_ascii_case("pr") {
            self.pos += word.len();
            return node(Filter::Present(path), 1);
        }
        let Some(op) = CompareOp::from_keyword(word) else {
            return self.fail("unknown operator");
        };
        self.pos += word.len();
        self.skip_ws();
        let value = self.comp_value()?;
        node(Filter::Compare { path, op, value }, 1)
    }

    /// `attr[valFilter]`, and in a filter the optional `.subAttr op value` after it, which
    /// means one value must satisfy both the brackets and the comparison.
    fn value_path(&mut self, attr: AttrPath) -> Result<Node, String> {
        if attr.sub_attr.is_some() {
            return self.fail("a value filter applies to an attribute, not a sub-attribute");
        }
        let (mut filter, mut depth) = self.bracket()?;
        if self.eat(b'.') {
            let sub_attr = self.attr_name()?;
            let path = AttrPath {
                schema: None,
                attr: sub_attr,
                sub_attr: None,
            };
            let compared = self.comparison(path)?;
            (filter, depth) = join(Filter::And, (filter, depth), compared)?;
        }
        node(
            Filter::ValuePath {
                attr,
                filter: Box::new(filter),
            },
            depth + 1,
        )
    }

    /// `[ valFilter ]`, with `pos` on the `[`.
    fn bracket(&mut self) -> Result<Node, String> {
        if self.in_value_filter {
            return self.fail("value filters cannot nest");
        }
        self.pos += 1;
        self.enter()?;
        self.in_value_filter = true;
        let inner = self.or_expr();
        self.in_value_filter = false;
        let inner = inner?;
        self.close(b']')?;
        Ok(inner)
    }

    /// `[URI ":"] ATTRNAME *1subAttr`. The URI holds `:` and `.` itself (`…:core:2.0:User`),
    /// so the schema is everything before the last `:`.
    fn attr_path(&mut self) -> Result<AttrPath, String> {
        let token = self.word();
        if token.is_empty() {
            return self.fail("expected an attribute name");
        }
        let (schema, name) = match token.rsplit_once(':') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, token),
        };
        let (attr, sub_attr) = match name.split_once('.') {
            Some((attr, sub_attr)) => (attr, Some(sub_attr)),
            None => (name, None),
        };
        if !is_attr_name(attr) || sub_attr.is_some_and(|s| !is_attr_name(s)) {
            return self.fail("malformed attribute name");
        }
        if self.in_value_filter && (schema.is_some() || sub_attr.is_some()) {
            return self.fail("inside `[ ]`, name a sub-attribute alone");
        }
        let schema = match schema {
            None => None,
            Some(urn) if !is_urn(urn) => return self.fail("malformed schema URN"),
            Some(urn) if urn.eq_ignore_ascii_case(CORE_USER_SCHEMA) => None,
            Some(urn) => Some(urn.to_owned()),
        };
        self.pos += token.len();
        Ok(AttrPath {
            schema,
            attr: attr.to_owned(),
            sub_attr: sub_attr.map(str::to_owned),
        })
    }

    /// The `ATTRNAME` of a `.subAttr` after `]`.
    fn attr_name(&mut self) -> Result<String, String> {
        let word = self.word();
        if !is_attr_name(word) {
            return self.fail("malformed sub-attribute name");
        }
        self.pos += word.len();
        Ok(word.to_owned())
    }

    /// A JSON string, number, `true`, `false` or `null`; or a bare token, read as a string.
    fn comp_value(&mut self) -> Result<Value, String> {
        match self.peek() {
            None | Some(b')' | b']') => self.fail("expected a comparison value"),
            Some(b'"') => self.string().map(Value::String),
            Some(_) => {
                // Microsoft Entra ID sends `externalId eq 0a21f0f2-…` and
                // `userName eq jdoe@example.com` unquoted; refusing them would break
                // provisioning, and a bare token cannot be mistaken for anything else.
                let rest = self.src.get(self.pos..).unwrap_or("");
                let len = rest
                    .bytes()
                    .take_while(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b')' | b']'))
                    .count();
                let token = rest.get(..len).unwrap_or("");
                self.pos += len;
                Ok(bare_value(token))
            }
        }
    }

    /// A JSON string with its escapes, `pos` on the opening quote.
    fn string(&mut self) -> Result<String, String> {
        let bytes = self.src.as_bytes();
        let mut end = self.pos + 1;
        loop {
            match bytes.get(end) {
                None => return self.fail("unterminated string"),
                Some(b'\\') => end += 2,
                Some(b'"') => break,
                Some(_) => end += 1,
            }
        }
        let literal = self.src.get(self.pos..=end).unwrap_or("");
        let value = serde_json::from_str(literal).or_else(|_| self.fail("malformed string"))?;
        self.pos = end + 1;
        Ok(value)
    }
}

/// A bare token's value: a keyword or a JSON number if it is exactly one, otherwise the
/// token as a string (so `0a21f0f2-…`, which starts like a number, stays a string).
fn bare_value(token: &str) -> Value {
    if token.eq_ignore_ascii_case("true") {
        Value::Bool(true)
    } else if token.eq_ignore_ascii_case("false") {
        Value::Bool(false)
    } else if token.eq_ignore_ascii_case("null") {
        Value::Null
    } else if let Ok(number) = serde_json::from_str::<serde_json::Number>(token) {
        Value::Number(number)
    } else {
        Value::String(token.to_owned())
    }
}

/// Characters of an attribute path (`ATTRNAME`, `.`, and the `:`-separated URN), and of
/// keywords.
fn is_path_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'$' | b'.' | b':')
}

/// RFC 7643 §2.1 `ATTRNAME = ALPHA *(nameChar)`, plus a leading `$` for `$ref`, which the
/// schemas themselves use (RFC 7643 §4.1.2 `groups.$ref`, §4.3 `manager.$ref`).
fn is_attr_name(name: &str) -> bool {
    let name_char = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_');
    match name.as_bytes() {
        [first, rest @ ..] if first.is_ascii_alphabetic() => rest.iter().all(name_char),
        [b'$', rest @ ..] => !rest.is_empty() && rest.iter().all(name_char),
        _ => false,
    }
}

/// A schema URN prefix: `urn:` and no empty segment.
fn is_urn(schema: &str) -> bool {
    schema
        .get(..4)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("urn:"))
        && !schema.split(':').any(str::is_empty)
}

// ---------------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------------

/// Where a path is resolved: a whole resource, or one value of a multi-valued attribute
/// (inside `attr[ ]`), whose paths name sub-attributes.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Resource(&'a Value),
    Value {
        attr: &'a AttrPath,
        value: &'a Value,
    },
}

impl<'a> Scope<'a> {
    /// The attribute `path` names here, before any sub-attribute is taken.
    fn attribute(self, path: &AttrPath) -> Option<&'a Value> {
        match self {
            Scope::Resource(resource) => {
                let container = match path.schema.as_deref() {
                    Some(urn) if !urn.eq_ignore_ascii_case(CORE_USER_SCHEMA) => {
                        member(resource, urn)?
                    }
                    _ => resource,
                };
                member(container, &path.attr)
            }
            // A multi-valued attribute of plain values (`schemas`) has no `value` member to
            // look up; `value` then means the item itself.
            Scope::Value { value, .. } => member(value, &path.attr).or_else(|| {
                (!value.is_object() && path.attr.eq_ignore_ascii_case("value")).then_some(value)
            }),
        }
    }

    /// `path` as read from the top of the resource, which is what the schema rules are
    /// stated for: `type` inside `emails[ ]` is `emails.type`.
    fn absolute<'p>(self, path: &'p AttrPath) -> Cow<'p, AttrPath> {
        match self {
            Scope::Resource(_) => Cow::Borrowed(path),
            Scope::Value { attr, .. } => Cow::Owned(AttrPath {
                schema: attr.schema.clone(),
                attr: attr.attr.clone(),
                sub_attr: Some(path.attr.clone()),
            }),
        }
    }
}

/// The object member `key`, matched case-insensitively as attribute names are
/// (RFC 7643 §2.1).
fn member<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let object = value.as_object()?;
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The values a path reaches from `found`: each item of a multi-valued attribute, and its
/// `sub_attr` when one is named. Without one, `implied_value` takes each complex value's
/// `value` sub-attribute, as RFC 7644 §3.4.2.2 does for comparisons on a multi-valued
/// complex attribute (`emails co "@example.com"`).
fn values<'a>(
    found: Option<&'a Value>,
    sub_attr: Option<&str>,
    implied_value: bool,
) -> Vec<&'a Value> {
    let mut out = Vec::new();
    let Some(found) = found else { return out };
    let items = match found {
        Value::Array(items) => items.as_slice(),
        other => std::slice::from_ref(other),
    };
    for item in items {
        let leaf = match (sub_attr, item) {
            (Some(sub_attr), item) => member(item, sub_attr),
            (None, Value::Object(_)) if implied_value => member(item, "value"),
            (None, item) => Some(item),
        };
        match leaf {
            Some(Value::Array(inner)) => out.extend(inner),
            Some(leaf) => out.push(leaf),
            None => {}
        }
    }
    out
}

/// `pr`: RFC 7644 §3.4.2.2 asks for "a non-empty value, or … a non-empty node"; null, `""`,
/// `[]` and `{}` are all absent values in SCIM.
fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(members) => !members.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// Whether string values of `path` compare case-exactly. RFC 7643 §3.1 makes `id`,
/// `externalId`, `meta.resourceType` and `meta.version` `"caseExact": true`, and the rest of
/// `meta` (instants and the resource's URI) is written by the server and compared as written;
/// every other string attribute of the User schema (RFC 7643 §4.1: `userName`, `name.*`,
/// `displayName`, `emails.value`, `emails.type`, …) and of the enterprise extension (§4.3) is
/// `"caseExact": false`.
fn case_exact(path: &AttrPath) -> bool {
    path.is("id")
        || path.is("externalId")
        || (path.schema.is_none() && path.attr.eq_ignore_ascii_case("meta"))
}

/// Whether `path` is of type `dateTime` (RFC 7643 §2.3.5), compared as instants: only
/// `meta.created` and `meta.lastModified` in the User schema (RFC 7643 §3.1).
fn is_date_time(path: &AttrPath) -> bool {
    path.is("meta.created") || path.is("meta.lastModified")
}

fn compare(scope: Scope<'_>, path: &AttrPath, op: CompareOp, expected: &Value) -> bool {
    // `ne` is read as "not (eq)": an absent attribute is not equal to anything, so it
    // matches, and a multi-valued attribute matches only when no value is equal. Reading it
    // per value instead would make `emails ne "a@b.c"` true for a user who has that address.
    if op == CompareOp::Ne {
        return !compare(scope, path, CompareOp::Eq, expected);
    }
    let found = scope.attribute(path);
    let sub_attr = path.sub_attr.as_deref();
    if expected.is_null() {
        // A null value is an unassigned one (RFC 7643 §2.5): `eq null` is "not present".
        return op == CompareOp::Eq && !values(found, sub_attr, false).into_iter().any(is_present);
    }
    let absolute = scope.absolute(path);
    let rules = Rules {
        case_exact: case_exact(&absolute),
        date_time: is_date_time(&absolute),
    };
    values(found, sub_attr, true)
        .into_iter()
        .any(|actual| rules.compare(actual, op, expected))
}

/// How the values of one attribute compare.
#[derive(Clone, Copy)]
struct Rules {
    case_exact: bool,
    date_time: bool,
}

impl Rules {
    fn compare(self, actual: &Value, op: CompareOp, expected: &Value) -> bool {
        match (actual, expected) {
            (Value::String(actual), Value::String(expected)) => {
                self.compare_strings(actual, op, expected)
            }
            // An unquoted `12345` parses as a number, but the client may well mean the
            // string: against a string attribute, compare the literal's text.
            (Value::String(actual), Value::Number(_) | Value::Bool(_)) => {
                self.compare_strings(actual, op, &expected.to_string())
            }
            (Value::Number(actual), Value::Number(expected)) => {
                compare_numbers(actual, expected).is_some_and(|order| satisfies(order, op))
            }
            // Booleans are equal or not; they have no order.
            (Value::Bool(actual), Value::Bool(expected)) => {
                op == CompareOp::Eq && actual == expected
            }
            _ => false,
        }
    }

    fn compare_strings(self, actual: &str, op: CompareOp, expected: &str) -> bool {
        let ordering_or_eq = !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
        if self.date_time && ordering_or_eq {
            match (parse_date_time(actual), parse_date_time(expected)) {
                (Some(actual), Some(expected)) => return satisfies(actual.cmp(&expected), op),
                // Ordering against something that is not an instant means nothing.
                _ if op != CompareOp::Eq => return false,
                _ => {}
            }
        }
        let (actual, expected) = if self.case_exact {
            (Cow::Borrowed(actual), Cow::Borrowed(expected))
        } else {
            (
                Cow::Owned(actual.to_lowercase()),
                Cow::Owned(expected.to_lowercase()),
            )
        };
        match op {
            CompareOp::Co => actual.contains(expected.as_ref()),
            CompareOp::Sw => actual.starts_with(expected.as_ref()),
            CompareOp::Ew => actual.ends_with(expected.as_ref()),
            _ => satisfies(actual.cmp(&expected), op),
        }
    }
}

/// Whether `actual.cmp(expected) == order` satisfies an equality or ordering operator.
fn satisfies(order: Ordering, op: CompareOp) -> bool {
    match op {
        CompareOp::Eq => order == Ordering::Equal,
        CompareOp::Ne => order != Ordering::Equal,
        CompareOp::Gt => order == Ordering::Greater,
        CompareOp::Ge => order != Ordering::Less,
        CompareOp::Lt => order == Ordering::Less,
        CompareOp::Le => order != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

/// Integers compare exactly; anything else as `f64`.
fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return Some(a.cmp(&b));
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return Some(a.cmp(&b));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// An RFC 3339 `date-time` (the form of RFC 7643 §2.3.5) as seconds and nanoseconds since
/// the Unix epoch, so that `…:11Z`, `…:11.000Z` and `…:11+00:00` are one instant. A missing
/// offset is read as UTC, the only zone this server writes.
fn parse_date_time(text: &str) -> Option<(i64, u32)> {
    let bytes = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = bytes.get(from..from + len)?;
        part.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let at = |index: usize, allowed: &[u8]| bytes.get(index).is_some_and(|b| allowed.contains(b));
    let year = digits(0, 4)?;
    let month = digits(5, 2)?;
    let day = digits(8, 2)?;
    let hour = digits(11, 2)?;
    let minute = digits(14, 2)?;
    // 60 admits a leap second, which RFC 3339 allows.
    let second = digits(17, 2)?;
    let separators = at(4, b"-") && at(7, b"-") && at(10, b"Tt ") && at(13, b":") && at(16, b":");
    if !separators
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut pos = 19;
    let mut nanos = 0u32;
    if at(pos, b".") {
        pos += 1;
        let start = pos;
        while let Some(&digit) = bytes.get(pos).filter(|b| b.is_ascii_digit()) {
            // Digits past nanoseconds cannot change an order this server can observe.
            if pos - start < 9 {
                nanos = nanos * 10 + u32::from(digit - b'0');
            }
            pos += 1;
        }
        if pos == start {
            return None;
        }
        for _ in (pos - start)..9 {
            nanos *= 10;
        }
    }
    let offset = match bytes.get(pos) {
        None => 0,
        Some(b'Z' | b'z') if pos + 1 == bytes.len() => 0,
        Some(&sign @ (b'+' | b'-')) if pos + 6 == bytes.len() && at(pos + 3, b":") => {
            let (hours, minutes) = (digits(pos + 1, 2)?, digits(pos + 4, 2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if sign == b'-' { -offset } else { offset }
        }
        Some(_) => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some((seconds, nanos))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ScimType;
    use serde_json::json;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn path(attr: &str) -> AttrPath {
        let (attr, sub_attr) = match attr.split_once('.') {
            Some((attr, sub)) => (attr, Some(sub.to_owned())),
            None => (attr, None),
        };
        AttrPath {
            schema: None,
            attr: attr.to_owned(),
            sub_attr,
        }
    }

    fn cmp(attr: &str, op: CompareOp, value: Value) -> Filter {
        Filter::Compare {
            path: path(attr),
            op,
            value,
        }
    }

    fn and(left: Filter, right: Filter) -> Filter {
        Filter::And(Box::new(left), Box::new(right))
    }

    fn or(left: Filter, right: Filter) -> Filter {
        Filter::Or(Box::new(left), Box::new(right))
    }

    fn ok(input: &str) -> Filter {
        match parse(input) {
            Ok(filter) => filter,
            Err(error) => panic!("{input:?} should parse: {error}"),
        }
    }

    fn rejected(input: &str) -> ScimError {
        match parse(input) {
            Ok(filter) => panic!("{input:?} should be rejected, parsed as {filter:?}"),
            Err(error) => error,
        }
    }

    fn matches(filter: &str, resource: &Value) -> bool {
        ok(filter).matches(resource)
    }

    fn user() -> Value {
        json!({
            "schemas": [CORE_USER_SCHEMA, ENTERPRISE],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "AbC-123",
            "userName": "BJensen@example.com",
            "name": { "givenName": "Barbara", "familyName": "Jensen" },
            "displayName": "Babs Jensen",
            "active": true,
            "emails": [
                { "value": "bjensen@example.com", "type": "work", "primary": true },
                { "value": "babs@jensen.org", "type": "home" }
            ],
            "addresses": [
                { "type": "work", "postalCode": "91608" },
                { "type": "home", "postalCode": "" }
            ],
            "meta": {
                "resourceType": "User",
                "created": "2026-12-03T18:39:11Z",
                "lastModified": "2026-12-03T18:39:11.123Z"
            },
            ENTERPRISE: {
                "employeeNumber": "701984",
                "manager": { "value": "26118915-6090-4610-87e4-49d8ca9f808d" }
            }
        })
    }

    // --- grammar -----------------------------------------------------------------------------

    #[test]
    fn simple_equality_parses() {
        assert_eq!(
            ok(r#"userName eq "bjensen""#),
            cmp("userName", CompareOp::Eq, json!("bjensen"))
        );
    }

    #[test]
    fn every_compare_operator_parses() {
        for (word, op) in [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("lt", CompareOp::Lt),
            ("ge", CompareOp::Ge),
            ("le", CompareOp::Le),
        ] {
            assert_eq!(
                ok(&format!(r#"title {word} "x""#)),
                cmp("title", op, json!("x"))
            );
        }
    }

    #[test]
    fn operators_keywords_and_names_are_case_insensitive() {
        let filter = ok(r#"UserName EQ "x" AND title Pr Or NOT (active eq TRUE)"#);
        let expected = or(
            and(
                cmp("UserName", CompareOp::Eq, json!("x")),
                Filter::Present(path("title")),
            ),
            Filter::Not(Box::new(cmp("active", CompareOp::Eq, json!(true)))),
        );
        assert_eq!(filter, expected);
        // Names keep the client's spelling; `is` compares them as the RFC does.
        let Filter::Compare { path: name, .. } = ok(r#"USERNAME eq "x""#) else {
            panic!()
        };
        assert!(name.is("userName"));
    }

    #[test]
    fn present_takes_no_value() {
        assert_eq!(ok("title pr"), Filter::Present(path("title")));
        rejected(r#"title pr "x""#);
        rejected("title eq");
    }

    #[test]
    fn unknown_operator_is_invalid_filter() {
        let error = rejected(r#"userName xx "a""#);
        assert_eq!(error.status, 400);
        assert_eq!(error.scim_type, Some(ScimType::InvalidFilter));
        rejected(r#"userName equals "a""#);
        rejected(r#"userName "a""#);
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let a = || Filter::Present(path("a"));
        let b = || Filter::Present(path("b"));
        let c = || Filter::Present(path("c"));
        assert_eq!(ok("a pr or b pr and c pr"), or(a(), and(b(), c())));
        assert_eq!(ok("a pr and b pr or c pr"), or(and(a(), b()), c()));
    }

    #[test]
    fn logical_operators_associate_to_the_left() {
        let p = |name: &str| Filter::Present(path(name));
        assert_eq!(
            ok("a pr and b pr and c pr"),
            and(and(p("a"), p("b")), p("c"))
        );
        assert_eq!(ok("a pr or b pr or c pr"), or(or(p("a"), p("b")), p("c")));
    }

    #[test]
    fn parentheses_group_and_not_binds_tightest() {
        let p = |name: &str| Filter::Present(path(name));
        assert_eq!(
            ok("(a pr or b pr) and c pr"),
            and(or(p("a"), p("b")), p("c"))
        );
        assert_eq!(
            ok("not (a pr) and b pr"),
            and(Filter::Not(Box::new(p("a"))), p("b"))
        );
        assert_eq!(
            ok("not(a pr or b pr)"),
            Filter::Not(Box::new(or(p("a"), p("b"))))
        );
    }

    #[test]
    fn not_requires_parentheses() {
        rejected("not a pr");
        rejected("not");
        // A name that merely starts with a keyword is a name.
        assert_eq!(
            ok("notes pr and order pr"),
            and(
                Filter::Present(path("notes")),
                Filter::Present(path("order"))
            )
        );
    }

    #[test]
    fn core_user_urn_is_normalised_to_no_schema() {
        assert_eq!(
            ok(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#),
            cmp("userName", CompareOp::Eq, json!("x"))
        );
        assert_eq!(
            ok(r#"URN:IETF:params:scim:schemas:CORE:2.0:user:userName eq "x""#),
            cmp("userName", CompareOp::Eq, json!("x"))
        );
    }

    #[test]
    fn urn_qualified_sub_attribute_splits_at_the_last_colon() {
        assert_eq!(
            ok(r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName sw "B""#),
            cmp("name.givenName", CompareOp::Sw, json!("B"))
        );
    }

    #[test]
    fn extension_urn_is_kept_as_given() {
        let Filter::Compare { path, .. } =
            ok(&format!("{ENTERPRISE}:employeeNumber eq \"701984\""))
        else {
            panic!()
        };
        assert_eq!(path.schema.as_deref(), Some(ENTERPRISE));
        assert_eq!(path.attr, "employeeNumber");
        assert_eq!(path.sub_attr, None);
        assert!(!path.is("employeeNumber"));
        assert_eq!(path.to_string(), format!("{ENTERPRISE}:employeeNumber"));
    }

    #[test]
    fn value_path_filter_parses_with_relative_paths() {
        assert_eq!(
            ok(r#"emails[type eq "work" and value co "@example.com"]"#),
            Filter::ValuePath {
                attr: path("emails"),
                filter: Box::new(and(
                    cmp("type", CompareOp::Eq, json!("work")),
                    cmp("value", CompareOp::Co, json!("@example.com")),
                )),
            }
        );
        assert_eq!(
            ok("addresses[type eq \"work\" and postalCode pr]"),
            Filter::ValuePath {
                attr: path("addresses"),
                filter: Box::new(and(
                    cmp("type", CompareOp::Eq, json!("work")),
                    Filter::Present(path("postalCode")),
                )),
            }
        );
    }

    #[test]
    fn value_path_with_sub_attribute_comparison_joins_both_conditions() {
        assert_eq!(
            ok(r#"emails[type eq "work"].value eq "a@b.c""#),
            Filter::ValuePath {
                attr: path("emails"),
                filter: Box::new(and(
                    cmp("type", CompareOp::Eq, json!("work")),
                    cmp("value", CompareOp::Eq, json!("a@b.c")),
                )),
            }
        );
        rejected(r#"emails[type eq "work"].value"#);
        rejected(r#"emails[type eq "work"] pr"#);
    }

    #[test]
    fn nested_brackets_are_invalid() {
        rejected(r#"emails[type[value eq "x"]]"#);
        rejected(r#"emails[type eq "work" and x[y pr]]"#);
        rejected(r#"emails[emails.type eq "work"]"#);
        rejected(r#"emails[urn:ietf:params:scim:schemas:core:2.0:User:type eq "work"]"#);
        rejected(r#"name.givenName[value eq "x"]"#);
    }

    #[test]
    fn string_escapes_are_decoded() {
        assert_eq!(
            ok(r#"displayName eq "say \"hi\" \\ caf\u00e9""#),
            cmp("displayName", CompareOp::Eq, json!("say \"hi\" \\ café"))
        );
        assert_eq!(
            ok(r#"displayName eq "a)b]""#),
            cmp("displayName", CompareOp::Eq, json!("a)b]"))
        );
        rejected(r#"displayName eq "bad \x escape""#);
    }

    #[test]
    fn numbers_booleans_and_null_are_literals() {
        assert_eq!(ok("x eq 42"), cmp("x", CompareOp::Eq, json!(42)));
        assert_eq!(ok("x gt -1.5e3"), cmp("x", CompareOp::Gt, json!(-1500.0)));
        assert_eq!(ok("x eq true"), cmp("x", CompareOp::Eq, json!(true)));
        assert_eq!(ok("x eq False"), cmp("x", CompareOp::Eq, json!(false)));
        assert_eq!(ok("x eq NULL"), cmp("x", CompareOp::Eq, Value::Null));
        assert_eq!(ok(r#"x eq "true""#), cmp("x", CompareOp::Eq, json!("true")));
    }

    #[test]
    fn unquoted_value_is_a_string() {
        assert_eq!(
            ok("userName eq jdoe@example.com"),
            cmp("userName", CompareOp::Eq, json!("jdoe@example.com"))
        );
        assert_eq!(
            ok("title eq Ingénieur"),
            cmp("title", CompareOp::Eq, json!("Ingénieur"))
        );
    }

    #[test]
    fn unquoted_number_followed_by_letters_is_a_string() {
        assert_eq!(
            ok("externalId eq 0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"),
            cmp(
                "externalId",
                CompareOp::Eq,
                json!("0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef")
            )
        );
        assert_eq!(
            ok("externalId eq 007"),
            cmp("externalId", CompareOp::Eq, json!("007"))
        );
        assert_eq!(
            ok("externalId eq truex"),
            cmp("externalId", CompareOp::Eq, json!("truex"))
        );
    }

    #[test]
    fn bare_token_stops_at_whitespace_and_closing_paren_or_bracket() {
        assert_eq!(
            ok("(userName eq jdoe)"),
            cmp("userName", CompareOp::Eq, json!("jdoe"))
        );
        assert_eq!(
            ok("emails[value eq x@y.z]"),
            Filter::ValuePath {
                attr: path("emails"),
                filter: Box::new(cmp("value", CompareOp::Eq, json!("x@y.z"))),
            }
        );
        assert_eq!(
            ok("userName eq jdoe and active eq true"),
            and(
                cmp("userName", CompareOp::Eq, json!("jdoe")),
                cmp("active", CompareOp::Eq, json!(true))
            )
        );
    }

    #[test]
    fn whitespace_between_tokens_is_flexible() {
        let expected = and(
            cmp("userName", CompareOp::Eq, json!("x")),
            Filter::Present(path("title")),
        );
        assert_eq!(
            ok("  userName \t eq   \"x\"\tand  ( title  pr )  "),
            expected
        );
        assert_eq!(ok(r#"userName eq "x" and(title pr)"#), expected);
    }

    #[test]
    fn malformed_filters_are_invalid_filter() {
        for input in [
            "",
            "   ",
            "\"",
            "\"userName\" eq \"x\"",
            r#"userName eq "abc"#,
            r#"userName eq "abc\"#,
            "userName",
            "userName eq",
            "userName eq )",
            "(userName pr",
            "userName pr)",
            "()",
            "userName pr and",
            "and userName pr",
            "userName pr or or title pr",
            r#"userName eq "x" junk"#,
            r#"userName eq "x" "y""#,
            "userName pr title pr",
            "[",
            "]",
            ".",
            ":",
            "urn: pr",
            "userName. pr",
            "name.givenName.x pr",
            "1abc pr",
            "$ pr",
            "foo:userName pr",
            "urn::x pr",
            "emails[type eq \"work\"",
            "emails[]",
            "emails[type eq \"work\"].",
            "emails[type eq \"work\"].value.x eq 1",
            "userName\u{e9}q \"x\"",
            "\u{e9}",
            "userName eq \"\u{1}\"",
        ] {
            let error = rejected(input);
            assert_eq!(error.scim_type, Some(ScimType::InvalidFilter), "{input:?}");
            assert_eq!(error.status, 400);
        }
    }

    #[test]
    fn parser_never_panics_on_any_cut_of_the_input() {
        // Every cut of inputs with multi-byte text, escapes, URNs and brackets: the parser
        // must answer Ok or Err for each, never panic.
        let inputs = [
            r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName eq "Zoë \u00e9 \"q\"""#,
            r#"emails[type eq "wörk" and not (value co "@ex")].value ew "中文" or x gt 1.5e-3"#,
            "userName eq ünïcödé and (title pr or nickName sw 日本)",
        ];
        for input in inputs {
            for (cut, _) in input.char_indices() {
                let _ = parse(&input[..cut]);
                let _ = parse(&input[cut..]);
                let _ = parse_path(&input[..cut]);
                let _ = parse_path(&input[cut..]);
            }
        }
    }

    #[test]
    fn overlong_input_is_rejected() {
        let at_limit = format!("userName eq \"{}\"", "a".repeat(MAX_LENGTH - 14));
        assert_eq!(at_limit.len(), MAX_LENGTH);
        ok(&at_limit);
        let over = format!("userName eq \"{}\"", "a".repeat(MAX_LENGTH - 13));
        assert_eq!(rejected(&over).scim_type, Some(ScimType::InvalidFilter));
        let megabyte = format!("userName eq \"{}\"", "a".repeat(1 << 20));
        rejected(&megabyte);
        assert_eq!(
            parse_path(&megabyte).unwrap_err().scim_type,
            Some(ScimType::InvalidPath)
        );
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        rejected(&"(".repeat(100_000));
        rejected(&"not(".repeat(100_000));
        rejected(&"[".repeat(100_000));
        // Within the length limit, the depth limit is what refuses them.
        rejected(&format!("{}a pr{}", "(".repeat(2000), ")".repeat(2000)));
        rejected(&format!("{}a pr{}", "not(".repeat(500), ")".repeat(500)));
        let error = rejected(&"(".repeat(MAX_LENGTH));
        assert!(error.detail.contains("deeper"), "{}", error.detail);
    }

    #[test]
    fn nesting_up_to_the_limit_is_accepted() {
        let grouped = |n: usize| format!("{}a pr{}", "(".repeat(n), ")".repeat(n));
        ok(&grouped(MAX_DEPTH));
        rejected(&grouped(MAX_DEPTH + 1));
        // `not` adds a level to the tree on top of the leaf.
        let negated = |n: usize| format!("{}a pr{}", "not(".repeat(n), ")".repeat(n));
        ok(&negated(MAX_DEPTH - 1));
        rejected(&negated(MAX_DEPTH));
    }

    #[test]
    fn long_and_chains_count_towards_the_depth_limit() {
        let chain = |n: usize| vec!["a pr"; n].join(" and ");
        ok(&chain(MAX_DEPTH));
        rejected(&chain(MAX_DEPTH + 1));
        let chain = |n: usize| vec!["a pr"; n].join(" or ");
        rejected(&chain(MAX_DEPTH + 1));
    }

    // --- PATCH paths -------------------------------------------------------------------------

    fn patch_path(input: &str) -> PatchPath {
        match parse_path(input) {
            Ok(path) => path,
            Err(error) => panic!("{input:?} should parse: {error}"),
        }
    }

    #[test]
    fn path_names_an_attribute_or_sub_attribute() {
        assert_eq!(
            patch_path("userName"),
            PatchPath {
                attr: path("userName"),
                value_filter: None,
                sub_attr: None
            }
        );
        assert_eq!(
            patch_path("name.givenName"),
            PatchPath {
                attr: path("name.givenName"),
                value_filter: None,
                sub_attr: None
            }
        );
        assert_eq!(
            patch_path("urn:ietf:params:scim:schemas:core:2.0:User:name.familyName"),
            PatchPath {
                attr: path("name.familyName"),
                value_filter: None,
                sub_attr: None
            }
        );
    }

    #[test]
    fn path_with_value_filter_and_sub_attribute() {
        assert_eq!(
            patch_path(r#"emails[type eq "work"].value"#),
            PatchPath {
                attr: path("emails"),
                value_filter: Some(cmp("type", CompareOp::Eq, json!("work"))),
                sub_attr: Some("value".into()),
            }
        );
    }

    #[test]
    fn path_with_value_filter_alone() {
        assert_eq!(
            patch_path(r#"emails[value eq "x@y.z"]"#),
            PatchPath {
                attr: path("emails"),
                value_filter: Some(cmp("value", CompareOp::Eq, json!("x@y.z"))),
                sub_attr: None,
            }
        );
        assert_eq!(
            patch_path(r#"members[value eq "2819c223"]"#).value_filter,
            Some(cmp("value", CompareOp::Eq, json!("2819c223")))
        );
    }

    #[test]
    fn path_into_the_enterprise_extension() {
        let parsed = patch_path(&format!("{ENTERPRISE}:manager.value"));
        assert_eq!(parsed.attr.schema.as_deref(), Some(ENTERPRISE));
        assert_eq!(parsed.attr.attr, "manager");
        assert_eq!(parsed.attr.sub_attr.as_deref(), Some("value"));
        assert_eq!(parsed.value_filter, None);
    }

    #[test]
    fn malformed_path_is_invalid_path() {
        for input in [
            "",
            "  ",
            "emails[",
            r#"emails[type eq "work""#,
            r#"emails[type eq "work"]x"#,
            r#"emails[type eq "work"]."#,
            r#"emails[type eq "work"].value.display"#,
            r#"emails[type xx "work"]"#,
            r#"emails[type[value eq "x"]]"#,
            r#"name.givenName[value eq "x"]"#,
            "name.givenName.x",
            r#"userName eq "x""#,
            "userName)",
            "\"userName\"",
            "\u{e9}",
        ] {
            let error = parse_path(input).expect_err(input);
            assert_eq!(error.scim_type, Some(ScimType::InvalidPath), "{input:?}");
            assert_eq!(error.status, 400);
        }
        assert!(parse_path(&"[".repeat(100_000)).is_err());
        let deep = format!(
            "emails[{}type pr{}]",
            "(".repeat(MAX_DEPTH),
            ")".repeat(MAX_DEPTH)
        );
        assert!(parse_path(&deep).is_err());
    }

    // --- matching ----------------------------------------------------------------------------

    #[test]
    fn attribute_names_and_case_inexact_values_match_in_any_case() {
        let user = user();
        assert!(matches(r#"USERNAME eq "bjensen@EXAMPLE.com""#, &user));
        assert!(matches(r#"name.GIVENNAME eq "barbara""#, &user));
        assert!(matches(r#"emails.type eq "WORK""#, &user));
        assert!(!matches(r#"userName eq "bjensen""#, &user));
        // Keys in the resource are found whatever their case, too.
        assert!(matches(r#"userName eq "x""#, &json!({ "USERNAME": "X" })));
    }

    #[test]
    fn case_exact_attributes_compare_exactly() {
        let user = user();
        assert!(matches(r#"externalId eq "AbC-123""#, &user));
        assert!(!matches(r#"externalId eq "abc-123""#, &user));
        assert!(!matches(
            r#"id eq "2819C223-7F76-453A-919D-413861904646""#,
            &user
        ));
        assert!(matches(r#"meta.resourceType eq "User""#, &user));
        assert!(!matches(r#"meta.resourceType eq "user""#, &user));
        assert!(case_exact(&path("id")));
        assert!(case_exact(&path("meta.location")));
        assert!(!case_exact(&path("userName")));
        assert!(!case_exact(&path("emails.value")));
        let extension_id = AttrPath {
            schema: Some(ENTERPRISE.into()),
            attr: "id".into(),
            sub_attr: None,
        };
        assert!(!case_exact(&extension_id));
    }

    #[test]
    fn comparison_on_multi_valued_attribute_matches_any_element() {
        let user = user();
        assert!(matches(r#"emails.value eq "babs@jensen.org""#, &user));
        assert!(matches(r#"emails.type eq "home""#, &user));
        assert!(!matches(r#"emails.type eq "other""#, &user));
        assert!(matches(&format!("schemas eq \"{ENTERPRISE}\""), &user));
    }

    #[test]
    fn multi_valued_complex_without_sub_attribute_implies_value() {
        let user = user();
        assert!(matches(r#"emails eq "BABS@jensen.org""#, &user));
        assert!(matches(r#"emails co "@example.com""#, &user));
        assert!(!matches(r#"emails eq "home""#, &user));
    }

    #[test]
    fn value_path_requires_one_element_to_satisfy_the_whole_filter() {
        let user = user();
        assert!(matches(
            r#"emails[type eq "work" and value co "@example.com"]"#,
            &user
        ));
        // The work address is not at jensen.org and the jensen.org address is not work.
        assert!(!matches(
            r#"emails[type eq "work" and value co "@jensen.org"]"#,
            &user
        ));
        // Without brackets the two conditions may be met by different values.
        assert!(matches(
            r#"emails.type eq "work" and emails.value co "@jensen.org""#,
            &user
        ));
        assert!(matches(
            r#"addresses[type eq "work" and postalCode pr]"#,
            &user
        ));
        assert!(!matches(
            r#"addresses[type eq "home" and postalCode pr]"#,
            &user
        ));
        assert!(!matches(r#"phoneNumbers[type eq "work"]"#, &user));
    }

    #[test]
    fn value_path_with_sub_attribute_matches_any_element() {
        let user = user();
        assert!(matches(
            r#"emails[type eq "work"].value eq "bjensen@example.com""#,
            &user
        ));
        assert!(matches(
            r#"emails[type eq "home"].value ew "JENSEN.ORG""#,
            &user
        ));
        assert!(!matches(
            r#"emails[type eq "home"].value eq "bjensen@example.com""#,
            &user
        ));
        assert!(matches(
            r#"emails[not (type eq "home")].primary eq true"#,
            &user
        ));
    }

    #[test]
    fn present_means_a_non_empty_value() {
        let user = user();
        assert!(matches("userName pr", &user));
        assert!(matches("name pr", &user));
        assert!(matches("emails pr", &user));
        assert!(matches("emails.primary pr", &user));
        assert!(!matches("nickName pr", &user));
        let empty = json!({
            "nickName": null, "title": "", "emails": [], "name": {},
            "addresses": [{ "postalCode": "" }]
        });
        for attr in [
            "nickName",
            "title",
            "emails",
            "name",
            "addresses.postalCode",
            "missing",
        ] {
            assert!(!matches(&format!("{attr} pr"), &empty), "{attr}");
        }
    }

    #[test]
    fn eq_null_means_not_present() {
        let user = user();
        assert!(matches("nickName eq null", &user));
        assert!(matches("title eq null", &json!({ "title": "" })));
        assert!(!matches("userName eq null", &user));
        assert!(matches("userName ne null", &user));
        assert!(!matches("userName gt null", &user));
    }

    #[test]
    fn ne_matches_an_absent_attribute() {
        let user = user();
        assert!(matches(r#"nickName ne "x""#, &user));
        assert!(matches(r#"userName ne "someone""#, &user));
        assert!(!matches(r#"userName ne "BJENSEN@example.com""#, &user));
    }

    #[test]
    fn ne_on_multi_valued_attribute_means_no_element_is_equal() {
        let user = user();
        assert!(!matches(r#"emails.type ne "work""#, &user));
        assert!(matches(r#"emails.type ne "other""#, &user));
        // Inside brackets it applies to each value in turn.
        assert!(matches(r#"emails[type ne "work"]"#, &user));
    }

    #[test]
    fn substring_operators_apply_to_strings_only() {
        let user = user();
        assert!(matches(r#"userName sw "bjensen@""#, &user));
        assert!(matches(r#"userName ew "@EXAMPLE.COM""#, &user));
        assert!(matches(r#"displayName co "s J""#, &user));
        assert!(!matches(r#"displayName co "xyz""#, &user));
        assert!(!matches("active co true", &json!({ "active": true })));
        assert!(!matches("age sw 4", &json!({ "age": 42 })));
        assert!(!matches(r#"name co "Barb""#, &user));
    }

    #[test]
    fn ordering_compares_strings_and_numbers() {
        let user = user();
        assert!(matches(r#"userName gt "a""#, &user));
        // Case-insensitive: "BJensen…" sorts as "bjensen…", after "B" and before "c".
        assert!(matches(r#"userName lt "C""#, &user));
        assert!(matches(r#"userName ge "bjensen@example.com""#, &user));
        assert!(matches(r#"userName le "bjensen@example.com""#, &user));
        let counted = json!({ "count": 10, "ratio": 0.5, "big": 18_446_744_073_709_551_615u64 });
        assert!(matches("count gt 9", &counted));
        assert!(!matches("count lt 9.5", &counted));
        assert!(matches("count ge 10", &counted));
        assert!(matches("ratio le 0.5", &counted));
        assert!(matches("big gt 18446744073709551614", &counted));
        assert!(!matches(r#"count gt "9""#, &counted));
    }

    #[test]
    fn date_times_compare_as_instants() {
        let user = user();
        assert!(matches(
            r#"meta.created eq "2026-12-03T18:39:11.000Z""#,
            &user
        ));
        assert!(matches(
            r#"meta.created eq "2026-12-03T19:39:11+01:00""#,
            &user
        ));
        assert!(matches(
            r#"meta.lastModified gt "2026-12-03T18:39:11Z""#,
            &user
        ));
        // Raw strings would sort ".123Z" before "Z" and get this wrong.
        assert!(matches(
            r#"meta.lastModified gt "2026-12-03T18:39:11.1Z""#,
            &user
        ));
        assert!(!matches(
            r#"meta.created gt "2026-12-03T18:39:11.5Z""#,
            &user
        ));
        assert!(matches(
            r#"meta.created lt "2026-12-03T14:00:00-05:00""#,
            &user
        ));
        assert!(matches(r#"meta.created ge "2025-02-28T23:59:59Z""#, &user));
        assert!(!matches(r#"meta.created gt "yesterday""#, &user));
        assert!(matches(r#"meta.created sw "2026-12""#, &user));
    }

    #[test]
    fn rfc3339_parsing_validates_and_normalises() {
        let epoch = |s: &str| parse_date_time(s).map(|(seconds, _)| seconds);
        assert_eq!(epoch("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(epoch("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(epoch("1969-12-31T23:00:00-01:00"), Some(0));
        assert_eq!(
            parse_date_time("2026-12-03T18:39:11.5Z").map(|(_, n)| n),
            Some(500_000_000)
        );
        assert_eq!(
            parse_date_time("2026-12-03t18:39:11.1234567891z").map(|(_, n)| n),
            Some(123_456_789)
        );
        assert!(parse_date_time("2024-02-29T00:00:00Z").is_some());
        for bad in [
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-03T24:00:00Z",
            "2026-12-03T18:39:11.Z",
            "2026-12-03T18:39:11+0100",
            "2026-12-03T18:39:11Zjunk",
            "2026-12-03",
            "2026-12-03T18:39",
            "२०२६-12-03T18:39:11Z",
            "",
        ] {
            assert_eq!(parse_date_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn booleans_and_type_mismatches_do_not_match() {
        let user = user();
        assert!(matches("active eq true", &user));
        assert!(!matches("active eq false", &user));
        assert!(!matches("active gt false", &user));
        assert!(!matches("active eq 1", &user));
        assert!(!matches(r#"active eq "true""#, &user));
        assert!(!matches(r#"name eq "Barbara""#, &user));
        assert!(!matches(r#"emails.primary eq "x""#, &user));
    }

    #[test]
    fn unquoted_number_matches_a_string_attribute_by_its_text() {
        let user = user();
        assert!(matches(
            &format!("{ENTERPRISE}:employeeNumber eq 701984"),
            &user
        ));
        assert!(matches(
            &format!("{ENTERPRISE}:employeeNumber sw 70"),
            &user
        ));
        assert!(matches(
            "externalId eq 0a21f0f2-8d2a",
            &json!({ "externalId": "0a21f0f2-8d2a" })
        ));
    }

    #[test]
    fn extension_attributes_are_found_under_their_urn() {
        let user = user();
        assert!(matches(
            &format!("{ENTERPRISE}:employeeNumber eq \"701984\""),
            &user
        ));
        assert!(matches(
            &format!(
                "{}:manager.value eq \"26118915-6090-4610-87e4-49d8ca9f808d\"",
                ENTERPRISE.to_uppercase()
            ),
            &user
        ));
        // Implied `value` of a complex attribute.
        assert!(matches(
            &format!("{ENTERPRISE}:manager sw \"26118915\""),
            &user
        ));
        // Not found at the top level without the URN.
        assert!(!matches(r#"employeeNumber eq "701984""#, &user));
    }

    #[test]
    fn logical_operators_combine_matches() {
        let user = user();
        assert!(matches(
            r#"userName sw "b" and (active eq false or title pr or name.familyName eq "jensen")"#,
            &user
        ));
        assert!(!matches(
            r#"userName sw "b" and not (name.familyName eq "jensen")"#,
            &user
        ));
        assert!(matches(
            r#"not (userName eq "x") and not (not (active eq true))"#,
            &user
        ));
    }

    #[test]
    fn matches_value_selects_elements_for_patch() {
        let parsed = patch_path(r#"emails[type eq "WORK" and primary eq true]"#);
        let Some(filter) = parsed.value_filter else {
            panic!()
        };
        let emails = user()["emails"].clone();
        let Value::Array(items) = emails else {
            panic!()
        };
        let selected: Vec<bool> = items
            .iter()
            .map(|item| filter.matches_value(&parsed.attr, item))
            .collect();
        assert_eq!(selected, [true, false]);
        // Plain multi-valued values are addressed as `value`.
        let schemas = patch_path(&format!("schemas[value eq \"{ENTERPRISE}\"]"));
        let Some(filter) = schemas.value_filter else {
            panic!()
        };
        assert!(filter.matches_value(&schemas.attr, &json!(ENTERPRISE)));
    }

    #[test]
    fn hand_built_deep_filter_is_refused_by_matches_not_overflowed() {
        let mut filter = Filter::Present(path("userName"));
        for _ in 0..100_000 {
            filter = Filter::Not(Box::new(filter));
        }
        assert!(!filter.matches(&user()));
        assert!(!filter.matches_value(&path("emails"), &json!({})));
        // Dropping a Box chain this deep recurses once per level; leak it instead.
        std::mem::forget(filter);
    }

    #[test]
    fn matching_odd_resources_never_panics() {
        let filters = [
            r#"emails[type eq "work"].value eq "x""#,
            "meta.created gt \"2026-01-01T00:00:00Z\"",
            r#"urn:x:y:z:a.b co "c""#,
            "a.b pr",
            "a eq null",
        ];
        let resources = [
            json!(null),
            json!("string"),
            json!([1, 2, 3]),
            json!({ "emails": "not-an-array", "meta": [], "a": [[{ "b": [] }]] }),
            json!({ "emails": [null, 1, "x", [], { "type": 1 }], "meta": { "created": 5 } }),
            json!({ "urn:x:y:z": { "a": [{ "b": "abc" }] } }),
        ];
        for filter in filters {
            let parsed = ok(filter);
            for resource in &resources {
                let _ = parsed.matches(resource);
            }
        }
        assert!(ok(r#"urn:x:y:z:a.b co "c""#).matches(&resources[5]));
    }
}
