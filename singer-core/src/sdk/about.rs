//! `--about`: what a connector is, what it can do, and its settings as a JSON Schema.

use serde::Serialize;
use serde_json::Value;

/// The description of a connector printed by `--about`.
#[derive(Debug, Clone, Serialize)]
pub struct About {
    /// Executable name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Connector version.
    pub version: String,
    /// The SDK that built it.
    pub sdk_version: String,
    /// Capabilities in Meltano's vocabulary (`catalog`, `discover`, `state`, `about`, ...).
    pub capabilities: Vec<String>,
    /// JSON Schema of the config.
    pub settings: Value,
}

impl About {
    /// A description with the SDK version filled in.
    pub fn new(
        name: &str,
        description: &str,
        version: &str,
        capabilities: &[&str],
        settings: Value,
    ) -> Self {
        Self {
            name: name.to_string(),
            description: description.to_string(),
            version: version.to_string(),
            sdk_version: format!("singer-core {}", env!("CARGO_PKG_VERSION")),
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            settings,
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A Meltano plugin definition (YAML) naming `executable`, for `meltano add --from-ref`.
    pub fn to_meltano(&self, executable: &str) -> String {
        super::meltano::plugin_definition(self, executable)
    }

    /// Markdown with a settings table, as connector READMEs embed it.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "# {}\n\n{}\n\nVersion {} ({})\n\n",
            self.name, self.description, self.version, self.sdk_version
        );
        out.push_str("## Capabilities\n\n");
        for c in &self.capabilities {
            out.push_str(&format!("- `{c}`\n"));
        }
        out.push_str("\n## Settings\n\n| Setting | Type | Required | Default | Description |\n|---|---|---|---|---|\n");
        let required: Vec<&str> = self.settings["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = self.settings["properties"].as_object() {
            for (name, p) in props {
                let ty = type_label(p);
                let default = p
                    .get("default")
                    .map(|d| format!("`{d}`"))
                    .unwrap_or_default();
                let desc = p["description"].as_str().unwrap_or("").replace('\n', " ");
                let req = if required.contains(&name.as_str()) {
                    "yes"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "| `{name}` | {ty} | {req} | {default} | {desc} |\n"
                ));
            }
        }
        out
    }
}

fn type_label(p: &Value) -> String {
    match &p["type"] {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => {
            if p.get("$ref").is_some() || p.get("anyOf").is_some() || p.get("allOf").is_some() {
                "object".to_string()
            } else {
                "any".to_string()
            }
        }
    }
}
