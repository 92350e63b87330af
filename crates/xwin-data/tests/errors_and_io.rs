//! Bad input gets errors naming file, line and field; skip-bad counts; writers survive crashes.

use std::io::Write;
use xwin_data::*;

fn file(name: &str, content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

const GOOD: &str =
    r#"{"id":"a","conversations":[{"from":"human","value":"hi"},{"from":"gpt","value":"hello"}]}"#;

#[test]
fn malformed_json_line_names_file_and_line() {
    let (_d, path) = file(
        "data.jsonl",
        &format!("{GOOD}\n{{\"id\": \"b\", \"conversations\": [\n{GOOD}\n"),
    );
    let err = read_conversations(&path, ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{}: line 2: <record>: invalid JSON",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn unknown_role_names_the_field() {
    let bad = r#"{"conversations":[{"from":"human","value":"hi"},{"from":"robot","value":"x"}]}"#;
    let (_d, path) = file("data.jsonl", &format!("{GOOD}\n\n{bad}\n"));
    let err = read_conversations(&path, ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("line 3: conversations[1].from: unknown role `robot`"),
        "{err}"
    );
}

#[test]
fn wrong_field_type_names_the_field() {
    let bad = r#"{"conversations":[{"from":"human","value":42}]}"#;
    let (_d, path) = file("data.json", &format!("[{GOOD}, {bad}]"));
    let err = read_conversations(&path, ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("record 2: conversations[0].value: expected a string, found a number"),
        "{err}"
    );
    let alternation = r#"{"conversations":[{"from":"gpt","value":"x"}]}"#;
    let (_d, path) = file("data.jsonl", alternation);
    let err = read_conversations(&path, ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 1: conversations[0].from: expected Human"),
        "{err}"
    );
}

#[test]
fn typed_records_name_nested_fields() {
    let (_d, path) = file(
        "sets.jsonl",
        r#"{"id":"1","prompt":{"conversations":[{"from":"human","value":"q"}]},"reward_model":"rm","responses":[{"text":"a","score":"high","rank":1}]}"#,
    );
    let err = read_records::<XwinSet>(&path, ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 1: responses[0].score: invalid type: string \"high\""),
        "{err}"
    );
}

#[test]
fn skip_bad_continues_and_counts() {
    let bad_role = r#"{"conversations":[{"from":"alien","value":"x"}]}"#;
    let (_d, path) = file(
        "data.jsonl",
        &format!("{GOOD}\nnot json\n{bad_role}\n{GOOD}\n"),
    );
    let (convs, report) = read_conversations(&path, ReadOptions { skip_bad: true }).unwrap();
    assert_eq!(convs.len(), 2);
    assert_eq!((report.records, report.skipped), (2, 2));
    assert!(report.first_errors[0].contains("line 2"));
    assert!(report.first_errors[1].contains("line 3: conversations[0].from: unknown role `alien`"));
}

#[test]
fn unknown_format_and_missing_file() {
    let (_d, path) = file("data.jsonl", r#"{"text": "plain"}"#);
    let err = read_conversations(&path, ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1: <record>: unknown format"), "{err}");
    let err = read_conversations(
        std::path::Path::new("/nonexistent.jsonl"),
        ReadOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("/nonexistent.jsonl: "), "{err}");
}

#[test]
fn torn_last_line_is_cut_and_appending_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/pairs.jsonl");
    let conv = Conversation::new(vec![Turn::human("q")]);
    let set = |i: usize| XwinSet {
        id: i.to_string(),
        prompt: conv.clone(),
        reward_model: "rm".into(),
        responses: vec![],
    };
    {
        let mut w = JsonlWriter::append(&path).unwrap();
        w.write(&set(0)).unwrap();
        w.write(&set(1)).unwrap();
    }
    // A crash mid-write leaves half a line.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(br#"{"id":"2","pro"#)
        .unwrap();
    let mut w = JsonlWriter::append(&path).unwrap();
    w.write(&set(2)).unwrap();
    drop(w);
    let (sets, report) = read_records::<XwinSet>(&path, ReadOptions::default()).unwrap();
    assert_eq!(report.skipped, 0);
    assert_eq!(
        sets.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["0", "1", "2"]
    );
}
