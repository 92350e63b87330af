//! The report renders every section it is given, with numbers equal to the scorers' and one
//! SVG per plot.

use xwin_eval::{ReportInputs, read_annotations, win_rate, write_report};

#[test]
fn report_has_every_section_and_plot() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let ann = |name: &str, prefs: &[f64]| {
        let rows: Vec<serde_json::Value> = prefs
            .iter()
            .enumerate()
            .map(|(i, p)| serde_json::json!({"instruction": format!("q{i}"), "output_1": "r", "output_2": "m", "preference": p}))
            .collect();
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string(&rows).unwrap()).unwrap();
        path
    };
    let a = ann("a", &[1.0, 2.0, 2.0, 1.5]);
    let b = ann("b", &[1.0, 1.0, 2.0, 1.0]);
    let judgments = dir.path().join("j.jsonl");
    std::fs::write(
        &judgments,
        "{\"question_id\": 81, \"model\": \"m\", \"score\": 6, \"turn\": 1}\n{\"question_id\": 82, \"model\": \"m\", \"score\": 8, \"turn\": 2}\n",
    )
    .unwrap();
    let questions = dir.path().join("q.jsonl");
    std::fs::write(
        &questions,
        "{\"question_id\": 81, \"category\": \"writing\", \"turns\": [\"a\", \"b\"]}\n{\"question_id\": 82, \"category\": \"math\", \"turns\": [\"c\", \"d\"]}\n",
    )
    .unwrap();
    let set = dir.path().join("set.jsonl");
    let line = |id: &str, scores: [f32; 4]| {
        let responses: Vec<serde_json::Value> = scores
            .iter()
            .enumerate()
            .map(|(k, s)| serde_json::json!({"text": format!("t{k}"), "score": s, "rank": k + 1, "index": k}))
            .collect();
        serde_json::json!({"id": id, "reward_model": "rm", "responses": responses,
            "prompt": {"conversations": [{"from": "human", "value": "q"}]}})
        .to_string()
    };
    std::fs::write(
        &set,
        [
            line("p", [0.0, 1.0, 2.0, 3.0]),
            line("r", [3.0, 0.0, 1.0, 0.5]),
        ]
        .join("\n"),
    )
    .unwrap();
    let rm_eval = dir.path().join("eval.json");
    let bucket = serde_json::json!({"pairs": 4, "correct": 3, "accuracy": 0.75});
    std::fs::write(
        &rm_eval,
        serde_json::json!({"loss": 0.5, "all": bucket, "by_rating": {"better": bucket},
        "chosen": {"mean": 1.0, "std": 0.5}, "rejected": {"mean": -1.0, "std": 0.5}})
        .to_string(),
    )
    .unwrap();
    let out = dir.path().join("report");
    let inputs = ReportInputs {
        alpaca: vec![("A".into(), a.clone()), ("B".into(), b)],
        mt_bench: vec![judgments],
        questions: Some(questions),
        xwin_set: Some(set),
        rm_eval: Some(rm_eval.clone()),
        conversations: Some((
            root.join("data/demo/sft.jsonl"),
            root.join("fixtures/tiny-llama/tokenizer.json"),
        )),
        pairs: Some(root.join("data/demo/rm-pairs.jsonl")),
    };
    let md = std::fs::read_to_string(write_report(&inputs, &out).unwrap()).unwrap();
    let wa = win_rate(&read_annotations(&a).unwrap());
    assert!(md.contains(&format!("| A | {:.2} |", wa.win_rate)), "{md}");
    assert!(md.contains("| m | 6.000 | 8.000 | 7.000 |"), "{md}");
    assert!(
        md.contains("| 4 | 3.0000 |"),
        "best-of-4 picks 3.0 twice:\n{md}"
    );
    assert!(md.contains("Table 3") && md.contains("75.0"), "{md}");
    assert!(md.contains("Table 1") && md.contains("Table 2"), "{md}");
    for svg in [
        "alpaca.svg",
        "mt-bench-categories.svg",
        "best-of-n.svg",
        "rm-by-rank.svg",
    ] {
        let text = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(text.contains("<svg") && text.contains("</svg>"), "{svg}");
        assert!(md.contains(&format!("({svg})")), "{svg} not linked");
    }
}
