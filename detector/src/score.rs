//! From feature rows to alerts, and from alerts to decisions.

use chrono::{DateTime, TimeZone, Utc};
use ndarray::Array2;
use outrider_alerts::{
    alert_id, decision_id, Action, Alert, AlertStatus, Decision, FeatureContribution, Scope,
    Severity,
};
use outrider_features::{FeatureRow, FEATURE_COUNT};
use outrider_models::TrainedModel;

use crate::config::DecisionsConfig;

/// Scores `rows` and returns an alert for each row at or above the model's threshold.
pub fn alerts_for(model: &TrainedModel, rows: &[FeatureRow], now: DateTime<Utc>) -> Vec<Alert> {
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
    rows.iter()
        .zip(scores.iter())
        .filter(|(_, &s)| model.is_anomalous(s))
        .map(|(row, &score)| alert_from(model, row, score, now))
        .collect()
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
        identity: row.key.clone(),
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

/// The built-in policy until policy files arrive: an IP is blocked; an identity whose
/// tokens were seen has them revoked; any other identity is blocked.
pub fn decisions_for(alert: &Alert, cfg: &DecisionsConfig, now: DateTime<Utc>) -> Vec<Decision> {
    let reason = explain_briefly(alert);
    let make = |action, scope, value: &str| Decision {
        id: decision_id(&alert.id, action, scope, value),
        alert_id: alert.id.clone(),
        created_at: now,
        action,
        scope,
        value: value.to_owned(),
        ttl_secs: cfg.ttl_secs,
        origin: format!("outrider/{}", alert.model_version),
        simulated: cfg.simulated,
        reason: reason.clone(),
    };
    if let Some(ip) = alert.identity.strip_prefix("ip:") {
        return vec![make(Action::Block, Scope::Ip, ip)];
    }
    if alert.token_ids.is_empty() {
        return vec![make(Action::Block, Scope::Identity, &alert.identity)];
    }
    alert
        .token_ids
        .iter()
        .map(|t| make(Action::RevokeToken, Scope::Token, t))
        .collect()
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
