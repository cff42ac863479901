//! Layered configuration: built-in defaults, then a TOML file, then environment variables
//! named `OUTRIDER__SECTION__KEY` (e.g. `OUTRIDER__SOURCE__KIND=kafka`).

use std::path::Path;

use anyhow::{Context, Result};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use outrider_detector::Config;

pub fn load(file: Option<&Path>) -> Result<Config> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = file {
        anyhow::ensure!(
            path.exists(),
            "config file {} does not exist",
            path.display()
        );
        figment = figment.merge(Toml::file(path));
    }
    let config: Config = figment
        .merge(Env::prefixed("OUTRIDER__").split("__"))
        .extract()
        .map_err(|e| anyhow::anyhow!(describe(e)))
        .context("invalid configuration")?;
    config.validate()?;
    Ok(config)
}

/// Figment's errors name the key; list each one on its own line.
fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_key_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[features]\nwindow_sec = 60\n").unwrap();
        let err = format!("{:#}", load(Some(&path)).unwrap_err());
        assert!(err.contains("window_sec"), "{err}");
    }

    #[test]
    fn file_values_override_defaults_and_ranges_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[source]\nkind = \"kafka\"\n[source.kafka]\ntopic = \"t1\"\n",
        )
        .unwrap();
        let c = load(Some(&path)).unwrap();
        assert_eq!(c.source.kafka.topic, "t1");
        assert_eq!(c.source.kafka.group_id, "outrider-detector", "default kept");
        std::fs::write(&path, "[features]\nwindow_secs = 65\n").unwrap();
        let err = format!("{:#}", load(Some(&path)).unwrap_err());
        assert!(err.contains("features.window_secs"), "{err}");
    }
}
