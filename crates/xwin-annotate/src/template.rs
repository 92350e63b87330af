//! Judge prompts as editable text files: comment lines, then a `[system]` section and a
//! `[user]` section. `{name}` placeholders are filled from the item; other braces (the
//! AlpacaEval prompt shows Python dictionaries) are left alone.

use crate::error::{AnnotateError, Result};
use std::path::Path;

/// Placeholders a template may use.
pub const PLACEHOLDERS: [&str; 9] = [
    "question",
    "answer",
    "answer_a",
    "answer_b",
    "ref_answer_1",
    "reference",
    "instruction",
    "output_1",
    "output_2",
];

/// A judge prompt: system and user message templates.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptTemplate {
    /// Name recorded with every judgment (the file stem for files).
    pub name: String,
    pub system: String,
    pub user: String,
}

/// The prompts shipped in `crates/xwin-annotate/prompts/`.
pub mod builtin {
    pub const XWIN_PAIRWISE: &str = include_str!("../prompts/xwin-pairwise.txt");
    pub const MT_BENCH_PAIR: &str = include_str!("../prompts/mt-bench-pair.txt");
    pub const MT_BENCH_SINGLE: &str = include_str!("../prompts/mt-bench-single.txt");
    pub const MT_BENCH_SINGLE_MATH: &str = include_str!("../prompts/mt-bench-single-math.txt");
    pub const ALPACA_EVAL: &str = include_str!("../prompts/alpaca-eval.txt");
}

impl PromptTemplate {
    /// Parses the file format; `name` labels errors and records.
    pub fn parse(name: &str, text: &str) -> std::result::Result<Self, String> {
        // Section 0 = before any marker (comments only), 1 = system, 2 = user.
        let mut sections: [Option<String>; 3] = [None, None, None];
        let mut current = 0;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let bare = line.trim_end_matches(['\n', '\r']);
            let marker = match bare {
                "[system]" => Some(1),
                "[user]" => Some(2),
                _ => None,
            };
            match marker {
                Some(k) if sections[k].is_none() => {
                    sections[k] = Some(String::new());
                    current = k;
                }
                _ if current == 0 => {
                    if !(bare.starts_with('#') || bare.trim().is_empty()) {
                        return Err(format!(
                            "line {}: text before [system]/[user] must be a # comment",
                            i + 1
                        ));
                    }
                }
                _ => sections[current]
                    .get_or_insert_with(String::new)
                    .push_str(line),
            }
        }
        let [_, system, user] = sections;
        let user = user.ok_or("no [user] section")?;
        // The last newline of a section belongs to the file layout, not to the message.
        let trim = |s: String| s.strip_suffix('\n').map(str::to_string).unwrap_or(s);
        Ok(Self {
            name: name.to_string(),
            system: trim(system.unwrap_or_default()),
            user: trim(user),
        })
    }

    /// Reads a template file.
    pub fn load(path: &Path) -> Result<Self> {
        let err = |message: String| AnnotateError::Template {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::parse(&name, &text).map_err(err)
    }

    /// A shipped template by name: `xwin-pairwise`, `mt-bench-pair`, `mt-bench-single`,
    /// `mt-bench-single-math`, `alpaca-eval`.
    pub fn builtin(name: &str) -> Result<Self> {
        let text = match name {
            "xwin-pairwise" => builtin::XWIN_PAIRWISE,
            "mt-bench-pair" => builtin::MT_BENCH_PAIR,
            "mt-bench-single" => builtin::MT_BENCH_SINGLE,
            "mt-bench-single-math" => builtin::MT_BENCH_SINGLE_MATH,
            "alpaca-eval" => builtin::ALPACA_EVAL,
            other => {
                return Err(AnnotateError::Config(format!(
                    "unknown template {other:?}; built-in: xwin-pairwise, mt-bench-pair, \
                     mt-bench-single, mt-bench-single-math, alpaca-eval (or give a file path)"
                )));
            }
        };
        Self::parse(name, text).map_err(|message| AnnotateError::Template {
            path: format!("<built-in {name}>").into(),
            message,
        })
    }

    /// A built-in name or a path to a template file.
    /// Hash of the template's text (system and user parts).
    pub fn digest(&self) -> String {
        let text = format!("{}\u{0}{}", self.system, self.user);
        format!("{:016x}", xwin_data::stable_hash(text.as_bytes()))
    }

    /// The verdict format a built-in pairwise template is written for; `None` for files and
    /// for templates that grade rather than compare.
    pub fn builtin_format(name: &str) -> Option<crate::judge::VerdictFormat> {
        use crate::judge::VerdictFormat;
        match name {
            "xwin-pairwise" => Some(VerdictFormat::Xwin),
            "mt-bench-pair" => Some(VerdictFormat::MtBench),
            "alpaca-eval" => Some(VerdictFormat::AlpacaRanking),
            _ => None,
        }
    }

    pub fn resolve(name_or_path: &str) -> Result<Self> {
        let path = Path::new(name_or_path);
        if path.extension().is_some() || path.components().count() > 1 {
            Self::load(path)
        } else {
            Self::builtin(name_or_path)
        }
    }

    /// Fills placeholders; a placeholder the template uses but `values` lacks is an error.
    pub fn render(&self, values: &[(&str, &str)]) -> Result<(String, String)> {
        Ok((
            self.fill(&self.system, values)?,
            self.fill(&self.user, values)?,
        ))
    }

    fn fill(&self, text: &str, values: &[(&str, &str)]) -> Result<String> {
        let mut out = String::with_capacity(text.len() + 256);
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let name = after
                .find('}')
                .map(|close| &after[..close])
                .filter(|n| PLACEHOLDERS.contains(n));
            match name {
                Some(name) => {
                    let value = values
                        .iter()
                        .find(|(k, _)| *k == name)
                        .map(|(_, v)| *v)
                        .ok_or_else(|| AnnotateError::MissingPlaceholder {
                            name: self.name.clone(),
                            placeholder: name.to_string(),
                        })?;
                    // Values are inserted verbatim and never rescanned.
                    out.push_str(value);
                    rest = &after[name.len() + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Placeholders this template uses.
    pub fn placeholders(&self) -> Vec<&'static str> {
        PLACEHOLDERS
            .iter()
            .copied()
            .filter(|p| {
                let tag = format!("{{{p}}}");
                self.system.contains(&tag) || self.user.contains(&tag)
            })
            .collect()
    }
}
