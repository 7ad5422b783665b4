//! An in-memory user store: the conformance runner's and the fuzzers', and the model of what the
//! WIT `user-store` interface guarantees (uniqueness, versions, a stable order, host policies).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::store::{ScanPage, StoreError, StoreResult, User, UserFields, UserPage, UserStore};

/// Users in memory, in creation order, with the unique indexes a real store keeps, and the
/// host's policies on administrators.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// DELETE suspends instead of removing.
    delete_suspends: AtomicBool,
    /// Administrators may not be suspended or deleted through SCIM.
    protect_admins: AtomicBool,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            inner: Mutex::default(),
            delete_suspends: AtomicBool::new(false),
            protect_admins: AtomicBool::new(true),
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Creation sequence → user: the stable order of pages and scans.
    users: BTreeMap<u64, User>,
    by_id: HashMap<String, u64>,
    /// Case-folded userName → sequence.
    by_user_name: HashMap<String, u64>,
    /// Case-folded email → sequence.
    by_email: HashMap<String, u64>,
    /// The sequences of the administrators.
    admins: HashSet<u64>,
    next_sequence: u64,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// What DELETE does: suspend (true) or remove (false, the default).
    pub fn set_delete_suspends(&self, suspend: bool) {
        self.delete_suspends.store(suspend, Ordering::Relaxed);
    }

    /// Whether SCIM may suspend or delete administrators (it may not, by default). The last
    /// active administrator is never suspended or deleted either way.
    pub fn set_protect_admins(&self, protect: bool) {
        self.protect_admins.store(protect, Ordering::Relaxed);
    }

    /// Makes a user an administrator, or an ordinary user again.
    pub fn set_admin(&self, id: &str, admin: bool) -> StoreResult<()> {
        let mut inner = self.lock()?;
        let sequence = *inner.by_id.get(id).ok_or(StoreError::NotFound)?;
        if admin {
            inner.admins.insert(sequence);
        } else {
            inner.admins.remove(&sequence);
        }
        Ok(())
    }

    /// Refuses to take an administrator out of service where the policy forbids it.
    fn check_admin_removal(&self, inner: &Inner, sequence: u64, action: &str) -> StoreResult<()> {
        if !inner.admins.contains(&sequence) {
            return Ok(());
        }
        if self.protect_admins.load(Ordering::Relaxed) {
            return Err(StoreError::Refused(format!(
                "administrators cannot be {action} through SCIM on this server"
            )));
        }
        let other_active_admins = inner
            .admins
            .iter()
            .filter(|other| **other != sequence)
            .filter(|other| inner.users.get(other).is_some_and(|user| user.active))
            .count();
        if other_active_admins == 0 {
            return Err(StoreError::Refused(format!(
                "the last administrator cannot be {action}"
            )));
        }
        Ok(())
    }

    fn lock(&self) -> StoreResult<MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Unavailable("the store is poisoned".into()))
    }
}

impl Inner {
    fn by_sequence(&self, sequence: Option<&u64>) -> Option<User> {
        sequence
            .and_then(|sequence| self.users.get(sequence))
            .cloned()
    }

    /// Which unique attribute, if any, another user already holds.
    fn conflict(&self, fields: &UserFields, own: Option<u64>) -> Option<StoreError> {
        let taken = |index: &HashMap<String, u64>, key: &str| {
            index
                .get(&key.to_lowercase())
                .is_some_and(|holder| Some(*holder) != own)
        };
        if taken(&self.by_user_name, &fields.user_name) {
            return Some(StoreError::Conflict("userName".into()));
        }
        if taken(&self.by_email, &fields.email) {
            return Some(StoreError::Conflict("email".into()));
        }
        None
    }
}

impl UserStore for MemoryStore {
    fn get(&self, id: &str) -> StoreResult<Option<User>> {
        let inner = self.lock()?;
        Ok(inner.by_sequence(inner.by_id.get(id)))
    }

    fn find_by_user_name(&self, user_name: &str) -> StoreResult<Option<User>> {
        let inner = self.lock()?;
        Ok(inner.by_sequence(inner.by_user_name.get(&user_name.to_lowercase())))
    }

    fn find_by_external_id(&self, external_id: &str) -> StoreResult<Vec<User>> {
        let inner = self.lock()?;
        Ok(inner
            .users
            .values()
            .filter(|user| user.external_id.as_deref() == Some(external_id))
            .cloned()
            .collect())
    }

    fn find_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let inner = self.lock()?;
        Ok(inner.by_sequence(inner.by_email.get(&email.to_lowercase())))
    }

    fn page(&self, offset: u64, limit: u32) -> StoreResult<UserPage> {
        let inner = self.lock()?;
        let users = inner
            .users
            .values()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(limit as usize)
            .cloned()
            .collect();
        Ok(UserPage {
            users,
            total: inner.users.len() as u64,
        })
    }

    fn scan(&self, cursor: Option<&str>, limit: u32) -> StoreResult<ScanPage> {
        let after = match cursor {
            None => None,
            Some(cursor) => Some(cursor.parse::<u64>().map_err(|_| {
                StoreError::Unavailable("the scan cursor is not this store's".into())
            })?),
        };
        let inner = self.lock()?;
        let range = match after {
            None => inner.users.range(..),
            Some(after) => inner.users.range(after + 1..),
        };
        let slice: Vec<(u64, User)> = range
            .take(limit as usize)
            .map(|(sequence, user)| (*sequence, user.clone()))
            .collect();
        Ok(ScanPage::from_sequenced(slice, limit))
    }

    fn create(&self, fields: UserFields) -> StoreResult<User> {
        let mut inner = self.lock()?;
        if let Some(conflict) = inner.conflict(&fields, None) {
            return Err(conflict);
        }
        let now = now_millis();
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            email: fields.email,
            user_name: fields.user_name,
            given_name: fields.given_name,
            family_name: fields.family_name,
            active: fields.active,
            external_id: fields.external_id,
            created: now,
            modified: now,
            version: 1,
        };
        let sequence = inner.next_sequence;
        inner.next_sequence += 1;
        inner.by_id.insert(user.id.clone(), sequence);
        inner
            .by_user_name
            .insert(user.user_name.to_lowercase(), sequence);
        inner.by_email.insert(user.email.to_lowercase(), sequence);
        inner.users.insert(sequence, user.clone());
        Ok(user)
    }

    fn update(&self, id: &str, expected_version: u64, fields: UserFields) -> StoreResult<User> {
        let mut inner = self.lock()?;
        let sequence = *inner.by_id.get(id).ok_or(StoreError::NotFound)?;
        let current = inner
            .users
            .get(&sequence)
            .cloned()
            .ok_or(StoreError::NotFound)?;
        if current.version != expected_version {
            return Err(StoreError::VersionMismatch);
        }
        if !fields.email.eq_ignore_ascii_case(&current.email) {
            return Err(StoreError::Refused("the login email cannot change".into()));
        }
        if let Some(conflict) = inner.conflict(&fields, Some(sequence)) {
            return Err(conflict);
        }
        if current.active && !fields.active {
            self.check_admin_removal(&inner, sequence, "suspended")?;
        }
        let updated = User {
            user_name: fields.user_name,
            given_name: fields.given_name,
            family_name: fields.family_name,
            active: fields.active,
            external_id: fields.external_id,
            modified: now_millis().max(current.modified),
            version: current.version + 1,
            ..current.clone()
        };
        inner.by_user_name.remove(&current.user_name.to_lowercase());
        inner
            .by_user_name
            .insert(updated.user_name.to_lowercase(), sequence);
        inner.users.insert(sequence, updated.clone());
        Ok(updated)
    }

    fn delete(&self, id: &str) -> StoreResult<Option<User>> {
        let mut inner = self.lock()?;
        let sequence = *inner.by_id.get(id).ok_or(StoreError::NotFound)?;

        if self.delete_suspends.load(Ordering::Relaxed) {
            let Some(current) = inner.users.get(&sequence).cloned() else {
                return Err(StoreError::NotFound);
            };
            if !current.active {
                return Ok(Some(current));
            }
            self.check_admin_removal(&inner, sequence, "suspended")?;
            let suspended = User {
                active: false,
                modified: now_millis().max(current.modified),
                version: current.version + 1,
                ..current
            };
            inner.users.insert(sequence, suspended.clone());
            return Ok(Some(suspended));
        }

        self.check_admin_removal(&inner, sequence, "deleted")?;
        inner.by_id.remove(id);
        inner.admins.remove(&sequence);
        if let Some(user) = inner.users.remove(&sequence) {
            inner.by_user_name.remove(&user.user_name.to_lowercase());
            inner.by_email.remove(&user.email.to_lowercase());
        }
        Ok(None)
    }
}

/// Milliseconds since the Unix epoch, the store's clock.
fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
