//! `singer k8s`: Kubernetes manifests for the project's scheduled pipelines.
//!
//! What is rendered:
//! - one **ConfigMap** with the project file, rewritten for the pod (`home` on a writable
//!   volume, fixed catalogs as keys beside it, executables by file name, secrets as `${NAME}`
//!   references, each CronJob's `retries` set to 0 because the Job retries instead), mounted
//!   at [`PROJECT_DIR`] where `SINGER_PROJECT` points;
//! - one **CronJob** per scheduled pipeline: `singer run <pipeline>`, `concurrencyPolicy:
//!   Forbid`, the schedule and time zone, `backoffLimit` = the pipeline's retries (each retry
//!   a new pod that resumes from the confirmed state), exit codes 2 (config) and 3 (already
//!   running) failing the Job at once, requests and limits from the run history
//!   ([`resources`]);
//! - a **Secret template** (`--secret-template`, or `secret.yaml.template` with `--output`)
//!   listing the keys the pods read, with placeholder values only ([`secrets`]).
//!
//! State must outlive the pod: a PostgreSQL state store works as is (its advisory locks also
//! work across pods); a local store needs `--home-pvc`, a PersistentVolumeClaim mounted as the
//! home; without either the render refuses, since every run would start from scratch.

mod resources;
mod secrets;
mod yaml;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::project::{self, Project, StateStoreConfig};
use crate::run::println_stdout;

/// Where the ConfigMap (the project file and its catalogs) is mounted.
pub(crate) const PROJECT_DIR: &str = "/etc/singer";
/// The orchestrator's home in the pod (state, catalogs cache, spool, locks, run records).
pub(crate) const HOME_DIR: &str = "/var/lib/singer";
/// The user and group the container runs as (the image's `singer` user).
const RUN_AS: u32 = 10001;
/// Seconds between SIGTERM and SIGKILL for the pod: `singer` stops the tap, lets the target
/// commit (up to the pipeline's `stop_grace`, a minute by default, then 10 s more after its own
/// SIGTERM) and stores its last states in between. At least this; more with a longer
/// `stop_grace` (see [`termination_grace`]).
const GRACE_SECONDS: u32 = 90;
/// A ConfigMap holds at most 1 MiB.
const CONFIGMAP_MAX_BYTES: usize = 1 << 20;
/// CronJob names are at most 52 characters (the Job controller appends 11).
const CRONJOB_NAME_MAX: usize = 52;

/// `singer k8s` options.
#[derive(Debug, clap::Args)]
pub(crate) struct K8sArgs {
    /// Container image holding `singer`, the taps and the targets (see deploy/Dockerfile).
    #[arg(long, default_value = "singer-rs:latest")]
    image: String,
    /// Namespace of every object (default: none, so kubectl's current namespace).
    #[arg(long)]
    namespace: Option<String>,
    /// Prefix of every object's name.
    #[arg(long, default_value = "singer-")]
    name_prefix: String,
    /// Write one file per object into this directory (and `secret.yaml.template`, which
    /// `kubectl apply -f DIR` skips) instead of printing them.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// The Secret the pods read secret settings from (default: `<prefix>secrets`).
    #[arg(long)]
    secret_name: Option<String>,
    /// A PersistentVolumeClaim mounted as the orchestrator's home; required with a local state
    /// store (ReadWriteMany when pods may land on different nodes).
    #[arg(long)]
    home_pvc: Option<String>,
    /// How late (seconds) a Job may still start after its scheduled time.
    #[arg(long, default_value_t = 300)]
    starting_deadline: u32,
    /// Finished Jobs kept per CronJob.
    #[arg(long, default_value_t = 3)]
    successful_jobs_history: u32,
    /// Failed Jobs kept per CronJob.
    #[arg(long, default_value_t = 3)]
    failed_jobs_history: u32,
    /// Print only the Secret template (placeholder values) and stop.
    #[arg(long)]
    secret_template: bool,
}

/// Everything `singer k8s` renders.
struct Rendered {
    /// (file name, object), in output order.
    objects: Vec<(String, Value)>,
    secret_template: Value,
    secret_keys: Vec<(String, String)>,
    skipped: Vec<String>,
    warnings: Vec<String>,
}

/// Runs `singer k8s` for the project file at `path`.
pub(crate) fn command(path: &Path, args: &K8sArgs) -> Result<(), String> {
    let r = render(path, args)?;
    let mut stderr = std::io::stderr();
    for w in &r.warnings {
        let _ = writeln!(stderr, "warning: {w}");
    }
    for s in &r.skipped {
        let _ = writeln!(stderr, "note: {s}");
    }
    let secret_name = secret_name(args);
    if args.secret_template {
        println_stdout(secret_template_text(&r).trim_end());
        return Ok(());
    }
    match &args.output {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for (file, obj) in &r.objects {
                let p = dir.join(file);
                std::fs::write(&p, yaml::document(obj))
                    .map_err(|e| format!("{}: {e}", p.display()))?;
            }
            let p = dir.join("secret.yaml.template");
            std::fs::write(&p, secret_template_text(&r))
                .map_err(|e| format!("{}: {e}", p.display()))?;
            let _ = writeln!(
                stderr,
                "wrote {} manifests and secret.yaml.template to {}",
                r.objects.len(),
                dir.display()
            );
        }
        None => {
            let mut text = header(&r, &secret_name);
            for (_, obj) in &r.objects {
                text.push_str("---\n");
                text.push_str(&yaml::document(obj));
            }
            println_stdout(text.trim_end());
        }
    }
    if !r.secret_keys.is_empty() {
        let keys: Vec<&str> = r.secret_keys.iter().map(|(k, _)| k.as_str()).collect();
        let _ = writeln!(
            stderr,
            "hint: create Secret `{secret_name}` with the keys {} before applying (`singer k8s --secret-template` prints a template)",
            keys.join(", ")
        );
    }
    Ok(())
}

/// The Secret template: placeholder values only, each key explained in a comment.
fn secret_template_text(r: &Rendered) -> String {
    let mut t = String::from(
        "# The Secret the pipelines read their secret settings from. Replace every REPLACE_ME,\n\
         # then `kubectl apply -f` it (or create the Secret another way with the same keys).\n",
    );
    for (k, why) in &r.secret_keys {
        t.push_str(&format!("#   {k}: {why}\n"));
    }
    t.push_str(&yaml::document(&r.secret_template));
    t
}

/// The comment at the top of the printed stream: the Secret's keys and what was left out.
fn header(r: &Rendered, secret_name: &str) -> String {
    let mut h = String::from("# Rendered by `singer k8s` from singer.toml.\n");
    if r.secret_keys.is_empty() {
        h.push_str("# The pipelines read no secrets.\n");
    } else {
        h.push_str(&format!(
            "# Create Secret `{secret_name}` first (`singer k8s --secret-template` prints a template); its keys:\n"
        ));
        for (k, why) in &r.secret_keys {
            h.push_str(&format!("#   {k}: {why}\n"));
        }
    }
    for s in &r.skipped {
        h.push_str(&format!("# Not rendered: {s}\n"));
    }
    h
}

fn secret_name(args: &K8sArgs) -> String {
    args.secret_name
        .clone()
        .unwrap_or_else(|| format!("{}secrets", args.name_prefix))
}

/// A DNS-1123 label from `prefix` + `name` (lowercase alphanumerics and `-`).
fn object_name(prefix: &str, name: &str, max: usize) -> Result<String, String> {
    let raw: String = format!("{prefix}{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let out = raw.trim_matches('-').to_string();
    if out.is_empty() || out.len() > max {
        return Err(format!(
            "`{prefix}{name}` does not make a Kubernetes name of 1 to {max} characters (shorten the pipeline name or --name-prefix)"
        ));
    }
    Ok(out)
}

/// A label value: at most 63 characters of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
fn label_value(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// Why a pipeline cannot be a CronJob, if it cannot.
fn unsupported_schedule(schedule: &str) -> Option<String> {
    if schedule.split_whitespace().count() == 6 {
        return Some(
            "a 6-field (seconds) schedule, which CronJobs cannot express; use `singer schedule` in a Deployment".into(),
        );
    }
    if schedule.contains(['L', 'W', '#']) {
        return Some(format!(
            "schedule `{schedule}` uses L, W or #, which CronJobs do not support"
        ));
    }
    None
}

fn metadata(name: &str, namespace: Option<&str>, labels: &Value) -> Value {
    let mut m = json!({ "name": name });
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m["labels"] = labels.clone();
    m
}

/// The home directory of a loaded project (where `runs.jsonl` is), as `singer` finds it.
fn home_of(path: &Path, project: &Project) -> PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    match &project.home {
        Some(h) => dir.join(h),
        None => dir.join(".singer"),
    }
}

/// Renders the manifests without writing anything.
fn render(path: &Path, args: &K8sArgs) -> Result<Rendered, String> {
    let project = project::load(path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut raw: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let project_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut warnings = Vec::new();

    match (&project.state, &args.home_pvc) {
        (StateStoreConfig::Local, None) => {
            return Err(format!(
                "{}: states are kept in local files, which a pod loses when it ends, so every run would start from scratch\n\
                 hint: keep states in PostgreSQL (`[state] backend = \"postgres\"`, url = \"${{SINGER_STATE_URL}}\"), \
                 or pass --home-pvc CLAIM to keep the home (states, spool, run history) on a PersistentVolumeClaim",
                path.display()
            ));
        }
        (StateStoreConfig::Local, Some(claim)) => warnings.push(format!(
            "states are local files on PersistentVolumeClaim `{claim}`: give it ReadWriteMany access if the pods can run on different nodes (locks are flock locks on that volume)"
        )),
        (StateStoreConfig::Postgres { .. }, _) => {}
    }

    // Which pipelines become CronJobs.
    let mut scheduled = Vec::new();
    let mut skipped = Vec::new();
    for (name, p) in &project.pipelines {
        match &p.schedule {
            None => skipped.push(format!(
                "pipeline `{name}` has no schedule (run it from a Job of your own, or add `schedule`)"
            )),
            Some(s) => match unsupported_schedule(s) {
                Some(why) => {
                    warnings.push(format!("pipeline `{name}` is not rendered: {why}"));
                    skipped.push(format!("pipeline `{name}`: {why}"));
                }
                None => scheduled.push(name.clone()),
            },
        }
    }

    // The project file for the pod.
    let mut keys = secrets::SecretKeys::default();
    raw.insert("home".into(), toml::Value::String(HOME_DIR.into()));
    let mut files: Vec<(String, String)> = Vec::new();
    for (kind, env_kind) in [("taps", "TAP"), ("targets", "TARGET")] {
        let Some(toml::Value::Table(plugins)) = raw.get_mut(kind) else {
            continue;
        };
        for (name, plugin) in plugins.iter_mut() {
            let toml::Value::Table(plugin) = plugin else {
                continue;
            };
            let scope = format!("{kind}.{name}");
            if let Some(toml::Value::Table(config)) = plugin.get_mut("config") {
                secrets::rewrite_table(config, &scope, &[env_kind, name], false, &mut keys);
            }
            if let Some(toml::Value::Table(env)) = plugin.get_mut("env") {
                secrets::rewrite_table(env, &scope, &[env_kind, name, "ENV"], false, &mut keys);
            }
            for arg in plugin
                .get("args")
                .and_then(toml::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(toml::Value::as_str)
            {
                for r in secrets::references(arg) {
                    let why = format!("`${{{r}}}` in {scope} args");
                    keys.need(&scope, &r, why);
                }
            }
            if let Some(toml::Value::String(exe)) = plugin.get_mut("executable")
                && exe.contains('/')
            {
                let file = Path::new(exe.as_str())
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                warnings.push(format!(
                    "{scope} runs `{exe}`, a path on this machine: the pods run `{file}` from the image's PATH"
                ));
                *exe = file;
            }
            if let Some(toml::Value::String(catalog)) = plugin.get_mut("catalog") {
                let src = project_dir.join(catalog.as_str());
                let content = std::fs::read_to_string(&src)
                    .map_err(|e| format!("{scope} catalog {}: {e}", src.display()))?;
                let key = format!("catalog.{}.json", label_value(name));
                *catalog = key.clone();
                files.push((key, content));
            }
        }
    }
    if let Some(toml::Value::Table(state)) = raw.get_mut("state") {
        secrets::rewrite_state(state, &mut keys);
    }
    if let Some(toml::Value::Table(pipelines)) = raw.get_mut("pipelines") {
        for name in &scheduled {
            if let Some(toml::Value::Table(p)) = pipelines.get_mut(name) {
                p.insert("retries".into(), toml::Value::Integer(0));
            }
        }
    }
    for m in &keys.moved {
        warnings.push(m.clone());
    }
    let toml_text = toml::to_string(&raw).map_err(|e| format!("cannot write the project: {e}"))?;
    let toml_text = format!(
        "# Rendered by `singer k8s` from {}: home on the pod's volume, secrets as ${{NAME}} from\n\
         # the environment, retries left to the Job (backoffLimit).\n{toml_text}",
        path.file_name()
            .map_or("singer.toml".into(), |f| f.to_string_lossy())
    );

    let ns = args.namespace.as_deref();
    let prefix = &args.name_prefix;
    let base_labels = json!({
        "app.kubernetes.io/name": "singer",
        "app.kubernetes.io/managed-by": "singer-k8s",
    });
    let configmap_name = object_name(prefix, "project", 253)?;
    let mut data = serde_json::Map::new();
    data.insert(project::FILE_NAME.into(), json!(toml_text));
    for (k, v) in &files {
        data.insert(k.clone(), json!(v));
    }
    let size: usize = data
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if size > CONFIGMAP_MAX_BYTES {
        return Err(format!(
            "the project file and its catalogs take {size} bytes, more than a ConfigMap holds (1 MiB)"
        ));
    }
    let mut objects = vec![(
        "configmap.yaml".to_string(),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(&configmap_name, ns, &base_labels),
            "data": Value::Object(data),
        }),
    )];

    let secret_name = secret_name(args);
    let runs = crate::run::read_runs(&home_of(path, &project));
    let mut names = BTreeSet::new();
    let mut used_keys = BTreeSet::new();
    for name in &scheduled {
        let p = project.pipeline(name)?;
        let cron_name = object_name(prefix, name, CRONJOB_NAME_MAX)?;
        if !names.insert(cron_name.clone()) {
            return Err(format!(
                "two pipelines make the same CronJob name `{cron_name}`: rename one"
            ));
        }
        let mut scopes = vec![format!("taps.{}", p.tap), format!("targets.{}", p.target)];
        scopes.push("state".into());
        let needed = keys.for_scopes(&scopes);
        used_keys.extend(needed.iter().cloned());
        // A spool with a `root` in object storage outlives the pod without a volume.
        if p.spool.as_ref().is_some_and(|s| s.root.is_none()) && args.home_pvc.is_none() {
            warnings.push(format!(
                "pipeline `{name}` spools batches into the pod's home, which ends with the pod: unconfirmed batches are extracted again by the next run (pass --home-pvc to keep them)"
            ));
        }
        let sizing = resources::size(&runs, name);
        objects.push((
            format!("cronjob-{cron_name}.yaml"),
            cronjob(CronJobSpec {
                args,
                name,
                cron_name: &cron_name,
                schedule: p.schedule.as_deref().unwrap_or_default(),
                timezone: p.timezone.as_deref(),
                retries: p.retries,
                timeout: p.timeout,
                stop_grace: p.stop_grace,
                configmap: &configmap_name,
                secret_name: &secret_name,
                secret_keys: &needed,
                sizing: &sizing,
                base_labels: &base_labels,
            }),
        ));
    }

    let secret_keys: Vec<(String, String)> = keys
        .keys
        .iter()
        .filter(|(k, _)| used_keys.contains(*k))
        .map(|(k, why)| (k.clone(), why.clone()))
        .collect();
    let mut string_data = serde_json::Map::new();
    for (k, _) in &secret_keys {
        string_data.insert(k.clone(), json!("REPLACE_ME"));
    }
    let secret_template = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(&secret_name, ns, &base_labels),
        "type": "Opaque",
        "stringData": Value::Object(string_data),
    });
    Ok(Rendered {
        objects,
        secret_template,
        secret_keys,
        skipped,
        warnings,
    })
}

struct CronJobSpec<'a> {
    args: &'a K8sArgs,
    name: &'a str,
    cron_name: &'a str,
    schedule: &'a str,
    timezone: Option<&'a str>,
    retries: u32,
    timeout: Option<std::time::Duration>,
    stop_grace: Option<std::time::Duration>,
    configmap: &'a str,
    secret_name: &'a str,
    secret_keys: &'a BTreeSet<String>,
    sizing: &'a resources::Sizing,
    base_labels: &'a Value,
}

/// The pod's grace between SIGTERM and SIGKILL: what `singer` may need to stop a run (the
/// target's `stop_grace`, then 10 s between its SIGTERM and SIGKILL), plus 20 s to store the
/// last states and exit; never less than [`GRACE_SECONDS`].
fn termination_grace(stop_grace: Option<std::time::Duration>) -> u64 {
    let needed = stop_grace
        .unwrap_or(crate::run::DEFAULT_STOP_GRACE)
        .as_secs()
        .saturating_add(30);
    needed.max(u64::from(GRACE_SECONDS))
}

fn cronjob(s: CronJobSpec<'_>) -> Value {
    let mut labels = s.base_labels.clone();
    labels["app.kubernetes.io/component"] = json!("pipeline");
    labels["singer-rs/pipeline"] = json!(label_value(s.name));
    let mut env = vec![json!({
        "name": "SINGER_PROJECT",
        "value": format!("{PROJECT_DIR}/{}", project::FILE_NAME),
    })];
    for k in s.secret_keys {
        env.push(json!({
            "name": k,
            "valueFrom": { "secretKeyRef": { "name": s.secret_name, "key": k } },
        }));
    }
    let home_volume = match &s.args.home_pvc {
        Some(claim) => json!({ "name": "home", "persistentVolumeClaim": { "claimName": claim } }),
        None => json!({ "name": "home", "emptyDir": {} }),
    };
    let pod = json!({
        "metadata": { "labels": labels },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": termination_grace(s.stop_grace),
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": RUN_AS,
                "runAsGroup": RUN_AS,
                "fsGroup": RUN_AS,
                "seccompProfile": { "type": "RuntimeDefault" },
            },
            "containers": [{
                "name": "singer",
                "image": s.args.image,
                "args": ["run", s.name],
                "env": env,
                "resources": {
                    "requests": {
                        "cpu": format!("{}m", s.sizing.cpu_request_millis),
                        "memory": format!("{}Mi", s.sizing.memory_request_mib),
                    },
                    "limits": { "memory": format!("{}Mi", s.sizing.memory_limit_mib) },
                },
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": { "drop": ["ALL"] },
                },
                "volumeMounts": [
                    { "name": "project", "mountPath": PROJECT_DIR, "readOnly": true },
                    { "name": "home", "mountPath": HOME_DIR },
                    { "name": "tmp", "mountPath": "/tmp" },
                ],
            }],
            "volumes": [
                { "name": "project", "configMap": { "name": s.configmap } },
                home_volume,
                { "name": "tmp", "emptyDir": {} },
            ],
        },
    });
    let mut job = json!({
        "backoffLimit": s.retries,
        "podFailurePolicy": { "rules": [{
            "action": "FailJob",
            "onExitCodes": { "containerName": "singer", "operator": "In", "values": [2, 3] },
        }]},
    });
    if let Some(t) = s.timeout {
        // Each attempt stops itself at the timeout; the Job allows every attempt plus a minute.
        job["activeDeadlineSeconds"] = json!((t.as_secs() + 60) * u64::from(s.retries + 1));
    }
    job["template"] = pod;
    let mut spec = json!({ "schedule": s.schedule });
    if let Some(tz) = s.timezone {
        spec["timeZone"] = json!(tz);
    }
    spec["concurrencyPolicy"] = json!("Forbid");
    spec["startingDeadlineSeconds"] = json!(s.args.starting_deadline);
    spec["successfulJobsHistoryLimit"] = json!(s.args.successful_jobs_history);
    spec["failedJobsHistoryLimit"] = json!(s.args.failed_jobs_history);
    spec["jobTemplate"] = json!({ "metadata": { "labels": labels }, "spec": job });
    let mut meta = metadata(s.cron_name, s.args.namespace.as_deref(), &labels);
    meta["annotations"] = json!({
        "singer-rs/pipeline": s.name,
        "singer-rs/resources": s.sizing.basis,
    });
    json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": meta,
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_outlasts_the_runs_stop() {
        assert_eq!(termination_grace(None), 90);
        assert_eq!(
            termination_grace(Some(std::time::Duration::from_secs(10))),
            90
        );
        assert_eq!(
            termination_grace(Some(std::time::Duration::from_secs(300))),
            330
        );
    }

    #[test]
    fn names_and_labels() {
        assert_eq!(
            object_name("singer-", "Shop_DB", 52).unwrap(),
            "singer-shop-db"
        );
        assert!(object_name("singer-", &"x".repeat(60), 52).is_err());
        assert_eq!(label_value("_a b_"), "a-b");
    }

    #[test]
    fn schedules_cronjobs_cannot_run() {
        assert!(unsupported_schedule("* * * * * *").is_some());
        assert!(unsupported_schedule("0 0 L * *").is_some());
        assert!(unsupported_schedule("*/15 * * * *").is_none());
    }
}
