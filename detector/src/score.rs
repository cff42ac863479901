//! From feature rows to alerts (decisions come from the policies, see `outrider_alerts::policy`).
//!
//! A row is judged by the model, by deterministic rules beside it and by the burst detectors
//! that watched its events ([`crate::burst`]): the model finds what is unlike the training
//! traffic, a rule names what is never normal (a token used from many IPs, a login-failure
//! spray), a burst what is far above its own recent rate. Each explains itself; any can
//! raise the alert, which carries the model's explanation, every rule and burst hit, and the
//! combined 0-1 risk ([`outrider_models::combine`]).
//!
//! A model calibrated by `outrider train` has a threshold per API and peer group: a row is
//! judged against the highest threshold among the APIs it called (so each API keeps its
//! false-alert rate at the target), else its peer group's, else the global one.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use ndarray::{Array2, ArrayView1};
use outrider_alerts::{alert_id, Alert, AlertStatus, FeatureContribution, RuleHit, Severity};
use outrider_features::{peer_group, FeatureRow, FEATURE_COUNT};
use outrider_models::calibration::Assessment;
use outrider_models::rules::{RuleStatus, Severity as RuleSeverity};
use outrider_models::{
    CombineConfig, Combiner, RuleSet, RulesConfig, Signal, SignalSource, TrainedModel,
};

use crate::burst::BurstHit;
#[cfg(doc)]
use crate::burst::BurstTracker;

/// The model and the rules, ready to judge rows with the burst hits of their events.
/// Immutable once built, so a batch can be scored on another thread while the pipeline
/// goes on feeding the (mutable) [`BurstTracker`].
#[derive(Debug)]
pub struct Scorer {
    model: Arc<TrainedModel>,
    rules: RuleSet,
    combiner: Combiner,
    burst_severity: Severity,
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
        Ok(Self {
            model,
            rules,
            combiner: CombineConfig::default().check()?,
            burst_severity: Severity::High,
        })
    }

    /// The severity of the alerts burst hits raise (`[burst] severity`).
    pub fn with_burst_severity(mut self, severity: Severity) -> Self {
        self.burst_severity = severity;
        self
    }

    pub fn model(&self) -> &TrainedModel {
        &self.model
    }

    pub fn rule_statuses(&self) -> &[RuleStatus] {
        self.rules.statuses()
    }

    /// An alert for each row the model finds anomalous, a rule of at least medium severity
    /// fires on, or a burst hit falls in. `bursts` holds each row's burst hits
    /// ([`BurstTracker::hits_for`]), or is empty without burst detectors.
    pub fn alerts(
        &self,
        rows: &[FeatureRow],
        bursts: &[Vec<BurstHit>],
        now: DateTime<Utc>,
    ) -> Vec<Alert> {
        self.judge(rows, bursts, now)
    }

    fn judge(
        &self,
        rows: &[FeatureRow],
        bursts: &[Vec<BurstHit>],
        now: DateTime<Utc>,
    ) -> Vec<Alert> {
        if rows.is_empty() {
            return Vec::new();
        }
        let model = &*self.model;
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
        for (i, (row, &score)) in rows.iter().zip(scores.iter()).enumerate() {
            hits.clear();
            if let Err(e) = self
                .rules
                .evaluate_into(ArrayView1::from(&row.values[..]), &mut hits)
            {
                tracing::error!(error = %e, key = %row.key, "rules failed on a row");
            }
            let row_bursts = bursts.get(i).map_or(&[][..], Vec::as_slice);
            if let Some(alert) = self.judge_row(row, score, &hits, row_bursts, now) {
                alerts.push(alert);
            }
        }
        alerts
    }

    /// The alert for one row, if any of the model (at its calibrated threshold where it
    /// has one), the rules and the bursts raise it.
    fn judge_row(
        &self,
        row: &FeatureRow,
        score: f32,
        hits: &[outrider_models::RuleHit],
        bursts: &[BurstHit],
        now: DateTime<Utc>,
    ) -> Option<Alert> {
        let model = &*self.model;
        let assessment = assess(model, row, score);
        let model_alert = assessment.map_or_else(|| model.is_anomalous(score), |a| a.alert);
        let mut signals: Vec<Signal> = bursts.iter().map(BurstHit::signal).collect();
        if let Some(a) = &assessment {
            let reason = format!(
                "model score {score:.3} against threshold {:.3} ({})",
                a.threshold,
                a.group.unwrap_or("global")
            );
            signals.push(Signal::from_assessment(SignalSource::Model, a, reason));
        }
        let verdict = match self.combiner.combine(&signals, hits) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, key = %row.key, "signals could not be combined");
                return None;
            }
        };
        if !(model_alert || verdict.alert) {
            return None;
        }
        let threshold = assessment.map_or_else(|| model.threshold(), |a| a.threshold);
        let mut alert = alert_from(model, row, score, threshold, now);
        // Without a calibrated model, the risk covers the rules and bursts only: none
        // when neither has anything to say.
        let calibrated = assessment.is_some() || !hits.is_empty() || !bursts.is_empty();
        alert.risk = calibrated.then_some(f64::from(verdict.risk));
        alert.rule_hits = hits.iter().map(rule_hit).collect();
        alert.rule_hits.extend(bursts.iter().map(|b| RuleHit {
            rule: b.rule_id(),
            severity: self.burst_severity,
            reason: b.reason(),
        }));
        alert.severity = alert
            .rule_hits
            .iter()
            .map(|h| h.severity)
            .fold(alert.severity, Severity::max);
        Some(alert)
    }
}

/// Batches up to this many rows are scored inline: handing them to another thread would
/// cost about as much as scoring them.
pub const INLINE_SCORING_ROWS: usize = 32;

/// [`Scorer::alerts`] on tokio's blocking pool (inline for small batches), so scoring a
/// large batch never holds a runtime worker.
pub async fn alerts_off_runtime(
    scorer: Arc<Scorer>,
    rows: Vec<FeatureRow>,
    bursts: Vec<Vec<BurstHit>>,
    now: DateTime<Utc>,
) -> crate::Result<Vec<Alert>> {
    if rows.len() <= INLINE_SCORING_ROWS {
        return Ok(scorer.alerts(&rows, &bursts, now));
    }
    tokio::task::spawn_blocking(move || scorer.alerts(&rows, &bursts, now))
        .await
        .map_err(|e| crate::Error::Scoring(e.to_string()))
}

/// The calibrated threshold and risk of a row's score: against every API it called, else
/// its peer group (`None` for a model without calibration).
fn assess<'m>(model: &'m TrainedModel, row: &FeatureRow, score: f32) -> Option<Assessment<'m>> {
    model.calibration()?;
    let apis = api_groups(row);
    let apis: Vec<&str> = apis.iter().map(String::as_str).collect();
    let peer = peer_group_name(&row.key);
    model.assess(score, &apis, &[peer.as_str()])
}

/// The calibration groups of a row's APIs: `api:<route>` for each route it called.
pub fn api_groups(row: &FeatureRow) -> Vec<String> {
    row.context
        .routes
        .iter()
        .map(|r| format!("api:{r}"))
        .collect()
}

/// The calibration group of a row's peers: `peer:<identity kind>`.
pub fn peer_group_name(key: &str) -> String {
    format!("peer:{}", peer_group(key))
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

fn alert_from(
    model: &TrainedModel,
    row: &FeatureRow,
    score: f32,
    threshold: f32,
    now: DateTime<Utc>,
) -> Alert {
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
        threshold: f64::from(threshold),
        severity: Severity::from_risk(f64::from(score), f64::from(threshold)),
        model_version: model.model_version().to_owned(),
        features,
        evidence_request_ids: strings(&ctx.request_ids),
        event_count: ctx.api_events + ctx.token_events,
        status: AlertStatus::Open,
        rule_hits: Vec::new(),
        risk: None,
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
        Scorer::new(Arc::new(quiet_model()), &RulesConfig::default(), 60).unwrap()
    }

    fn quiet_model() -> TrainedModel {
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
        TrainedModel::train(schema, x.view(), &opts).unwrap()
    }

    fn on_routes(mut row: FeatureRow, routes: &[&str]) -> FeatureRow {
        row.context.routes = routes.iter().map(|r| Arc::from(*r)).collect();
        row
    }

    #[test]
    fn per_api_thresholds_change_which_rows_alert() {
        // Validation traffic: the search API is called at the quiet rate of training, the
        // admin API by automation at 20 to 40 requests a minute, which is its normal.
        let rpm = |v: f32| [(FeatureId::RequestsPerMin, v)];
        let validation: Vec<FeatureRow> = (0..400)
            .map(|i| on_routes(row("sub:v", &rpm(4.0 + (i % 3) as f32)), &["/search"]))
            .chain(
                (0..400)
                    .map(|i| on_routes(row("sub:w", &rpm(20.0 + (i % 21) as f32)), &["/admin"])),
            )
            .collect();
        let groups: Vec<Vec<String>> = validation
            .iter()
            .map(|r| {
                let mut g = api_groups(r);
                g.push(peer_group_name(&r.key));
                g
            })
            .collect();
        let flat: Vec<f32> = validation.iter().flat_map(|r| r.values).collect();
        let x = Array2::from_shape_vec((validation.len(), FEATURE_COUNT), flat).unwrap();
        let params = outrider_models::CalibrationParams::default()
            .target_false_alert_rate(0.01)
            .min_group_samples(300)
            .check()
            .unwrap();
        let mut calibrated = quiet_model();
        let cal = calibrated.calibrate(x.view(), &groups, &params).unwrap();
        let search = cal.groups()["api:/search"].threshold();
        let admin = cal.groups()["api:/admin"].threshold();
        assert!(search < admin, "{search} {admin}");

        // Fifteen requests a minute: odd on the search API, ordinary next to the admin one.
        let probe = |routes: &[&str]| on_routes(row("sub:p", &rpm(15.0)), routes);
        let rows = [
            probe(&["/search"]),
            probe(&["/admin"]),
            probe(&["/search", "/admin"]),
        ];
        let now = Utc::now();
        let global = scorer();
        let score = global.model().score_row(&rows[0].values);
        assert!(
            score >= global.model().threshold() && score < admin,
            "{score}"
        );
        let before = global.alerts(&rows, &[], now);
        assert_eq!(before.len(), 3, "the global threshold alerts on all three");
        assert!(
            before.iter().all(|a| a.risk.is_none()),
            "uncalibrated: no risk"
        );

        let scorer = Scorer::new(Arc::new(calibrated), &RulesConfig::default(), 60).unwrap();
        let after = scorer.alerts(&rows, &[], now);
        assert_eq!(after.len(), 1, "{after:?}");
        let alert = &after[0];
        assert_eq!(alert.apis, ["/search"]);
        assert_eq!(alert.threshold, f64::from(search));
        let risk = alert.risk.unwrap();
        assert!(risk > 0.99 && risk <= 1.0, "{risk}");
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
        let alerts = scorer.alerts(&[quiet, replayed], &[], now);
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
        let alerts = scorer.alerts(&[travel], &[], Utc::now());
        assert!(alerts
            .iter()
            .flat_map(|a| &a.rule_hits)
            .any(|h| h.rule == "impossible_travel"));
    }
}
