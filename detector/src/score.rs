//! From feature rows to alerts (decisions come from the policies, see `outrider_alerts::policy`).
//!
//! A row is judged by the model and by deterministic rules beside it: the model finds what
//! is unlike the training traffic, a rule names what is never normal (a token used from
//! many IPs, a login-failure spray) and explains itself with its numbers. Either can raise
//! the alert; the alert carries the model's explanation and every rule hit.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use ndarray::{Array2, ArrayView1};
use outrider_alerts::{alert_id, Alert, AlertStatus, FeatureContribution, RuleHit, Severity};
use outrider_features::{FeatureRow, FEATURE_COUNT};
use outrider_models::rules::{RuleStatus, Severity as RuleSeverity};
use outrider_models::{RuleSet, RulesConfig, TrainedModel};

/// The model and the rules, ready to judge rows.
#[derive(Debug)]
pub struct Scorer {
    model: Arc<TrainedModel>,
    rules: RuleSet,
}

impl Scorer {
    /// Compiles `rules` against the model's feature schema; a rule whose features the schema
    /// lacks is inactive (see [`Scorer::rule_statuses`]), not an error.
    pub fn new(
        model: Arc<TrainedModel>,
        rules: &RulesConfig,
        window_secs: u64,
    ) -> outrider_models::Result<Self> {
        let rules = RuleSet::for_schema(rules, model.schema(), window_secs)?;
        Ok(Self { model, rules })
    }

    pub fn model(&self) -> &TrainedModel {
        &self.model
    }

    pub fn rule_statuses(&self) -> &[RuleStatus] {
        self.rules.statuses()
    }

    /// An alert for each row the model finds anomalous or a rule of at least medium
    /// severity fires on.
    pub fn alerts(&self, rows: &[FeatureRow], now: DateTime<Utc>) -> Vec<Alert> {
        judge(&self.model, &self.rules, rows, now)
    }
}

fn judge(
    model: &TrainedModel,
    rules: &RuleSet,
    rows: &[FeatureRow],
    now: DateTime<Utc>,
) -> Vec<Alert> {
    if rows.is_empty() {
        return Vec::new();
    }
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.values).collect();
    let scores = match Array2::from_shape_vec((rows.len(), FEATURE_COUNT), flat)
        .map_err(|e| e.to_string())
        .and_then(|x| model.score(x.view()).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            // The schema was checked at start-up, so this is a bug, not bad input.
            tracing::error!(error = %e, "scoring failed; rows skipped");
            return Vec::new();
        }
    };
    let mut hits = Vec::new();
    let mut alerts = Vec::new();
    for (row, &score) in rows.iter().zip(scores.iter()) {
        hits.clear();
        if let Err(e) = rules.evaluate_into(ArrayView1::from(&row.values[..]), &mut hits) {
            tracing::error!(error = %e, key = %row.key, "rules failed on a row");
        }
        let ruled = hits.iter().any(|h| h.severity >= RuleSeverity::Medium);
        if model.is_anomalous(score) || ruled {
            let mut alert = alert_from(model, row, score, now);
            alert.rule_hits = hits.iter().map(rule_hit).collect();
            alert.severity = alert
                .rule_hits
                .iter()
                .map(|h| h.severity)
                .fold(alert.severity, Severity::max);
            alerts.push(alert);
        }
    }
    alerts
}

fn rule_hit(h: &outrider_models::RuleHit) -> RuleHit {
    RuleHit {
        rule: h.rule.as_str().to_owned(),
        severity: match h.severity {
            RuleSeverity::Low => Severity::Low,
            RuleSeverity::Medium => Severity::Medium,
            RuleSeverity::High => Severity::High,
            RuleSeverity::Critical => Severity::Critical,
        },
        reason: h.reason.clone(),
    }
}

fn alert_from(model: &TrainedModel, row: &FeatureRow, score: f32, now: DateTime<Utc>) -> Alert {
    let window_end = millis_to_utc(row.window_end_ms);
    let features = model
        .explain(&row.values)
        .into_iter()
        .map(|e| FeatureContribution {
            name: e.name,
            value: f64::from(e.value),
            baseline: f64::from(e.baseline_median),
            baseline_p99: f64::from(e.baseline_p99),
            contribution: f64::from(e.contribution),
        })
        .collect();
    let ctx = &row.context;
    Alert {
        id: alert_id(&row.key, window_end, model.model_version()),
        created_at: now,
        window_start: millis_to_utc(row.window_start_ms),
        window_end,
        identity: row.key.to_string(),
        apis: strings(&ctx.routes),
        client_ips: strings(&ctx.client_ips),
        token_ids: strings(&ctx.token_ids),
        score: f64::from(score),
        threshold: f64::from(model.threshold()),
        severity: Severity::from_risk(f64::from(score), f64::from(model.threshold())),
        model_version: model.model_version().to_owned(),
        features,
        evidence_request_ids: strings(&ctx.request_ids),
        event_count: ctx.api_events + ctx.token_events,
        status: AlertStatus::Open,
        rule_hits: Vec::new(),
    }
}

fn strings<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

pub fn millis_to_utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// One line: the score and the features that drove it, against their baselines.
pub fn explain_briefly(alert: &Alert) -> String {
    let drivers: Vec<String> = alert
        .features
        .iter()
        .take(3)
        .map(|f| format!("{}={} (baseline {})", f.name, num(f.value), num(f.baseline)))
        .collect();
    format!(
        "score {:.3} >= {:.3}: {}",
        alert.score,
        alert.threshold,
        drivers.join(", ")
    )
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outrider_features::{FeatureId, WindowContext, FEATURE_NAMES, SCHEMA_ID};
    use outrider_models::{FeatureSchema, IsolationForestParams, TrainOptions};

    const T0: i64 = 1_795_341_600_000;

    fn row(key: &str, set: &[(FeatureId, f32)]) -> FeatureRow {
        let mut values = [0f32; FEATURE_COUNT];
        values[FeatureId::RequestsPerMin as usize] = 5.0;
        values[FeatureId::DistinctIps as usize] = 1.0;
        values[FeatureId::MaxIpsPerToken as usize] = 1.0;
        for &(f, v) in set {
            values[f as usize] = v;
        }
        FeatureRow {
            key: key.into(),
            window_start_ms: T0,
            window_end_ms: T0 + 60_000,
            values,
            context: WindowContext::default(),
        }
    }

    /// A model of quiet users: five requests a minute from one IP with one token.
    fn scorer() -> Scorer {
        let rows: Vec<f32> = (0..400)
            .flat_map(|i| {
                let mut r = row("sub:u", &[]).values;
                r[FeatureId::RequestsPerMin as usize] = 4.0 + (i % 3) as f32;
                r
            })
            .collect();
        let x = Array2::from_shape_vec((400, FEATURE_COUNT), rows).unwrap();
        let schema = FeatureSchema::new(SCHEMA_ID, FEATURE_NAMES.iter().copied());
        let opts = TrainOptions {
            params: IsolationForestParams::default()
                .n_trees(50)
                .sample_size(256),
            ..TrainOptions::default()
        };
        let model = TrainedModel::train(schema, x.view(), &opts).unwrap();
        Scorer::new(Arc::new(model), &RulesConfig::default(), 60).unwrap()
    }

    #[test]
    fn a_rule_raises_an_alert_with_its_reason_where_the_model_alone_would_not() {
        let scorer = scorer();
        assert!(scorer
            .rule_statuses()
            .iter()
            .any(|s| s.rule.as_str() == "impossible_travel"));
        let now = Utc::now();
        let quiet = row("sub:quiet", &[]);
        let replayed = row("sub:victim", &[(FeatureId::MaxIpsPerToken, 7.0)]);
        let alerts = scorer.alerts(&[quiet, replayed], now);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let alert = &alerts[0];
        assert_eq!(alert.identity, "sub:victim");
        let hit = &alert.rule_hits[0];
        assert_eq!(hit.rule, "token_ips");
        assert!(hit.reason.contains("7 distinct IPs"), "{}", hit.reason);
        assert!(
            alert.severity >= Severity::High,
            "a high rule sets the floor"
        );
        assert!(
            !alert.features.is_empty(),
            "the model's explanation is kept"
        );
    }

    #[test]
    fn impossible_travel_fires_on_the_geo_velocity_feature() {
        let scorer = scorer();
        let travel = row("sub:t", &[(FeatureId::GeoVelocityKmh, 50_000.0)]);
        let alerts = scorer.alerts(&[travel], Utc::now());
        assert!(alerts
            .iter()
            .flat_map(|a| &a.rule_hits)
            .any(|h| h.rule == "impossible_travel"));
    }
}
