//! Run behaviours through real containers: results, errors, timeouts that leave nothing,
//! memory, output truncation, input, and the sandbox holding against hostile code.

mod common;

use common::*;
use serde_json::json;
use spr_policy::RunnerPolicy;
use spr_protocol::Json;
use std::time::Instant;

/// The PIDs visible in the container but the harness's zygote (the run's parent) and
/// the probing run itself: only the harness's monitor (1) should be left.
const LIST_PIDS: &str = "import os\nresult = sorted(int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) not in (os.getpid(), os.getppid()))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ok_error_input_and_output() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let r = engine
        .run(
            "print('hi')\nresult = {'x': 1 + 1}",
            &Json::null(),
            &policy(),
        )
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.result, json!({"x": 2}));
    assert_eq!(r.stdout, "hi\n");
    assert_eq!(r.exit_code, 0);
    assert_eq!(r.sandbox.as_ref().unwrap().network.as_deref(), Some("none"));

    let r = engine
        .run("raise ValueError('boom')", &Json::null(), &policy())
        .await;
    assert!(!r.ok);
    assert_eq!(r.error.as_deref(), Some("ValueError: boom"));
    assert_eq!(r.exit_code, 1);
    assert!(r.stderr.contains("ValueError: boom"), "{}", r.stderr);

    let r = engine
        .run(
            "result = input_data['a'] * a",
            &json!({"a": 21}).into(),
            &policy(),
        )
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.result, json!(441), "input_data and its keys as globals");

    let small = RunnerPolicy {
        max_output_kb: 1,
        ..policy()
    };
    let r = engine
        .run("print('x' * 5000)\nresult = 'done'", &Json::null(), &small)
        .await;
    assert!(r.ok, "{r:?}");
    assert!(r.stdout_truncated);
    assert!(r.stdout.len() <= 1024, "{}", r.stdout.len());

    let r = engine.run("import os", &Json::null(), &policy()).await;
    assert!(!r.ok);
    assert!(r.error.unwrap().contains("blocked by policy"));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_leaves_no_process_behind() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let p = RunnerPolicy {
        timeout_seconds: 1,
        ..open_policy()
    };
    // A detached grandchild in its own session, then a busy loop.
    let code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(1000)\n    os._exit(0)\nwhile True:\n    pass";
    let started = Instant::now();
    let r = engine.run(code, &Json::null(), &p).await;
    assert!(r.timed_out, "{r:?}");
    assert_eq!(r.exit_code, 124);
    assert_eq!(r.error.as_deref(), Some("Execution timed out after 1s"));
    assert!(started.elapsed().as_secs_f64() < 4.0);
    let name = container_of(&r);
    let r = engine.run(LIST_PIDS, &Json::null(), &open_policy()).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        container_of(&r),
        name,
        "the same container serves the next run"
    );
    assert_eq!(r.result, json!([1]), "only the harness is left");
    engine.shutdown().await;
}

/// A container that stops answering (paused here) is removed at the host's backstop,
/// and the result says how long the host waited, not the policy timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_stops_answering_reports_the_time_the_host_waited() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let idle = engine.idle_containers();
    assert_eq!(idle.len(), 1, "{idle:?}");
    let docker = docker();
    docker.pause_container(&idle[0]).await.unwrap();
    let p = RunnerPolicy {
        timeout_seconds: 1,
        ..policy()
    };
    let started = Instant::now();
    let r = engine.run("result = 1", &Json::null(), &p).await;
    let waited = started.elapsed();
    // The engine removes the container in the background; never leave it paused.
    let _ = docker.unpause_container(&idle[0]).await;
    assert!(r.timed_out && !r.ok, "{r:?}");
    assert_eq!(r.exit_code, 124);
    assert_eq!(
        r.error.as_deref(),
        Some("Execution timed out after 1s (the container stopped answering and was removed)")
    );
    // The backstop is the timeout plus 5 s; it used to report the bare timeout.
    assert!(r.duration_ms >= 6000.0, "{r:?}");
    assert!(
        r.duration_ms <= waited.as_secs_f64() * 1000.0,
        "{r:?} in {waited:?}"
    );
    let r = engine.run("result = 2", &Json::null(), &policy()).await;
    assert!(r.ok, "a new container serves the next run: {r:?}");
    assert_ne!(container_of(&r), idle[0]);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_limited_per_run_even_in_a_larger_container() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let p = RunnerPolicy {
        memory_limit_mb: 64,
        ..policy()
    };
    let r = engine
        .run(
            "x = bytearray(200 * 1024 * 1024)\nresult = len(x)",
            &Json::null(),
            &p,
        )
        .await;
    assert!(!r.ok);
    assert!(r.resource_exceeded, "{r:?}");
    let ok = engine
        .run(
            "x = bytearray(20 * 1024 * 1024)\nresult = len(x)",
            &Json::null(),
            &p,
        )
        .await;
    assert!(ok.ok, "{ok:?}");
    // The container itself has more (the 256 MiB class: the policy plus 96 MiB of
    // headroom, rounded up), yet the run was held to 64 MiB of its own.
    assert_eq!(ok.sandbox.as_ref().unwrap()["container_memory_mb"], 256);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_code_is_contained() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let p = open_policy();
    // Network: only a loopback interface and no route anywhere (and no socket of a
    // network family can even be created: the runs' seccomp filter refuses them).
    let r = engine
        .run("result = [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]\nresult.append(open('/proc/net/route').read().count('\\n'))\nimport socket\ntry:\n    socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nexcept OSError as e:\n    result.append(e.errno)", &Json::null(), &p)
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        r.result,
        json!(["lo", 1, 97]),
        "interfaces, route table lines (header only), EAFNOSUPPORT for AF_INET"
    );

    // Writing: the root and /dev are read-only; /tmp (the scratch tmpfs, emptied after
    // every run) and the run's own directory in it are writable.
    let code = "import os, tempfile\nout = {}\nfor p in ['/opt/x', '/tmp/x', '/x', '/dev/x', '/etc/passwd']:\n    try:\n        open(p, 'a').write('x')\n        out[p] = 'written'\n    except OSError as e:\n        out[p] = e.errno\nopen('mine.txt', 'w').write('ok')\nout['cwd'] = os.getcwd().startswith('/tmp/')\nout['uid'] = os.getuid()\nresult = out";
    let r = engine.run(code, &Json::null(), &p).await;
    assert!(r.ok, "{r:?}");
    let out = r.result.to_value();
    let out = out.as_object().unwrap();
    for path in ["/opt/x", "/x", "/dev/x", "/etc/passwd"] {
        assert!(out[path].is_number(), "{path} was writable: {out:?}");
    }
    assert_eq!(out["/tmp/x"], "written", "{out:?}");
    assert_eq!(out["cwd"], true);
    assert_eq!(out["uid"], 65534);

    // A fork bomb hits the pids limit and the timeout; the container survives, clean.
    let bomb = RunnerPolicy {
        timeout_seconds: 2,
        ..open_policy()
    };
    let r = engine
        .run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", &Json::null(), &bomb)
        .await;
    assert!(!r.ok);
    assert!(r.timed_out, "{r:?}");
    let r = engine.run(LIST_PIDS, &Json::null(), &p).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.result, json!([1]));
    engine.shutdown().await;
}

/// Warm latency, printed for the report (`cargo test -p spr-engine-docker --test run
/// warm_latency -- --nocapture`). The bound is loose so a busy CI machine passes; the
/// target (p50 <= 10 ms) is checked by the bench.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_latency() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let p = policy();
    let mut times = Vec::new();
    for i in 0..60 {
        let t = Instant::now();
        let r = engine.run("result = 1 + 1", &Json::null(), &p).await;
        let dt = t.elapsed().as_secs_f64() * 1000.0;
        assert!(r.ok, "{r:?}");
        if i >= 10 {
            times.push(dt);
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p50 = times[times.len() / 2];
    let p90 = times[times.len() * 9 / 10];
    println!(
        "docker warm run: p50 {p50:.2} ms, p90 {p90:.2} ms over {} runs",
        times.len()
    );
    assert!(p50 < 100.0, "warm p50 {p50} ms");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_are_baked_into_a_cached_derived_image() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    drop(engine);
    let with_packages =
        spr_engine_docker::DockerEngine::new(spr_engine_docker::DockerEngineConfig {
            packages: vec!["packaging==24.1".into()],
            name: Some("itest".into()),
            pool_size: Some(1),
            ..Default::default()
        })
        .unwrap();
    let code = "import packaging\nresult = packaging.__version__";
    let r = with_packages.run(code, &Json::null(), &policy()).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.result, json!("24.1"));
    let images = with_packages.list_images().await.unwrap();
    assert!(
        images.iter().any(|i| i.repository == "spr-env"),
        "{images:?}"
    );
    with_packages.shutdown().await;

    // A package that cannot be installed: a clear engine error, no fallback.
    let broken = spr_engine_docker::DockerEngine::new(spr_engine_docker::DockerEngineConfig {
        packages: vec!["spr-test-no-such-package-zz==0.0.1".into()],
        ..Default::default()
    })
    .unwrap();
    let r = broken.run("result = 1", &Json::null(), &policy()).await;
    assert!(!r.ok);
    assert_eq!(r.exit_code, 125);
    assert!(r.error.unwrap().contains("Failed to build package image"));
}
