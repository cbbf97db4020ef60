//! `singer k8s`: the manifests validate against the Kubernetes OpenAPI schemas (offline, with
//! kubernetes-validate from the interop venvs), no secret value reaches any output, and the
//! resources follow the run history.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use singer_core::testing::interop_path;

use crate::{Project, bin, fake_tap, stderr};

/// Literal secrets in the sample project: none may appear in any output.
const SECRETS: &[&str] = &[
    "hunter2-tap-literal",
    "tok-3f9a-literal",
    "state-pw-literal",
    "aws-literal-9911",
];

fn sample() -> Project {
    let p = Project::new(
        r#"
[taps.shop_db]
executable = "tap-mysql"
catalog = "catalogs/shop.json"
[taps.shop_db.config]
host = "db.internal"
user = "singer"
password = "hunter2-tap-literal"

[taps.app_db]
executable = "tap-postgres"
[taps.app_db.config]
host = "pg.internal"
password = "${APP_DB_PASSWORD}"

[targets.warehouse]
executable = "/opt/local/bin/target-postgres"
[targets.warehouse.config]
host = "warehouse.internal"
api_token = "tok-3f9a-literal"
[targets.warehouse.env]
AWS_SECRET_ACCESS_KEY = "aws-literal-9911"
RUST_LOG = "warn"

[pipelines.nightly]
tap = "shop_db"
target = "warehouse"
schedule = "30 2 * * *"
timezone = "Europe/Paris"
retries = 2
timeout = "1h"

[pipelines.hourly]
tap = "app_db"
target = "warehouse"
schedule = "0 * * * *"

[pipelines.adhoc]
tap = "app_db"
target = "warehouse"

[pipelines.every_second]
tap = "app_db"
target = "warehouse"
schedule = "* * * * * *"

[state]
backend = "postgres"
url = "postgresql://singer:state-pw-literal@db:5432/ops"
"#,
    );
    std::fs::create_dir_all(p.path().join("catalogs")).unwrap();
    std::fs::write(p.path().join("catalogs/shop.json"), r#"{"streams": []}"#).unwrap();
    p
}

/// Run records for `pipeline`: peaks of `orch + 2 × children` KiB, 10 s each, 5 CPU seconds.
fn history(p: &Project, runs: &[(&str, u64, u64)]) {
    let home = p.path().join(".singer");
    std::fs::create_dir_all(&home).unwrap();
    let lines: Vec<String> = runs
        .iter()
        .enumerate()
        .map(|(i, (pipeline, orch, children))| {
            json!({
                "run_id": format!("r{i}"), "pipeline": pipeline, "state_id": pipeline,
                "attempt": 0, "started_at": "2026-01-01T00:00:00+00:00",
                "ended_at": "2026-01-01T00:00:10+00:00", "outcome": "succeeded",
                "tap_exit": "exit 0", "target_exit": "exit 0", "states_confirmed": 1,
                "state_advanced": true, "orchestrator_cpu_secs": 1.0, "children_cpu_secs": 4.0,
                "orchestrator_max_rss_kb": orch, "children_max_rss_kb": children,
            })
            .to_string()
        })
        .collect();
    std::fs::write(home.join("runs.jsonl"), lines.join("\n") + "\n").unwrap();
}

fn kubernetes_validate() -> PathBuf {
    interop_path("kubernetes_validate")
}

/// Validates YAML files strictly against Kubernetes 1.31 (the oldest with every field we use:
/// `podFailurePolicy` went GA there) and the validator's newest version.
fn validate(files: &[PathBuf]) {
    for version in ["1.31.0", "1.37.0"] {
        let out = Command::new(kubernetes_validate())
            .args(["--strict", "--quiet", "-k", version])
            .args(files)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubernetes-validate {version}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
    }
}

/// The YAML documents of a file, as JSON (through PyYAML in the validator's venv).
fn documents(file: &Path) -> Vec<Value> {
    let python = kubernetes_validate().with_file_name("python");
    let out = Command::new(python)
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]))",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} holds the secret `{s}`:\n{text}");
    }
}

fn cronjob<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == "CronJob" && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no CronJob {name} in {docs:#?}"))
}

fn container(cj: &Value) -> &Value {
    &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn k8s_manifests_validate_hide_secrets_and_follow_history() {
    let p = sample();
    // nightly: 20 measured runs, peaks 10 + 2 × (50..=69) MiB; hourly: only a run recorded
    // before children were measured, so no measured run.
    let mut runs: Vec<(&str, u64, u64)> = (0..20)
        .map(|i| ("nightly", 10 * 1024, (50 + i) * 1024))
        .collect();
    runs.push(("hourly", 900 * 1024, 0));
    history(&p, &runs);

    // Printed to stdout.
    let out = p.singer(&[
        "k8s",
        "--image",
        "registry.example/singer:1.0",
        "--namespace",
        "etl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_no_secret("stdout", &text);
    assert_no_secret("stderr", &stderr(&out));
    assert!(stderr(&out).contains("every_second"), "{}", stderr(&out));
    let printed = p.path().join("printed.yaml");
    std::fs::write(&printed, &text).unwrap();
    validate(std::slice::from_ref(&printed));
    let docs = documents(&printed);

    // One CronJob per scheduled pipeline CronJobs can express, plus the ConfigMap.
    let kinds: Vec<(&str, &str)> = docs
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("ConfigMap", "singer-project"),
            ("CronJob", "singer-hourly"),
            ("CronJob", "singer-nightly")
        ]
    );
    assert!(docs.iter().all(|d| d["metadata"]["namespace"] == "etl"));

    let nightly = cronjob(&docs, "singer-nightly");
    let spec = &nightly["spec"];
    assert_eq!(spec["schedule"], "30 2 * * *");
    assert_eq!(spec["timeZone"], "Europe/Paris");
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    assert_eq!(spec["startingDeadlineSeconds"], 300);
    assert_eq!(spec["successfulJobsHistoryLimit"], 3);
    assert_eq!(spec["failedJobsHistoryLimit"], 3);
    assert_eq!(spec["jobTemplate"]["spec"]["backoffLimit"], 2);
    let c = container(nightly);
    assert_eq!(c["image"], "registry.example/singer:1.0");
    assert_eq!(c["args"], json!(["run", "nightly"]));
    // request = p95 peak × 1.25, limit = max peak × 1.5 (nearest rank: the 19th and 20th).
    let p95_mib = 10.0 + 2.0 * 68.0;
    let max_mib = 10.0 + 2.0 * 69.0;
    assert_eq!(
        c["resources"]["requests"]["memory"],
        format!("{}Mi", (p95_mib * 1.25_f64).ceil())
    );
    assert_eq!(
        c["resources"]["limits"]["memory"],
        format!("{}Mi", (max_mib * 1.5_f64).ceil())
    );
    assert_eq!(c["resources"]["requests"]["cpu"], "625m");
    let env: Vec<(&str, &Value)> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect();
    assert_eq!(env[0].1["value"], "/etc/singer/singer.toml");
    let secret_env: Vec<&str> = env
        .iter()
        .filter(|(_, e)| e["valueFrom"]["secretKeyRef"]["name"] == "singer-secrets")
        .map(|(n, e)| {
            assert_eq!(e["valueFrom"]["secretKeyRef"]["key"], *n);
            *n
        })
        .collect();
    assert_eq!(
        secret_env,
        [
            "SINGER_STATE_URL",
            "SINGER_TAP_SHOP_DB_PASSWORD",
            "SINGER_TARGET_WAREHOUSE_API_TOKEN",
            "SINGER_TARGET_WAREHOUSE_ENV_AWS_SECRET_ACCESS_KEY",
        ]
    );

    // No history for hourly: the defaults; its tap's `${APP_DB_PASSWORD}` comes from the Secret.
    let hourly = cronjob(&docs, "singer-hourly");
    let c = container(hourly);
    assert_eq!(c["resources"]["requests"]["memory"], "256Mi");
    assert_eq!(c["resources"]["limits"]["memory"], "1024Mi");
    assert!(hourly["spec"].get("timeZone").is_none());
    assert!(
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "APP_DB_PASSWORD"
                && e["valueFrom"]["secretKeyRef"]["key"] == "APP_DB_PASSWORD")
    );

    // The ConfigMap's project: secrets as references, the pod's home, the Job's retries.
    let cm = &docs[0]["data"];
    let toml_text = cm["singer.toml"].as_str().unwrap();
    let project: toml::Table = toml::from_str(toml_text).unwrap();
    assert_eq!(project["home"].as_str(), Some("/var/lib/singer"));
    assert_eq!(
        project["taps"]["shop_db"]["config"]["password"].as_str(),
        Some("${SINGER_TAP_SHOP_DB_PASSWORD}")
    );
    assert_eq!(
        project["taps"]["shop_db"]["catalog"].as_str(),
        Some("catalog.shop_db.json")
    );
    assert_eq!(
        project["targets"]["warehouse"]["executable"].as_str(),
        Some("target-postgres")
    );
    assert_eq!(
        project["pipelines"]["nightly"]["retries"].as_integer(),
        Some(0)
    );
    assert_eq!(cm["catalog.shop_db.json"], r#"{"streams": []}"#);

    // Written to a directory: the same objects one per file, and the Secret template (which
    // `kubectl apply -f DIR` skips) with placeholders only.
    let dir = p.path().join("manifests");
    let out = p.singer(&["k8s", "-o", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_secret("stderr", &stderr(&out));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "configmap.yaml",
            "cronjob-singer-hourly.yaml",
            "cronjob-singer-nightly.yaml",
            "secret.yaml.template"
        ]
    );
    for f in &files {
        assert_no_secret(
            &f.display().to_string(),
            &std::fs::read_to_string(f).unwrap(),
        );
    }
    validate(&files[..3]);
    let template = p.path().join("secret.yaml");
    std::fs::copy(&files[3], &template).unwrap();
    validate(std::slice::from_ref(&template));
    let secret = &documents(&template)[0];
    assert_eq!(secret["kind"], "Secret");
    let data = secret["stringData"].as_object().unwrap();
    assert!(data.values().all(|v| v == "REPLACE_ME"), "{data:?}");
    let keys: Vec<&String> = data.keys().collect();
    assert_eq!(
        keys,
        [
            "APP_DB_PASSWORD",
            "SINGER_STATE_URL",
            "SINGER_TAP_SHOP_DB_PASSWORD",
            "SINGER_TARGET_WAREHOUSE_API_TOKEN",
            "SINGER_TARGET_WAREHOUSE_ENV_AWS_SECRET_ACCESS_KEY",
        ]
    );
    let printed = p.singer(&["k8s", "--secret-template"]);
    assert!(printed.status.success(), "{}", stderr(&printed));
    assert_eq!(
        String::from_utf8(printed.stdout).unwrap().trim_end(),
        std::fs::read_to_string(&files[3]).unwrap().trim_end()
    );
}

#[test]
fn k8s_local_state_needs_a_volume_and_real_runs_size_the_pod() {
    let out_dir = tempfile::tempdir().unwrap();
    let p = Project::new("");
    let tap = fake_tap(
        &p,
        "tap.sh",
        &[
            r#"{"type":"SCHEMA","stream":"s","schema":{"type":"object","properties":{}},"key_properties":[]}"#,
            r#"{"type":"RECORD","stream":"s","record":{}}"#,
            r#"{"type":"STATE","value":{"ok":true}}"#,
        ],
        0,
    );
    p.write(&format!(
        r#"
[taps.t]
executable = "{}"
[targets.j]
executable = "{}"
[targets.j.config]
destination_path = "{}"
[pipelines.daily]
tap = "t"
target = "j"
schedule = "0 3 * * *"
"#,
        tap.display(),
        bin("target-jsonl").display(),
        out_dir.path().display()
    ));

    // Local states would die with the pod: refused, with the way out.
    let out = p.singer(&["k8s"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--home-pvc"), "{}", stderr(&out));

    // A real run records the children's peak memory, which sizes the pod.
    let run = p.singer(&["run", "daily"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let record = p.runs().pop().unwrap();
    let children_kb = record["children_max_rss_kb"].as_u64().unwrap();
    assert!(children_kb > 0, "{record}");

    let dir = p.path().join("manifests");
    let out = p.singer(&[
        "k8s",
        "--home-pvc",
        "singer-home",
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("ReadWriteMany"), "{}", stderr(&out));
    let file = dir.join("cronjob-singer-daily.yaml");
    validate(std::slice::from_ref(&file));
    let cj = &documents(&file)[0];
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert!(
        pod["volumes"].as_array().unwrap().iter().any(
            |v| v["name"] == "home" && v["persistentVolumeClaim"]["claimName"] == "singer-home"
        )
    );
    assert!(
        cj["metadata"]["annotations"]["singer-rs/resources"]
            .as_str()
            .unwrap()
            .starts_with("1 measured runs"),
        "{cj}"
    );
    // One run: request = its peak (orchestrator + 2 × children) × 1.25, limit × 1.5, with
    // floors of 64 and 128 MiB.
    let peak_kb = (record["orchestrator_max_rss_kb"].as_u64().unwrap() + 2 * children_kb) as f64;
    let mib = |factor: f64, floor: u64| {
        format!(
            "{}Mi",
            ((peak_kb * factor / 1024.0).ceil() as u64).max(floor)
        )
    };
    let c = &pod["containers"][0];
    assert_eq!(
        c["resources"]["requests"]["memory"],
        mib(1.25, 64),
        "{record}"
    );
    assert_eq!(
        c["resources"]["limits"]["memory"],
        mib(1.5, 128),
        "{record}"
    );
    assert_eq!(cj["spec"]["jobTemplate"]["spec"]["backoffLimit"], 0);
}
