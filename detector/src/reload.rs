//! Hot model reload. The reloader watches the model file (its modification time and size,
//! every `model.reload_check_secs`) and answers explicit checks (SIGHUP in the CLI). A
//! changed file is loaded and validated on the blocking pool (it can be large); a file
//! that does not load, or holds a model of another feature schema, is refused, logged and
//! counted, and the old model keeps scoring. An accepted model goes to the pipeline
//! through a `watch` channel and is swapped in between batches
//! ([`crate::Pipeline::replace_model`]), so no batch is scored half by one model.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use outrider_models::{RulesConfig, TrainedModel};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::score::Scorer;
use crate::train::load_model;

/// What a check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The file has not changed since the last check (periodic checks only).
    Unchanged,
    /// The new model was validated and handed to the pipeline, which swaps it in before
    /// its next batch.
    Loaded { model_version: String },
    /// The file was refused; the old model keeps scoring.
    Refused { error: String },
}

type Request = Option<oneshot::Sender<ReloadOutcome>>;

/// Asks the reloader to check the model file now (cheap to clone).
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    tx: mpsc::Sender<Request>,
}

/// The reloader's end of a [`ReloadHandle`], given to the service in `RunOptions`.
#[derive(Debug)]
pub struct ReloadRequests {
    rx: mpsc::Receiver<Request>,
}

/// A handle and the requests it sends.
pub fn channel() -> (ReloadHandle, ReloadRequests) {
    let (tx, rx) = mpsc::channel(8);
    (ReloadHandle { tx }, ReloadRequests { rx })
}

impl ReloadHandle {
    /// Asks for a check and returns at once (a signal handler). A request made while
    /// several are already queued is dropped: those checks will see the same file.
    pub fn request(&self) {
        let _ = self.tx.try_send(None);
    }

    /// Checks now and says what happened; `None` if the service is not running.
    pub async fn check(&self) -> Option<ReloadOutcome> {
        let (reply, outcome) = oneshot::channel();
        self.tx.send(Some(reply)).await.ok()?;
        outcome.await.ok()
    }
}

/// The file's modification time and size: what a periodic check compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }
}

/// Watches one model file and hands accepted models to the pipeline.
#[derive(Debug)]
pub struct ModelReloader {
    path: PathBuf,
    rules: RulesConfig,
    window_secs: u64,
    check_every: Option<Duration>,
    stamp: Option<FileStamp>,
    models: watch::Sender<Arc<TrainedModel>>,
    metrics: Option<Arc<Metrics>>,
}

impl ModelReloader {
    /// A reloader of the file `current` was loaded from, and the receiver the pipeline
    /// reads new models from. `check_every`: `None` checks only when asked.
    pub fn new(
        path: PathBuf,
        current: Arc<TrainedModel>,
        rules: RulesConfig,
        window_secs: u64,
        check_every: Option<Duration>,
    ) -> (Self, watch::Receiver<Arc<TrainedModel>>) {
        let (models, rx) = watch::channel(current);
        let stamp = FileStamp::of(&path);
        let reloader = Self {
            path,
            rules,
            window_secs,
            check_every,
            stamp,
            models,
            metrics: None,
        };
        (reloader, rx)
    }

    /// Counts refused files in `metrics` (swaps are counted by the pipeline).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Checks on every tick and every request until `shutdown`.
    pub async fn run(mut self, requests: Option<ReloadRequests>, shutdown: impl Future) {
        tokio::pin!(shutdown);
        let mut requests = requests.map(|r| r.rx);
        let mut ticks = self.check_every.map(|every| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        tracing::info!(path = %self.path.display(), every = ?self.check_every, "model reload watch started");
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                request = next_request(&mut requests) => {
                    let outcome = self.check(true).await;
                    if let Some(reply) = request {
                        let _ = reply.send(outcome);
                    }
                }
                () = next_tick(&mut ticks) => {
                    self.check(false).await;
                }
            }
        }
    }

    /// Loads the file if asked (`forced`) or if it changed since the last check.
    async fn check(&mut self, forced: bool) -> ReloadOutcome {
        let stamp = FileStamp::of(&self.path);
        if !forced && stamp == self.stamp {
            return ReloadOutcome::Unchanged;
        }
        // Remembered even if refused, so a broken file is reported once, not every tick.
        self.stamp = stamp;
        let (path, rules, window_secs) = (self.path.clone(), self.rules.clone(), self.window_secs);
        let loaded = tokio::task::spawn_blocking(move || validate(&path, &rules, window_secs))
            .await
            .map_err(|e| Error::Scoring(format!("model validation task: {e}")))
            .and_then(|r| r);
        match loaded {
            Ok(model) => {
                let model_version = model.model_version().to_owned();
                tracing::info!(model = %model_version, threshold = model.threshold(), path = %self.path.display(), "model reloaded; swapped in before the next batch");
                self.models.send_replace(model);
                ReloadOutcome::Loaded { model_version }
            }
            Err(e) => {
                tracing::error!(error = %e, path = %self.path.display(), "model file refused; the current model keeps scoring");
                if let Some(m) = &self.metrics {
                    m.model_reload_failed();
                }
                ReloadOutcome::Refused {
                    error: e.to_string(),
                }
            }
        }
    }
}

/// A model that loads, has this build's feature schema, and compiles with the rules.
fn validate(path: &Path, rules: &RulesConfig, window_secs: u64) -> Result<Arc<TrainedModel>> {
    let model = Arc::new(load_model(path)?);
    Scorer::new(Arc::clone(&model), rules, window_secs)?;
    Ok(model)
}

async fn next_request(requests: &mut Option<mpsc::Receiver<Request>>) -> Request {
    match requests {
        Some(rx) => match rx.recv().await {
            Some(request) => request,
            // Every handle is gone: no more requests, ticks may still come.
            None => {
                *requests = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

async fn next_tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ndarray::Array2;
    use outrider_features::FEATURE_COUNT;
    use outrider_models::{IsolationForestParams, TrainOptions};

    /// A small model of this build's schema, saved at `path`, as JSON.
    fn save_model(path: &Path, version: &str) -> serde_json::Value {
        let x = Array2::from_shape_fn((300, FEATURE_COUNT), |(i, j)| ((i * 7 + j) % 11) as f32);
        let opts = TrainOptions {
            params: IsolationForestParams::default().n_trees(10).sample_size(64),
            ..TrainOptions::new("2026-11-22T00:00:00Z".to_owned())
        };
        let model = TrainedModel::train(crate::train::feature_schema(), x.view(), &opts).unwrap();
        model.save(path).unwrap();
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        json["model_version"] = version.into();
        std::fs::write(path, json.to_string()).unwrap();
        json
    }

    #[tokio::test]
    async fn a_periodic_check_loads_a_changed_file_once_and_refuses_a_broken_one_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.json");
        save_model(&path, "v1");
        let current = Arc::new(load_model(&path).unwrap());
        let metrics = Arc::new(Metrics::new());
        let (reloader, mut models) =
            ModelReloader::new(path.clone(), current, RulesConfig::default(), 60, None);
        let mut reloader = reloader.with_metrics(metrics.clone());
        assert_eq!(reloader.check(false).await, ReloadOutcome::Unchanged);
        assert!(!models.has_changed().unwrap());

        let mut v2 = save_model(&path, "v2-longer-version");
        assert_eq!(
            reloader.check(false).await,
            ReloadOutcome::Loaded {
                model_version: "v2-longer-version".into()
            }
        );
        assert_eq!(
            models.borrow_and_update().model_version(),
            "v2-longer-version"
        );
        assert_eq!(reloader.check(false).await, ReloadOutcome::Unchanged);

        // Another size too: two writes within one clock tick can share a modification time.
        v2["model_version"] = "v3".into();
        v2["schema"]["id"] = "identity-v0".into();
        std::fs::write(&path, v2.to_string()).unwrap();
        assert!(matches!(
            reloader.check(false).await,
            ReloadOutcome::Refused { error } if error.contains("identity-v0")
        ));
        assert!(!models.has_changed().unwrap(), "the old model stays");
        assert_eq!(reloader.check(false).await, ReloadOutcome::Unchanged);
        assert_eq!(metrics.model_reload_counts(), (0, 1));
        // An explicit check (SIGHUP) tries the same file again.
        assert!(matches!(
            reloader.check(true).await,
            ReloadOutcome::Refused { .. }
        ));
        assert_eq!(metrics.model_reload_counts(), (0, 2));
    }

    #[test]
    fn a_stamp_changes_with_the_file_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        assert_eq!(FileStamp::of(&path), None);
        std::fs::write(&path, "{}").unwrap();
        let first = FileStamp::of(&path).unwrap();
        assert_eq!(FileStamp::of(&path), Some(first));
        std::fs::write(&path, "{ }").unwrap();
        assert_ne!(FileStamp::of(&path), Some(first));
    }
}
