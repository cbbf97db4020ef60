//! The project file (`singer.toml`): taps, targets and pipelines. Its JSON Schema is printed by
//! `singer schema`; `singer init` writes a commented starter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Default project file name.
pub(crate) const FILE_NAME: &str = "singer.toml";

/// The whole project.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Project {
    /// Where state, catalogs, spools and run records live (default `.singer` beside the file).
    #[serde(default)]
    pub(crate) home: Option<PathBuf>,
    /// Where confirmed states are kept.
    #[serde(default)]
    pub(crate) state: StateStoreConfig,
    /// Taps by name.
    #[serde(default)]
    pub(crate) taps: BTreeMap<String, Plugin>,
    /// Targets by name.
    #[serde(default)]
    pub(crate) targets: BTreeMap<String, Plugin>,
    /// Pipelines by name.
    #[serde(default)]
    pub(crate) pipelines: BTreeMap<String, Pipeline>,
}

/// A tap or target executable.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Plugin {
    /// The executable: a name on PATH or a path (relative to the project file).
    pub(crate) executable: String,
    /// Extra arguments, before the Singer ones.
    #[serde(default)]
    pub(crate) args: Vec<String>,
    /// How the catalog is passed to a tap: `--catalog` (default) or `--properties` (older
    /// singer-io taps).
    #[serde(default)]
    pub(crate) catalog_arg: Option<String>,
    /// Environment variables for the process (`${NAME}` is replaced from the environment).
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    /// A fixed catalog file (relative to the project file) for taps that cannot discover;
    /// when set, discovery is skipped.
    #[serde(default)]
    pub(crate) catalog: Option<PathBuf>,
    /// The connector's config; `${NAME}` in strings is replaced by environment variable NAME.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Value>")]
    pub(crate) config: toml::Table,
}

/// Where states are kept.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, tag = "backend", rename_all = "lowercase")]
pub(crate) enum StateStoreConfig {
    /// Files under `<home>/state` (atomic writes, history kept).
    #[default]
    Local,
    /// A table in PostgreSQL, for several machines; locks are advisory locks.
    Postgres {
        /// `postgresql://user@host:port/db`; `${NAME}` is replaced from the environment.
        url: String,
        /// Schema of the state tables (default `singer`).
        #[serde(default = "default_state_schema")]
        schema: String,
    },
}

fn default_state_schema() -> String {
    "singer".into()
}

/// A tap → target pipeline.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Pipeline {
    pub(crate) tap: String,
    pub(crate) target: String,
    /// Streams to select, as globs over `tap_stream_id` (default: those the tap selects).
    #[serde(default)]
    pub(crate) select: Vec<String>,
    /// Streams never to select (globs), applied after `select`.
    #[serde(default)]
    pub(crate) exclude: Vec<String>,
    /// Per-stream overrides, by `tap_stream_id`.
    #[serde(default)]
    pub(crate) streams: BTreeMap<String, StreamOverride>,
    /// Cron schedule: 5 fields, or 6 with seconds first.
    #[serde(default)]
    pub(crate) schedule: Option<String>,
    /// Time zone of the schedule (IANA name, default UTC).
    #[serde(default)]
    pub(crate) timezone: Option<String>,
    /// Extra attempts after a failed run (resuming from the confirmed state).
    #[serde(default)]
    pub(crate) retries: u32,
    /// Longest a run may take, e.g. `90s`, `15m`, `2h`.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(with = "Option<String>")]
    pub(crate) timeout: Option<Duration>,
    /// When a run stops early (SIGTERM or Ctrl-C to `singer`, or `timeout`), how long the
    /// target may take, from the tap's SIGTERM, to commit what it received and exit before it
    /// gets SIGTERM itself (then SIGKILL 10 s later). Default `60s`: longer than
    /// target-postgres's 30 s `drain_timeout_seconds`.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(with = "Option<String>")]
    pub(crate) stop_grace: Option<Duration>,
    /// Bytes buffered between tap and target (default 16 MiB), e.g. `64MiB`.
    #[serde(default, deserialize_with = "opt_bytes")]
    #[schemars(with = "Option<String>")]
    pub(crate) buffer: Option<u64>,
    /// Spool the tap's output to batch files before loading.
    #[serde(default)]
    pub(crate) spool: Option<SpoolConfig>,
    /// State id (default: the pipeline name).
    #[serde(default)]
    pub(crate) state_id: Option<String>,
}

/// Overrides for one stream.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamOverride {
    /// FULL_TABLE, INCREMENTAL or LOG_BASED.
    #[serde(default)]
    pub(crate) replication_method: Option<String>,
    /// The replication key for INCREMENTAL.
    #[serde(default)]
    pub(crate) replication_key: Option<String>,
    /// Key properties (for views or tables without a primary key).
    #[serde(default)]
    pub(crate) key_properties: Option<Vec<String>>,
    /// Select (true) or deselect (false) regardless of globs.
    #[serde(default)]
    pub(crate) selected: Option<bool>,
}

/// How the tap's output is cut into batch files.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpoolConfig {
    /// Cut a batch after this many records (default 100000).
    #[serde(default = "default_spool_records")]
    pub(crate) max_records: u64,
    /// Cut a batch after this many uncompressed bytes (default 64MiB).
    #[serde(default = "default_spool_bytes", deserialize_with = "bytes")]
    #[schemars(with = "String")]
    pub(crate) max_bytes: u64,
    /// Cut a batch once its first line is this old (default 60s).
    #[serde(default = "default_spool_age", deserialize_with = "duration")]
    #[schemars(with = "String")]
    pub(crate) max_age: Duration,
    /// How RECORDs are stored: `jsonl` (default: the tap's lines, zstd) or `parquet` (one
    /// Parquet file per stream and batch, loaded through BATCH messages).
    #[serde(default)]
    pub(crate) format: SpoolFormat,
    /// Also keep the batches in object storage, `s3://bucket/prefix` (credentials and
    /// endpoint from the standard `AWS_*` environment variables), so that any machine
    /// running the pipeline can list and replay them. Default: the home only.
    #[serde(default)]
    pub(crate) root: Option<String>,
}

/// How the spool stores RECORDs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SpoolFormat {
    /// The tap's lines as they came, zstd-compressed.
    #[default]
    Jsonl,
    /// RECORDs as Parquet files named by BATCH lines.
    Parquet,
}

fn default_spool_records() -> u64 {
    100_000
}
fn default_spool_bytes() -> u64 {
    64 << 20
}
fn default_spool_age() -> Duration {
    Duration::from_secs(60)
}

/// Reads and checks a project file.
pub(crate) fn load(path: &Path) -> Result<Project, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let project: Project = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    project
        .check()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(project)
}

impl Project {
    fn check(&self) -> Result<(), String> {
        for (name, p) in &self.pipelines {
            if !self.taps.contains_key(&p.tap) {
                return Err(format!("pipeline `{name}`: no tap named `{}`", p.tap));
            }
            if !self.targets.contains_key(&p.target) {
                return Err(format!("pipeline `{name}`: no target named `{}`", p.target));
            }
            if let Some(s) = &p.schedule {
                crate::schedule::parse(s, p.timezone.as_deref())
                    .map_err(|e| format!("pipeline `{name}`: schedule `{s}`: {e}"))?;
            }
            if let Some(root) = p.spool.as_ref().and_then(|s| s.root.as_deref()) {
                crate::spool::check_root(root)
                    .map_err(|e| format!("pipeline `{name}`: spool.root: {e}"))?;
            }
            for (id, o) in &p.streams {
                if let Some(m) = &o.replication_method
                    && !matches!(m.as_str(), "FULL_TABLE" | "INCREMENTAL" | "LOG_BASED")
                {
                    return Err(format!(
                        "pipeline `{name}` stream `{id}`: replication_method must be FULL_TABLE, INCREMENTAL or LOG_BASED"
                    ));
                }
            }
        }
        Ok(())
    }

    /// A pipeline by name, with a helpful error.
    pub(crate) fn pipeline(&self, name: &str) -> Result<&Pipeline, String> {
        self.pipelines.get(name).ok_or_else(|| {
            let known: Vec<&String> = self.pipelines.keys().collect();
            format!("no pipeline named `{name}` (the project has {known:?})")
        })
    }
}

impl Pipeline {
    pub(crate) fn state_id<'a>(&'a self, name: &'a str) -> &'a str {
        self.state_id.as_deref().unwrap_or(name)
    }
}

/// The connector config as JSON, with `${NAME}` replaced from the environment. A missing
/// variable is an error that names it (values are never shown).
pub(crate) fn resolve_config(config: &toml::Table) -> Result<Value, String> {
    let v = serde_json::to_value(config).map_err(|e| e.to_string())?;
    interpolate(v)
}

/// A plugin's environment with `${NAME}` replaced.
pub(crate) fn resolve_env(env: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, String> {
    env.iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                interpolate_str(v).map_err(|e| format!("env `{k}`: {e}"))?,
            ))
        })
        .collect()
}

fn interpolate(v: Value) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(interpolate_str(&s)?),
        Value::Array(a) => Value::Array(a.into_iter().map(interpolate).collect::<Result<_, _>>()?),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| Ok((k, interpolate(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other,
    })
}

/// Replaces `${NAME}` (and `$${` → `${`).
pub(crate) fn interpolate_str(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated `${{` in `{s}`"))?;
        let name = &after[..end];
        let value =
            std::env::var(name).map_err(|_| format!("environment variable `{name}` is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `90s`, `15m`, `2h`, `1d`, or plain seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bad duration `{s}`"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => return Ok(Duration::from_millis(n)),
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("bad duration `{s}` (use s, m, h or d)")),
    };
    Ok(Duration::from_secs(secs))
}

/// `16MiB`, `512KiB`, `1GiB`, `1000` bytes.
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bad size `{s}`"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        _ => return Err(format!("bad size `{s}` (use KiB, MiB or GiB)")),
    };
    Ok(n * mult)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Num(u64),
    Str(String),
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Num(n) => Ok(Duration::from_secs(n)),
        NumOrStr::Str(s) => parse_duration(&s).map_err(serde::de::Error::custom),
    }
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Num(n) => Ok(n),
        NumOrStr::Str(s) => parse_bytes(&s).map_err(serde::de::Error::custom),
    }
}

fn opt_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    bytes(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_interpolation_names_missing_variables() {
        // SAFETY-free: only reads; the variable below is set by the test runner environment.
        assert_eq!(interpolate_str("a $${b} c").unwrap(), "a ${b} c");
        let err = interpolate_str("x ${SINGER_SURELY_UNSET_VAR} y").unwrap_err();
        assert!(err.contains("SINGER_SURELY_UNSET_VAR"), "{err}");
        let path = std::env::var("PATH").unwrap();
        assert_eq!(interpolate_str("${PATH}").unwrap(), path);
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_bytes("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("2 weeks").is_err());
    }
}
