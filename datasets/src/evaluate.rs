//! Scoring detections against the injected campaigns.
//!
//! A campaign counts as detected when some detection names one of its attacker keys (its
//! identity key or, for a botnet or an address pool, any of its `keys`) and its window
//! overlaps the campaign's span widened by `slack_ms` on both sides. Detections that match no
//! campaign are false alerts. (The full harness, per kind and level, is [`crate::harness`].)

use std::collections::BTreeSet;
use std::fmt;

use outrider_ingest::EventTime;
use serde::{Deserialize, Serialize};

use crate::generate::{AttackKind, Campaign};

/// One alert of a detector: an identity flagged for a window `[window_start, window_end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detection {
    pub identity_key: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
}

/// How one campaign fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignResult {
    pub id: u32,
    pub kind: AttackKind,
    pub identity_key: String,
    pub detected: bool,
    /// End of the earliest matching window: when the detector could first have alerted.
    pub first_detection_ms: Option<i64>,
    /// `first_detection_ms - campaign.start_ms`, at least 0 (a window inside the slack before
    /// the campaign counts as immediate).
    pub time_to_detect_ms: Option<i64>,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluationSummary {
    pub campaigns: Vec<CampaignResult>,
    pub attacks_injected: u64,
    pub attacks_detected: u64,
    /// Detections that match no campaign.
    pub false_alerts: u64,
    /// Detections on a campaign's related keys (e.g. accounts a stuffing run tried).
    #[serde(default)]
    pub related_alerts: u64,
    /// Distinct identity keys among the false alerts.
    pub false_alert_identities: u64,
}

impl EvaluationSummary {
    /// Share of campaigns detected (1.0 when none were injected).
    pub fn detection_rate(&self) -> f64 {
        if self.attacks_injected == 0 {
            1.0
        } else {
            self.attacks_detected as f64 / self.attacks_injected as f64
        }
    }
}

/// True when `d` is about `c`: one of its attacker keys and a window overlapping the
/// campaign's span widened by `slack_ms`.
fn matches(c: &Campaign, d: &Detection, slack_ms: i64) -> bool {
    c.is_attacker_key(&d.identity_key) && c.overlaps(d.window_start_ms, d.window_end_ms, slack_ms)
}

/// True when `d` names one of the campaign's related keys during its (widened) span.
fn related(c: &Campaign, d: &Detection, slack_ms: i64) -> bool {
    c.related_keys.contains(&d.identity_key)
        && c.overlaps(d.window_start_ms, d.window_end_ms, slack_ms)
}

/// Matches `detections` against `campaigns`; `slack_ms` (negative counts as 0) widens each
/// campaign's span on both sides.
pub fn evaluate(
    campaigns: &[Campaign],
    detections: &[Detection],
    slack_ms: i64,
) -> EvaluationSummary {
    let slack_ms = slack_ms.max(0);
    let results: Vec<CampaignResult> = campaigns
        .iter()
        .map(|c| {
            let first = detections
                .iter()
                .filter(|d| matches(c, d, slack_ms))
                .map(|d| d.window_end_ms)
                .min();
            CampaignResult {
                id: c.id,
                kind: c.kind,
                identity_key: c.identity_key.clone(),
                detected: first.is_some(),
                first_detection_ms: first,
                time_to_detect_ms: first.map(|f| f.saturating_sub(c.start_ms).max(0)),
            }
        })
        .collect();
    let mut false_alerts = 0u64;
    let mut related_alerts = 0u64;
    let mut false_identities = BTreeSet::new();
    for d in detections {
        if campaigns.iter().any(|c| matches(c, d, slack_ms)) {
            continue;
        }
        if campaigns.iter().any(|c| related(c, d, slack_ms)) {
            related_alerts += 1;
        } else {
            false_alerts += 1;
            false_identities.insert(d.identity_key.as_str());
        }
    }
    EvaluationSummary {
        attacks_injected: results.len() as u64,
        attacks_detected: results.iter().filter(|r| r.detected).count() as u64,
        campaigns: results,
        false_alerts,
        related_alerts,
        false_alert_identities: false_identities.len() as u64,
    }
}

impl fmt::Display for EvaluationSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key_width = self
            .campaigns
            .iter()
            .map(|c| c.identity_key.len())
            .max()
            .unwrap_or(0)
            .max("identity".len());
        writeln!(
            f,
            "{:>4}  {:<19}  {:<key_width$}  {:<8}  {:<24}  {:>14}",
            "id", "kind", "identity", "detected", "first detection", "time to detect"
        )?;
        for c in &self.campaigns {
            let first = c
                .first_detection_ms
                .map_or_else(|| "-".to_owned(), |t| EventTime(t).to_string());
            let ttd = c
                .time_to_detect_ms
                .map_or_else(|| "-".to_owned(), |t| format!("{:.1} s", t as f64 / 1000.0));
            writeln!(
                f,
                "{:>4}  {:<19}  {:<key_width$}  {:<8}  {:<24}  {:>14}",
                c.id,
                c.kind.as_str(),
                c.identity_key,
                if c.detected { "yes" } else { "no" },
                first,
                ttd
            )?;
        }
        write!(
            f,
            "attacks detected: {}/{}; false alerts: {} on {} {}",
            self.attacks_detected,
            self.attacks_injected,
            self.false_alerts,
            self.false_alert_identities,
            if self.false_alert_identities == 1 {
                "identity"
            } else {
                "identities"
            }
        )?;
        if self.related_alerts > 0 {
            write!(
                f,
                "; {} more on accounts the attacks targeted",
                self.related_alerts
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(id: u32, key: &str, start: i64, end: i64) -> Campaign {
        Campaign {
            id,
            kind: AttackKind::Bola,
            identity_key: key.into(),
            related_keys: Vec::new(),
            start_ms: start,
            end_ms: end,
            description: String::new(),
            events: 10,
            keys: Vec::new(),
            intensity: 0.5,
        }
    }

    fn det(key: &str, start: i64, end: i64) -> Detection {
        Detection {
            identity_key: key.into(),
            window_start_ms: start,
            window_end_ms: end,
        }
    }

    #[test]
    fn an_overlapping_detection_counts_and_reports_time_to_detect() {
        let c = [campaign(1, "sub:mallory", 100_000, 400_000)];
        let s = evaluate(
            &c,
            &[
                det("sub:mallory", 130_000, 190_000),
                det("sub:mallory", 140_000, 200_000),
            ],
            30_000,
        );
        assert_eq!(s.attacks_injected, 1);
        assert_eq!(s.attacks_detected, 1);
        assert!(s.campaigns[0].detected);
        assert_eq!(s.campaigns[0].first_detection_ms, Some(190_000));
        assert_eq!(s.campaigns[0].time_to_detect_ms, Some(90_000));
        assert_eq!(s.false_alerts, 0);
        assert_eq!(s.false_alert_identities, 0);
    }

    #[test]
    fn slack_widens_the_campaign_but_no_further() {
        let c = [campaign(1, "ip:185.220.1.2", 100_000, 400_000)];
        // Ends 20 s before the start: inside a 30 s slack, outside a 10 s one.
        let early = det("ip:185.220.1.2", 20_000, 80_000);
        let s = evaluate(&c, std::slice::from_ref(&early), 30_000);
        assert!(s.campaigns[0].detected);
        assert_eq!(s.campaigns[0].time_to_detect_ms, Some(0));
        let s = evaluate(&c, std::slice::from_ref(&early), 10_000);
        assert!(!s.campaigns[0].detected);
        assert_eq!(s.false_alerts, 1);
        // Starts 40 s after the end: outside a 30 s slack.
        let late = det("ip:185.220.1.2", 440_000, 500_000);
        let s = evaluate(&c, &[late], 30_000);
        assert!(!s.campaigns[0].detected);
        assert_eq!(s.campaigns[0].first_detection_ms, None);
        assert_eq!(s.attacks_detected, 0);
    }

    #[test]
    fn alerts_on_related_keys_during_the_campaign_are_not_false() {
        let mut c = campaign(1, "ip:198.51.100.7", 100_000, 400_000);
        c.related_keys = vec!["sub:victim".into()];
        let d = [
            det("sub:victim", 150_000, 210_000),
            det("sub:victim", 900_000, 960_000),
        ];
        let s = evaluate(&[c], &d, 0);
        assert!(
            !s.campaigns[0].detected,
            "a related key does not detect the attack"
        );
        assert_eq!(s.related_alerts, 1);
        assert_eq!(s.false_alerts, 1, "after the campaign it is a false alert");
        assert!(s
            .to_string()
            .ends_with("; 1 more on accounts the attacks targeted"));
    }

    #[test]
    fn any_attacker_key_detects_a_multi_key_campaign() {
        let mut c = campaign(1, "ip:10.0.0.1", 100_000, 400_000);
        c.keys = vec!["ip:10.0.0.2".into()];
        let s = evaluate(&[c], &[det("ip:10.0.0.2", 150_000, 210_000)], 0);
        assert!(s.campaigns[0].detected);
        assert_eq!(s.false_alerts, 0);
    }

    #[test]
    fn the_identity_must_match() {
        let c = [campaign(1, "sub:victim", 100_000, 400_000)];
        let s = evaluate(&c, &[det("sub:someone-else", 100_000, 160_000)], 0);
        assert!(!s.campaigns[0].detected);
        assert_eq!(s.false_alerts, 1);
    }

    #[test]
    fn unmatched_detections_are_false_alerts_counted_by_identity() {
        let c = [
            campaign(1, "sub:a", 100_000, 200_000),
            campaign(2, "sub:b", 500_000, 600_000),
        ];
        let d = [
            det("sub:a", 150_000, 210_000),
            det("sub:x", 10_000, 70_000),
            det("sub:x", 20_000, 80_000),
            det("sub:y", 500_000, 560_000),
            det("sub:a", 900_000, 960_000),
        ];
        let s = evaluate(&c, &d, 0);
        assert_eq!(s.attacks_injected, 2);
        assert_eq!(s.attacks_detected, 1);
        assert!(s.campaigns[0].detected);
        assert!(!s.campaigns[1].detected);
        assert_eq!(s.false_alerts, 4);
        assert_eq!(s.false_alert_identities, 3);
        assert!((s.detection_rate() - 0.5).abs() < 1e-12);
        let table = s.to_string();
        assert!(table.contains("sub:a"), "{table}");
        assert!(table.contains("attacks detected: 1/2; false alerts: 4 on 3 identities"));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["campaigns"][0]["kind"], "bola");
    }
}
