//! Writing a dataset out: the events in one or more formats ([`crate::formats`]), a label
//! line per event, and a summary of the campaigns. [`write_stream`] writes straight from
//! an [`EventStream`], so the dataset never has to fit in memory.
//!
//! Label lines (`labels.jsonl`), one per event, in event order:
//!
//! ```json
//! {"index":0,"line":0,"request_id":"r-7-0","type":"api","campaign":null,"attack":null}
//! ```
//!
//! `index` is the event's line in the canonical file; `line` its line in the file its
//! format puts it in (the gateway log for `"type":"api"`, the Keycloak file for
//! `"type":"token"`; equal to `index` when only the canonical format is written);
//! `request_id` the gateway request id (absent for token-server events); `campaign` the
//! campaign id and `attack` its kind (`null` for benign traffic).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use outrider_ingest::Event;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::export::RawEventWriter;
use crate::formats::{write_line, OutputFormat, KEYCLOAK_FILE};
use crate::generate::{AttackKind, Campaign, Dataset, EventStream, LabelledEvent};

/// The label of one event, written as one JSON line in event order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelLine<'a> {
    /// Position of the event in the canonical events file (0-based).
    pub index: u64,
    /// Position in the file of its format (gateway log or Keycloak file).
    pub line: u64,
    /// The gateway request id; absent for token-server events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
    /// `"api"` or `"token"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The campaign the event belongs to; `null` for benign traffic.
    pub campaign: Option<u32>,
    /// The campaign's attack kind; `null` for benign traffic.
    pub attack: Option<&'static str>,
}

/// The files [`write_dataset`] wrote and how many lines each holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetFiles {
    pub events: PathBuf,
    pub labels: PathBuf,
    pub campaigns: PathBuf,
    pub event_count: u64,
}

/// Writes the events (without labels) as canonical JSON lines (`Event::to_json_line`).
/// Returns the number of lines written.
pub fn write_events_jsonl(path: impl AsRef<Path>, dataset: &Dataset) -> Result<u64> {
    let path = path.as_ref();
    write_lines(
        path,
        dataset.events.iter().map(|e| Ok(e.event.to_json_line())),
    )
}

/// Writes one label line per event, in the same order as [`write_events_jsonl`].
/// Returns the number of lines written.
pub fn write_labels_jsonl(path: impl AsRef<Path>, dataset: &Dataset) -> Result<u64> {
    let path = path.as_ref();
    let kinds: HashMap<u32, AttackKind> =
        dataset.campaigns.iter().map(|c| (c.id, c.kind)).collect();
    let lines = dataset
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| label_json(&label_line(e, i as u64, i as u64, &kinds)));
    write_lines(path, lines)
}

fn label_line<'a>(
    e: &'a LabelledEvent,
    index: u64,
    line: u64,
    kinds: &HashMap<u32, AttackKind>,
) -> LabelLine<'a> {
    let (request_id, kind) = match &e.event {
        Event::Api(a) => (Some(a.request_id.as_str()), "api"),
        Event::Token(_) => (None, "token"),
    };
    LabelLine {
        index,
        line,
        request_id,
        kind,
        campaign: e.campaign,
        attack: e.campaign.and_then(|c| kinds.get(&c)).map(|k| k.as_str()),
    }
}

fn label_json(line: &LabelLine<'_>) -> Result<String> {
    serde_json::to_string(line).map_err(|source| Error::Json {
        what: "label",
        source,
    })
}

/// Writes the campaigns as one pretty-printed JSON array (`campaigns.json`).
pub fn write_campaigns_json(path: impl AsRef<Path>, dataset: &Dataset) -> Result<()> {
    write_campaigns(path.as_ref(), &dataset.campaigns)
}

fn write_campaigns(path: &Path, campaigns: &[Campaign]) -> Result<()> {
    let mut text = serde_json::to_string_pretty(campaigns).map_err(|source| Error::Json {
        what: "campaigns",
        source,
    })?;
    text.push('\n');
    std::fs::write(path, text).map_err(|source| io_error(path, source))
}

/// Reads a campaigns file as [`write_campaigns_json`] writes it.
pub fn read_campaigns_json(path: impl AsRef<Path>) -> Result<Vec<Campaign>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Format {
        path: path.to_owned(),
        reason: format!("not a campaigns file: {e}"),
    })
}

/// Writes `events.jsonl`, `labels.jsonl` and `campaigns.json` into `dir` (created if
/// missing).
pub fn write_dataset(dir: impl AsRef<Path>, dataset: &Dataset) -> Result<DatasetFiles> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
    let files = DatasetFiles {
        events: dir.join("events.jsonl"),
        labels: dir.join("labels.jsonl"),
        campaigns: dir.join("campaigns.json"),
        event_count: 0,
    };
    let event_count = write_events_jsonl(&files.events, dataset)?;
    write_labels_jsonl(&files.labels, dataset)?;
    write_campaigns_json(&files.campaigns, dataset)?;
    Ok(DatasetFiles {
        event_count,
        ..files
    })
}

/// Where [`write_stream`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// One format at `path`. Beside it: `<stem>.labels.jsonl`, `<stem>.campaigns.json`,
    /// and for gateway formats `<stem>.keycloak.jsonl` with the token-server records.
    File { path: PathBuf, format: OutputFormat },
    /// Several formats into a folder: `canonical.jsonl`, `envoy.log`, ...,
    /// `keycloak.jsonl`, `labels.jsonl`, `campaigns.json`.
    Dir {
        dir: PathBuf,
        formats: Vec<OutputFormat>,
    },
}

impl OutputTarget {
    /// Where the labels go.
    pub fn labels_path(&self) -> PathBuf {
        match self {
            OutputTarget::File { path, .. } => path.with_extension("labels.jsonl"),
            OutputTarget::Dir { dir, .. } => dir.join("labels.jsonl"),
        }
    }

    /// Where the campaigns go.
    pub fn campaigns_path(&self) -> PathBuf {
        match self {
            OutputTarget::File { path, .. } => path.with_extension("campaigns.json"),
            OutputTarget::Dir { dir, .. } => dir.join("campaigns.json"),
        }
    }

    fn files(&self) -> (Vec<(OutputFormat, PathBuf)>, Option<PathBuf>) {
        match self {
            OutputTarget::File { path, format } => {
                let token = format
                    .splits_token_events()
                    .then(|| path.with_extension("keycloak.jsonl"));
                (vec![(*format, path.clone())], token)
            }
            OutputTarget::Dir { dir, formats } => {
                let mut fs: Vec<OutputFormat> = formats.clone();
                fs.sort();
                fs.dedup();
                let token = fs
                    .iter()
                    .any(|f| f.splits_token_events())
                    .then(|| dir.join(KEYCLOAK_FILE));
                (
                    fs.iter().map(|f| (*f, dir.join(f.file_name()))).collect(),
                    token,
                )
            }
        }
    }
}

/// What [`write_stream`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteSummary {
    pub events: u64,
    pub api_events: u64,
    pub token_events: u64,
    /// Every file written, events files first.
    pub files: Vec<PathBuf>,
    pub labels: PathBuf,
    pub campaigns_file: PathBuf,
    pub campaigns: Vec<Campaign>,
    /// The most events the generator held back at once.
    pub peak_buffered: usize,
}

struct Sink {
    path: PathBuf,
    w: BufWriter<File>,
}

impl Sink {
    fn create(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| io_error(parent, source))?;
        }
        let file = File::create(path).map_err(|source| io_error(path, source))?;
        Ok(Self {
            path: path.to_owned(),
            w: BufWriter::with_capacity(1 << 20, file),
        })
    }

    fn line(&mut self, bytes: &[u8]) -> Result<()> {
        self.w
            .write_all(bytes)
            .and_then(|()| self.w.write_all(b"\n"))
            .map_err(|source| io_error(&self.path, source))
    }

    fn finish(mut self) -> Result<PathBuf> {
        self.w
            .flush()
            .map_err(|source| io_error(&self.path, source))?;
        Ok(self.path)
    }
}

/// Writes every event of `stream` to `target` (and, when given, the raw events as
/// Parquet), with the labels and the campaigns. Memory stays bounded whatever the
/// stream's length.
pub fn write_stream(
    stream: &mut EventStream,
    target: &OutputTarget,
    raw_parquet: Option<&Path>,
) -> Result<WriteSummary> {
    let (formats, token_path) = target.files();
    let mut sinks: Vec<(OutputFormat, Sink)> = formats
        .iter()
        .map(|(f, p)| Ok((*f, Sink::create(p)?)))
        .collect::<Result<_>>()?;
    let mut token_sink = token_path.as_deref().map(Sink::create).transpose()?;
    let labels_path = target.labels_path();
    let mut labels = Sink::create(&labels_path)?;
    let mut raw = raw_parquet.map(RawEventWriter::create).transpose()?;
    let kinds: HashMap<u32, AttackKind> = stream.planned_campaigns().into_iter().collect();
    let only_canonical = token_sink.is_none();
    let (mut index, mut api, mut token) = (0u64, 0u64, 0u64);
    let mut buf = Vec::with_capacity(1024);
    for e in stream.by_ref() {
        let is_api = matches!(e.event, Event::Api(_));
        for (format, sink) in &mut sinks {
            if is_api || !format.splits_token_events() {
                buf.clear();
                write_line(*format, &e.event, &mut buf);
                sink.line(&buf)?;
            }
        }
        if !is_api {
            if let Some(sink) = &mut token_sink {
                buf.clear();
                write_line(OutputFormat::Envoy, &e.event, &mut buf);
                sink.line(&buf)?;
            }
        }
        let line = match (only_canonical, is_api) {
            (true, _) => index,
            (false, true) => api,
            (false, false) => token,
        };
        labels.line(label_json(&label_line(&e, index, line, &kinds))?.as_bytes())?;
        if let Some(raw) = &mut raw {
            raw.push(&e, e.campaign.and_then(|c| kinds.get(&c)).copied())?;
        }
        index += 1;
        if is_api {
            api += 1;
        } else {
            token += 1;
        }
    }
    let mut files = Vec::new();
    for (_, sink) in sinks {
        files.push(sink.finish()?);
    }
    if let Some(sink) = token_sink {
        files.push(sink.finish()?);
    }
    let labels = labels.finish()?;
    if let Some(raw) = raw {
        files.push(raw.finish()?);
    }
    let campaigns = stream.campaigns();
    let campaigns_file = target.campaigns_path();
    write_campaigns(&campaigns_file, &campaigns)?;
    Ok(WriteSummary {
        events: index,
        api_events: api,
        token_events: token,
        files,
        labels,
        campaigns_file,
        campaigns,
        peak_buffered: stream.peak_buffered(),
    })
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_lines(path: &Path, lines: impl Iterator<Item = Result<String>>) -> Result<u64> {
    let file = File::create(path).map_err(|source| io_error(path, source))?;
    let mut w = BufWriter::new(file);
    let mut n = 0u64;
    for line in lines {
        let line = line?;
        w.write_all(line.as_bytes())
            .and_then(|()| w.write_all(b"\n"))
            .map_err(|source| io_error(path, source))?;
        n += 1;
    }
    w.flush().map_err(|source| io_error(path, source))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate, GeneratorConfig};

    fn small_config() -> GeneratorConfig {
        GeneratorConfig {
            users: 20,
            service_clients: 1,
            duration_secs: 900,
            ..GeneratorConfig::default()
        }
    }

    #[test]
    fn events_and_labels_line_up_and_parse_back() {
        let ds = generate(&small_config());
        let dir = tempfile::tempdir().unwrap();
        let files = write_dataset(dir.path(), &ds).unwrap();
        assert_eq!(files.event_count, ds.events.len() as u64);

        let events = std::fs::read_to_string(&files.events).unwrap();
        let labels = std::fs::read_to_string(&files.labels).unwrap();
        let events: Vec<&str> = events.lines().collect();
        let labels: Vec<&str> = labels.lines().collect();
        assert_eq!(events.len(), ds.events.len());
        assert_eq!(labels.len(), ds.events.len());
        for (i, (line, label)) in events.iter().zip(&labels).enumerate() {
            let parsed = outrider_ingest::parse_line(line.as_bytes(), usize::MAX).unwrap();
            assert_eq!(parsed, ds.events[i].event);
            let label: serde_json::Value = serde_json::from_str(label).unwrap();
            assert_eq!(label["index"], i as u64);
            assert_eq!(label["line"], i as u64);
            let campaign = label["campaign"].as_u64().map(|c| c as u32);
            assert_eq!(campaign, ds.events[i].campaign);
            assert_eq!(label["attack"].is_null(), campaign.is_none());
            if let Event::Api(a) = &ds.events[i].event {
                assert_eq!(label["request_id"], a.request_id.as_str());
            }
        }
        let campaigns = read_campaigns_json(&files.campaigns).unwrap();
        assert_eq!(campaigns, ds.campaigns);
    }

    #[test]
    fn the_stream_writer_matches_the_in_memory_writer() {
        let cfg = small_config();
        let ds = generate(&cfg);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traffic.jsonl");
        let target = OutputTarget::File {
            path: path.clone(),
            format: OutputFormat::Canonical,
        };
        let summary = write_stream(&mut EventStream::new(&cfg), &target, None).unwrap();
        assert_eq!(summary.events, ds.events.len() as u64);
        assert_eq!(summary.campaigns, ds.campaigns);
        let mem = dir.path().join("mem.jsonl");
        write_events_jsonl(&mem, &ds).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&mem).unwrap());
        let mem_labels = dir.path().join("mem.labels.jsonl");
        write_labels_jsonl(&mem_labels, &ds).unwrap();
        assert_eq!(
            std::fs::read(&summary.labels).unwrap(),
            std::fs::read(&mem_labels).unwrap()
        );
        assert_eq!(
            summary.campaigns_file,
            dir.path().join("traffic.campaigns.json")
        );
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_the_path() {
        let ds = Dataset::default();
        let path = std::env::temp_dir()
            .join("outrider-datasets-no-such-dir-9f3a")
            .join("events.jsonl");
        let err = write_events_jsonl(&path, &ds).unwrap_err();
        assert!(matches!(err, Error::Io { .. }));
        assert!(err.to_string().contains("events.jsonl"), "{err}");
        let err = read_campaigns_json(&path).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }
}
