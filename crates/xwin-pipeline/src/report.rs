//! `output/report.md`: the paper's Fig. 8 shape on the held-out demo tasks (exact match and
//! oracle-judged win rate against the SFT policy, for SFT, RS and DPO, best-of-1 and
//! best-of-N, with bootstrap intervals and paired differences), the reward model's accuracy
//! by rating (Table 3) and score by rank (Fig. 5/7) through `xwin_eval::report_sections`, and
//! each stage's time and throughput from its manifest.

use crate::PipelineError;
use crate::eval::{PolicyResults, read_results};
use crate::manifest::StageFiles;
use crate::stages::{Layout, STAGES};
use serde_json::{Value, json};
use std::fmt::Write as _;
use xwin_eval::plots::{Point, bar_chart};
use xwin_eval::{Interval, bootstrap_percent};

const POLICIES: [(&str, &str); 3] = [("SFT", "eval-sft"), ("RS", "eval-rs"), ("DPO", "eval-dpo")];

fn win(a: f64, b: f64) -> f64 {
    if a > b {
        1.0
    } else if a < b {
        0.0
    } else {
        0.5
    }
}

/// Per task: the policy's win rate against SFT by the oracle's graded score, sample `k`
/// against sample `k` (best-of-1) or top-ranked against top-ranked (best-of-N).
fn win_rates(p: &PolicyResults, sft: &PolicyResults, best_of_n: bool) -> Vec<f64> {
    let by_id: std::collections::HashMap<&str, &crate::eval::TaskResult> =
        sft.tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    p.tasks
        .iter()
        .filter_map(|a| by_id.get(a.id.as_str()).map(|b| (a, *b)))
        .map(|(a, b)| {
            if best_of_n {
                win(a.oracle[a.top()], b.oracle[b.top()])
            } else {
                let n = a.oracle.len().min(b.oracle.len());
                let wins: f64 = (0..n).map(|k| win(a.oracle[k], b.oracle[k])).sum();
                wins / n.max(1) as f64
            }
        })
        .collect()
}

fn percent(values: &[f64]) -> (f64, Option<Interval>) {
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    (mean * 100.0, bootstrap_percent(values))
}

fn show(v: (f64, Option<Interval>)) -> String {
    match v.1 {
        Some(i) => format!("{:.1} ({:.1} – {:.1})", v.0, i.low, i.high),
        None => format!("{:.1}", v.0),
    }
}

fn point(x: usize, v: (f64, Option<Interval>)) -> Point {
    Point {
        x: x as f64,
        y: v.0,
        interval: v.1.map(|i| (i.low, i.high)),
    }
}

/// Writes the report; returns its headline numbers.
pub fn write(layout: &Layout) -> Result<Value, PipelineError> {
    let out = &layout.config.output;
    let assets = out.join("report");
    std::fs::create_dir_all(&assets).map_err(|e| PipelineError::io(&assets, e))?;
    let mut md = String::from(
        "# xwin pipeline report\n\nIntervals are seeded 95 % bootstrap intervals over held-out \
         tasks.\n",
    );
    let mut headline = json!({});
    let results: Vec<(&str, PolicyResults)> = POLICIES
        .iter()
        .filter_map(|(name, stage)| read_results(layout, stage).map(|r| (*name, r)))
        .collect();
    if let Some((_, sft)) = results.iter().find(|(n, _)| *n == "SFT") {
        let n = layout.config.eval.n;
        let _ = write!(
            md,
            "\n## Held-out demo tasks (paper Fig. 8 shape)\n\n{} tasks, {n} samples each at \
             temperature {}; best-of-1 is the share of right samples, best-of-{n} the sample \
             the reward model ranks first. Win rate: the oracle judge's graded score against \
             the SFT policy's, sample for sample (ties count half).\n\n| policy | exact match, \
             best-of-1 (%) | exact match, best-of-{n} (%) | win rate vs SFT, best-of-1 (%) | \
             win rate vs SFT, best-of-{n} (%) |\n|---|---|---|---|---|\n",
            sft.tasks.len(),
            layout.config.eval.temperature,
        );
        let mut exact_series = (Vec::new(), Vec::new());
        let mut win_series = (Vec::new(), Vec::new());
        for (k, (name, r)) in results.iter().enumerate() {
            let (e1, en) = (percent(&r.best_of_1()), percent(&r.best_of_n()));
            let (w1, wn) = (
                percent(&win_rates(r, sft, false)),
                percent(&win_rates(r, sft, true)),
            );
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} |",
                show(e1),
                show(en),
                show(w1),
                show(wn)
            );
            headline[format!("{name}_best_of_1_exact")] = json!(e1.0);
            headline[format!("{name}_best_of_n_exact")] = json!(en.0);
            headline[format!("{name}_win_rate_vs_sft")] = json!(w1.0);
            exact_series.0.push(point(k, e1));
            exact_series.1.push(point(k, en));
            win_series.0.push(point(k, w1));
            win_series.1.push(point(k, wn));
        }
        md.push_str(
            "\nPaired differences (per task, best-of-1 exact match, percentage points):\n\n",
        );
        for pair in results.windows(2) {
            let (a, b) = (&pair[1], &pair[0]);
            let before: std::collections::HashMap<&str, f64> =
                b.1.tasks
                    .iter()
                    .map(|t| (t.id.as_str(), t.best_of_1()))
                    .collect();
            let d: Vec<f64> =
                a.1.tasks
                    .iter()
                    .filter_map(|t| before.get(t.id.as_str()).map(|y| t.best_of_1() - y))
                    .collect();
            let _ = writeln!(md, "- {} − {}: {}", a.0, b.0, show(percent(&d)));
            headline[format!("{}_minus_{}", a.0, b.0)] = json!(percent(&d).0);
        }
        let groups: Vec<String> = results.iter().map(|(n, _)| n.to_string()).collect();
        let labels = |s: (Vec<Point>, Vec<Point>)| {
            vec![
                ("best-of-1".to_string(), s.0),
                (format!("best-of-{n}"), s.1),
            ]
        };
        bar_chart(
            &assets.join("exact-match.svg"),
            "Held-out exact match",
            "exact match (%)",
            &groups,
            &labels(exact_series),
        )?;
        bar_chart(
            &assets.join("win-rate.svg"),
            "Win rate against SFT (oracle judge)",
            "win rate (%)",
            &groups,
            &labels(win_series),
        )?;
        md.push_str("\n![exact match](report/exact-match.svg)\n![win rate](report/win-rate.svg)\n");
    } else {
        md.push_str("\nNo held-out task results (the demo task's `data.heldout`).\n");
    }
    // Reward model accuracy by rating and score by rank, as `xwin-eval report` draws them.
    let inputs = xwin_eval::ReportInputs {
        xwin_set: Some(layout.dir("rs").join("xwin-set.jsonl")).filter(|p| p.exists()),
        rm_eval: Some(layout.dir("rm").join("eval.json")).filter(|p| p.exists()),
        ..Default::default()
    };
    // Its images sit in `report/`, beside this file's own.
    md.push_str(&xwin_eval::report_sections(&inputs, &assets)?.replace("](", "](report/"));
    md.push_str("\n## Stages\n\n| stage | seconds | tokens/s | headline |\n|---|---:|---:|---|\n");
    for stage in STAGES.iter().filter(|s| **s != "report") {
        if let Some(m) = (StageFiles {
            dir: layout.dir(stage),
        })
        .manifest()
        {
            let rate = m.tokens_per_s.map_or("–".into(), |r| format!("{r:.0}"));
            let _ = writeln!(
                md,
                "| {stage} | {:.1} | {rate} | `{}` |",
                m.seconds, m.headline
            );
        }
    }
    let path = out.join("report.md");
    std::fs::write(&path, md).map_err(|e| PipelineError::io(&path, e))?;
    Ok(headline)
}

#[cfg(test)]
mod checks {
    use super::*;
    use crate::eval::TaskResult;

    fn task(id: &str, oracle: &[f64], reward: &[f32]) -> TaskResult {
        TaskResult {
            id: id.into(),
            kind: "add".into(),
            exact: oracle.iter().map(|&o| o == 1.0).collect(),
            oracle: oracle.to_vec(),
            reward: reward.to_vec(),
        }
    }

    #[test]
    fn win_rates_pair_samples_by_task_id_and_count_ties_half() {
        let sft = PolicyResults {
            policy: "sft".into(),
            tasks: vec![
                task("a", &[1.0, 0.2], &[0.0, 1.0]),
                task("b", &[0.5, 0.5], &[1.0, 0.0]),
            ],
        };
        // Listed in another order, and one task the SFT results lack.
        let rs = PolicyResults {
            policy: "rs".into(),
            tasks: vec![
                task("b", &[1.0, 0.5], &[0.0, 1.0]),
                task("c", &[1.0, 1.0], &[0.0, 0.0]),
                task("a", &[0.2, 0.2], &[1.0, 0.0]),
            ],
        };
        // b: win, tie → 0.75; a: loss, tie → 0.25.
        assert_eq!(win_rates(&rs, &sft, false), [0.75, 0.25]);
        // Top-ranked: b 0.5 vs 0.5 → tie; a 0.2 vs 0.2 (SFT's top is its second) → tie.
        assert_eq!(win_rates(&rs, &sft, true), [0.5, 0.5]);
        assert_eq!(rs.best_of_1(), [0.5, 1.0, 0.0]);
        assert_eq!(rs.best_of_n(), [0.0, 1.0, 0.0]);
    }
}
