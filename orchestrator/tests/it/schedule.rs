//! The scheduler starts runs at their cron times (a seconds-level schedule, so no minute-long
//! wait), and `singer cron` prints crontab lines.

use std::time::{Duration, Instant};

use crate::{Project, bin, fake_tap, stderr};

#[test]
fn schedule_starts_runs_at_cron_times() {
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
[pipelines.every_second]
tap = "t"
target = "j"
schedule = "* * * * * *"
timezone = "Europe/Paris"
[pipelines.unscheduled]
tap = "t"
target = "j"
"#,
        tap.display(),
        bin("target-jsonl").display(),
        out_dir.path().display()
    ));
    let started = Instant::now();
    let out = p.singer(&["schedule", "--exit-after", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(30));
    let runs = p.runs();
    assert!(runs.len() >= 2, "{runs:?}");
    assert!(
        runs.iter()
            .all(|r| r["pipeline"] == "every_second" && r["outcome"] == "succeeded")
    );
    assert_eq!(
        p.state("every_second").unwrap(),
        serde_json::json!({"ok": true})
    );

    let cron = p.singer(&["cron"]);
    let text = String::from_utf8(cron.stdout).unwrap();
    assert!(text.contains("seconds field"), "{text}");
}

#[test]
fn cron_prints_crontab_lines() {
    let p = Project::new(
        r#"
[taps.t]
executable = "tap"
[targets.j]
executable = "target"
[pipelines.nightly]
tap = "t"
target = "j"
schedule = "30 2 * * *"
timezone = "Europe/Paris"
"#,
    );
    let out = p.singer(&["cron"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("CRON_TZ=Europe/Paris"), "{text}");
    assert!(
        text.contains("30 2 * * * ") && text.contains(" run nightly"),
        "{text}"
    );
}
