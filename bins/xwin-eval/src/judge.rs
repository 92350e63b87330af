//! Who judges: the offline oracle or a model behind an OpenAI-compatible endpoint, chosen on
//! the command line, behind one `Judge` type.

use clap::ValueEnum;
use xwin_annotate::AnyJudge;
use xwin_eval::EvalError;

/// Who judges the outputs against the reference.
#[derive(clap::Args)]
pub struct JudgeArgs {
    /// `oracle` (offline, for demos) or `openai` (any OpenAI-compatible endpoint).
    #[arg(long, value_enum, default_value = "openai")]
    pub judge: JudgeKind,
    #[arg(long, default_value = "https://api.openai.com/v1")]
    pub base_url: String,
    #[arg(long, default_value = "gpt-4")]
    pub judge_model: String,
    /// Environment variable with the judge's API key (none with --no-api-key).
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,
    #[arg(long)]
    pub no_api_key: bool,
    /// The judge prompt: `alpaca-eval` (AlpacaEval 1's ranking judge) or a template file.
    #[arg(long, default_value = "alpaca-eval")]
    pub judge_template: String,
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

impl JudgeArgs {
    pub fn build(&self) -> Result<AnyJudge, EvalError> {
        Ok(match self.judge {
            JudgeKind::Oracle => AnyJudge::Oracle(xwin_annotate::OracleJudge),
            JudgeKind::Openai => {
                let judge = xwin_annotate::LlmJudge::with_template(
                    self.client(100)?,
                    &self.judge_template,
                    None,
                    xwin_annotate::VerdictFormat::AlpacaRanking,
                )
                .map_err(|e| setup(e.to_string()))?;
                AnyJudge::Llm(Box::new(judge))
            }
        })
    }

    /// The endpoint's client, replies capped at `max_tokens`.
    pub fn client(&self, max_tokens: u32) -> Result<xwin_annotate::ChatClient, EvalError> {
        let mut config = xwin_annotate::EndpointConfig::new(&self.base_url, &self.judge_model);
        config.api_key_env = (!self.no_api_key).then(|| self.api_key_env.clone());
        config.max_tokens = max_tokens;
        xwin_annotate::ChatClient::new(config).map_err(|e| setup(e.to_string()))
    }

    pub fn options(&self, seed: u64) -> xwin_annotate::AnnotateOptions {
        xwin_annotate::AnnotateOptions {
            concurrency: self.concurrency,
            seed,
            both_orders: false,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum JudgeKind {
    Oracle,
    Openai,
}

pub fn setup(message: String) -> EvalError {
    EvalError::Input {
        path: "arguments".into(),
        message,
    }
}

/// The policy in `dir` with the named chat template.
pub fn load_policy(
    dir: &std::path::Path,
    device: &str,
    template: &str,
) -> Result<xwin_rs::LocalPolicy, EvalError> {
    let template = xwin_data::ChatTemplate::parse(template)
        .ok_or_else(|| setup(format!("--template {template}: use vicuna-v11 or llama2")))?;
    xwin_rs::LocalPolicy::load(dir, device, template).map_err(|e| setup(e.to_string()))
}
