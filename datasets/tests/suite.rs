//! The shipped benchmark scenarios: well formed, honest about what training saw, and the
//! smoke scenario run end to end with the isolation forest.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;

use outrider_datasets::harness::Level;
use outrider_datasets::{run_suite, AttackKind, ForestDetector, SuiteConfig};

fn suite(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("suite")
        .join(format!("{name}.toml"))
}

#[test]
fn shipped_scenarios_separate_days_identities_and_kinds() {
    for name in ["smoke", "standard", "contaminated"] {
        let cfg = SuiteConfig::load(suite(name)).unwrap();
        assert_eq!(cfg.name, name);
        assert!(
            cfg.test.start_ms >= cfg.train.end_ms(),
            "{name}: overlapping days"
        );
        // Separate UTC days, not just separate hours.
        assert!(
            cfg.test.start_ms / 86_400_000 > (cfg.train.end_ms() - 1) / 86_400_000,
            "{name}"
        );
        assert_ne!(cfg.train.population, cfg.test.population);
        assert!(
            !cfg.unseen_kinds().is_empty(),
            "{name}: no kind unseen in training"
        );
    }
    let standard = SuiteConfig::load(suite("standard")).unwrap();
    assert_eq!(standard.test.attack_kinds().len(), AttackKind::ALL.len());
    assert!(standard.train.attack_kinds().is_empty());
    let contaminated = SuiteConfig::load(suite("contaminated")).unwrap();
    assert_eq!(contaminated.unseen_kinds().len(), AttackKind::ALL.len() - 3);
}

#[test]
fn the_smoke_suite_catches_the_loud_attacks_with_few_false_alerts() {
    let cfg = SuiteConfig::load(suite("smoke")).unwrap();
    let mut detector = ForestDetector::new(&cfg.model);
    let run = run_suite(&cfg, &mut detector, &mut |_| {}).unwrap();
    let r = &run.report;
    eprintln!("{}", r.to_markdown());
    assert_eq!(r.campaigns.len(), 7);
    for c in &r.campaigns {
        let loud = c.intensity >= 0.9 || c.kind == AttackKind::CredentialStuffing;
        if loud {
            assert!(c.detected, "a loud attack went unnoticed: {c:?}");
        }
    }
    let detected = r.campaigns.iter().filter(|c| c.detected).count();
    assert!(detected >= 6, "{detected} of 7 detected");
    // Few false alerts: under a hundredth of benign identities alert in the hour.
    let f = &r.false_alerts;
    assert!(f.alerted_identities * 100 <= f.benign_identities, "{f:?}");
    let windows = r.metrics(Level::Window, "all").unwrap();
    assert!(windows.roc_auc.unwrap() > 0.8, "{windows:?}");
    let campaigns = r.metrics(Level::Campaign, "all").unwrap();
    assert!(campaigns.recall.unwrap() >= 6.0 / 7.0);
}
