//! The component's face: the WIT bindings, kept private, and the glue between them and the
//! protocol's plain Rust types.

/// The generated bindings. Generated code mirrors the WIT's shapes (a record's fields become a
/// function's arguments), so clippy's taste in argument counts does not apply to it.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({
        world: "scim-provider",
        path: "../wit",
    });
}

use bindings::scim::provider::{settings, types, user_store};
use bindings::{Guest, export};

use crate::store::{
    ScanPage, Settings, StoreError, StoreResult, Token, User, UserFields, UserPage, UserStore,
};

struct Component;

export!(Component with_types_in bindings);

impl Guest for Component {
    fn handle_scim_request(request: types::HttpRequest) -> types::HttpResponse {
        let request = crate::Request {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            body: request.body,
        };
        let response = crate::handle(&request, &ImportedStore, &settings());
        types::HttpResponse {
            status: response.status,
            headers: response
                .headers
                .into_iter()
                .map(|(name, value)| types::Header { name, value })
                .collect(),
            body: response.body,
        }
    }
}

fn settings() -> Settings {
    let current = settings::current();
    Settings {
        enabled: current.enabled,
        tokens: current
            .tokens
            .into_iter()
            .map(|token| Token {
                digest: token.digest,
                expires_at: token.expires_at,
            })
            .collect(),
        base_url: current.base_url,
        now: current.now,
    }
}

/// The host's `user-store` import, behind the protocol's [`UserStore`] trait.
struct ImportedStore;

impl UserStore for ImportedStore {
    fn get(&self, id: &str) -> StoreResult<Option<User>> {
        user_store::get(id)
            .map(|user| user.map(User::from))
            .map_err(StoreError::from)
    }

    fn find_by_user_name(&self, user_name: &str) -> StoreResult<Option<User>> {
        user_store::find_by_user_name(user_name)
            .map(|user| user.map(User::from))
            .map_err(StoreError::from)
    }

    fn find_by_external_id(&self, external_id: &str) -> StoreResult<Vec<User>> {
        user_store::find_by_external_id(external_id)
            .map(|users| users.into_iter().map(User::from).collect())
            .map_err(StoreError::from)
    }

    fn find_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        user_store::find_by_email(email)
            .map(|user| user.map(User::from))
            .map_err(StoreError::from)
    }

    fn page(&self, offset: u64, limit: u32) -> StoreResult<UserPage> {
        user_store::page(offset, limit)
            .map(|page| UserPage {
                users: page.users.into_iter().map(User::from).collect(),
                total: page.total,
            })
            .map_err(StoreError::from)
    }

    fn scan(&self, cursor: Option<&str>, limit: u32) -> StoreResult<ScanPage> {
        user_store::scan(cursor, limit)
            .map(|page| ScanPage {
                users: page.users.into_iter().map(User::from).collect(),
                next: page.next,
            })
            .map_err(StoreError::from)
    }

    fn create(&self, fields: UserFields) -> StoreResult<User> {
        user_store::create(&fields.into())
            .map(User::from)
            .map_err(StoreError::from)
    }

    fn update(&self, id: &str, expected_version: u64, fields: UserFields) -> StoreResult<User> {
        user_store::update(id, expected_version, &fields.into())
            .map(User::from)
            .map_err(StoreError::from)
    }

    fn delete(&self, id: &str) -> StoreResult<Option<User>> {
        user_store::delete(id)
            .map(|user| user.map(User::from))
            .map_err(StoreError::from)
    }
}

impl From<user_store::User> for User {
    fn from(user: user_store::User) -> Self {
        User {
            id: user.id,
            email: user.email,
            user_name: user.user_name,
            given_name: user.given_name,
            family_name: user.family_name,
            active: user.active,
            external_id: user.external_id,
            created: user.created,
            modified: user.modified,
            version: user.version,
        }
    }
}

impl From<UserFields> for user_store::UserFields {
    fn from(fields: UserFields) -> Self {
        user_store::UserFields {
            email: fields.email,
            user_name: fields.user_name,
            given_name: fields.given_name,
            family_name: fields.family_name,
            active: fields.active,
            external_id: fields.external_id,
        }
    }
}

impl From<user_store::StoreError> for StoreError {
    fn from(error: user_store::StoreError) -> Self {
        match error {
            user_store::StoreError::NotFound => StoreError::NotFound,
            user_store::StoreError::Conflict(attribute) => StoreError::Conflict(attribute),
            user_store::StoreError::VersionMismatch => StoreError::VersionMismatch,
            user_store::StoreError::Refused(reason) => StoreError::Refused(reason),
            user_store::StoreError::Unavailable(reason) => StoreError::Unavailable(reason),
        }
    }
}
