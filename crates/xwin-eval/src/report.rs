//! The evaluation report: Markdown tables and SVG plots of whatever evaluation artifacts are
//! given — AlpacaEval win rates per policy, MT-bench scores overall and per category, the
//! best-of-n curve and the RM score by rank of an Xwin-Set — every number with its interval.

use crate::EvalError;
use crate::alpaca::{read_annotations, win_rate};
use crate::best_of_n::{best_of_n, curve_points};
use crate::bootstrap::bootstrap_mean;
use crate::mt_bench::{SingleJudgment, read_judgments, single_scores};
use crate::mt_bench_protocol::{Question, read_jsonl};
use crate::plots::{Point, bar_chart, line_chart};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use xwin_data::XwinSet;

/// What goes into the report.
#[derive(Debug, Clone, Default)]
pub struct ReportInputs {
    /// (policy name, `annotations.json`) against one reference.
    pub alpaca: Vec<(String, PathBuf)>,
    /// FastChat single-grading judgment files.
    pub mt_bench: Vec<PathBuf>,
    /// `question.jsonl`, for the per-category plot.
    pub questions: Option<PathBuf>,
    /// An Xwin-Set with N samples per prompt.
    pub xwin_set: Option<PathBuf>,
    /// The reward model's held-out evaluation (`xwin-rm`'s `eval.json`): paper Table 3.
    pub rm_eval: Option<PathBuf>,
    /// Training conversations and the tokenizer that counts their tokens: paper Table 1.
    pub conversations: Option<(PathBuf, PathBuf)>,
    /// Judged pairs (Xwin-Pair JSONL): paper Table 2.
    pub pairs: Option<PathBuf>,
}

fn ci(i: Option<crate::Interval>) -> String {
    i.map_or("–".into(), |i| format!("{:.2} – {:.2}", i.low, i.high))
}

/// Writes `out/report.md` and its SVGs; returns the Markdown's path.
pub fn write_report(inputs: &ReportInputs, out: &Path) -> Result<PathBuf, EvalError> {
    let md = format!(
        "# Evaluation report\n\nIntervals are seeded 95 % bootstrap intervals of the mean.\n{}",
        report_sections(inputs, out)?
    );
    let path = out.join("report.md");
    std::fs::write(&path, md).map_err(|e| xwin_data::DataError::io(&path, e))?;
    Ok(path)
}

/// The report's `##` sections for what `inputs` holds, as Markdown whose images are the SVGs
/// it writes into `out` (linked by file name): for documents that embed them.
pub fn report_sections(inputs: &ReportInputs, out: &Path) -> Result<String, EvalError> {
    std::fs::create_dir_all(out).map_err(|e| xwin_data::DataError::io(out, e))?;
    let mut md = String::new();
    if !inputs.alpaca.is_empty() {
        md.push_str("\n## AlpacaEval\n\n| policy | win rate (%) | ± s.e. | 95 % interval | wins / losses / draws | judged |\n|---|---:|---:|---|---|---:|\n");
        let mut points = Vec::new();
        for (k, (name, path)) in inputs.alpaca.iter().enumerate() {
            let s = win_rate(&read_annotations(path)?);
            let _ = writeln!(
                md,
                "| {name} | {:.2} | {:.2} | {} | {} / {} / {} | {} |",
                s.win_rate,
                s.standard_error,
                ci(s.interval),
                s.n_wins,
                s.n_wins_base,
                s.n_draws,
                s.n_total
            );
            points.push(Point {
                x: k as f64,
                y: s.win_rate,
                interval: s.interval.map(|i| (i.low, i.high)),
            });
        }
        let names: Vec<String> = inputs.alpaca.iter().map(|(n, _)| n.clone()).collect();
        bar_chart(
            &out.join("alpaca.svg"),
            "AlpacaEval win rate",
            "win rate (%)",
            &names,
            &[("win rate".into(), points)],
        )?;
        md.push_str("\n![AlpacaEval win rates](alpaca.svg)\n");
    }
    if !inputs.mt_bench.is_empty() {
        let mut judgments: Vec<SingleJudgment> = Vec::new();
        for path in &inputs.mt_bench {
            judgments.extend(read_judgments::<SingleJudgment>(path, None)?);
        }
        md.push_str("\n## MT-bench (single grading)\n\n| model | turn 1 | turn 2 | overall | 95 % interval | ratings (unrated) |\n|---|---:|---:|---:|---|---:|\n");
        let f = |x: Option<f64>| x.map_or("–".into(), |v| format!("{v:.3}"));
        for (model, s) in single_scores(&judgments) {
            let ratings: Vec<f64> = judgments
                .iter()
                .filter(|j| j.model == model && j.score != -1.0)
                .map(|j| j.score)
                .collect();
            let _ = writeln!(
                md,
                "| {model} | {} | {} | {:.3} | {} | {} ({}) |",
                f(s.turn1),
                f(s.turn2),
                s.overall,
                ci(bootstrap_mean(&ratings, 2000, 0.95, 0)),
                s.n_ratings,
                s.n_unrated
            );
        }
        if let Some(q) = &inputs.questions {
            let questions: Vec<Question> = read_jsonl(q)?;
            let category: BTreeMap<i64, String> = questions
                .iter()
                .map(|q| (q.question_id, q.category.clone()))
                .collect();
            let groups: Vec<String> = {
                let mut c: Vec<String> = category.values().cloned().collect();
                c.sort();
                c.dedup();
                c
            };
            let models: Vec<String> = single_scores(&judgments).into_keys().collect();
            let series = models
                .iter()
                .map(|m| {
                    let points = groups
                        .iter()
                        .enumerate()
                        .map(|(g, cat)| {
                            let v: Vec<f64> = judgments
                                .iter()
                                .filter(|j| {
                                    &j.model == m
                                        && j.score != -1.0
                                        && category.get(&j.question_id) == Some(cat)
                                })
                                .map(|j| j.score)
                                .collect();
                            let i = bootstrap_mean(&v, 2000, 0.95, 0);
                            Point {
                                x: g as f64,
                                y: v.iter().sum::<f64>() / v.len().max(1) as f64,
                                interval: i.map(|i| (i.low, i.high)),
                            }
                        })
                        .collect();
                    (m.clone(), points)
                })
                .collect::<Vec<_>>();
            bar_chart(
                &out.join("mt-bench-categories.svg"),
                "MT-bench score by category",
                "score (1-10)",
                &groups,
                &series,
            )?;
            md.push_str("\n![MT-bench by category](mt-bench-categories.svg)\n");
        }
    }
    if let Some(path) = &inputs.xwin_set {
        let (sets, _) =
            xwin_data::read_records::<XwinSet>(path, xwin_data::ReadOptions::default())?;
        let n = sets.iter().map(|s| s.responses.len()).min().unwrap_or(0);
        let curve = best_of_n(&sets, &curve_points(n))?;
        md.push_str("\n## Best-of-n (paper Fig. 3/4/8 shape)\n\nThe reward model's top among the first n samples of each prompt.\n\n| n | mean RM score | 95 % interval |\n|---:|---:|---|\n");
        for p in &curve {
            let _ = writeln!(md, "| {} | {:.4} | {} |", p.n, p.mean_score, ci(p.interval));
        }
        let points: Vec<Point> = curve
            .iter()
            .map(|p| Point {
                x: (p.n as f64).log2(),
                y: p.mean_score,
                interval: p.interval.map(|i| (i.low, i.high)),
            })
            .collect();
        line_chart(
            &out.join("best-of-n.svg"),
            "Best-of-n: RM score of the pick",
            "n",
            "mean RM score",
            &points,
            &|x| format!("{}", 2f64.powf(*x).round()),
        )?;
        md.push_str("\n![best-of-n](best-of-n.svg)\n");
        let stats = xwin_rs::rank_stats_of(&sets, None)?;
        md.push_str("\n## RM score by rank (paper Fig. 5/7 shape)\n\n| rank | mean RM score | 95 % interval | prompts |\n|---:|---:|---|---:|\n");
        // Each prompt's scores, best first: column r holds every prompt's rank-(r + 1) score.
        let mut by_rank: Vec<Vec<f64>> = Vec::new();
        for set in &sets {
            let mut scores: Vec<f64> = set.responses.iter().map(|r| f64::from(r.score)).collect();
            scores.sort_by(|a, b| b.total_cmp(a));
            by_rank.resize(by_rank.len().max(scores.len()), Vec::new());
            for (r, v) in scores.into_iter().enumerate() {
                by_rank[r].push(v);
            }
        }
        let mut points = Vec::with_capacity(by_rank.len());
        for (r, scores) in by_rank.iter().enumerate() {
            let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
            let interval = bootstrap_mean(scores, 2000, 0.95, 0);
            let rank = r + 1;
            if rank <= 8 || rank % 8 == 0 || rank == by_rank.len() {
                let _ = writeln!(
                    md,
                    "| {rank} | {mean:.4} | {} | {} |",
                    ci(interval),
                    scores.len()
                );
            }
            points.push(Point {
                x: rank as f64,
                y: mean,
                interval: interval.map(|i| (i.low, i.high)),
            });
        }
        let _ = writeln!(
            md,
            "\n{} prompts, {} responses, mean score {:.4}; per prompt: mean spread (best − worst) {:.4}, mean std {:.4}",
            stats.prompts, stats.responses, stats.mean, stats.mean_spread, stats.mean_std
        );
        line_chart(
            &out.join("rm-by-rank.svg"),
            "Mean RM score by rank",
            "rank",
            "mean RM score",
            &points,
            &|x| format!("{x:.0}"),
        )?;
        md.push_str("\n![RM score by rank](rm-by-rank.svg)\n");
    }
    if let Some((data, tokenizer)) = &inputs.conversations {
        let encoder = xwin_data::load_tokenizer(tokenizer)?;
        let mut stats = xwin_data::ConversationStats::default();
        let mut failure = None;
        xwin_data::for_each_conversation(data, xwin_data::ReadOptions::default(), |c| {
            if failure.is_none()
                && let Err(e) = stats.add(&c, &encoder)
            {
                failure = Some(e);
            }
        })?;
        if let Some(e) = failure {
            return Err(e.into());
        }
        md.push_str("\n## Training conversations (paper Table 1)\n\n");
        md.push_str(&stats.table());
        md.push('\n');
    }
    if let Some(path) = &inputs.pairs {
        let mut stats = xwin_data::PairStats::default();
        xwin_data::for_each_record(
            path,
            xwin_data::ReadOptions::default(),
            |p: xwin_data::XwinPair| stats.add(&p),
        )?;
        md.push_str("\n## Judged pairs by rating (paper Table 2)\n\n");
        md.push_str(&stats.table());
        md.push('\n');
    }
    if let Some(path) = &inputs.rm_eval {
        let text = std::fs::read_to_string(path).map_err(|e| xwin_data::DataError::io(path, e))?;
        let report: xwin_rm::EvalReport =
            serde_json::from_str(&text).map_err(|e| EvalError::Input {
                path: path.display().to_string(),
                message: format!("not an xwin-rm eval.json: {e}"),
            })?;
        md.push_str("\n## Reward model accuracy by rating (paper Table 3)\n\n| rating | pairs | accuracy | 95 % interval |\n|---|---:|---:|---|\n");
        let names = xwin_data::Rating::ALL
            .iter()
            .map(|r| r.as_str())
            .chain(["unrated"]);
        let rows = names
            .filter_map(|n| report.by_rating.get(n).map(|b| (n, b)))
            .chain([("all", &report.all)]);
        for (name, b) in rows {
            // The held-out pairs as right (1) / wrong (0): the interval of the accuracy.
            let hits: Vec<f64> = (0..b.pairs)
                .map(|i| f64::from(u8::from(i < b.correct)))
                .collect();
            let interval = crate::bootstrap::bootstrap_percent(&hits);
            let _ = writeln!(
                md,
                "| {name} | {} | {:.1} % | {} |",
                b.pairs,
                100.0 * b.accuracy(),
                ci(interval)
            );
        }
        let _ = writeln!(
            md,
            "\nrewards: chosen {:.3} ± {:.3}, rejected {:.3} ± {:.3}; loss {:.4}",
            report.chosen.mean,
            report.chosen.std,
            report.rejected.mean,
            report.rejected.std,
            report.loss
        );
    }
    Ok(md)
}
