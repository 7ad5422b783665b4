//! What every user store guarantees, run against each implementation: the in-memory model and
//! the SQLite file.

use std::sync::{Arc, Barrier};

use scim_host::db::Database;
use scim_host::store::{MemoryStore, SqliteStore, StoreError, UserFields, UserStore};

fn fields(user_name: &str) -> UserFields {
    UserFields {
        email: format!("{user_name}@example.com"),
        user_name: user_name.to_string(),
        given_name: Some("Barbara".into()),
        family_name: Some("Jensen".into()),
        active: true,
        external_id: None,
    }
}

fn user_name_is_unique_case_insensitively(store: Arc<dyn UserStore>) {
    store.create(fields("bjensen")).unwrap();
    let other_email = UserFields {
        email: "other@example.com".into(),
        ..fields("BJensen")
    };
    assert_eq!(
        store.create(other_email),
        Err(StoreError::Conflict("userName".into()))
    );
    let same_email = UserFields {
        email: "BJENSEN@example.com".into(),
        ..fields("someone")
    };
    assert_eq!(
        store.create(same_email),
        Err(StoreError::Conflict("email".into()))
    );
    assert_eq!(store.page(0, 10).unwrap().total, 1);
}

fn lookups_fold_case_except_external_id(store: Arc<dyn UserStore>) {
    let created = store
        .create(UserFields {
            external_id: Some("ext-1".into()),
            ..fields("bjensen")
        })
        .unwrap();
    assert_eq!(
        store.find_by_user_name("BJENSEN").unwrap().unwrap().id,
        created.id
    );
    assert_eq!(
        store
            .find_by_email("BJensen@Example.com")
            .unwrap()
            .unwrap()
            .id,
        created.id
    );
    assert_eq!(store.find_by_external_id("ext-1").unwrap().len(), 1);
    assert!(store.find_by_external_id("EXT-1").unwrap().is_empty());
    assert_eq!(store.get(&created.id).unwrap(), Some(created));
}

fn update_with_a_stale_version_is_a_mismatch(store: Arc<dyn UserStore>) {
    let created = store.create(fields("bjensen")).unwrap();
    let renamed = UserFields {
        given_name: Some("Babs".into()),
        ..fields("bjensen")
    };
    let updated = store
        .update(&created.id, created.version, renamed.clone())
        .unwrap();
    assert!(updated.version > created.version);
    assert_eq!(updated.given_name.as_deref(), Some("Babs"));
    assert_eq!(
        store.update(&created.id, created.version, renamed),
        Err(StoreError::VersionMismatch)
    );
    assert_eq!(store.get(&created.id).unwrap(), Some(updated));
}

fn update_cannot_take_another_users_user_name(store: Arc<dyn UserStore>) {
    store.create(fields("alice")).unwrap();
    let bob = store.create(fields("bob")).unwrap();
    let taken = UserFields {
        user_name: "ALICE".into(),
        ..fields("bob")
    };
    assert_eq!(
        store.update(&bob.id, bob.version, taken),
        Err(StoreError::Conflict("userName".into()))
    );
    // The user's own name in another case is not a conflict.
    let recased = UserFields {
        user_name: "BOB".into(),
        ..fields("bob")
    };
    assert_eq!(
        store
            .update(&bob.id, bob.version, recased)
            .unwrap()
            .user_name,
        "BOB"
    );
}

fn update_cannot_change_the_login_email(store: Arc<dyn UserStore>) {
    let created = store.create(fields("bjensen")).unwrap();
    let moved = UserFields {
        email: "elsewhere@example.com".into(),
        ..fields("bjensen")
    };
    assert!(matches!(
        store.update(&created.id, created.version, moved),
        Err(StoreError::Refused(_))
    ));
}

fn suspension_is_inactive_and_keeps_the_id(store: Arc<dyn UserStore>) {
    let created = store.create(fields("bjensen")).unwrap();
    let suspended = UserFields {
        active: false,
        ..fields("bjensen")
    };
    let updated = store
        .update(&created.id, created.version, suspended)
        .unwrap();
    assert!(!updated.active);
    assert!(!store.get(&created.id).unwrap().unwrap().active);
}

fn paging_keeps_creation_order_across_updates(store: Arc<dyn UserStore>) {
    let ids: Vec<String> = (0..7)
        .map(|i| store.create(fields(&format!("user{i}"))).unwrap().id)
        .collect();
    let third = store.get(&ids[2]).unwrap().unwrap();
    store
        .update(
            &ids[2],
            third.version,
            UserFields {
                given_name: Some("Changed".into()),
                ..fields("user2")
            },
        )
        .unwrap();

    let mut paged = Vec::new();
    for offset in (0..7).step_by(3) {
        let page = store.page(offset, 3).unwrap();
        assert_eq!(page.total, 7);
        paged.extend(page.users.into_iter().map(|user| user.id));
    }
    assert_eq!(paged, ids);
    assert!(store.page(7, 3).unwrap().users.is_empty());
}

fn scan_covers_every_user_exactly_once(store: Arc<dyn UserStore>) {
    let mut ids: Vec<String> = (0..10)
        .map(|i| store.create(fields(&format!("user{i}"))).unwrap().id)
        .collect();
    store.delete(&ids.remove(4)).unwrap();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let slice = store.scan(cursor.as_deref(), 3).unwrap();
        seen.extend(slice.users.into_iter().map(|user| user.id));
        match slice.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

fn deleted_user_is_gone_and_its_names_are_free(store: Arc<dyn UserStore>) {
    let created = store.create(fields("bjensen")).unwrap();
    assert_eq!(store.delete(&created.id), Ok(None));
    assert_eq!(store.get(&created.id).unwrap(), None);
    assert_eq!(store.find_by_user_name("bjensen").unwrap(), None);
    assert_eq!(store.delete(&created.id), Err(StoreError::NotFound));
    let again = store.create(fields("bjensen")).unwrap();
    assert_ne!(again.id, created.id);
}

fn missing_user_is_not_found_on_update(store: Arc<dyn UserStore>) {
    assert_eq!(
        store.update("no-such-id", 1, fields("x")),
        Err(StoreError::NotFound)
    );
}

fn concurrent_creates_of_one_user_name_make_exactly_one(store: Arc<dyn UserStore>) {
    const THREADS: usize = 16;
    let start = Arc::new(Barrier::new(THREADS));
    let outcomes: Vec<_> = (0..THREADS)
        .map(|i| {
            let (store, start) = (store.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                // Each thread uses its own email: only the userName collides.
                let mine = UserFields {
                    email: format!("racer{i}@example.com"),
                    ..fields("Racer")
                };
                store.create(mine)
            })
        })
        // Every thread must be started before any is waited for, or the barrier never opens.
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();
    let created = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    assert_eq!(created, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|outcome| match outcome {
        Ok(_) => true,
        Err(error) => *error == StoreError::Conflict("userName".into()),
    }));
    assert_eq!(store.page(0, 100).unwrap().total, 1);
}

/// Instantiates every contract above for one store, made fresh for each test by `$make`.
macro_rules! store_contract {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            store_contract!(@tests $make;
                user_name_is_unique_case_insensitively,
                lookups_fold_case_except_external_id,
                update_with_a_stale_version_is_a_mismatch,
                update_cannot_take_another_users_user_name,
                update_cannot_change_the_login_email,
                suspension_is_inactive_and_keeps_the_id,
                paging_keeps_creation_order_across_updates,
                scan_covers_every_user_exactly_once,
                deleted_user_is_gone_and_its_names_are_free,
                missing_user_is_not_found_on_update,
                concurrent_creates_of_one_user_name_make_exactly_one,
            );
        }
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let (store, _keep) = $make;
                super::$name(store);
            }
        )*
    };
}

store_contract!(
    memory,
    (Arc::new(MemoryStore::new()) as Arc<dyn UserStore>, ())
);

store_contract!(sqlite, {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("users.db")).unwrap();
    (Arc::new(SqliteStore::new(db)) as Arc<dyn UserStore>, dir)
});
