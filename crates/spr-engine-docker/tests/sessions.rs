//! Sessions on the Docker engine: a container of its own per session, whose one process
//! keeps the state from cell to cell; interrupts, lost sessions, the cap, cleanup.

mod common;

use common::{config, engine, policy};
use spr_engine_docker::DockerEngineConfig;
use spr_policy::RunnerPolicy;
use spr_protocol::{Attachments, FileIn, Json, SessionError};

fn input() -> Json {
    Json::null()
}

fn none() -> Attachments {
    Attachments::default()
}

#[tokio::test]
async fn state_persists_and_an_interrupted_cell_keeps_the_session() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let session = engine
        .open_session(&RunnerPolicy {
            timeout_seconds: 1,
            ..policy()
        })
        .await
        .unwrap();
    let r = session
        .run("import math\nx = 6", &input(), &none())
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.value.as_ref().unwrap().get(), "null");
    let r = session
        .run("math.factorial(x)", &input(), &none())
        .await
        .unwrap();
    assert_eq!(r.value.as_ref().unwrap().get(), "720", "{r:?}");
    let r = session
        .run(
            "import time\nwhile True:\n    time.sleep(0.01)",
            &input(),
            &none(),
        )
        .await
        .unwrap();
    assert!(r.timed_out && !r.session_lost, "{r:?}");
    assert!(r.stderr.contains("KeyboardInterrupt"), "{r:?}");
    let r = session.run("x + 1", &input(), &none()).await.unwrap();
    assert_eq!(r.value.as_ref().unwrap().get(), "7", "{r:?}");
    assert_eq!(r.sandbox.as_ref().unwrap().engine, "docker");
    // One-shot runs do not see the session's state.
    let one_shot = engine
        .run("result = 'x' in globals()", &input(), &policy())
        .await;
    assert_eq!(one_shot.result, serde_json::json!(false), "{one_shot:?}");
    session.close().await;
    let err = session.run("1", &input(), &none()).await.unwrap_err();
    assert!(matches!(err, SessionError::Lost { .. }), "{err}");
}

#[tokio::test]
async fn a_session_that_ignores_the_interrupt_is_lost_and_refused() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let session = engine
        .open_session(&RunnerPolicy {
            timeout_seconds: 1,
            ..policy()
        })
        .await
        .unwrap();
    let code = "import time\nwhile True:\n    try:\n        time.sleep(0.01)\n    except KeyboardInterrupt:\n        pass\n";
    let r = session.run(code, &input(), &none()).await.unwrap();
    assert!(r.timed_out && r.session_lost, "{r:?}");
    assert!(session.is_lost());
    assert!(matches!(
        session.run("1", &input(), &none()).await.unwrap_err(),
        SessionError::Lost { .. }
    ));
}

#[tokio::test]
async fn the_engine_caps_open_sessions() {
    let Some(engine) = engine(DockerEngineConfig {
        max_sessions: Some(1),
        ..config(1)
    })
    .await
    else {
        return;
    };
    let first = engine.open_session(&policy()).await.unwrap();
    let err = engine.open_session(&policy()).await.unwrap_err();
    assert_eq!(err, SessionError::TooMany { limit: 1 });
    assert_eq!(engine.open_sessions(), 1);
    first.close().await;
    drop(first);
    let again = engine.open_session(&policy()).await.unwrap();
    again.close().await;
}

#[tokio::test]
async fn files_persist_for_the_session_s_life_and_come_back_when_collected() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let session = engine.open_session(&policy()).await.unwrap();
    let upload = Attachments {
        files: vec![FileIn {
            path: "data/in.csv".into(),
            content: "a,b\n1,2\n".into(),
            encoding: Default::default(),
        }],
        collect: vec![],
    };
    let r = session
        .run(
            "import pathlib\nrows = pathlib.Path('data/in.csv').read_text().splitlines()",
            &input(),
            &upload,
        )
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    let collect = Attachments {
        files: vec![],
        collect: vec!["data/*".into(), "*.txt".into()],
    };
    let r = session
        .run(
            "pathlib.Path('n.txt').write_text(str(len(rows)))",
            &input(),
            &collect,
        )
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    let paths: Vec<&str> = r.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["data/in.csv", "n.txt"], "{r:?}");
    session.close().await;
}
