//! Discovery, cached per tap and config, and the pipeline's selection and overrides applied to
//! the catalog.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::project::{Pipeline, StreamOverride};

/// How to run a tap for discovery.
pub(crate) struct TapCommand<'a> {
    pub(crate) program: &'a Path,
    pub(crate) args: &'a [String],
    pub(crate) env: &'a [(String, String)],
    /// The resolved config (part of the cache key) and the file holding it.
    pub(crate) config: &'a Value,
    pub(crate) config_path: &'a Path,
}

/// The catalog of `tap_name`, from the cache unless `refresh` or the tap's executable,
/// arguments or config changed since it was discovered.
pub(crate) fn discover(
    home: &Path,
    tap_name: &str,
    tap: &TapCommand<'_>,
    refresh: bool,
) -> Result<Value, String> {
    let TapCommand {
        program,
        args,
        env,
        config,
        config_path,
    } = *tap;
    let dir = home.join("catalogs");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cache = dir.join(format!("{}.json", crate::store::file_name(tap_name)));
    let key_path = dir.join(format!("{}.key", crate::store::file_name(tap_name)));
    let key = cache_key(program, args, config);
    if !refresh
        && std::fs::read_to_string(&key_path).is_ok_and(|k| k == key)
        && let Ok(text) = std::fs::read_to_string(&cache)
        && let Ok(v) = serde_json::from_str::<Value>(&text)
    {
        tracing::info!(
            tap = tap_name,
            "using the cached catalog (refresh with --refresh-catalog)"
        );
        return Ok(v);
    }
    tracing::info!(tap = tap_name, "discovering");
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("--config")
        .arg(config_path)
        .arg("--discover")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start tap `{}`: {e}", program.display()))?;
    // In `singer`'s own process group (Ctrl-C reaches it), and listed so that a second signal
    // stops it too.
    let pid = child.id();
    crate::run::process::register(pid, false);
    let out = child.wait_with_output();
    crate::run::process::unregister(pid);
    let out = out.map_err(|e| format!("discovery by `{tap_name}` failed: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(10).collect();
        return Err(format!(
            "discovery by `{tap_name}` failed ({}):\n{}",
            crate::run::process::describe(Some(out.status)),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    let catalog: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("discovery by `{tap_name}` did not print a JSON catalog: {e}"))?;
    if !catalog.get("streams").is_some_and(Value::is_array) {
        return Err(format!(
            "discovery by `{tap_name}` printed no `streams` array"
        ));
    }
    write_atomic(&cache, catalog.to_string().as_bytes())?;
    write_atomic(&key_path, key.as_bytes())?;
    Ok(catalog)
}

/// A catalog given in the project instead of discovered.
pub(crate) fn read_fixed(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    if !v.get("streams").is_some_and(Value::is_array) {
        return Err(format!("{}: no `streams` array", path.display()));
    }
    Ok(v)
}

fn cache_key(program: &Path, args: &[String], config: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    program.hash(&mut h);
    args.hash(&mut h);
    config.to_string().hash(&mut h);
    format!("{:016x}", h.finish())
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp: PathBuf = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `*` matches any run of characters, `?` one character.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

/// Selection for one run: the pipeline's, or the command line's when given.
pub(crate) struct Selection<'a> {
    pub(crate) select: &'a [String],
    pub(crate) exclude: &'a [String],
    pub(crate) streams: &'a std::collections::BTreeMap<String, StreamOverride>,
}

impl<'a> Selection<'a> {
    pub(crate) fn of(p: &'a Pipeline, select: &'a [String], exclude: &'a [String]) -> Self {
        Self {
            select: if select.is_empty() { &p.select } else { select },
            exclude: if exclude.is_empty() {
                &p.exclude
            } else {
                exclude
            },
            streams: &p.streams,
        }
    }
}

/// Applies selection and overrides; returns the selected stream ids.
pub(crate) fn apply(catalog: &mut Value, sel: &Selection<'_>) -> Vec<String> {
    let mut chosen = Vec::new();
    let Some(streams) = catalog.get_mut("streams").and_then(Value::as_array_mut) else {
        return chosen;
    };
    for s in streams {
        let id = s
            .get("tap_stream_id")
            .or_else(|| s.get("stream"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let meta = stream_meta(s);
        let already = meta
            .get("selected")
            .or_else(|| meta.get("selected-by-default"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let o = sel.streams.get(&id);
        let mut selected = if sel.select.is_empty() {
            already
        } else {
            sel.select.iter().any(|g| glob(g, &id))
        };
        if sel.exclude.iter().any(|g| glob(g, &id)) {
            selected = false;
        }
        if let Some(v) = o.and_then(|o| o.selected) {
            selected = v;
        }
        meta.insert("selected".into(), json!(selected));
        if let Some(o) = o {
            if let Some(m) = &o.replication_method {
                meta.insert("replication-method".into(), json!(m));
            }
            if let Some(k) = &o.replication_key {
                meta.insert("replication-key".into(), json!(k));
            }
            if let Some(k) = &o.key_properties {
                meta.insert("table-key-properties".into(), json!(k));
                meta.insert("view-key-properties".into(), json!(k));
            }
        }
        if selected {
            chosen.push(id);
        }
    }
    chosen
}

/// The stream-level metadata map (breadcrumb `[]`) of a catalog stream, created if absent.
fn stream_meta(stream: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !stream.get("metadata").is_some_and(Value::is_array) {
        stream["metadata"] = json!([]);
    }
    let list = stream["metadata"]
        .as_array_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut list = list;
    let pos = list.iter().position(|m| {
        m.get("breadcrumb")
            .is_some_and(|b| b.as_array().is_some_and(Vec::is_empty))
    });
    let idx = match pos {
        Some(i) => i,
        None => {
            list.push(json!({"breadcrumb": [], "metadata": {}}));
            list.len() - 1
        }
    };
    stream["metadata"] = Value::Array(list);
    let entry = &mut stream["metadata"][idx];
    if !entry.get("metadata").is_some_and(Value::is_object) {
        entry["metadata"] = json!({});
    }
    entry["metadata"]
        .as_object_mut()
        .expect("made an object above")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn globs() {
        assert!(glob("shop-*", "shop-orders"));
        assert!(!glob("shop-*", "crm-orders"));
        assert!(glob("*-ord?rs", "shop-orders"));
        assert!(glob("*", ""));
    }

    #[test]
    fn select_exclude_and_override() {
        let mut c = json!({"streams": [
            {"tap_stream_id": "shop-orders", "stream": "orders", "schema": {}, "metadata": []},
            {"tap_stream_id": "shop-audit", "stream": "audit", "schema": {},
             "metadata": [{"breadcrumb": [], "metadata": {"selected-by-default": true}}]},
            {"tap_stream_id": "crm-users", "stream": "users", "schema": {}}
        ]});
        let mut streams = BTreeMap::new();
        streams.insert(
            "shop-orders".to_string(),
            StreamOverride {
                replication_method: Some("INCREMENTAL".into()),
                replication_key: Some("updated_at".into()),
                ..Default::default()
            },
        );
        let select = vec!["shop-*".to_string()];
        let exclude = vec!["*-audit".to_string()];
        let chosen = apply(
            &mut c,
            &Selection {
                select: &select,
                exclude: &exclude,
                streams: &streams,
            },
        );
        assert_eq!(chosen, vec!["shop-orders"]);
        let m = &c["streams"][0]["metadata"][0]["metadata"];
        assert_eq!(m["replication-key"], "updated_at");
        assert_eq!(
            c["streams"][1]["metadata"][0]["metadata"]["selected"],
            false
        );
        assert_eq!(
            c["streams"][2]["metadata"][0]["metadata"]["selected"],
            false
        );
    }
}
