//! Reply parsers on hand-written replies: what counts as a verdict and what does not.

use xwin_annotate::Shown;
use xwin_annotate::parse::{
    parse_alpaca_ranking, parse_mt_bench_pair, parse_single_rating, parse_xwin_pairwise,
};
use xwin_data::Rating;

#[test]
fn xwin_pairwise_needs_one_letter_and_one_rating() {
    let ok = |s: &str| parse_xwin_pairwise(s).unwrap();
    assert_eq!(
        ok("B is clearer.\n[[B]]\nRating: [[significantly better]]"),
        (Shown::Second, Rating::Significantly)
    );
    assert_eq!(
        ok("[[A]]\nRating: [[better]]"),
        (Shown::First, Rating::Better)
    );
    assert_eq!(
        ok("[[A]] Rating: [[Slightly Better]]"),
        (Shown::First, Rating::Slightly)
    );
    assert_eq!(
        ok("[[B]]\nRating: [[negligibly better]]"),
        (Shown::Second, Rating::Negligibly)
    );
    for bad in [
        "A is better.",                                  // no tag
        "[[A]]",                                         // no rating
        "[[A]] or maybe [[B]]\nRating: [[better]]",      // both letters
        "[[A]]\nRating: [[better]] [[slightly better]]", // two ratings
        "[[A]]\nRating: [[much better]]",                // unknown level
    ] {
        assert!(parse_xwin_pairwise(bad).is_err(), "{bad:?} must not parse");
    }
}

#[test]
fn mt_bench_pair_follows_fastchat() {
    assert_eq!(parse_mt_bench_pair("... [[A]]").unwrap(), Shown::First);
    assert_eq!(parse_mt_bench_pair("[[B]]").unwrap(), Shown::Second);
    assert_eq!(parse_mt_bench_pair("a tie: [[C]]").unwrap(), Shown::Tie);
    assert!(parse_mt_bench_pair("A wins").is_err());
    assert!(parse_mt_bench_pair("$ERROR$").is_err());
}

#[test]
fn single_rating_takes_the_first_bracketed_number_in_range() {
    assert_eq!(parse_single_rating("Rating: [[7]]").unwrap(), 7.0);
    assert_eq!(
        parse_single_rating("Rating: [[8.5]] not [[3]]").unwrap(),
        8.5
    );
    assert_eq!(parse_single_rating("score [6]").unwrap(), 6.0);
    for bad in [
        "Rating: [[11]]",
        "Rating: [[x]]",
        "no rating",
        "[[0]]",
        "$ERROR$",
    ] {
        assert!(parse_single_rating(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn alpaca_ranking_reads_python_dicts() {
    let r = "[\n    {'model': 'model_2', 'rank': 1},\n    {'model': 'model_1', 'rank': 2}\n]";
    assert_eq!(parse_alpaca_ranking(r).unwrap(), Shown::Second);
    let r = "[{\"model\": \"model_1\", \"rank\": 1}, {\"model\": \"model_2\", \"rank\": 2}]";
    assert_eq!(parse_alpaca_ranking(r).unwrap(), Shown::First);
    assert!(parse_alpaca_ranking("model_1 is better").is_err());
    assert!(
        parse_alpaca_ranking("[{'model': 'model_1', 'rank': 2}, {'model': 'model_2', 'rank': 2}]")
            .is_err()
    );
}

#[test]
fn templates_fill_placeholders_and_leave_other_braces() {
    let t = xwin_annotate::PromptTemplate::builtin("alpaca-eval").unwrap();
    let (system, user) = t
        .render(&[
            ("instruction", "Say {hi}"),
            ("output_1", "one"),
            ("output_2", "two"),
        ])
        .unwrap();
    assert!(system.starts_with("You are a helpful assistant"));
    assert!(
        user.contains("\"instruction\": \"\"\"Say {hi}\"\"\","),
        "{user}"
    );
    assert!(user.contains("{'model': <model-name>, 'rank': <model-rank>}"));
    let err = t.render(&[("instruction", "x")]).unwrap_err().to_string();
    assert!(err.contains("{output_1}"), "{err}");
    // A template file with text before its sections is rejected with the line.
    let bad = xwin_annotate::PromptTemplate::parse("t", "hello\n[user]\n{question}\n").unwrap_err();
    assert!(bad.contains("line 1"), "{bad}");
}

#[tokio::test]
async fn the_oracle_prefers_reference_overlap_then_length_without_refusal() {
    use xwin_annotate::{GradeQuery, Judge, OracleJudge, PairQuery};
    let reference = Some("Paris is the capital of France.");
    let q = |first, second, reference| PairQuery {
        question: "Capital of France?",
        first,
        second,
        reference,
    };
    let v = OracleJudge
        .compare(q("It is Paris, the capital of France.", "Lyon.", reference))
        .await
        .unwrap();
    assert_eq!(
        (v.winner, v.rating),
        (Shown::First, Some(Rating::Significantly))
    );
    let v = OracleJudge
        .compare(q(
            "I'm sorry, I cannot help with questions about capitals of countries.",
            "Paris.",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(
        v.winner,
        Shown::Second,
        "a refusal loses even when longer: {v:?}"
    );
    let v = OracleJudge
        .compare(q("Same.", "Same.", None))
        .await
        .unwrap();
    assert_eq!((v.winner, v.rating), (Shown::Tie, None));
    let g = |answer| GradeQuery {
        question: "Capital?",
        answer,
        reference,
    };
    assert_eq!(
        OracleJudge
            .grade(g("Paris is the capital of France."))
            .await
            .unwrap()
            .score,
        10.0
    );
    assert_eq!(OracleJudge.grade(g("Berlin")).await.unwrap().score, 1.0);
}

/// With a reference: exact match (trimmed, final period dropped) scores 1; anything else at
/// most 0.9, ordered by word overlap and edit distance, so near misses rank between.
#[test]
fn the_oracle_puts_exact_answers_first_and_orders_near_misses() {
    use xwin_annotate::OracleJudge;
    let s = |a: &str, r: &str| OracleJudge::score(a, Some(r));
    assert_eq!(s(" 3, 5, 12. ", "3, 5, 12"), 1.0);
    // Same words, wrong order: F1 1, characters half alike (4 edits over 8).
    assert!(
        (s("3, 12, 5", "3, 5, 12") - 0.45 * (1.0 + 0.5)).abs() < 1e-12,
        "{}",
        s("3, 12, 5", "3, 5, 12")
    );
    // No shared word: only the characters count; one edit beats the word itself.
    assert!((s("elpap", "elppa") - 0.45 * 0.6).abs() < 1e-12);
    assert!(s("elpap", "elppa") > s("apple", "elppa"));
    assert!(s("APPLE", "APPLE") > s("apple", "APPLE"));
    assert_eq!(s("", "12"), 0.0);
}
