//! The stages that sample and judge: pairs from the SFT policy for the judge (step 2a),
//! their judgments (step 2b; demo prompts carry their reference answers to the oracle), and
//! best-of-N samples for rejection sampling (step 3). Each output is append-only and resumes
//! by prompt id.

use crate::stages::{Layout, Outcome};
use crate::{Event, PipelineError};
use serde_json::json;
use std::collections::HashMap;
use std::time::Instant;
use xwin_data::{DemoTask, ReadOptions};

/// Pair sampling (step 2a) and best-of-N for RS (step 3); prompts too long for the context are
/// recorded in the failures file beside the output and counted in the headline.
pub fn sample_stage(
    layout: &Layout,
    stage: &str,
    on_event: &mut dyn FnMut(Event),
) -> Result<Outcome, PipelineError> {
    let config = layout.config;
    let (prompts_file, spec) = match stage {
        "pairs" => (layout.pair_prompts(), &config.pairs),
        _ => (layout.rs_prompts(), &config.rs_samples),
    };
    // Both sample the SFT policy (the paper's steps 2a and 3).
    let policy_stage = "sft";
    let err = |e: xwin_rs::RsError| PipelineError::stage(stage, e);
    let (prompts, _) = xwin_rs::read_prompts(
        &prompts_file,
        config.data.first_replies,
        ReadOptions::default(),
    )
    .map_err(err)?;
    let policy = xwin_rs::LocalPolicy::load(
        &layout.model_of(policy_stage),
        &config.model.device,
        config.model.template,
    )
    .map_err(err)?;
    let out = layout.dir(stage).join("samples.jsonl");
    let options = xwin_rs::LocalOptions {
        skip_long: true,
        ..xwin_rs::LocalOptions::default()
    };
    let start = Instant::now();
    let s = policy
        .sampler(policy_stage.to_string())
        .run(&prompts, spec, options, &out, |p| {
            on_event(Event::Step {
                stage: stage.to_string(),
                done: p.done,
                total: p.total,
                message: format!("{:.0} tok/s", p.tokens as f64 / p.elapsed_s.max(1e-9)),
            })
        })
        .map_err(err)?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(Outcome {
        products: vec![out],
        headline: json!({ "prompts": s.prompts, "responses": s.responses, "too_long": s.too_long }),
        tokens_per_s: (s.tokens > 0).then(|| s.tokens as f64 / seconds.max(1e-9)),
    })
}

/// Judges the sampled pairs (step 2b); demo prompts carry their reference answers.
pub fn judge_stage(
    layout: &Layout,
    on_event: &mut dyn FnMut(Event),
) -> Result<Outcome, PipelineError> {
    let config = layout.config;
    let stage = "judge";
    let references: HashMap<String, String> = match layout.pair_tasks() {
        Some(path) => xwin_data::read_records::<DemoTask>(&path, ReadOptions::default())?
            .0
            .into_iter()
            .map(|t| (t.id, t.answer))
            .collect(),
        None => HashMap::new(),
    };
    let sampled = layout.dir("pairs").join("samples.jsonl");
    let (pairs, _) =
        xwin_data::read_records::<xwin_rs::SampledPair>(&sampled, ReadOptions::default())?;
    let inputs: Vec<xwin_annotate::PairInput> = pairs
        .into_iter()
        .map(|p| {
            // Unfolded prompt ids are `conversation#reply`.
            let task = p.id.split('#').next().unwrap_or(&p.id);
            xwin_annotate::PairInput {
                reference: references.get(task).cloned(),
                id: Some(p.id),
                prompt: p.prompt,
                response_a: p.response_a,
                response_b: p.response_b,
            }
        })
        .collect();
    let judge = build_judge(&config.judge).map_err(|e| PipelineError::stage(stage, e))?;
    let out = layout.dir(stage).join("xwin-pair.jsonl");
    let options = xwin_annotate::AnnotateOptions {
        concurrency: config.judge.concurrency,
        seed: config.judge.seed,
        both_orders: false,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| PipelineError::io(&out, e))?;
    let s = runtime
        .block_on(xwin_annotate::annotate_pairs(
            &judge,
            &inputs,
            &out,
            options,
            |p| {
                on_event(Event::Step {
                    stage: stage.to_string(),
                    done: p.done,
                    total: p.total,
                    message: String::new(),
                })
            },
        ))
        .map_err(|e| PipelineError::stage(stage, e))?;
    Ok(Outcome {
        products: vec![out],
        headline: json!({ "judged": s.judged, "ties": s.ties, "inconsistent": s.inconsistent, "failures": s.failures, "by_rating": s.by_rating }),
        tokens_per_s: None,
    })
}

fn build_judge(j: &crate::config::JudgeSection) -> Result<xwin_annotate::AnyJudge, String> {
    if j.kind == "oracle" {
        return Ok(xwin_annotate::AnyJudge::Oracle(xwin_annotate::OracleJudge));
    }
    let mut endpoint = xwin_annotate::EndpointConfig::new(&j.base_url, &j.model);
    endpoint.api_key_env = (!j.api_key_env.is_empty()).then(|| j.api_key_env.clone());
    let client = xwin_annotate::ChatClient::new(endpoint).map_err(|e| e.to_string())?;
    let fallback = xwin_annotate::VerdictFormat::Xwin;
    let judge = xwin_annotate::LlmJudge::with_template(client, &j.template, None, fallback)
        .map_err(|e| e.to_string())?;
    Ok(xwin_annotate::AnyJudge::Llm(Box::new(judge)))
}
