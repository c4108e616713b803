//! Sessions on the local engine, sandbox on: state that persists, interrupts that keep
//! the session, lost sessions refused, TTL expiry, the cap, and isolation from runs and
//! from other sessions.

mod common;

use common::engine;
use spr_core::{
    run_code, Engine, LocalEngine, LocalEngineConfig, PolicySource, RunError, RunnerPolicy,
    SessionError, Sessions, VenvManager,
};
use std::sync::Arc;
use std::time::Duration;

fn sessions(engine: LocalEngine) -> Arc<Sessions> {
    Sessions::new(Arc::new(engine) as Arc<dyn Engine>)
}

fn policy(timeout: u64) -> PolicySource {
    PolicySource::Policy(RunnerPolicy {
        timeout_seconds: timeout,
        ..RunnerPolicy::default()
    })
}

#[tokio::test]
async fn globals_and_imports_persist_and_value_is_the_last_expression() {
    let s = sessions(engine());
    let id = s.create(PolicySource::Default, None).await.unwrap();
    let r = s
        .run(&id, "import math\nx = 40\nprint('set')", None)
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.stdout, "set\n");
    assert_eq!(r.value.as_ref().unwrap().get(), "null");
    let r = s
        .run(
            &id,
            "y = x + n\nmath.isqrt(y)",
            Some(r#"{"n": 9}"#.parse().unwrap()),
        )
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.value.as_ref().unwrap().get(), "7");
    let r = s.run(&id, "result = [x, y]\n'done'", None).await.unwrap();
    assert_eq!(r.result, serde_json::json!([40, 49]));
    assert_eq!(r.value.as_ref().unwrap().get(), "\"done\"");
    assert!(!r.session_lost);
    assert!(r.sandbox.is_some());
    s.close(&id).await.unwrap();
    let err = s.run(&id, "x", None).await.unwrap_err();
    assert!(
        matches!(err, RunError::Session(SessionError::Unknown { .. })),
        "{err}"
    );
    assert!(err.to_string().contains(&id), "{err}");
}

#[tokio::test]
async fn an_exception_and_a_policy_refusal_keep_the_session() {
    let s = sessions(engine());
    let id = s.create(PolicySource::Default, None).await.unwrap();
    s.run(&id, "kept = 1", None).await.unwrap();
    let r = s.run(&id, "import os", None).await.unwrap();
    assert!(!r.ok);
    assert_eq!(r.exit_code, 1);
    assert!(
        r.error.as_deref().unwrap().contains("blocked by policy"),
        "{r:?}"
    );
    let r = s.run(&id, "1 / 0", None).await.unwrap();
    assert!(r.error.as_deref().unwrap().contains("ZeroDivisionError"));
    assert_eq!(r.value.as_ref().unwrap().get(), "null");
    let r = s.run(&id, "kept + 1", None).await.unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.value.as_ref().unwrap().get(), "2");
}

#[tokio::test]
async fn a_cell_past_its_timeout_is_interrupted_and_the_session_survives() {
    let s = sessions(engine());
    let id = s.create(policy(1), None).await.unwrap();
    s.run(&id, "import time\nstate = 'kept'", None)
        .await
        .unwrap();
    let r = s
        .run(&id, "while True:\n    time.sleep(0.01)", None)
        .await
        .unwrap();
    assert!(r.timed_out, "{r:?}");
    assert_eq!(r.exit_code, 124);
    assert!(!r.session_lost, "{r:?}");
    assert!(r.stderr.contains("KeyboardInterrupt"), "{r:?}");
    assert!(r.error.as_deref().unwrap().contains("interrupted"), "{r:?}");
    let r = s.run(&id, "state", None).await.unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.value.as_ref().unwrap().get(), "\"kept\"");
}

#[tokio::test]
async fn a_cell_that_ignores_the_interrupt_loses_the_session_and_later_runs_are_refused() {
    let s = sessions(engine());
    let id = s.create(policy(1), None).await.unwrap();
    let code = "import time\nwhile True:\n    try:\n        time.sleep(0.01)\n    except KeyboardInterrupt:\n        pass\n";
    let r = s.run(&id, code, None).await.unwrap();
    assert!(r.timed_out, "{r:?}");
    assert!(r.session_lost, "{r:?}");
    let err = s.run(&id, "1", None).await.unwrap_err();
    assert!(
        matches!(err, RunError::Session(SessionError::Lost { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("was lost"), "{err}");
    // Closing a lost session is fine; after that it is unknown.
    s.close(&id).await.unwrap();
    assert!(s.close(&id).await.is_err());
}

#[tokio::test]
async fn running_out_of_memory_is_reported_and_the_session_goes_on_when_python_recovers() {
    let s = sessions(engine());
    let id = s
        .create(
            PolicySource::Policy(RunnerPolicy {
                memory_limit_mb: 128,
                ..RunnerPolicy::default()
            }),
            None,
        )
        .await
        .unwrap();
    s.run(&id, "small = [1, 2]", None).await.unwrap();
    let r = s
        .run(&id, "big = bytearray(512 << 20)", None)
        .await
        .unwrap();
    assert!(r.resource_exceeded, "{r:?}");
    let r = s.run(&id, "len(small)", None).await.unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.value.as_ref().unwrap().get(), "2");
}

#[tokio::test]
async fn sessions_are_isolated_from_each_other_and_from_one_shot_runs() {
    let engine = Arc::new(engine());
    let s = Sessions::new(engine.clone() as Arc<dyn Engine>);
    let a = s.create(PolicySource::Default, None).await.unwrap();
    let b = s.create(PolicySource::Default, None).await.unwrap();
    assert_ne!(a, b);
    let secret = "spr-session-secret-71";
    // `open` is a blocked builtin under the default policy; pathlib writes in scratch.
    let r = s
        .run(
            &a,
            &format!(
                "import pathlib\ntoken = '{secret}'\npathlib.Path('note.txt').write_text(token)"
            ),
            None,
        )
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    // Files persist for the session's life.
    let r = s
        .run(&a, "pathlib.Path('note.txt').read_text()", None)
        .await
        .unwrap();
    assert_eq!(r.value.as_ref().unwrap().get(), format!("\"{secret}\""));
    let probe = "import glob\n[('token' in globals()), glob.glob('*'), glob.glob('/tmp/**', recursive=True)]";
    let r = s.run(&b, probe, None).await.unwrap();
    assert!(r.ok, "{r:?}");
    assert!(!r.value.as_ref().unwrap().get().contains(secret), "{r:?}");
    assert!(
        r.value.as_ref().unwrap().get().starts_with("[false,[]"),
        "{r:?}"
    );
    let one_shot = run_code(
        "import glob\nresult = glob.glob('/tmp/**', recursive=True)",
        engine.as_ref(),
        None,
        PolicySource::Default,
    )
    .await
    .unwrap();
    assert!(one_shot.ok, "{one_shot:?}");
    assert!(!one_shot.result.get().contains("note.txt"), "{one_shot:?}");
    assert!(one_shot.value.is_none(), "one-shot runs have no value");
}

#[tokio::test]
async fn an_idle_session_expires_after_its_ttl() {
    let s = sessions(engine());
    let id = s.create(PolicySource::Default, Some(1)).await.unwrap();
    s.run(&id, "x = 1", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let err = s.run(&id, "x", None).await.unwrap_err();
    assert!(
        matches!(err, RunError::Session(SessionError::Unknown { .. })),
        "{err}"
    );
    assert!(s.is_empty());
    let err = s.create(PolicySource::Default, Some(0)).await.unwrap_err();
    assert!(err.to_string().contains("ttl_seconds"), "{err}");
}

#[tokio::test]
async fn the_engine_caps_open_sessions() {
    let mut config = LocalEngineConfig::new(common::shared_venv());
    config.venv_manager = VenvManager::Python;
    config.pool_size = Some(1);
    config.max_sessions = Some(2);
    let s = sessions(LocalEngine::new(config).unwrap());
    let a = s.create(PolicySource::Default, None).await.unwrap();
    let _b = s.create(PolicySource::Default, None).await.unwrap();
    let err = s.create(PolicySource::Default, None).await.unwrap_err();
    assert!(
        matches!(err, RunError::Session(SessionError::TooMany { limit: 2 })),
        "{err}"
    );
    assert!(err.to_string().contains("allows 2"), "{err}");
    s.close(&a).await.unwrap();
    s.create(PolicySource::Default, None).await.unwrap();
}

#[tokio::test]
async fn a_dropped_cell_loses_the_session_and_kills_its_process() {
    let s = sessions(engine());
    let id = s.create(policy(30), None).await.unwrap();
    s.run(&id, "import time", None).await.unwrap();
    let run = s.run(&id, "time.sleep(60)", None);
    let _ = tokio::time::timeout(Duration::from_millis(500), run).await;
    let err = s.run(&id, "1", None).await.unwrap_err();
    assert!(
        matches!(err, RunError::Session(SessionError::Lost { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn files_in_a_session_persist_and_traversal_is_refused() {
    use spr_core::{Attachments, FileIn};
    let s = sessions(engine());
    let id = s.create(PolicySource::Default, None).await.unwrap();
    let upload = Attachments {
        files: vec![FileIn::text("data/in.csv", "x\n1\n2\n")],
        collect: vec![],
    };
    let r = s
        .run_with(
            &id,
            "import pathlib\nrows = pathlib.Path('data/in.csv').read_text().split()",
            None,
            &upload,
        )
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    let collect = Attachments {
        files: vec![],
        collect: vec!["**/*.csv".into(), "out/**".into()],
    };
    let r = s
        .run_with(
            &id,
            "pathlib.Path('out').mkdir()\npathlib.Path('out/sum.txt').write_text(str(sum(map(int, rows[1:]))))\nlen(rows)",
            None,
            &collect,
        )
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.value.as_ref().unwrap().get(), "3");
    let paths: Vec<&str> = r.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["data/in.csv", "out/sum.txt"], "{r:?}");
    assert_eq!(r.files[1].decode().unwrap(), b"3");
    let evil = Attachments {
        files: vec![FileIn::text("../escape.txt", "x")],
        collect: vec![],
    };
    let err = s.run_with(&id, "1", None, &evil).await.unwrap_err();
    assert!(
        err.to_string().contains("'..' segments are refused"),
        "{err}"
    );
    // The session is still fine after a refused request.
    let r = s.run(&id, "len(rows)", None).await.unwrap();
    assert_eq!(r.value.as_ref().unwrap().get(), "3");
}

#[tokio::test]
async fn a_lost_session_gives_its_place_back_at_once() {
    let mut config = LocalEngineConfig::new(common::shared_venv());
    config.venv_manager = VenvManager::Python;
    config.pool_size = Some(1);
    config.max_sessions = Some(1);
    let s = sessions(LocalEngine::new(config).unwrap());
    let id = s.create(policy(30), None).await.unwrap();
    s.run(&id, "import os", None).await.unwrap();
    // Dropped mid-cell: lost, and its place is free although the id is still known.
    let run = s.run(&id, "import time\ntime.sleep(60)", None);
    let _ = tokio::time::timeout(Duration::from_millis(500), run).await;
    let again = s.create(PolicySource::Default, None).await.unwrap();
    assert!(matches!(
        s.run(&id, "1", None).await.unwrap_err(),
        RunError::Session(SessionError::Lost { .. })
    ));
    assert!(s.run(&again, "1", None).await.unwrap().ok);
}
