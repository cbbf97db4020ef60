//! `--about --format meltano`: a Meltano plugin definition derived from [`About`], so a
//! connector can be added to a Meltano project without a wrapper, a Hub entry or interactive
//! prompts:
//!
//! ```sh
//! tap-mysql --about --format meltano > tap-mysql.yml
//! meltano add --plugin-type extractor tap-mysql --from-ref tap-mysql.yml
//! ```
//!
//! The definition has no `pip_url` (Meltano then installs nothing) and an absolute
//! `executable:` (the binary that printed it); `capabilities` are the connector's; `settings`
//! are the top-level properties of its config schema, each with a Meltano `kind` (`$ref`s and
//! nullable `anyOf`s resolved: strings with an `enum` become `options`, objects and arrays keep
//! their JSON shape); `settings_group_validation` lists the required ones. Defaults are not
//! given as `value:` (Meltano would then pass every default in the config file); the
//! description says them instead, and the connector applies them. A setting is `sensitive`
//! when its schema says `writeOnly` or `secret`, or its name contains `password` or `secret`.
//!
//! The output is YAML whose scalars are JSON strings (valid YAML double-quoted scalars), so
//! no YAML library is needed and any description text round-trips.

use serde_json::Value;

use super::About;

/// One Meltano setting.
#[derive(Debug, Clone, PartialEq)]
struct Setting {
    name: String,
    kind: &'static str,
    description: Option<String>,
    sensitive: bool,
    options: Vec<String>,
}

/// The plugin definition as YAML; `executable` is written as given.
pub(crate) fn plugin_definition(about: &About, executable: &str) -> String {
    let mut out = format!(
        "# Meltano plugin definition of {} {}, printed by `{} --about --format meltano`.\n\
         # Add it with: meltano add --plugin-type {} {} --from-ref <this file>\n",
        about.name,
        about.version,
        about.name,
        plugin_type(&about.name),
        about.name,
    );
    out.push_str(&format!("name: {}\n", quote(&about.name)));
    out.push_str(&format!(
        "namespace: {}\n",
        quote(&about.name.replace('-', "_"))
    ));
    out.push_str(&format!("label: {}\n", quote(&about.name)));
    out.push_str(&format!("description: {}\n", quote(&about.description)));
    out.push_str(&format!("executable: {}\n", quote(executable)));
    out.push_str("capabilities:\n");
    for c in &about.capabilities {
        out.push_str(&format!("- {}\n", quote(c)));
    }
    let settings = settings(&about.settings);
    if settings.is_empty() {
        out.push_str("settings: []\n");
    } else {
        out.push_str("settings:\n");
    }
    for s in &settings {
        out.push_str(&format!("- name: {}\n  kind: {}\n", quote(&s.name), s.kind));
        if let Some(d) = &s.description {
            out.push_str(&format!("  description: {}\n", quote(d)));
        }
        if s.sensitive {
            out.push_str("  sensitive: true\n");
        }
        if !s.options.is_empty() {
            out.push_str("  options:\n");
            for o in &s.options {
                out.push_str(&format!("  - label: {0}\n    value: {0}\n", quote(o)));
            }
        }
    }
    let required: Vec<&str> = about.settings["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !required.is_empty() {
        out.push_str("settings_group_validation:\n");
        for (i, name) in required.iter().enumerate() {
            let lead = if i == 0 { "- - " } else { "  - " };
            out.push_str(&format!("{lead}{}\n", quote(name)));
        }
    }
    out
}

/// Meltano's plugin type for `meltano add`, from the naming convention.
fn plugin_type(name: &str) -> &'static str {
    if name.starts_with("target-") {
        "loader"
    } else {
        "extractor"
    }
}

/// A JSON string: a valid YAML double-quoted scalar for any text.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// The top-level properties of a config schema as Meltano settings, in schema order.
fn settings(schema: &Value) -> Vec<Setting> {
    let Some(props) = schema["properties"].as_object() else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, prop)| {
            let resolved = resolve(schema, prop);
            let options = options(&resolved);
            let kind = if options.is_empty() {
                kind(&resolved)
            } else {
                "options"
            };
            let sensitive = [prop, &resolved].iter().any(|p| {
                p["writeOnly"].as_bool() == Some(true) || p["secret"].as_bool() == Some(true)
            }) || name.contains("password")
                || name.contains("secret");
            Setting {
                name: name.clone(),
                kind,
                description: description(prop, &resolved),
                sensitive,
                options,
            }
        })
        .collect()
}

/// The values of a string enumeration: `enum`, or `oneOf`/`anyOf` branches each holding one
/// `const` (as schemars writes a documented Rust enum); empty for anything else.
fn options(p: &Value) -> Vec<String> {
    if let Some(values) = p["enum"].as_array() {
        return values
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect();
    }
    let Some(branches) = p
        .get("oneOf")
        .or_else(|| p.get("anyOf"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let values: Option<Vec<String>> = branches
        .iter()
        .map(|b| b["const"].as_str().map(String::from))
        .collect();
    values.unwrap_or_default()
}

/// A property with `$ref`s followed and a nullable `anyOf`/`oneOf` reduced to its non-null
/// branch; the property's own keys (description, default) are kept beside the target's.
fn resolve(root: &Value, prop: &Value) -> Value {
    let mut current = prop.clone();
    for _ in 0..8 {
        if let Some(target) = current["$ref"].as_str().and_then(|r| lookup(root, r)) {
            current = merge(&current, target);
            continue;
        }
        let branches = current
            .get("anyOf")
            .or_else(|| current.get("oneOf"))
            .or_else(|| current.get("allOf"))
            .and_then(Value::as_array);
        if let Some(branches) = branches {
            let non_null: Vec<&Value> = branches
                .iter()
                .filter(|b| b["type"].as_str() != Some("null"))
                .collect();
            if let [only] = non_null.as_slice() {
                current = merge(&current, only);
                continue;
            }
        }
        break;
    }
    current
}

/// `#/$defs/Name` or `#/definitions/Name`.
fn lookup<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    root.pointer(reference.strip_prefix('#')?)
}

/// `inner` with `outer`'s annotations; the composition keywords are dropped.
fn merge(outer: &Value, inner: &Value) -> Value {
    let mut merged = inner.as_object().cloned().unwrap_or_default();
    if let Some(o) = outer.as_object() {
        for (k, v) in o {
            if !matches!(k.as_str(), "$ref" | "anyOf" | "oneOf" | "allOf") {
                merged.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(merged)
}

/// The Meltano kind of a resolved property schema.
fn kind(p: &Value) -> &'static str {
    let ty = match &p["type"] {
        Value::String(s) => Some(s.as_str()),
        Value::Array(a) => a.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    };
    match ty {
        Some("integer") => "integer",
        Some("number") => "decimal",
        Some("boolean") => "boolean",
        Some("array") => "array",
        Some("object") => "object",
        Some("string") if matches!(p["format"].as_str(), Some("date-time" | "date")) => {
            "date_iso8601"
        }
        Some("string") => "string",
        // No type: any JSON value (settings kept for compatibility); Meltano passes an
        // object-kind value through as JSON.
        _ if p.get("properties").is_some() => "object",
        _ => "string",
    }
}

/// The description, with the default appended.
fn description(prop: &Value, resolved: &Value) -> Option<String> {
    let text = prop["description"]
        .as_str()
        .or_else(|| resolved["description"].as_str())
        .map(|d| d.trim().replace('\n', " "));
    let default = prop.get("default").or_else(|| resolved.get("default"));
    // Many descriptions already say their default in words.
    let default = default.filter(|_| {
        !text
            .as_deref()
            .is_some_and(|t| t.to_lowercase().contains("default"))
    });
    match (text, default) {
        (Some(t), Some(d)) if !d.is_null() => Some(format!("{t} (default: {d})")),
        (None, Some(d)) if !d.is_null() => Some(format!("Default: {d}")),
        (t, _) => t,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn about(settings: Value) -> About {
        About::new("tap-x", "A tap", "1.2.3", &["catalog", "state"], settings)
    }

    #[test]
    fn settings_take_meltano_kinds() {
        let schema = json!({
            "type": "object",
            "required": ["host", "user"],
            "properties": {
                "host": {"type": "string", "description": "Server host."},
                "port": {"type": "integer", "default": 3306, "description": "Port."},
                "rows": {"type": "integer", "default": 5, "description": "Rows (default 5)."},
                "password": {"type": ["string", "null"]},
                "ssl": {"type": "boolean"},
                "ratio": {"type": "number"},
                "start_date": {"type": "string", "format": "date-time"},
                "engine": {"anyOf": [{"$ref": "#/$defs/Engine"}, {"type": "null"}],
                           "description": "Flavour."},
                "batch_config": {"anyOf": [{"$ref": "#/$defs/Batch"}, {"type": "null"}]},
                "session_sqls": {"type": ["array", "null"], "items": {"type": "string"}},
                "legacy": true,
                "token": {"type": "string", "writeOnly": true}
            },
            "$defs": {
                "Engine": {"oneOf": [{"type": "string", "const": "mysql"},
                                     {"type": "string", "const": "mariadb"}]},
                "Batch": {"type": "object", "properties": {"batch_size": {"type": "integer"}}}
            }
        });
        let got = settings(&schema);
        let kinds: Vec<(&str, &str, bool)> = got
            .iter()
            .map(|s| (s.name.as_str(), s.kind, s.sensitive))
            .collect();
        assert_eq!(
            kinds,
            [
                ("host", "string", false),
                ("port", "integer", false),
                ("rows", "integer", false),
                ("password", "string", true),
                ("ssl", "boolean", false),
                ("ratio", "decimal", false),
                ("start_date", "date_iso8601", false),
                ("engine", "options", false),
                ("batch_config", "object", false),
                ("session_sqls", "array", false),
                ("legacy", "string", false),
                ("token", "string", true),
            ]
        );
        assert_eq!(got[1].description.as_deref(), Some("Port. (default: 3306)"));
        assert_eq!(got[2].description.as_deref(), Some("Rows (default 5)."));
        assert_eq!(got[7].options, ["mysql", "mariadb"]);
        assert_eq!(got[7].description.as_deref(), Some("Flavour."));
    }

    #[test]
    fn definition_is_yaml_with_json_scalars() {
        let schema = json!({
            "type": "object",
            "required": ["host", "user"],
            "properties": {
                "host": {"type": "string", "description": "Host: \"quoted\"\nnext"},
                "user": {"type": "string"},
                "engine": {"type": "string", "enum": ["a"]}
            }
        });
        let yaml = plugin_definition(&about(schema), "/opt/bin/tap-x");
        let want = "\
# Meltano plugin definition of tap-x 1.2.3, printed by `tap-x --about --format meltano`.
# Add it with: meltano add --plugin-type extractor tap-x --from-ref <this file>
name: \"tap-x\"
namespace: \"tap_x\"
label: \"tap-x\"
description: \"A tap\"
executable: \"/opt/bin/tap-x\"
capabilities:
- \"catalog\"
- \"state\"
settings:
- name: \"host\"
  kind: string
  description: \"Host: \\\"quoted\\\" next\"
- name: \"user\"
  kind: string
- name: \"engine\"
  kind: options
  options:
  - label: \"a\"
    value: \"a\"
settings_group_validation:
- - \"host\"
  - \"user\"
";
        assert_eq!(yaml, want);
    }

    #[test]
    fn loaders_are_named_by_prefix() {
        assert_eq!(plugin_type("target-postgres"), "loader");
        assert_eq!(plugin_type("tap-mysql"), "extractor");
    }
}
