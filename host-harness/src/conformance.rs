//! The conformance runner: replays the suites in `tests/` (data, one file per family of
//! behaviour) against the component and checks every answer.
//!
//! A suite is a JSON file:
//!
//! ```json
//! {
//!   "suite": "RFC 7644 core protocol",
//!   "cases": [{
//!     "name": "POST /Users creates a user",
//!     "source": "RFC 7644 §3.3",
//!     "steps": [{
//!       "request": {"method": "POST", "path": "/Users", "body": {"userName": "a@example.com"}},
//!       "expect": {"status": 201, "headers": {"ETag": "W/\"1\""}, "body": {"userName": "a@example.com"}},
//!       "capture": {"id": "/id"}
//!     }]
//!   }]
//! }
//! ```
//!
//! - Requests carry `Authorization: Bearer ${token}` unless they set `"auth": false` or their
//!   own `Authorization` header. `body` is JSON; `raw_body` is sent as the string's bytes, and
//!   `body_base64` as decoded bytes (for invalid UTF-8).
//! - `${name}` in a path, query, header or string is replaced by a value captured earlier in the
//!   same case (a JSON pointer into a response body, or `header:Name`), or by `${token}` and
//!   `${base}`.
//! - `expect.body` matches as a subset: every key it names must match, arrays match if every
//!   expected element matches some actual element. `"$any"` matches any present value,
//!   `"$absent"` requires the key to be missing, `"$len:N"` an array of N elements.
//!   `expect.headers` values match exactly, or `"$any"` / `"$absent"`.
//! - A step may be `{"host": {...}}` instead of a request, to change the host between requests:
//!   `{"disable": true}`, `{"enable": true}`, `{"rotate_token": true}` (the old token stops
//!   working, `${token}` becomes the new one), `{"expire_token": true}`,
//!   `{"delete_action": "suspend"}`, `{"make_admin": "${id}"}`, `{"revoke_admin": "${id}"}`,
//!   `{"protect_admins": false}`.
//!
//! Every suite starts with a fresh in-memory store and settings.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use scim_plugin::{Request, Response};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::component::{PluginHost, Timing};
use crate::settings::{MemorySettings, SettingsSource, Token};
use crate::store::MemoryStore;

/// The token the runner's settings accept at the start of each suite.
pub const SUITE_TOKEN: &str = "conformance-token-7f3a9c";
/// The SCIM base URL the runner's settings advertise.
pub const SUITE_BASE_URL: &str = "https://scim.example.test/scim/v2";

/// One file of cases.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub suite: String,
    #[serde(default)]
    pub description: String,
    pub cases: Vec<Case>,
}

/// One scenario: a name, where its expectation comes from, and its steps.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub source: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub request: Option<StepRequest>,
    #[serde(default)]
    pub expect: Option<Expect>,
    #[serde(default)]
    pub capture: Map<String, Value>,
    #[serde(default)]
    pub host: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub headers: Map<String, Value>,
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub raw_body: Option<String>,
    #[serde(default)]
    pub body_base64: Option<String>,
    #[serde(default = "yes")]
    pub auth: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub status: u16,
    #[serde(default)]
    pub headers: Map<String, Value>,
    #[serde(default)]
    pub body: Option<Value>,
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub suite: String,
    pub name: String,
    pub source: String,
    /// None when the case passed; else what differed.
    pub failure: Option<String>,
}

/// Reads every `*.json` suite in a folder, in name order.
pub fn load_suites(dir: &Path) -> Result<Vec<(PathBuf, Suite)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the suites folder {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    let mut suites = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let suite: Suite = serde_json::from_str(&text)
            .with_context(|| format!("parsing the suite {}", path.display()))?;
        suites.push((path, suite));
    }
    Ok(suites)
}

/// The requests a run sent and the time they took in the component, for the `cost:` line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    pub requests: u32,
    pub time: Timing,
}

impl Cost {
    /// `cost: N requests, mean … µs per request …`, worded as the other hosts' runners word it.
    pub fn line(&self) -> String {
        let mean = |total: Duration| total.as_secs_f64() * 1e6 / f64::from(self.requests.max(1));
        let (instantiation, call) = (mean(self.time.instantiation), mean(self.time.call));
        format!(
            "cost: {} requests, mean {:.1} µs per request with a fresh instance each ({instantiation:.1} µs \
             instantiation + {call:.1} µs handle-scim-request)",
            self.requests,
            instantiation + call,
        )
    }
}

/// Runs one suite against the component with a fresh in-memory store and settings, adding its
/// requests to `cost`.
pub fn run_suite(host: &PluginHost, suite: &Suite, cost: &mut Cost) -> Vec<CaseResult> {
    let store = Arc::new(MemoryStore::new());
    let settings = Arc::new(MemorySettings::with_token(SUITE_TOKEN, SUITE_BASE_URL));
    suite
        .cases
        .iter()
        .map(|case| CaseResult {
            suite: suite.suite.clone(),
            name: case.name.clone(),
            source: case.source.clone(),
            failure: run_case(host, &store, &settings, case, cost)
                .err()
                .map(|e| format!("{e:#}")),
        })
        .collect()
}

/// The values a case has captured so far (and `token`, `base`).
struct Captures {
    values: Map<String, Value>,
}

fn run_case(
    host: &PluginHost,
    store: &Arc<MemoryStore>,
    settings: &Arc<MemorySettings>,
    case: &Case,
    cost: &mut Cost,
) -> Result<()> {
    let mut context = Captures { values: Map::new() };
    context
        .values
        .insert("token".into(), Value::from(current_token(settings)));
    context
        .values
        .insert("base".into(), Value::from(SUITE_BASE_URL));

    for (index, step) in case.steps.iter().enumerate() {
        let step_no = index + 1;
        if let Some(change) = &step.host {
            apply_host_change(store, settings, &mut context, change)
                .with_context(|| format!("step {step_no}: host change"))?;
            continue;
        }
        let Some(spec) = &step.request else {
            bail!("step {step_no} has neither a request nor a host change");
        };
        let request = build_request(spec, &context)
            .with_context(|| format!("step {step_no}: building the request"))?;
        let (response, timing) = host.handle_timed(
            &request,
            store.clone(),
            settings.clone() as Arc<dyn SettingsSource>,
        );
        cost.requests += 1;
        cost.time.instantiation += timing.instantiation;
        cost.time.call += timing.call;
        let body: Option<Value> = serde_json::from_slice(&response.body).ok();

        if let Some(expect) = &step.expect {
            check(expect, &response, body.as_ref(), &context).with_context(|| {
                format!(
                    "step {step_no}: {} {} answered {} {}",
                    spec.method,
                    spec.path,
                    response.status,
                    truncate(&String::from_utf8_lossy(&response.body), 400)
                )
            })?;
        }
        for (name, pointer) in &step.capture {
            let Some(pointer) = pointer.as_str() else {
                bail!("step {step_no}: capture {name} must be a JSON pointer string");
            };
            let value = match pointer.strip_prefix("header:") {
                Some(header) => response.header(header).map(Value::from),
                None => body
                    .as_ref()
                    .and_then(|body| body.pointer(pointer))
                    .cloned(),
            };
            let Some(value) = value else {
                bail!("step {step_no}: nothing to capture at {pointer} for {name}");
            };
            context.values.insert(name.clone(), value);
        }
    }
    Ok(())
}

/// The token of the runner's settings: the suite token, or the last one rotated in.
fn current_token(settings: &MemorySettings) -> String {
    let digest = settings
        .current()
        .tokens
        .last()
        .map(|t| t.digest.clone())
        .unwrap_or_default();
    ROTATED_TOKENS
        .iter()
        .copied()
        .chain(std::iter::once(SUITE_TOKEN))
        .find(|token| scim_plugin::auth::token_digest(token).as_slice() == digest.as_slice())
        .unwrap_or(SUITE_TOKEN)
        .to_string()
}

/// The tokens a suite rotates through, in order.
const ROTATED_TOKENS: [&str; 3] = [
    "conformance-rotated-1",
    "conformance-rotated-2",
    "conformance-rotated-3",
];

fn apply_host_change(
    store: &MemoryStore,
    settings: &MemorySettings,
    context: &mut Captures,
    change: &Map<String, Value>,
) -> Result<()> {
    for (key, value) in change {
        match key.as_str() {
            "disable" => settings.update(|s| s.enabled = false),
            "enable" => settings.update(|s| s.enabled = true),
            "rotate_token" => {
                let current = current_token(settings);
                let next = ROTATED_TOKENS
                    .iter()
                    .find(|token| **token != current && !token_used(context, token))
                    .context("no more tokens to rotate to")?;
                settings.update(|s| {
                    s.tokens = vec![Token {
                        digest: scim_plugin::auth::token_digest(next).to_vec(),
                        expires_at: None,
                    }];
                });
                context
                    .values
                    .insert(format!("used:{next}"), Value::Bool(true));
                context.values.insert("token".into(), Value::from(*next));
            }
            "expire_token" => settings.update(|s| {
                for token in &mut s.tokens {
                    token.expires_at = Some(1);
                }
            }),
            "delete_action" => {
                let suspend = match value.as_str() {
                    Some("suspend") => true,
                    Some("delete") => false,
                    _ => bail!("delete_action is delete or suspend"),
                };
                store.set_delete_suspends(suspend);
            }
            "protect_admins" => {
                store.set_protect_admins(value.as_bool().context("protect_admins is a boolean")?);
            }
            "make_admin" | "revoke_admin" => {
                let id = substitute_str(
                    value
                        .as_str()
                        .with_context(|| format!("{key} names an id"))?,
                    context,
                );
                store
                    .set_admin(&id, key == "make_admin")
                    .map_err(|error| anyhow::anyhow!("{key} {id}: {error:?}"))?;
            }
            other => bail!("unknown host change {other}"),
        }
    }
    Ok(())
}

fn token_used(context: &Captures, token: &str) -> bool {
    context.values.contains_key(&format!("used:{token}"))
}

fn build_request(spec: &StepRequest, context: &Captures) -> Result<Request> {
    let target = substitute_str(&spec.path, context);
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut headers: Vec<(String, String)> = spec
        .headers
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(text) => substitute_str(text, context),
                other => other.to_string(),
            };
            (name.clone(), value)
        })
        .collect();
    let has_authorization = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("Authorization"));
    if spec.auth && !has_authorization {
        headers.push((
            "Authorization".into(),
            format!("Bearer {}", substitute_str("${token}", context)),
        ));
    }

    let body = match (&spec.body, &spec.raw_body, &spec.body_base64) {
        (Some(body), None, None) => serde_json::to_vec(&substitute(body, context))?,
        (None, Some(raw), None) => substitute_str(raw, context).into_bytes(),
        (None, None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .context("body_base64 is not base64")?,
        (None, None, None) => Vec::new(),
        _ => bail!("a request has at most one of body, raw_body and body_base64"),
    };
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("Content-Type"))
    {
        headers.push(("Content-Type".into(), "application/scim+json".into()));
    }

    Ok(Request {
        method: spec.method.clone(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body,
    })
}

/// Replaces `${name}` in every string of a JSON value.
fn substitute(value: &Value, context: &Captures) -> Value {
    match value {
        Value::String(text) => {
            // A string that is exactly one placeholder takes the captured value's own type.
            if let Some(name) = text
                .strip_prefix("${")
                .and_then(|rest| rest.strip_suffix('}'))
                && !name.contains('$')
                && let Some(captured) = context.values.get(name)
            {
                return captured.clone();
            }
            Value::String(substitute_str(text, context))
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, context)).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (substitute_str(key, context), substitute(value, context)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn substitute_str(text: &str, context: &Captures) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match context.values.get(name) {
                    Some(Value::String(value)) => out.push_str(value),
                    Some(value) => out.push_str(&value.to_string()),
                    None => out.push_str(&rest[start..start + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn check(
    expect: &Expect,
    response: &Response,
    body: Option<&Value>,
    context: &Captures,
) -> Result<()> {
    if response.status != expect.status {
        bail!("expected status {}", expect.status);
    }
    for (name, expected) in &expect.headers {
        let actual = response.header(name);
        match (expected.as_str(), actual) {
            (Some("$absent"), None) => {}
            (Some("$absent"), Some(value)) => bail!("header {name} should be absent, is {value}"),
            (Some("$any"), Some(_)) => {}
            (_, None) => bail!("header {name} is missing"),
            (Some(expected), Some(actual)) => {
                let expected = substitute_str(expected, context);
                if expected != actual {
                    bail!("header {name} is {actual}, expected {expected}");
                }
            }
            (None, Some(_)) => bail!("expected header values are strings"),
        }
    }
    if let Some(expected) = &expect.body {
        let Some(body) = body else {
            bail!("expected a JSON body");
        };
        let expected = substitute(expected, context);
        subset(&expected, body, "").map_err(|why| anyhow::anyhow!(why))?;
    }
    Ok(())
}

/// Whether `actual` contains `expected` (see the module's documentation).
fn subset(expected: &Value, actual: &Value, at: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::String(marker), _) if marker == "$any" => Ok(()),
        (Value::String(marker), Value::Array(items)) if marker.starts_with("$len:") => {
            let want: usize = marker[5..]
                .parse()
                .map_err(|_| format!("{at}: bad {marker}"))?;
            if items.len() == want {
                Ok(())
            } else {
                Err(format!("{at}: {} elements, expected {want}", items.len()))
            }
        }
        (Value::Object(expected), Value::Object(actual)) => {
            for (key, value) in expected {
                let here = format!("{at}/{key}");
                match (value.as_str(), actual.get(key)) {
                    (Some("$absent"), None) => {}
                    (Some("$absent"), Some(found)) => {
                        return Err(format!("{here} should be absent, is {found}"));
                    }
                    (_, None) => return Err(format!("{here} is missing")),
                    (_, Some(found)) => subset(value, found, &here)?,
                }
            }
            Ok(())
        }
        (Value::Array(expected), Value::Array(actual)) => {
            for (index, item) in expected.iter().enumerate() {
                if !actual
                    .iter()
                    .any(|candidate| subset(item, candidate, at).is_ok())
                {
                    return Err(format!("{at}[{index}]: no element matches {item}"));
                }
            }
            Ok(())
        }
        (expected, actual) if expected == actual => Ok(()),
        (expected, actual) => Err(format!("{at} is {actual}, expected {expected}")),
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Runs every suite in a folder, printing one line per case and the closing count; returns the
/// number of failures.
pub fn run_all(host: &PluginHost, dir: &Path, out: &mut dyn std::io::Write) -> Result<usize> {
    let suites = load_suites(dir)?;
    if suites.is_empty() {
        bail!("no suites (*.json) in {}", dir.display());
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut cost = Cost::default();
    for (path, suite) in &suites {
        let file = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        for result in run_suite(host, suite, &mut cost) {
            match &result.failure {
                None => {
                    passed += 1;
                    writeln!(out, "ok     {file}: {}", result.name)?;
                }
                Some(why) => {
                    failed += 1;
                    writeln!(
                        out,
                        "FAILED {file}: {} ({})\n       {why}",
                        result.name, result.source
                    )?;
                }
            }
        }
    }
    writeln!(out, "{}", cost.line())?;
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(failed)
}
