//! Writing a dataset out: the events as Outrider's canonical JSON lines (what the detector
//! reads), the labels one line per event, and a summary of the campaigns.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use outrider_ingest::Event;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::generate::{Campaign, Dataset};

/// The label of one event, written as one JSON line in event order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelLine<'a> {
    /// Position of the event in the events file (0-based).
    pub index: u64,
    /// The gateway request id; absent for token-server events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
    /// `"api"` or `"token"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The campaign the event belongs to; `null` for benign traffic.
    pub campaign: Option<u32>,
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

/// Writes one label line per event, in the same order as [`write_events_jsonl`]:
/// `{"index":0,"request_id":"r-7-0","type":"api","campaign":null}`. Returns the number of
/// lines written.
pub fn write_labels_jsonl(path: impl AsRef<Path>, dataset: &Dataset) -> Result<u64> {
    let path = path.as_ref();
    let lines = dataset.events.iter().enumerate().map(|(i, e)| {
        let (request_id, kind) = match &e.event {
            Event::Api(a) => (Some(a.request_id.as_str()), "api"),
            Event::Token(_) => (None, "token"),
        };
        let line = LabelLine {
            index: i as u64,
            request_id,
            kind,
            campaign: e.campaign,
        };
        serde_json::to_string(&line).map_err(|source| Error::Json {
            what: "label",
            source,
        })
    });
    write_lines(path, lines)
}

/// Writes the campaigns as one pretty-printed JSON array (`campaigns.json`).
pub fn write_campaigns_json(path: impl AsRef<Path>, dataset: &Dataset) -> Result<()> {
    let path = path.as_ref();
    let campaigns: &[Campaign] = &dataset.campaigns;
    let mut text = serde_json::to_string_pretty(campaigns).map_err(|source| Error::Json {
        what: "campaigns",
        source,
    })?;
    text.push('\n');
    std::fs::write(path, text).map_err(|source| io_error(path, source))
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

    fn small() -> Dataset {
        generate(&GeneratorConfig {
            users: 20,
            service_clients: 1,
            duration_secs: 900,
            ..GeneratorConfig::default()
        })
    }

    #[test]
    fn events_and_labels_line_up_and_parse_back() {
        let ds = small();
        let dir = std::env::temp_dir().join(format!("outrider-datasets-io-{}", std::process::id()));
        let files = write_dataset(&dir, &ds).unwrap();
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
            let campaign = label["campaign"].as_u64().map(|c| c as u32);
            assert_eq!(campaign, ds.events[i].campaign);
            if let Event::Api(a) = &ds.events[i].event {
                assert_eq!(label["request_id"], a.request_id.as_str());
            }
        }
        let campaigns: Vec<Campaign> =
            serde_json::from_str(&std::fs::read_to_string(&files.campaigns).unwrap()).unwrap();
        assert_eq!(campaigns, ds.campaigns);
        std::fs::remove_dir_all(&dir).unwrap();
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
    }
}
