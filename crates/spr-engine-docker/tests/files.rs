//! Files in and out and figures through real containers: the same harness, with the
//! container's tmpfs as scratch. The figure runs on a derived image with matplotlib
//! pinned through the engine's `packages`.

mod common;

use common::*;
use serde_json::json;
use spr_protocol::{Attachments, FileIn, Json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_round_trip_and_traversal_is_refused() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let blob: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let attachments = Attachments {
        files: vec![
            FileIn::text("data/in.csv", "a,b\n1,2\n"),
            FileIn::bytes("data/blob.bin", &blob),
        ],
        collect: vec!["data/**".into(), "out/*".into()],
    };
    let code = "import os\n\
                os.mkdir('out')\n\
                open('out/rev.bin', 'wb').write(open('data/blob.bin', 'rb').read()[::-1])\n\
                os.symlink('/etc/passwd', 'out/passwd')\n\
                result = open('data/in.csv').read()";
    let r = engine
        .run_with(code, &Json::null(), &open_policy(), &attachments)
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.result, json!("a,b\n1,2\n"));
    let got: Vec<(&str, Vec<u8>)> = r
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.decode().unwrap()))
        .collect();
    let reversed: Vec<u8> = blob.iter().rev().copied().collect();
    assert_eq!(
        got,
        [
            ("data/blob.bin", blob.clone()),
            ("data/in.csv", b"a,b\n1,2\n".to_vec()),
            ("out/rev.bin", reversed),
        ]
    );
    assert!(r.stderr.contains("out/passwd is a symlink"), "{}", r.stderr);

    // The next run of the same container starts from an empty scratch.
    let r = engine
        .run_with(
            "import os\nresult = os.listdir('.')",
            &Json::null(),
            &open_policy(),
            &Attachments::default(),
        )
        .await;
    assert_eq!(r.result, json!([]), "{r:?}");

    let bad = Attachments {
        files: vec![FileIn::text("../../etc/x", "x")],
        collect: vec![],
    };
    let r = engine
        .run_with("result = 1", &Json::null(), &policy(), &bad)
        .await;
    assert!(!r.ok);
    assert_eq!(r.exit_code, 2);
    assert!(
        r.error
            .as_deref()
            .unwrap_or_default()
            .contains("'..' segments are refused"),
        "{r:?}"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_figure_comes_back_as_a_png() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    drop(engine);
    let plotting = spr_engine_docker::DockerEngine::new(spr_engine_docker::DockerEngineConfig {
        packages: vec!["numpy==2.2.6".into(), "matplotlib==3.10.3".into()],
        name: Some("itest-plots".into()),
        pool_size: Some(1),
        ..Default::default()
    })
    .unwrap();
    let mut policy = open_policy();
    policy.timeout_seconds = 60;
    policy.memory_limit_mb = 1024;
    let code = "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n\
                plt.figure(figsize=(4, 3))\nplt.plot([1, 2, 3], [3, 1, 2])\nresult = 'ok'";
    let r = plotting
        .run_with(code, &Json::null(), &policy, &Attachments::default())
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.outputs.len(), 1, "{}", r.stderr);
    let png = r.outputs[0].decode().unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), (400, 300));
    plotting.shutdown().await;
}
