//! Where confirmed states are kept: local files by default, or PostgreSQL for several machines.

mod local;
mod pg_lock;
mod postgres;

/// The advisory lock type, for the lock module.
pub(crate) mod postgres_lock {
    pub(crate) use super::pg_lock::PgLock;
}

use serde_json::Value;

use crate::project::StateStoreConfig;
pub(crate) use local::{LocalStore, file_name};
pub(crate) use postgres::PgStore;

/// A store failure (its message names the file or server).
#[derive(Debug)]
pub(crate) struct StoreError(pub(crate) String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One state id in a listing.
#[derive(Debug, serde::Serialize)]
pub(crate) struct StateEntry {
    pub(crate) id: String,
    pub(crate) updated_at: Option<String>,
}

/// The configured store.
pub(crate) enum Store {
    Local(LocalStore),
    Postgres(Box<PgStore>),
}

impl Store {
    pub(crate) fn open(cfg: &StateStoreConfig, home: &std::path::Path) -> Result<Self, StoreError> {
        Ok(match cfg {
            StateStoreConfig::Local => Store::Local(LocalStore::new(home.join("state"))),
            StateStoreConfig::Postgres { url, schema } => {
                let url = crate::project::interpolate_str(url).map_err(StoreError)?;
                Store::Postgres(Box::new(PgStore::connect(&url, schema)?))
            }
        })
    }

    pub(crate) fn get(&self, id: &str) -> Result<Option<Value>, StoreError> {
        match self {
            Store::Local(s) => s.get(id),
            Store::Postgres(s) => s.get(id),
        }
    }

    pub(crate) fn set(&self, id: &str, value: &Value, source: &str) -> Result<(), StoreError> {
        match self {
            Store::Local(s) => s.set(id, value, source),
            Store::Postgres(s) => s.set(id, value, source),
        }
    }

    pub(crate) fn clear(&self, id: &str, source: &str) -> Result<bool, StoreError> {
        match self {
            Store::Local(s) => s.clear(id, source),
            Store::Postgres(s) => s.clear(id, source),
        }
    }

    pub(crate) fn list(&self) -> Result<Vec<StateEntry>, StoreError> {
        match self {
            Store::Local(s) => s.list(),
            Store::Postgres(s) => s.list(),
        }
    }

    pub(crate) fn history(&self, id: &str) -> Result<Vec<Value>, StoreError> {
        match self {
            Store::Local(s) => s.history(id),
            Store::Postgres(s) => s.history(id),
        }
    }
}

/// `older` with the bookmarks of `newer` laid over it, stream by stream: a run that confirms
/// only some streams keeps the others' bookmarks.
pub(crate) fn merge(older: Option<&Value>, newer: &Value) -> Value {
    let (Some(Value::Object(old)), Value::Object(new)) = (older, newer) else {
        return newer.clone();
    };
    let mut out = old.clone();
    for (k, v) in new {
        match (out.get_mut(k), v) {
            (Some(Value::Object(ob)), Value::Object(nb)) if k == "bookmarks" => {
                for (s, b) in nb {
                    ob.insert(s.clone(), b.clone());
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn merge_keeps_unmentioned_streams() {
        let old = json!({"bookmarks": {"a": {"x": 1}, "b": {"x": 1}}, "currently_syncing": "a"});
        let new = json!({"bookmarks": {"a": {"x": 2}}, "currently_syncing": null});
        assert_eq!(
            super::merge(Some(&old), &new),
            json!({"bookmarks": {"a": {"x": 2}, "b": {"x": 1}}, "currently_syncing": null})
        );
    }
}
