//! SCIM errors (RFC 7644 §3.12): one type that knows its HTTP status and `scimType`.

use serde_json::{Value, json};

/// The `urn:ietf:params:scim:api:messages:2.0:Error` schema.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The `scimType` values of RFC 7644 §3.12, Table 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
    Sensitive,
}

impl ScimType {
    /// The keyword as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
        }
    }
}

/// A failure to answer as asked, rendered as a SCIM error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    /// The HTTP status code.
    pub status: u16,
    /// The `scimType`, where RFC 7644 defines one for this failure.
    pub scim_type: Option<ScimType>,
    /// A human-readable explanation. It never quotes another user's data.
    pub detail: String,
    /// Seconds after which the client may retry (`Retry-After`), for 503 and 429.
    pub retry_after: Option<u32>,
    /// The `WWW-Authenticate` challenge of a 401 (RFC 6750 §3).
    pub challenge: Option<&'static str>,
    /// The methods an endpoint allows (`Allow`), for a 405.
    pub allow: Option<&'static str>,
}

impl ScimError {
    /// An error with a status and a detail, and no `scimType`.
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type: None,
            detail: detail.into(),
            retry_after: None,
            challenge: None,
            allow: None,
        }
    }

    /// A 400 with the given `scimType`.
    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> Self {
        ScimError {
            scim_type: Some(scim_type),
            ..ScimError::new(400, detail)
        }
    }

    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidFilter, detail)
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidSyntax, detail)
    }

    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidValue, detail)
    }

    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidPath, detail)
    }

    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::NoTarget, detail)
    }

    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::Mutability, detail)
    }

    /// 409 `uniqueness`: the value is taken by another resource.
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        ScimError {
            scim_type: Some(ScimType::Uniqueness),
            ..ScimError::new(409, detail)
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        ScimError::new(404, detail)
    }

    /// 503 with `Retry-After`: the store is busy; the identity provider retries.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        ScimError {
            retry_after: Some(5),
            ..ScimError::new(503, detail)
        }
    }

    /// The error's JSON body.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = Value::from(scim_type.as_str());
        }
        body
    }
}

impl std::fmt::Display for ScimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.detail)
    }
}

impl std::error::Error for ScimError {}

/// What every fallible step of the protocol returns.
pub type ScimResult<T> = Result<T, ScimError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_carries_status_as_string_and_scim_type() {
        let body = ScimError::mutability("emails cannot change").to_json();
        assert_eq!(body["status"], "400");
        assert_eq!(body["scimType"], "mutability");
        assert_eq!(body["schemas"][0], ERROR_SCHEMA);
    }

    #[test]
    fn error_without_scim_type_omits_it() {
        let body = ScimError::not_found("no such user").to_json();
        assert_eq!(body["status"], "404");
        assert!(body.get("scimType").is_none());
    }
}
