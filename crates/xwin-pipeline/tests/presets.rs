//! Every preset in `configs/` parses as the config of the tool it is for (unknown keys are
//! errors), so a renamed or misspelled setting in a preset fails here, not in a user's run.

use std::path::{Path, PathBuf};
use xwin_pipeline::PipelineConfig;
use xwin_train::read_config;

fn configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("configs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    all.sort();
    all
}

#[test]
fn every_preset_parses_as_its_tool_config() {
    let all = configs();
    assert!(all.len() >= 10, "presets found: {all:?}");
    for path in all {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let parsed = match name.split('-').next().unwrap_or("") {
            "sft" => read_config::<xwin_train::SftConfig>(&path)
                .map(drop)
                .map_err(|e| e.to_string()),
            "rm" => read_config::<xwin_rm::RmConfig>(&path)
                .map(drop)
                .map_err(|e| e.to_string()),
            "rs" => read_config::<xwin_rs::RsConfig>(&path)
                .map(drop)
                .map_err(|e| e.to_string()),
            "dpo" => read_config::<xwin_dpo::DpoConfig>(&path)
                .map(drop)
                .map_err(|e| e.to_string()),
            _ => PipelineConfig::read(&path)
                .map(drop)
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = parsed {
            panic!("{name}: {e}");
        }
    }
}
