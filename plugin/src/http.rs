//! The HTTP exchange as the plugin sees it (RFC 7644 §3.1: SCIM over HTTP), and URL decoding.

use crate::error::ScimError;

/// The media type of every SCIM body (RFC 7644 §3.1).
pub const SCIM_JSON: &str = "application/scim+json";

/// An HTTP request addressed to the SCIM base.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// Relative to the SCIM base, still percent-encoded.
    pub path: String,
    /// Without the `?`, still percent-encoded.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The query parameters, decoded (`+` and `%20` both mean a space, as Okta and Entra ID
    /// send them).
    pub fn query_params(&self) -> Vec<(String, String)> {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode_query_component(name), decode_query_component(value))
            })
            .collect()
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a SCIM JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".into(), SCIM_JSON.into())],
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    /// A response without a body (204, 304).
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl From<ScimError> for Response {
    fn from(error: ScimError) -> Self {
        let mut response = Response::json(error.status, &error.to_json());
        if let Some(seconds) = error.retry_after {
            response = response.with_header("Retry-After", seconds.to_string());
        }
        if let Some(challenge) = error.challenge {
            response = response.with_header("WWW-Authenticate", challenge);
        }
        if let Some(allow) = error.allow {
            response = response.with_header("Allow", allow);
        }
        response
    }
}

/// Decodes a query component: `+` is a space, `%XX` a byte. Malformed escapes stay as they are,
/// and bytes that do not form UTF-8 are replaced, so that decoding never fails.
pub fn decode_query_component(input: &str) -> String {
    percent_decode(&input.replace('+', " "))
}

/// Decodes `%XX` escapes (a path segment: `+` stays a plus).
pub fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| hex_value(*b)),
                bytes.get(i + 2).and_then(|b| hex_value(*b)),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_and_percent_twenty_both_decode_to_a_space() {
        let request = Request {
            query: "filter=userName+eq+%22a%40b.c%22&count=100&x=userName%20eq%20b".into(),
            ..Request::default()
        };
        let params = request.query_params();
        assert_eq!(params[0], ("filter".into(), "userName eq \"a@b.c\"".into()));
        assert_eq!(params[1], ("count".into(), "100".into()));
        assert_eq!(params[2].1, "userName eq b");
    }

    #[test]
    fn malformed_escapes_are_kept_and_never_panic() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn path_segment_keeps_plus() {
        assert_eq!(percent_decode("a+b%2Fc"), "a+b/c");
    }
}
