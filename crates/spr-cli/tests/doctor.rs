//! `spr doctor` tells the truth: its sandbox lines come from a real probe worker, and
//! they agree with the receipt of a real run made the same way, for whoever runs the
//! tests (root, an ordinary user, root of a one-uid user namespace: `cargo xtask test`
//! runs this file all three ways).

mod common;

use common::{code, render, run, spr};
use serde_json::Value;

fn venv() -> String {
    common::target_tmpdir()
        .join("spr-cli-doctor-venv")
        .display()
        .to_string()
}

fn json_of(args: &[&str]) -> Value {
    let venv = venv();
    let mut cmd = spr();
    cmd.args(args)
        .args(["--venv-manager", "python", "--venv-dir", &venv]);
    let out = run(&mut cmd, None);
    assert!(code(&out) == 0 || args[0] == "run", "{}", render(&out, &[]));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", render(&out, &[])))
}

#[test]
fn doctor_reports_what_a_real_run_gets() {
    // The run first: it creates the venv the doctor's probe worker then shares.
    let run = json_of(&["run", "--json", "-c", "result = 1"]);
    assert_eq!(run["ok"], Value::Bool(true), "{run}");
    let doctor = json_of(&["doctor", "--json"]);
    let probe = &doctor["probe"];
    assert!(probe["error"].is_null(), "{doctor}");
    let receipt = &probe["receipt"];
    let mut from_run = run["sandbox"].clone();
    // The process filter depends on the policy: the run's (the default) denies
    // processes, the probe's does not; the rest of what every run gets is the same.
    assert_eq!(
        from_run["per_run"]["process_filter"],
        Value::Bool(true),
        "{run}"
    );
    if let Some(per_run) = from_run["per_run"].as_object_mut() {
        per_run.remove("process_filter");
    }
    let from_run = &from_run;
    // What the doctor's probe run got is what a run gets.
    for key in [
        "namespaces",
        "filesystem",
        "landlock_abi",
        "seccomp",
        "network",
        "user_mapping",
        "capabilities_dropped",
        "per_run",
    ] {
        assert_eq!(
            receipt[key], from_run[key],
            "{key}: doctor {receipt} vs run {from_run}"
        );
    }
    // And every check line says the same as the receipt.
    let checks = doctor["checks"].as_array().expect("checks");
    let line = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {doctor}"))
    };
    let ns = &from_run["namespaces"];
    for (name, key) in [
        ("user_namespace", "user"),
        ("mount_namespace", "mount"),
        ("pid_namespace", "pid"),
        ("network_namespace", "network"),
        ("ipc_namespace", "ipc"),
        ("uts_namespace", "uts"),
    ] {
        let expected = if ns[key] == Value::Bool(true) {
            "ok"
        } else {
            "missing"
        };
        assert_eq!(line(name)["status"], expected, "{name}: {doctor}");
    }
    let landlock = if from_run["landlock_abi"].is_null() {
        "missing"
    } else {
        "ok"
    };
    assert_eq!(line("landlock")["status"], landlock);
    // The probe run's own view agrees with its receipt.
    assert_eq!(line("observed")["status"], "ok", "{doctor}");
    if from_run["capabilities_dropped"] == Value::Bool(true) {
        assert_eq!(
            probe["observed"]["status"]["CapEff"], "0000000000000000",
            "{doctor}"
        );
    }
}

#[test]
fn on_this_machine_every_user_gets_the_namespace_sandbox() {
    // Unprivileged user namespaces work here (root, an ordinary user and a one-uid
    // namespace alike): the doctor must say so from a real worker, not a guess.
    let doctor = json_of(&["doctor", "--json"]);
    let support = &doctor["probe"]["support"];
    let namespaces = support["protections"]
        .as_array()
        .expect("protections")
        .iter()
        .filter(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("_namespace"))
        })
        .all(|p| p["available"] == Value::Bool(true));
    if !common::require(namespaces, "unprivileged user namespaces") {
        return;
    }
    let receipt = &doctor["probe"]["receipt"];
    for key in ["user", "mount", "pid", "network", "ipc", "uts"] {
        assert_eq!(receipt["namespaces"][key], Value::Bool(true), "{doctor}");
    }
    assert_eq!(receipt["filesystem"]["read_only_root"], Value::Bool(true));
}
