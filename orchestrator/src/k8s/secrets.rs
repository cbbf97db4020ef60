//! Keeping secrets out of the ConfigMap.
//!
//! The project file goes into a ConfigMap, which anyone who may read the namespace's config can
//! read. So before it is rendered, every secret in it becomes a `${NAME}` reference, and `NAME`
//! becomes an environment variable of the pod, read from a Secret the user creates
//! (`valueFrom.secretKeyRef`). Two kinds of values are handled:
//!
//! - **References already there** (`password = "${PG_PASSWORD}"`): the project reads `NAME`
//!   from the environment, so the pod gets `NAME` from the Secret's key `NAME`. Every `${NAME}`
//!   is treated this way, secret or not: the render never reads the environment it runs in, so
//!   no value of this machine ends up in a manifest.
//! - **Literal secrets** (`password = "hunter2"` in the file): a setting whose name says it is
//!   secret (password, secret, token, key, credential, …) or a URL with a password in it is
//!   replaced by `${SINGER_<TAP|TARGET>_<NAME>_<SETTING>}`, a key the Secret must then hold. The
//!   value itself is dropped and never printed.

use std::collections::{BTreeMap, BTreeSet};

/// Secret keys found while rewriting the project, and where they are used.
#[derive(Debug, Default)]
pub(super) struct SecretKeys {
    /// Environment variable (= Secret key) → what it is for, for the template and the docs.
    pub(super) keys: BTreeMap<String, String>,
    /// Scope (`taps.<name>`, `targets.<name>`, `state`) → the keys it reads.
    pub(super) by_scope: BTreeMap<String, BTreeSet<String>>,
    /// Literal secrets moved out of the file, described without their values.
    pub(super) moved: Vec<String>,
}

impl SecretKeys {
    pub(super) fn need(&mut self, scope: &str, key: &str, why: String) {
        self.keys.entry(key.to_string()).or_insert(why);
        self.by_scope
            .entry(scope.to_string())
            .or_default()
            .insert(key.to_string());
    }

    /// The keys a pipeline's pod needs: its tap's, its target's and the state store's.
    pub(super) fn for_scopes(&self, scopes: &[String]) -> BTreeSet<String> {
        scopes
            .iter()
            .filter_map(|s| self.by_scope.get(s))
            .flatten()
            .cloned()
            .collect()
    }
}

/// Whether a setting's name marks it as secret.
pub(super) fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "token",
        "credential",
        "private_key",
        "api_key",
        "apikey",
        "access_key",
        "client_key",
        "ssl_key",
        "sslkey",
        "auth",
        "cookie",
        "signature",
    ];
    n == "key" || WORDS.iter().any(|w| n.contains(w))
}

/// Whether a string is a URL with a password in it (`scheme://user:password@host`).
pub(super) fn url_has_password(s: &str) -> bool {
    let Some((_, rest)) = s.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// The `NAME`s of the `${NAME}` references in `s` (`$${` is a literal `${`).
pub(super) fn references(s: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        let escaped = rest[..i].ends_with('$');
        let after = &rest[i + 2..];
        if escaped {
            rest = after;
            continue;
        }
        let Some(end) = after.find('}') else { break };
        names.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    names
}

/// `SINGER_TAP_SHOP_DB_PASSWORD` from `["TAP", "shop_db", "password"]`.
fn env_name(parts: &[&str]) -> String {
    let mut out = String::from("SINGER");
    for p in parts {
        out.push('_');
        out.extend(p.chars().map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        }));
    }
    out
}

/// Rewrites one plugin's `config` or `env` table in place.
pub(super) fn rewrite_table(
    table: &mut toml::Table,
    scope: &str,
    prefix: &[&str],
    inherited_secret: bool,
    keys: &mut SecretKeys,
) {
    for (name, value) in table.iter_mut() {
        let mut path: Vec<&str> = prefix.to_vec();
        path.push(name);
        let secret = inherited_secret || is_secret_name(name);
        rewrite_value(value, scope, &path, secret, keys);
    }
}

fn rewrite_value(
    value: &mut toml::Value,
    scope: &str,
    path: &[&str],
    secret: bool,
    keys: &mut SecretKeys,
) {
    let setting = path[2..].join(".");
    match value {
        toml::Value::Table(t) => rewrite_table(t, scope, path, secret, keys),
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let index = i.to_string();
                let mut p = path.to_vec();
                p.push(&index);
                rewrite_value(item, scope, &p, secret, keys);
            }
        }
        toml::Value::String(s) => {
            let refs = references(s);
            if !refs.is_empty() {
                for r in refs {
                    keys.need(
                        scope,
                        &r,
                        format!("`${{{r}}}` in {scope} setting `{setting}`"),
                    );
                }
            } else if secret || url_has_password(s) {
                move_literal(value, scope, path, &setting, keys);
            }
        }
        _ if secret => move_literal(value, scope, path, &setting, keys),
        _ => {}
    }
}

fn move_literal(
    value: &mut toml::Value,
    scope: &str,
    path: &[&str],
    setting: &str,
    keys: &mut SecretKeys,
) {
    let name = env_name(path);
    keys.need(
        scope,
        &name,
        format!("{scope} setting `{setting}` (a literal in singer.toml, moved out)"),
    );
    keys.moved.push(format!(
        "{scope} setting `{setting}` is a literal secret in singer.toml: the ConfigMap reads it from Secret key `{name}` instead"
    ));
    *value = toml::Value::String(format!("${{{name}}}"));
}

/// Rewrites the `[state]` table's URL (a PostgreSQL state store).
pub(super) fn rewrite_state(state: &mut toml::Table, keys: &mut SecretKeys) {
    let Some(toml::Value::String(url)) = state.get_mut("url") else {
        return;
    };
    let refs = references(url);
    if !refs.is_empty() {
        for r in refs {
            keys.need("state", &r, format!("`${{{r}}}` in the state store URL"));
        }
    } else if url_has_password(url) {
        let name = "SINGER_STATE_URL".to_string();
        keys.need(
            "state",
            &name,
            "the state store URL (a literal with a password in singer.toml, moved out)".into(),
        );
        keys.moved.push(format!(
            "the state store URL holds a password: the ConfigMap reads it from Secret key `{name}` instead"
        ));
        *url = format!("${{{name}}}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_and_urls() {
        for n in [
            "password",
            "PGPASSWORD",
            "api_key",
            "aws_secret_access_key",
            "token",
            "key",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in [
            "host",
            "user",
            "replication_key",
            "key_properties",
            "dbname",
        ] {
            assert!(!is_secret_name(n), "{n}");
        }
        assert!(url_has_password("postgresql://u:p@h:5432/db"));
        assert!(!url_has_password("postgresql://u@h:5432/db"));
        assert!(!url_has_password("postgresql://h:5432/db?x=a:b@c"));
    }

    #[test]
    fn references_skip_escapes() {
        assert_eq!(references("a ${X} $${Y} ${Z}"), ["X", "Z"]);
    }

    #[test]
    fn literals_move_and_references_stay() {
        let mut t: toml::Table = toml::from_str(
            "host = 'h'\npassword = 'hunter2'\nuser = '${PG_USER}'\nport = 5432\n\
             [nested]\nclient_secret = 99\n",
        )
        .unwrap();
        let mut keys = SecretKeys::default();
        rewrite_table(&mut t, "taps.db", &["TAP", "db"], false, &mut keys);
        let text = toml::to_string(&t).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("99"), "{text}");
        assert!(text.contains("${SINGER_TAP_DB_PASSWORD}"), "{text}");
        assert!(
            text.contains("${SINGER_TAP_DB_NESTED_CLIENT_SECRET}"),
            "{text}"
        );
        assert_eq!(
            keys.for_scopes(&["taps.db".into()])
                .into_iter()
                .collect::<Vec<_>>(),
            [
                "PG_USER",
                "SINGER_TAP_DB_NESTED_CLIENT_SECRET",
                "SINGER_TAP_DB_PASSWORD"
            ]
        );
    }
}
