//! Attachment validation: every refusal with its message, and the wire shapes.

use super::*;

fn files(list: Vec<FileIn>) -> Attachments {
    Attachments {
        files: list,
        collect: Vec::new(),
    }
}

fn refusal(attachments: &Attachments) -> String {
    attachments
        .validate(&RunnerPolicy::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn good_attachments_pass() {
    let a = Attachments {
        files: vec![
            FileIn::text("data/in.csv", "a,b\n1,2\n"),
            FileIn::bytes("blob.bin", &[0, 159, 255]),
            FileIn::text("data/deeper/x.txt", ""),
            FileIn::text(".hidden", "x"),
            FileIn::text("a..b", "dots inside a name are a name"),
        ],
        collect: vec![
            "*.png".into(),
            "out/**".into(),
            "**/*.csv".into(),
            "[ab]?.txt".into(),
            "[]x].txt".into(),
        ],
    };
    a.validate(&RunnerPolicy::default()).unwrap();
    assert!(Attachments::default().is_empty());
    Attachments::default()
        .validate(&RunnerPolicy::default())
        .unwrap();
}

#[test]
fn every_bad_path_is_refused_naming_index_path_and_problem() {
    let mut lines = Vec::new();
    for path in [
        "",
        "/etc/passwd",
        "../up",
        "a/../../b",
        "a/./b",
        ".",
        "a//b",
        "a/",
        "a\\b",
        "nul\0byte",
        "new\nline",
        &"x".repeat(256),
        &"a/".repeat(33),
        &format!("{}/x", "d".repeat(200)).repeat(21),
    ] {
        let path = if path.len() == 66 {
            format!("{path}z")
        } else {
            path.to_string()
        };
        let one = files(vec![FileIn::text("ok.txt", ""), FileIn::text(path, "")]);
        lines.push(refusal(&one));
    }
    insta::assert_snapshot!("bad_paths", lines.join("\n"));
}

#[test]
fn every_bad_glob_is_refused_naming_index_glob_and_problem() {
    let mut lines = Vec::new();
    let long = "*".repeat(1025);
    for glob in [
        "", "/abs/*", "../*", "out/../x", "./x", "a//b", "a**", "**b/x", "x[ab", "c:\\x", &long,
    ] {
        let a = Attachments {
            files: Vec::new(),
            collect: vec!["*.png".into(), glob.into()],
        };
        lines.push(refusal(&a));
    }
    insta::assert_snapshot!("bad_globs", lines.join("\n"));
}

#[test]
fn duplicates_files_under_files_bad_base64_and_caps_are_refused() {
    let mut lines = Vec::new();
    lines.push(refusal(&files(vec![
        FileIn::text("a.txt", "1"),
        FileIn::text("a.txt", "2"),
    ])));
    lines.push(refusal(&files(vec![
        FileIn::text("a/b/c.txt", "1"),
        FileIn::text("a", "2"),
    ])));
    for content in ["not base64!", "QUJD=", "QUJ"] {
        lines.push(refusal(&files(vec![FileIn {
            path: "x.bin".into(),
            content: content.into(),
            encoding: FileEncoding::Base64,
        }])));
    }
    lines.push(refusal(&files(
        (0..=MAX_FILES_IN)
            .map(|i| FileIn::text(format!("f{i}"), ""))
            .collect(),
    )));
    let eleven_mib = "x".repeat(11 << 20);
    lines.push(refusal(&files(
        (0..3)
            .map(|i| FileIn::text(format!("big{i}"), eleven_mib.clone()))
            .collect(),
    )));
    let mut small = RunnerPolicy::default();
    small.sandbox.max_file_size_mb = 1;
    lines.push(
        files(vec![FileIn::bytes("two.bin", &vec![7u8; 2 << 20])])
            .validate(&small)
            .unwrap_err()
            .to_string(),
    );
    lines.push(refusal(&Attachments {
        files: Vec::new(),
        collect: (0..=MAX_COLLECT_GLOBS).map(|i| format!("g{i}")).collect(),
    }));
    insta::assert_snapshot!("other_refusals", lines.join("\n"));
}

#[test]
fn a_refused_path_is_quoted_escaped_and_cut() {
    let message = refusal(&files(vec![FileIn::text(
        format!("/\u{1b}[2J{}", "y".repeat(500)),
        "",
    )]));
    assert!(
        message.starts_with("files[0] \"/\\u{1b}[2Jyyy"),
        "{message}"
    );
    assert!(message.len() < 200, "{message}");
}

#[test]
fn wire_shapes() {
    let a: Attachments = serde_json::from_str(
        r#"{"files": [{"path": "a.txt", "content": "hi"},
                      {"path": "b.bin", "content": "AAE=", "encoding": "base64"}],
            "collect": ["*.png"]}"#,
    )
    .unwrap();
    assert_eq!(a.files[0].encoding, FileEncoding::Utf8);
    assert_eq!(a.files[1].encoding, FileEncoding::Base64);
    insta::assert_snapshot!("attachments", serde_json::to_string(&a).unwrap());
    let err =
        serde_json::from_str::<FileIn>(r#"{"path": "a", "content": "", "encoding": "latin-1"}"#)
            .unwrap_err();
    assert!(
        err.to_string().contains("unknown variant `latin-1`"),
        "{err}"
    );
    let err =
        serde_json::from_str::<FileIn>(r#"{"path": "a", "content": "", "mode": 1}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `mode`"), "{err}");
    let out = FileOut {
        path: "out/r.bin".into(),
        content: "AAE=".into(),
        size: 9,
        truncated: true,
    };
    assert_eq!(out.decode().unwrap(), vec![0, 1]);
    insta::assert_snapshot!("file_out", serde_json::to_string(&out).unwrap());
    assert!(serde_json::to_string(&Attachments::default()).unwrap() == "{}");
}
