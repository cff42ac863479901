//! The evaluation harness: scored feature rows and labelled events against the injected
//! campaigns, per attack kind, at four levels.
//!
//! - **Window**: each feature row (an identity's window). An attack row is one whose key
//!   is a campaign's attacker key and whose window overlaps the campaign; rows of the
//!   keys an attack merely touched (the accounts a stuffing run tried) during it are left
//!   out of both classes; every other row is benign.
//! - **Event**: each gateway and token-server event, scored with the highest score of
//!   its identity's windows that contain it ("was this request's identity alerting while
//!   it was seen"); labelled by the generator.
//! - **Identity**: each identity key, scored with its highest window score; an attack if
//!   it is some campaign's attacker key (a replay victim, an insider and a compromised
//!   client count: their keys carry the attack), left out if only touched, else benign.
//! - **Campaign**: each campaign, scored with the highest score of its attacker keys'
//!   windows overlapping it (widened by the slack), against the benign identities as
//!   negatives; detected when that reaches the threshold.
//!
//! At each level and per kind (and for all kinds together) the report has precision,
//! recall and F1 at the detector's threshold, ROC-AUC and PR-AUC (see
//! [`crate::metrics`]); the negatives are always all benign items, so per-kind precision
//! counts every false alert. False alerts are also given per 10,000 benign identities
//! per day, as alerting windows and as alerted identities, and each campaign's time to
//! detect is the end of its first alerting window less its start (0 at the earliest).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::generate::{AttackKind, Campaign};
use crate::metrics::{pr_curve, BinaryMetrics, PrPoint};

/// The levels the harness evaluates at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Event,
    Window,
    Identity,
    Campaign,
}

impl Level {
    pub const ALL: [Level; 4] = [
        Level::Event,
        Level::Window,
        Level::Identity,
        Level::Campaign,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Event => "event",
            Level::Window => "window",
            Level::Identity => "identity",
            Level::Campaign => "campaign",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Row {
    key: u32,
    start: i64,
    end: i64,
    score: f32,
}

#[derive(Debug, Clone, Copy)]
struct EventRef {
    key: u32,
    ts: i64,
    /// 0: benign.
    campaign: u32,
}

/// Scored rows and labelled events, collected as they are produced (keys are interned,
/// so a row costs 24 bytes and an event 16).
#[derive(Debug, Default)]
pub struct Evaluation {
    ids: HashMap<String, u32>,
    names: Vec<String>,
    rows: Vec<Row>,
    events: Vec<EventRef>,
}

/// How to read an [`Evaluation`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    pub name: String,
    /// What scored the rows (shown in the report).
    pub detector: String,
    /// Scores at or above this alert.
    pub threshold: f32,
    /// Widens each campaign on both sides when matching alerts to it.
    pub slack_ms: i64,
    /// Length of the evaluated traffic, for rates per day.
    pub duration_ms: i64,
}

/// One kind's metrics at one level (`kind` is the attack kind, or `all`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindMetrics {
    pub kind: String,
    #[serde(flatten)]
    pub metrics: BinaryMetrics,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelMetrics {
    pub level: Level,
    pub kinds: Vec<KindMetrics>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FalseAlerts {
    pub benign_identities: u64,
    /// Benign windows at or above the threshold (each would be an alert).
    pub alert_windows: u64,
    /// Benign identities with at least one such window.
    pub alerted_identities: u64,
    pub windows_per_10k_identities_per_day: f64,
    pub identities_per_10k_per_day: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignOutcome {
    pub id: u32,
    pub kind: AttackKind,
    pub intensity: f64,
    pub identity_key: String,
    pub events: u64,
    pub detected: bool,
    /// Highest score of its attacker keys' windows during it (`None`: no window).
    pub max_score: Option<f32>,
    pub first_detection_ms: Option<i64>,
    pub time_to_detect_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindDetection {
    pub kind: AttackKind,
    pub campaigns: u64,
    pub detected: u64,
    pub median_time_to_detect_ms: Option<i64>,
    pub max_time_to_detect_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub events: u64,
    pub attack_events: u64,
    pub windows: u64,
    pub attack_windows: u64,
    pub identities: u64,
    pub campaigns: u64,
}

/// What the harness found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub name: String,
    pub detector: String,
    pub threshold: f32,
    pub slack_ms: i64,
    pub days: f64,
    pub counts: Counts,
    pub levels: Vec<LevelMetrics>,
    pub false_alerts: FalseAlerts,
    pub detection: Vec<KindDetection>,
    pub campaigns: Vec<CampaignOutcome>,
    /// Attack kinds of the evaluated traffic that the training traffic never had.
    #[serde(default)]
    pub unseen_kinds: Vec<AttackKind>,
}

/// Row labels: an attack kind (an index into the kind names), benign, or left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Attack(usize),
    Benign,
    Excluded,
}

fn kind_index(k: AttackKind) -> usize {
    AttackKind::ALL.iter().position(|&x| x == k).unwrap_or(0)
}

fn kind_names() -> Vec<String> {
    AttackKind::ALL
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect()
}

impl Evaluation {
    pub fn new() -> Self {
        Self::default()
    }

    fn intern(&mut self, key: &str) -> u32 {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.ids.insert(key.to_owned(), id);
        self.names.push(key.to_owned());
        id
    }

    /// Adds a scored feature row.
    pub fn add_row(&mut self, key: &str, window_start_ms: i64, window_end_ms: i64, score: f32) {
        let key = self.intern(key);
        self.rows.push(Row {
            key,
            start: window_start_ms,
            end: window_end_ms,
            score,
        });
    }

    /// Adds an event with its identity key and label.
    pub fn add_event(&mut self, key: &str, ts_ms: i64, campaign: Option<u32>) {
        let key = self.intern(key);
        self.events.push(EventRef {
            key,
            ts: ts_ms,
            campaign: campaign.unwrap_or(0),
        });
    }

    pub fn row_count(&self) -> usize {
        self.rows.len()
    }

    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// The row labels, with the campaigns indexed by key.
    fn row_labels(&self, campaigns: &[Campaign], slack_ms: i64) -> Vec<Label> {
        let index = CampaignIndex::new(campaigns, &self.ids);
        self.rows
            .iter()
            .map(|r| {
                if let Some(c) = index.attacker.get(&r.key).and_then(|cs| {
                    cs.iter()
                        .map(|&i| &campaigns[i])
                        .find(|c| c.overlaps(r.start, r.end, 0))
                }) {
                    return Label::Attack(kind_index(c.kind));
                }
                let touched = index.related.get(&r.key).is_some_and(|cs| {
                    cs.iter()
                        .any(|&i| campaigns[i].overlaps(r.start, r.end, slack_ms))
                });
                if touched {
                    Label::Excluded
                } else {
                    Label::Benign
                }
            })
            .collect()
    }

    /// Evaluates everything added against `campaigns`.
    pub fn report(&self, campaigns: &[Campaign], opts: &ReportOptions) -> Report {
        let slack = opts.slack_ms.max(0);
        let threshold = opts.threshold;
        let row_labels = self.row_labels(campaigns, slack);
        let index = CampaignIndex::new(campaigns, &self.ids);
        let kinds: Vec<AttackKind> = AttackKind::ALL
            .into_iter()
            .filter(|k| campaigns.iter().any(|c| c.kind == *k))
            .collect();
        let present: Vec<usize> = kinds.iter().map(|&k| kind_index(k)).collect();
        let names = kind_names();

        // Windows.
        let window_items: Vec<(f32, Label)> = self
            .rows
            .iter()
            .zip(&row_labels)
            .map(|(r, &l)| (r.score, l))
            .collect();

        // Events: the best window of their key that contains them.
        let by_key = self.rows_by_key();
        let kind_of: HashMap<u32, AttackKind> = campaigns.iter().map(|c| (c.id, c.kind)).collect();
        let event_items: Vec<(f32, Label)> = self
            .events
            .iter()
            .map(|e| {
                let score = by_key
                    .get(&e.key)
                    .map_or(f32::NEG_INFINITY, |rows| best_containing(rows, e.ts));
                let label = match kind_of.get(&e.campaign) {
                    Some(&k) => Label::Attack(kind_index(k)),
                    None if e.campaign != 0 => Label::Excluded,
                    None => Label::Benign,
                };
                (score, label)
            })
            .collect();

        // Identities.
        let mut identity_score: HashMap<u32, f32> = HashMap::new();
        for r in &self.rows {
            let s = identity_score.entry(r.key).or_insert(f32::NEG_INFINITY);
            *s = s.max(r.score);
        }
        let mut identity_items: Vec<(f32, Label)> = Vec::with_capacity(identity_score.len());
        let mut benign_identity_scores: Vec<f32> = Vec::new();
        let mut keys: Vec<&u32> = identity_score.keys().collect();
        keys.sort_unstable();
        for key in keys {
            let score = identity_score[key];
            let label = match index.attacker.get(key) {
                Some(cs) => Label::Attack(kind_index(campaigns[cs[0]].kind)),
                None if index.related.contains_key(key) => Label::Excluded,
                None => Label::Benign,
            };
            if label == Label::Benign {
                benign_identity_scores.push(score);
            }
            identity_items.push((score, label));
        }

        // Campaigns.
        let outcomes: Vec<CampaignOutcome> = campaigns
            .iter()
            .map(|c| self.campaign_outcome(c, &by_key, threshold, slack))
            .collect();
        let mut campaign_items: Vec<(f32, Label)> = outcomes
            .iter()
            .map(|o| {
                (
                    o.max_score.unwrap_or(f32::NEG_INFINITY),
                    Label::Attack(kind_index(o.kind)),
                )
            })
            .collect();
        campaign_items.extend(benign_identity_scores.iter().map(|&s| (s, Label::Benign)));

        let levels = [
            (Level::Event, &event_items),
            (Level::Window, &window_items),
            (Level::Identity, &identity_items),
            (Level::Campaign, &campaign_items),
        ]
        .into_iter()
        .map(|(level, items)| LevelMetrics {
            level,
            kinds: per_kind(items, &present, &names, threshold),
        })
        .collect();

        let days = (opts.duration_ms as f64 / 86_400_000.0).max(1e-9);
        let benign_identities = benign_identity_scores.len() as u64;
        let alert_windows = window_items
            .iter()
            .filter(|(s, l)| *l == Label::Benign && *s >= threshold)
            .count() as u64;
        let alerted_identities = benign_identity_scores
            .iter()
            .filter(|&&s| s >= threshold)
            .count() as u64;
        let per_10k_day = |n: u64| {
            if benign_identities == 0 {
                0.0
            } else {
                n as f64 / (benign_identities as f64 / 10_000.0) / days
            }
        };
        Report {
            name: opts.name.clone(),
            detector: opts.detector.clone(),
            threshold,
            slack_ms: slack,
            days,
            counts: Counts {
                events: self.events.len() as u64,
                attack_events: self.events.iter().filter(|e| e.campaign != 0).count() as u64,
                windows: self.rows.len() as u64,
                attack_windows: row_labels
                    .iter()
                    .filter(|l| matches!(l, Label::Attack(_)))
                    .count() as u64,
                identities: identity_score.len() as u64,
                campaigns: campaigns.len() as u64,
            },
            levels,
            false_alerts: FalseAlerts {
                benign_identities,
                alert_windows,
                alerted_identities,
                windows_per_10k_identities_per_day: per_10k_day(alert_windows),
                identities_per_10k_per_day: per_10k_day(alerted_identities),
            },
            detection: kinds
                .iter()
                .map(|&k| kind_detection(k, &outcomes))
                .collect(),
            campaigns: outcomes,
            unseen_kinds: Vec::new(),
        }
    }

    /// Each key's rows, by window end.
    fn rows_by_key(&self) -> HashMap<u32, Vec<Row>> {
        let mut by_key: HashMap<u32, Vec<Row>> = HashMap::new();
        for r in &self.rows {
            by_key.entry(r.key).or_default().push(*r);
        }
        for rows in by_key.values_mut() {
            rows.sort_by_key(|r| (r.end, r.start));
        }
        by_key
    }

    fn campaign_outcome(
        &self,
        c: &Campaign,
        by_key: &HashMap<u32, Vec<Row>>,
        threshold: f32,
        slack: i64,
    ) -> CampaignOutcome {
        let mut max_score: Option<f32> = None;
        let mut first: Option<i64> = None;
        for key in c.attacker_keys() {
            let Some(rows) = self.ids.get(key).and_then(|id| by_key.get(id)) else {
                continue;
            };
            for r in rows.iter().filter(|r| c.overlaps(r.start, r.end, slack)) {
                max_score = Some(max_score.map_or(r.score, |m: f32| m.max(r.score)));
                if r.score >= threshold {
                    first = Some(first.map_or(r.end, |f: i64| f.min(r.end)));
                }
            }
        }
        CampaignOutcome {
            id: c.id,
            kind: c.kind,
            intensity: c.intensity,
            identity_key: c.identity_key.clone(),
            events: c.events,
            detected: first.is_some(),
            max_score,
            first_detection_ms: first,
            time_to_detect_ms: first.map(|f| f.saturating_sub(c.start_ms).max(0)),
        }
    }

    /// Window scores of benign rows and of attack rows (for the histogram), and the
    /// window-level precision-recall curve of each kind and of all kinds.
    pub fn plot_data(&self, campaigns: &[Campaign], slack_ms: i64) -> PlotData {
        let labels = self.row_labels(campaigns, slack_ms.max(0));
        let mut benign = Vec::new();
        let mut attack = Vec::new();
        let mut by_kind: BTreeMap<usize, ()> = BTreeMap::new();
        for (r, l) in self.rows.iter().zip(&labels) {
            match l {
                Label::Benign => benign.push(r.score),
                Label::Attack(k) => {
                    attack.push(r.score);
                    by_kind.insert(*k, ());
                }
                Label::Excluded => {}
            }
        }
        let curve = |keep: &dyn Fn(usize) -> bool| {
            let mut scores = Vec::new();
            let mut truth = Vec::new();
            for (r, l) in self.rows.iter().zip(&labels) {
                match l {
                    Label::Benign => {
                        scores.push(r.score);
                        truth.push(false);
                    }
                    Label::Attack(k) if keep(*k) => {
                        scores.push(r.score);
                        truth.push(true);
                    }
                    _ => {}
                }
            }
            pr_curve(&scores, &truth)
        };
        let mut curves = vec![("all".to_owned(), curve(&|_| true))];
        let names = kind_names();
        for &k in by_kind.keys() {
            curves.push((names[k].clone(), curve(&|x| x == k)));
        }
        PlotData {
            benign_scores: benign,
            attack_scores: attack,
            pr_curves: curves,
        }
    }
}

/// Evaluates scores of rows from any labelled table ([`crate::table`]): row level (as
/// windows) and, with groups, group level (as identities: a group's score is its highest,
/// and it is an attack of the kind most of its attack rows have). There are no campaigns.
pub fn table_report(
    scores: &[f32],
    labels: &[Option<String>],
    groups: Option<&[String]>,
    opts: &ReportOptions,
) -> Report {
    let threshold = opts.threshold;
    let mut names: Vec<String> = labels.iter().flatten().cloned().collect();
    names.sort();
    names.dedup();
    let index = |kind: &str| names.iter().position(|n| n == kind).unwrap_or(0);
    let row_items: Vec<(f32, Label)> = scores
        .iter()
        .zip(labels)
        .map(|(&s, l)| {
            (
                s,
                l.as_deref()
                    .map_or(Label::Benign, |k| Label::Attack(index(k))),
            )
        })
        .collect();
    let present: Vec<usize> = (0..names.len()).collect();
    let mut levels = vec![LevelMetrics {
        level: Level::Window,
        kinds: per_kind(&row_items, &present, &names, threshold),
    }];
    let (mut benign_groups, mut alerted) = (row_items.len() as u64, 0u64);
    let alert_windows = row_items
        .iter()
        .filter(|(s, l)| *l == Label::Benign && *s >= threshold)
        .count() as u64;
    let mut identities = 0u64;
    if let Some(groups) = groups {
        let mut by_group: BTreeMap<&str, (f32, Vec<usize>)> = BTreeMap::new();
        for ((&s, l), g) in scores
            .iter()
            .zip(&row_items)
            .map(|(s, (_, l))| (s, l))
            .zip(groups)
        {
            let e = by_group
                .entry(g.as_str())
                .or_insert((f32::NEG_INFINITY, Vec::new()));
            e.0 = e.0.max(s);
            if let Label::Attack(k) = l {
                e.1.push(*k);
            }
        }
        let items: Vec<(f32, Label)> = by_group
            .values()
            .map(|(s, kinds)| {
                let label = most_common(kinds).map_or(Label::Benign, Label::Attack);
                (*s, label)
            })
            .collect();
        identities = items.len() as u64;
        benign_groups = items.iter().filter(|(_, l)| *l == Label::Benign).count() as u64;
        alerted = items
            .iter()
            .filter(|(s, l)| *l == Label::Benign && *s >= threshold)
            .count() as u64;
        levels.push(LevelMetrics {
            level: Level::Identity,
            kinds: per_kind(&items, &present, &names, threshold),
        });
    }
    let days = (opts.duration_ms as f64 / 86_400_000.0).max(1e-9);
    let per_10k_day = |n: u64| {
        if benign_groups == 0 {
            0.0
        } else {
            n as f64 / (benign_groups as f64 / 10_000.0) / days
        }
    };
    Report {
        name: opts.name.clone(),
        detector: opts.detector.clone(),
        threshold,
        slack_ms: 0,
        days,
        counts: Counts {
            events: 0,
            attack_events: 0,
            windows: scores.len() as u64,
            attack_windows: labels.iter().filter(|l| l.is_some()).count() as u64,
            identities,
            campaigns: 0,
        },
        levels,
        false_alerts: FalseAlerts {
            benign_identities: benign_groups,
            alert_windows,
            alerted_identities: alerted,
            windows_per_10k_identities_per_day: per_10k_day(alert_windows),
            identities_per_10k_per_day: per_10k_day(alerted),
        },
        detection: Vec::new(),
        campaigns: Vec::new(),
        unseen_kinds: Vec::new(),
    }
}

/// Plot data for [`table_report`]: row scores by label and a PR curve per kind.
pub fn table_plot_data(scores: &[f32], labels: &[Option<String>]) -> PlotData {
    let mut benign = Vec::new();
    let mut attack = Vec::new();
    for (&s, l) in scores.iter().zip(labels) {
        if l.is_some() {
            attack.push(s);
        } else {
            benign.push(s);
        }
    }
    let mut kinds: Vec<&str> = labels.iter().flatten().map(String::as_str).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let truth: Vec<bool> = labels.iter().map(Option::is_some).collect();
    let mut curves = vec![("all".to_owned(), pr_curve(scores, &truth))];
    for kind in kinds {
        let (s, t): (Vec<f32>, Vec<bool>) = scores
            .iter()
            .zip(labels)
            .filter(|(_, l)| l.as_deref().is_none_or(|k| k == kind))
            .map(|(&s, l)| (s, l.is_some()))
            .unzip();
        curves.push((kind.to_owned(), pr_curve(&s, &t)));
    }
    PlotData {
        benign_scores: benign,
        attack_scores: attack,
        pr_curves: curves,
    }
}

fn most_common(kinds: &[usize]) -> Option<usize> {
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for &k in kinds {
        *counts.entry(k).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|&(k, n)| (n, std::cmp::Reverse(k)))
        .map(|(k, _)| k)
}

/// What the plots are drawn from.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotData {
    pub benign_scores: Vec<f32>,
    pub attack_scores: Vec<f32>,
    pub pr_curves: Vec<(String, Vec<PrPoint>)>,
}

/// The highest score among `rows` (sorted by end) whose window contains `ts`.
fn best_containing(rows: &[Row], ts: i64) -> f32 {
    let from = rows.partition_point(|r| r.end <= ts);
    rows[from..]
        .iter()
        .take_while(|r| r.end - ts <= 86_400_000)
        .filter(|r| r.start <= ts)
        .map(|r| r.score)
        .fold(f32::NEG_INFINITY, f32::max)
}

/// Campaign indices by the interned keys they show under.
struct CampaignIndex {
    attacker: HashMap<u32, Vec<usize>>,
    related: HashMap<u32, Vec<usize>>,
}

impl CampaignIndex {
    fn new(campaigns: &[Campaign], ids: &HashMap<String, u32>) -> Self {
        let mut attacker: HashMap<u32, Vec<usize>> = HashMap::new();
        let mut related: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, c) in campaigns.iter().enumerate() {
            for key in c.attacker_keys() {
                if let Some(&id) = ids.get(key) {
                    attacker.entry(id).or_default().push(i);
                }
            }
            for key in &c.related_keys {
                if let Some(&id) = ids.get(key.as_str()) {
                    related.entry(id).or_default().push(i);
                }
            }
        }
        Self { attacker, related }
    }
}

fn per_kind(
    items: &[(f32, Label)],
    kinds: &[usize],
    names: &[String],
    threshold: f32,
) -> Vec<KindMetrics> {
    let metrics = |keep: &dyn Fn(usize) -> bool| {
        let mut scores = Vec::new();
        let mut truth = Vec::new();
        for &(s, l) in items {
            match l {
                Label::Benign => {
                    scores.push(s);
                    truth.push(false);
                }
                Label::Attack(k) if keep(k) => {
                    scores.push(s);
                    truth.push(true);
                }
                _ => {}
            }
        }
        BinaryMetrics::compute(&scores, &truth, threshold)
    };
    let mut out: Vec<KindMetrics> = kinds
        .iter()
        .map(|&k| KindMetrics {
            kind: names.get(k).cloned().unwrap_or_default(),
            metrics: metrics(&|x| x == k),
        })
        .collect();
    out.push(KindMetrics {
        kind: "all".to_owned(),
        metrics: metrics(&|_| true),
    });
    out
}

fn kind_detection(kind: AttackKind, outcomes: &[CampaignOutcome]) -> KindDetection {
    let of_kind: Vec<&CampaignOutcome> = outcomes.iter().filter(|o| o.kind == kind).collect();
    let mut ttd: Vec<i64> = of_kind.iter().filter_map(|o| o.time_to_detect_ms).collect();
    ttd.sort_unstable();
    KindDetection {
        kind,
        campaigns: of_kind.len() as u64,
        detected: of_kind.iter().filter(|o| o.detected).count() as u64,
        median_time_to_detect_ms: (!ttd.is_empty()).then(|| ttd[(ttd.len() - 1) / 2]),
        max_time_to_detect_ms: ttd.last().copied(),
    }
}

// ---- presentation ----

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

fn secs(ms: Option<i64>) -> String {
    ms.map_or_else(
        || "-".to_owned(),
        |ms| format!("{:.0} s", ms as f64 / 1000.0),
    )
}

impl Report {
    /// The metrics of `kind` (an attack kind or `all`) at `level`.
    pub fn metrics(&self, level: Level, kind: &str) -> Option<&BinaryMetrics> {
        self.levels
            .iter()
            .find(|l| l.level == level)?
            .kinds
            .iter()
            .find(|k| k.kind == kind)
            .map(|k| &k.metrics)
    }

    /// One table, a row per attack kind: what the README shows.
    pub fn summary_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| attack | intensity | campaigns detected | median time to detect | event recall | window PR-AUC | identity ROC-AUC | campaign PR-AUC |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        let kinds: Vec<String> = self
            .levels
            .iter()
            .find(|l| l.level == Level::Window)
            .map(|l| l.kinds.iter().map(|k| k.kind.clone()).collect())
            .unwrap_or_default();
        for kind in &kinds {
            let intensities: Vec<String> = {
                let mut v: Vec<f64> = self
                    .campaigns
                    .iter()
                    .filter(|c| kind == "all" || c.kind.as_str() == kind)
                    .map(|c| c.intensity)
                    .collect();
                v.sort_by(f64::total_cmp);
                v.dedup();
                v.iter().map(|x| format!("{x:.1}")).collect()
            };
            let (detected, total, ttd) =
                match self.detection.iter().find(|d| d.kind.as_str() == kind) {
                    Some(d) => (d.detected, d.campaigns, d.median_time_to_detect_ms),
                    None if self.campaigns.is_empty() => (0, 0, None),
                    None => {
                        let mut all: Vec<i64> = self
                            .campaigns
                            .iter()
                            .filter_map(|c| c.time_to_detect_ms)
                            .collect();
                        all.sort_unstable();
                        (
                            self.campaigns.iter().filter(|c| c.detected).count() as u64,
                            self.campaigns.len() as u64,
                            (!all.is_empty()).then(|| all[(all.len() - 1) / 2]),
                        )
                    }
                };
            let unseen = self.unseen_kinds.iter().any(|k| k.as_str() == kind);
            let get =
                |level, f: fn(&BinaryMetrics) -> Option<f64>| self.metrics(level, kind).and_then(f);
            let name = if kind == "all" {
                "**all**".to_owned()
            } else if unseen {
                format!("{kind} (unseen)")
            } else {
                kind.clone()
            };
            let detected = if total == 0 {
                "-".to_owned()
            } else {
                format!("{detected}/{total}")
            };
            let _ = writeln!(
                s,
                "| {name} | {} | {detected} | {} | {} | {} | {} | {} |",
                intensities.join(", "),
                secs(ttd),
                pct(get(Level::Event, |m| m.recall)),
                pct(get(Level::Window, |m| m.pr_auc)),
                pct(get(Level::Identity, |m| m.roc_auc)),
                pct(get(Level::Campaign, |m| m.pr_auc)),
            );
        }
        let f = &self.false_alerts;
        let _ = writeln!(
            s,
            "\nFalse alerts: {:.1} alerting windows and {:.1} alerted identities per 10,000 benign identities per day ({} benign identities over {:.2} days; threshold {:.3}).",
            f.windows_per_10k_identities_per_day,
            f.identities_per_10k_per_day,
            f.benign_identities,
            self.days,
            self.threshold
        );
        s
    }

    /// The summary, then every level's table and every campaign.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "## Benchmark `{}`\n\nDetector: {}\n\n",
            self.name, self.detector
        );
        s.push_str(&self.summary_markdown());
        if !self.unseen_kinds.is_empty() {
            let unseen: Vec<&str> = self.unseen_kinds.iter().map(|k| k.as_str()).collect();
            let _ = writeln!(s, "\nNever seen in training: {}.", unseen.join(", "));
        }
        let c = &self.counts;
        let _ = writeln!(
            s,
            "\n{} events ({} attack), {} windows ({} attack), {} identities, {} campaigns.",
            c.events, c.attack_events, c.windows, c.attack_windows, c.identities, c.campaigns
        );
        for level in &self.levels {
            let _ = writeln!(s, "\n### {} level\n", level.level.as_str());
            let _ = writeln!(s, "| attack | positives | negatives | TP | FP | FN | precision | recall | F1 | ROC-AUC | PR-AUC |");
            let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
            for k in &level.kinds {
                let m = &k.metrics;
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    k.kind,
                    m.positives,
                    m.negatives,
                    m.confusion.tp,
                    m.confusion.fp,
                    m.confusion.fn_,
                    pct(m.precision),
                    pct(m.recall),
                    pct(m.f1),
                    pct(m.roc_auc),
                    pct(m.pr_auc)
                );
            }
        }
        let _ = writeln!(s, "\n### Campaigns\n");
        let _ = writeln!(
            s,
            "| id | attack | intensity | key | events | detected | max score | time to detect |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for o in &self.campaigns {
            let _ = writeln!(
                s,
                "| {} | {} | {:.2} | `{}` | {} | {} | {} | {} |",
                o.id,
                o.kind,
                o.intensity,
                o.identity_key,
                o.events,
                if o.detected { "yes" } else { "no" },
                o.max_score
                    .map_or_else(|| "-".to_owned(), |s| format!("{s:.3}")),
                secs(o.time_to_detect_ms)
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(id: u32, kind: AttackKind, key: &str, start: i64, end: i64) -> Campaign {
        Campaign {
            id,
            kind,
            identity_key: key.into(),
            keys: Vec::new(),
            related_keys: Vec::new(),
            start_ms: start,
            end_ms: end,
            description: String::new(),
            events: 2,
            intensity: 0.5,
        }
    }

    fn opts(threshold: f32) -> ReportOptions {
        ReportOptions {
            name: "t".into(),
            detector: "test".into(),
            threshold,
            slack_ms: 0,
            duration_ms: 86_400_000,
        }
    }

    /// Two benign users, one attacker, one bot of a two-key campaign, one touched account.
    fn fixture() -> (Evaluation, Vec<Campaign>) {
        let mut bola = campaign(1, AttackKind::Bola, "sub:mallory", 100_000, 200_000);
        bola.related_keys = vec!["sub:touched".into()];
        let mut ddos = campaign(2, AttackKind::Ddos, "ip:1.1.1.1", 500_000, 600_000);
        ddos.keys = vec!["ip:2.2.2.2".into()];
        let mut e = Evaluation::new();
        // mallory: quiet before (benign), loud during.
        e.add_row("sub:mallory", 0, 60_000, 0.40);
        e.add_row("sub:mallory", 120_000, 180_000, 0.90);
        e.add_row("sub:alice", 0, 60_000, 0.30);
        e.add_row("sub:alice", 130_000, 190_000, 0.85); // a false alert
        e.add_row("sub:bob", 0, 60_000, 0.20);
        e.add_row("sub:touched", 150_000, 210_000, 0.95); // left out
        e.add_row("ip:2.2.2.2", 540_000, 600_000, 0.70); // the second bot, under threshold
        e.add_event("sub:mallory", 10_000, None);
        e.add_event("sub:mallory", 150_000, Some(1));
        e.add_event("sub:alice", 150_000, None);
        e.add_event("ip:2.2.2.2", 560_000, Some(2));
        e.add_event("sub:bob", 999_000, None); // in no window: scores lowest
        (e, vec![bola, ddos])
    }

    #[test]
    fn window_level_by_hand() {
        let (e, campaigns) = fixture();
        let r = e.report(&campaigns, &opts(0.8));
        let w = r.metrics(Level::Window, "all").unwrap();
        // Attack rows: mallory@120k (0.9), bot@540k (0.7); benign: mallory@0, alice x2, bob.
        assert_eq!((w.positives, w.negatives), (2, 4));
        assert_eq!((w.confusion.tp, w.confusion.fp, w.confusion.fn_), (1, 1, 1));
        // Attacks {0.9, 0.7} vs benign {0.4, 0.3, 0.85, 0.2}: 0.9 beats 4, 0.7 beats 3.
        assert!((w.roc_auc.unwrap() - 7.0 / 8.0).abs() < 1e-12);
        let bola = r.metrics(Level::Window, "bola").unwrap();
        assert_eq!((bola.positives, bola.confusion.tp), (1, 1));
        assert_eq!(bola.roc_auc, Some(1.0));
        assert_eq!(r.counts.attack_windows, 2);
    }

    #[test]
    fn event_identity_and_campaign_levels_by_hand() {
        let (e, campaigns) = fixture();
        let r = e.report(&campaigns, &opts(0.8));
        let ev = r.metrics(Level::Event, "all").unwrap();
        // Events: mallory@10k -> 0.4 benign; mallory@150k -> 0.9 attack; alice@150k ->
        // 0.85 benign (alerting); bot@560k -> 0.7 attack; bob@999k -> no window.
        assert_eq!((ev.positives, ev.negatives), (2, 3));
        assert_eq!((ev.confusion.tp, ev.confusion.fp), (1, 1));

        let id = r.metrics(Level::Identity, "all").unwrap();
        // Identities: mallory (0.9) and the bot (0.7) attack; alice (0.85), bob (0.2)
        // benign; the touched account left out.
        assert_eq!((id.positives, id.negatives), (2, 2));
        assert_eq!((id.confusion.tp, id.confusion.fp), (1, 1));

        let c = r.metrics(Level::Campaign, "all").unwrap();
        assert_eq!((c.positives, c.negatives), (2, 2));
        assert!(r.campaigns[0].detected);
        assert_eq!(r.campaigns[0].first_detection_ms, Some(180_000));
        assert_eq!(r.campaigns[0].time_to_detect_ms, Some(80_000));
        assert!(
            !r.campaigns[1].detected,
            "the bot stayed under the threshold"
        );
        assert_eq!(r.campaigns[1].max_score, Some(0.7));
        assert_eq!(r.detection[1].detected, 0);

        // One benign window alerted, on one of two benign identities, in one day.
        assert_eq!(r.false_alerts.alert_windows, 1);
        assert_eq!(r.false_alerts.alerted_identities, 1);
        assert!((r.false_alerts.identities_per_10k_per_day - 5_000.0).abs() < 1e-9);

        let md = r.to_markdown();
        assert!(md.contains("| bola | 0.5 | 1/1 | 80 s |"), "{md}");
        assert!(md.contains("| ddos | 0.5 | 0/1 | - |"), "{md}");
        let json = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn table_reports_rows_and_groups() {
        let scores = [0.9, 0.2, 0.7, 0.1, 0.95];
        let labels = [
            Some("bola".to_owned()),
            None,
            Some("bola".into()),
            None,
            None,
        ];
        let groups: Vec<String> = ["a", "a", "b", "c", "d"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let r = table_report(&scores, &labels, Some(&groups), &opts(0.8));
        let rows = r.metrics(Level::Window, "bola").unwrap();
        assert_eq!((rows.positives, rows.negatives), (2, 3));
        assert_eq!((rows.confusion.tp, rows.confusion.fp), (1, 1));
        // Groups: a (0.9, attack), b (0.7, attack), c (0.1), d (0.95).
        let g = r.metrics(Level::Identity, "all").unwrap();
        assert_eq!((g.positives, g.negatives), (2, 2));
        // Attacks {0.9, 0.7} against benign {0.1, 0.95}: each beats one of two.
        assert_eq!(g.roc_auc, Some(0.5));
        assert_eq!(r.false_alerts.alerted_identities, 1);
        assert!(
            r.summary_markdown().contains("| bola |  | - |"),
            "{}",
            r.summary_markdown()
        );
    }

    #[test]
    fn plot_data_splits_scores_by_label() {
        let (e, campaigns) = fixture();
        let p = e.plot_data(&campaigns, 0);
        assert_eq!(p.attack_scores.len(), 2);
        assert_eq!(p.benign_scores.len(), 4);
        let names: Vec<&str> = p.pr_curves.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["all", "bola", "ddos"]);
    }
}
