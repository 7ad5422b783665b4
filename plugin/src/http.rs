//! The HTTP exchange as the plugin sees it (RFC 7644 §3.1: SCIM over HTTP), and URL decoding.

use crate::error::{ScimError, ScimResult};

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
    ///
    /// Escapes that decode to bytes which are not UTF-8 are refused rather than replaced, so
    /// that what is served is what was asked for: `invalidFilter` in a `filter` (RFC 7644
    /// §3.12: the filter is not valid), `invalidValue` in any other name or value (the one
    /// `scimType` of §3.12 that applies to a GET's parameters; `invalidSyntax` is about bodies).
    pub fn query_params(&self) -> ScimResult<Vec<(String, String)>> {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                let name = decode_query_component(name).ok_or_else(|| {
                    ScimError::invalid_value("a query parameter's name is not UTF-8 once decoded")
                })?;
                let value = decode_query_component(value).ok_or_else(|| {
                    if name.eq_ignore_ascii_case("filter") {
                        ScimError::invalid_filter("the filter is not UTF-8 once decoded")
                    } else {
                        ScimError::invalid_value(
                            "a query parameter's value is not UTF-8 once decoded",
                        )
                    }
                })?;
                Ok((name, value))
            })
            .collect()
    }

    /// The path's segments, decoded, without empty ones. A segment that is not UTF-8 once
    /// decoded is `invalidValue`: it cannot name an endpoint, an id or a schema URN, and reading
    /// it with replacement characters would look up something the client never sent.
    pub fn path_segments(&self) -> ScimResult<Vec<String>> {
        self.path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(|segment| {
                percent_decode(segment).ok_or_else(|| {
                    ScimError::invalid_value("the path is not UTF-8 once percent-decoded")
                })
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

/// Decodes a query component: `+` is a space, `%XX` a byte. Malformed escapes stay as they are;
/// none when the bytes do not form UTF-8.
pub fn decode_query_component(input: &str) -> Option<String> {
    percent_decode(&input.replace('+', " "))
}

/// Decodes `%XX` escapes (a path segment: `+` stays a plus). Malformed escapes stay as they are;
/// none when the bytes do not form UTF-8.
pub fn percent_decode(input: &str) -> Option<String> {
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
    String::from_utf8(out).ok()
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
    use crate::error::ScimType;

    #[test]
    fn plus_and_percent_twenty_both_decode_to_a_space() {
        let request = Request {
            query: "filter=userName+eq+%22a%40b.c%22&count=100&x=userName%20eq%20b".into(),
            ..Request::default()
        };
        let params = request.query_params().unwrap();
        assert_eq!(params[0], ("filter".into(), "userName eq \"a@b.c\"".into()));
        assert_eq!(params[1], ("count".into(), "100".into()));
        assert_eq!(params[2].1, "userName eq b");
    }

    #[test]
    fn malformed_escapes_are_kept_and_never_panic() {
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
    }

    #[test]
    fn escapes_that_are_not_utf_8_decode_to_nothing() {
        for input in ["%ff", "a%C3", "%C3%28", "%ED%A0%80", "%C0%AF"] {
            assert_eq!(percent_decode(input), None, "{input}");
        }
    }

    #[test]
    fn path_segment_keeps_plus() {
        assert_eq!(percent_decode("a+b%2Fc").as_deref(), Some("a+b/c"));
    }

    fn scim_type(query: &str) -> Option<String> {
        let request = Request {
            query: query.into(),
            ..Request::default()
        };
        let error = request.query_params().err()?;
        assert_eq!(error.status, 400, "{query}");
        error.to_json()["scimType"].as_str().map(str::to_string)
    }

    #[test]
    fn a_filter_that_is_not_utf_8_is_invalid_filter() {
        for query in [
            "filter=userName%20eq%20%22a%ff@example.com%22",
            "count=10&Filter=userName+eq+%C3",
        ] {
            assert_eq!(
                scim_type(query).as_deref(),
                Some("invalidFilter"),
                "{query}"
            );
        }
    }

    #[test]
    fn other_parameters_that_are_not_utf_8_are_invalid_value() {
        for query in [
            "%ff=1",
            "attributes=%ff%fe",
            "filter=userName+pr&sortBy=%ff",
            "%ff",
        ] {
            assert_eq!(scim_type(query).as_deref(), Some("invalidValue"), "{query}");
        }
        assert_eq!(scim_type("attributes=na%C3%AFve&filter=a%20pr"), None);
    }

    #[test]
    fn a_path_segment_that_is_not_utf_8_is_invalid_value() {
        let request = Request {
            path: "/Users/%ff%fe".into(),
            ..Request::default()
        };
        let error = request.path_segments().unwrap_err();
        assert_eq!(
            (error.status, error.scim_type),
            (400, Some(ScimType::InvalidValue))
        );
        let request = Request {
            path: "/Schemas/urn%3Aietf%3Aparams//".into(),
            ..Request::default()
        };
        assert_eq!(
            request.path_segments(),
            Ok(vec!["Schemas".to_string(), "urn:ietf:params".to_string()])
        );
    }
}
