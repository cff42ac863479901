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

    /// The error `load` gives for a file holding `toml`, with its causes.
    fn error_for(toml: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        format!("{:#}", load(Some(&path)).unwrap_err())
    }

    #[test]
    fn a_misspelt_key_is_named_in_the_error() {
        let err = error_for("[features]\nwindow_sec = 60\n");
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
        assert!(
            c.http.is_none() && c.revocation_watch.is_none(),
            "off by default"
        );
        let err = error_for("[features]\nwindow_secs = 65\n");
        assert!(err.contains("features.window_secs"), "{err}");
    }

    #[test]
    fn the_example_configuration_is_valid_and_wires_everything() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/outrider.toml");
        let c = load(Some(&path)).unwrap();
        let http = c.http.as_ref().unwrap();
        assert_eq!(http.api_keys.len(), 2);
        assert_eq!(c.decisions.targets.len(), 3);
        assert_eq!(c.decisions.poll_receivers(), vec!["edge"]);
        assert!(c.siem.kafka.is_some() && c.revocation_watch.is_some());
        assert_eq!(c.ops.as_ref().unwrap().listen, "127.0.0.1:9464");
        assert_eq!(c.model.reload_check_secs, 30);
        let policies = c.decisions.policies().unwrap();
        assert!(policies.names().contains(&"critical-takeover"));
    }

    #[test]
    fn errors_in_the_new_sections_name_the_key() {
        let cases = [
            ("[http]\nlisen = \"127.0.0.1:1\"\n", "lisen"),
            ("[http]\nlisten = \"localhost\"\n", "http.listen"),
            ("[http]\nlisten = \"127.0.0.1:1\"\n", "http.api_keys"),
            (
                "[[http.api_keys]]\nname = \"a\"\nkey_env = \"K\"\nroles = [\"admin\"]\n",
                "admin",
            ),
            (
                "[[http.api_keys]]\nname = \"a\"\nkey_env = \"K\"\nroles = [\"gateway\"]\nset_receiver = \"rp\"\n",
                "set_receiver",
            ),
            ("[incidents]\ngap_sec = 10\n", "gap_sec"),
            ("[incidents]\ngap_secs = 10\nsuppress_secs = 20\n", "incidents.suppress_secs"),
            ("[siem.kafka]\nbrokers = \"b:9092\"\ntopik = \"t\"\n", "topik"),
            ("[siem.kafka]\nbrokers = \"\"\ntopic = \"t\"\n", "siem.kafka"),
            ("[revocation_watch]\ngrace = 30\n", "grace"),
            ("[revocation_watch]\nmax_watched = 0\n", "revocation_watch.max_watched"),
            (
                "[[decisions.targets]]\ntype = \"webhook\"\nname = \"a\"\nurl = \"http://x\"\nsecret_env = \"S\"\nsecrt = 1\n",
                "secrt",
            ),
            (
                "[[decisions.targets]]\ntype = \"pigeon\"\nname = \"a\"\n",
                "pigeon",
            ),
            ("[decisions]\nwebhooks = []\n", "webhooks"),
            ("[ops]\nlisen = \"127.0.0.1:1\"\n", "lisen"),
            ("[ops]\nlisten = \"localhost\"\n", "ops.listen"),
            ("[ops]\nmetrics_key_env = \" \"\n", "ops.metrics_key_env"),
            ("[model]\nreload_secs = 5\n", "reload_secs"),
            (
                "[decisions]\npolicy_file = \"/nonexistent/policies.toml\"\n",
                "decisions.policy_file",
            ),
        ];
        for (toml, key) in cases {
            let err = error_for(toml);
            assert!(err.contains(key), "{toml:?}: {err}");
        }
    }

    #[test]
    fn a_broken_policy_file_is_named_with_its_policy_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let policies = dir.path().join("policies.toml");
        std::fs::write(
            &policies,
            "[[policy]]\nname = \"typo\"\n[policy.match]\nmin_sevrity = \"high\"\n",
        )
        .unwrap();
        let err = error_for(&format!(
            "[decisions]\npolicy_file = {:?}\n",
            policies.display().to_string()
        ));
        for part in [
            "decisions.policy_file",
            "policies.toml",
            "typo",
            "min_sevrity",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
    }

    #[test]
    fn two_targets_with_one_name_are_refused() {
        let hook = "[[decisions.targets]]\ntype = \"webhook\"\nname = \"a\"\nurl = \"http://x\"\nsecret_env = \"S\"\n";
        let err = error_for(&format!("{hook}{hook}"));
        assert!(
            err.contains("decisions.targets") && err.contains("\"a\""),
            "{err}"
        );
    }
}
