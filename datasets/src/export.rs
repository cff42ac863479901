//! Tables for data scientists, as Parquet.
//!
//! Feature tables ([`write_features_parquet`]): the feature rows (from
//! `outrider-features`, one code path with the live detector), each labelled with the
//! campaign it belongs to. Columns: `key` (the identity key), `window_start`,
//! `window_end` (UTC timestamps in ms), one `Float32` column per feature in the order of
//! `outrider_features::FEATURE_NAMES`, then `campaign` (`Int32`, null for benign) and
//! `attack` (`Utf8`, the attack kind, null for benign). The file's key-value metadata
//! carries `outrider.feature_schema`.
//!
//! Raw events ([`RawEventWriter`], streaming, row groups of 64 Ki events): one row per
//! gateway or token-server record, columns as [`raw_event_schema`] documents them.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    Float32Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
    UInt32Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use outrider_features::arrow::to_record_batch;
use outrider_features::FeatureRow;
use outrider_ingest::Event;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::generate::{network_of, AttackKind, Campaign, LabelledEvent};

/// The campaign a row belongs to: its key is the campaign's identity (or a related key) and
/// its window overlaps the campaign's span. Benign rows get `None`.
pub fn label_rows<'a>(rows: &[FeatureRow], campaigns: &'a [Campaign]) -> Vec<Option<&'a Campaign>> {
    rows.iter()
        .map(|r| {
            campaigns.iter().find(|c| {
                c.involves_key(&r.key) && c.overlaps(r.window_start_ms, r.window_end_ms, 0)
            })
        })
        .collect()
}

/// The rows and their labels as one Arrow batch (feature columns, then `campaign`, `attack`).
pub fn labelled_batch(
    rows: &[FeatureRow],
    labels: &[Option<&Campaign>],
) -> Result<RecordBatch, String> {
    if rows.len() != labels.len() {
        return Err(format!("{} rows but {} labels", rows.len(), labels.len()));
    }
    let features = to_record_batch(rows).map_err(|e| e.to_string())?;
    let mut campaign = Int32Builder::with_capacity(rows.len());
    let mut attack = StringBuilder::with_capacity(rows.len(), rows.len() * 8);
    for label in labels {
        match label {
            Some(c) => {
                campaign.append_value(i32::try_from(c.id).unwrap_or(i32::MAX));
                attack.append_value(c.kind.as_str());
            }
            None => {
                campaign.append_null();
                attack.append_null();
            }
        }
    }
    let schema = features.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("campaign", DataType::Int32, true));
    fields.push(Field::new("attack", DataType::Utf8, true));
    let mut columns: Vec<ArrayRef> = features.columns().to_vec();
    columns.push(Arc::new(campaign.finish()));
    columns.push(Arc::new(attack.finish()));
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| e.to_string())
}

/// Writes labelled feature rows to a Parquet file (snappy-compressed). Returns the row count.
pub fn write_features_parquet(
    path: impl AsRef<Path>,
    rows: &[FeatureRow],
    campaigns: &[Campaign],
) -> Result<u64> {
    let path = path.as_ref();
    let fail = |reason: String| Error::Parquet {
        path: path.to_owned(),
        reason,
    };
    let labels = label_rows(rows, campaigns);
    let batch = labelled_batch(rows, &labels).map_err(fail)?;
    let file = File::create(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer =
        ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| fail(e.to_string()))?;
    writer.write(&batch).map_err(|e| fail(e.to_string()))?;
    writer.close().map_err(|e| fail(e.to_string()))?;
    Ok(rows.len() as u64)
}

/// The columns of the raw-event table:
///
/// | column | type | what |
/// |---|---|---|
/// | `ts` | timestamp (ms, UTC) | event time |
/// | `type` | utf8 | `api` (gateway) or `token` (token server) |
/// | `request_id` | utf8, null for token events | the gateway request id |
/// | `method`, `path`, `route` | utf8, null for token events | the request and its route template |
/// | `status` | int32, null for token events | HTTP status |
/// | `latency_ms` | float32, null for token events | |
/// | `bytes_in`, `bytes_out` | int64, null for token events | request and response body sizes |
/// | `client_ip` | utf8 | |
/// | `user_agent` | utf8 | |
/// | `subject`, `client_id`, `token_id`, `api_key_hash` | utf8, nullable | the identity |
/// | `token_event` | utf8, null for api events | `login_success`, `login_failure`, `token_issued`, `token_refreshed`, `token_revoked`, `logout` |
/// | `grant_type` | utf8, nullable | |
/// | `identity_key` | utf8 | the key features are kept under (`sub:`, `client:`, `apikey:`, `ip:` ...) |
/// | `asn`, `country`, `network` | uint32 / utf8, nullable | the client address's network (the generator's, see `generate::net`) |
/// | `campaign` | int32, null for benign | the campaign id |
/// | `attack` | utf8, null for benign | the attack kind |
pub fn raw_event_schema() -> SchemaRef {
    let time = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new("ts", time, false),
        text("type", false),
        text("request_id", true),
        text("method", true),
        text("path", true),
        text("route", true),
        Field::new("status", DataType::Int32, true),
        Field::new("latency_ms", DataType::Float32, true),
        Field::new("bytes_in", DataType::Int64, true),
        Field::new("bytes_out", DataType::Int64, true),
        text("client_ip", false),
        text("user_agent", false),
        text("subject", true),
        text("client_id", true),
        text("token_id", true),
        text("api_key_hash", true),
        text("token_event", true),
        text("grant_type", true),
        text("identity_key", false),
        Field::new("asn", DataType::UInt32, true),
        text("country", true),
        text("network", true),
        Field::new("campaign", DataType::Int32, true),
        text("attack", true),
    ]))
}

/// Rows per row group (and per Arrow batch) of the raw-event table.
const RAW_BATCH: usize = 65_536;

/// Writes labelled events to a Parquet file as they come (see [`raw_event_schema`]).
#[derive(Debug)]
pub struct RawEventWriter {
    path: std::path::PathBuf,
    writer: ArrowWriter<File>,
    columns: RawColumns,
    rows: usize,
}

#[derive(Debug, Default)]
struct RawColumns {
    ts: TimestampMillisecondBuilder,
    kind: StringBuilder,
    request_id: StringBuilder,
    method: StringBuilder,
    path: StringBuilder,
    route: StringBuilder,
    status: Int32Builder,
    latency: Float32Builder,
    bytes_in: Int64Builder,
    bytes_out: Int64Builder,
    client_ip: StringBuilder,
    user_agent: StringBuilder,
    subject: StringBuilder,
    client_id: StringBuilder,
    token_id: StringBuilder,
    api_key_hash: StringBuilder,
    token_event: StringBuilder,
    grant_type: StringBuilder,
    identity_key: StringBuilder,
    asn: UInt32Builder,
    country: StringBuilder,
    network: StringBuilder,
    campaign: Int32Builder,
    attack: StringBuilder,
}

impl RawColumns {
    fn finish(&mut self) -> Vec<ArrayRef> {
        let ts = std::mem::take(&mut self.ts).with_timezone("UTC").finish();
        vec![
            Arc::new(ts),
            Arc::new(self.kind.finish()),
            Arc::new(self.request_id.finish()),
            Arc::new(self.method.finish()),
            Arc::new(self.path.finish()),
            Arc::new(self.route.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.latency.finish()),
            Arc::new(self.bytes_in.finish()),
            Arc::new(self.bytes_out.finish()),
            Arc::new(self.client_ip.finish()),
            Arc::new(self.user_agent.finish()),
            Arc::new(self.subject.finish()),
            Arc::new(self.client_id.finish()),
            Arc::new(self.token_id.finish()),
            Arc::new(self.api_key_hash.finish()),
            Arc::new(self.token_event.finish()),
            Arc::new(self.grant_type.finish()),
            Arc::new(self.identity_key.finish()),
            Arc::new(self.asn.finish()),
            Arc::new(self.country.finish()),
            Arc::new(self.network.finish()),
            Arc::new(self.campaign.finish()),
            Arc::new(self.attack.finish()),
        ]
    }
}

impl RawEventWriter {
    /// Creates (truncates) the file.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(RAW_BATCH))
            .build();
        let writer = ArrowWriter::try_new(file, raw_event_schema(), Some(props)).map_err(|e| {
            Error::Parquet {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            path: path.to_owned(),
            writer,
            columns: RawColumns::default(),
            rows: 0,
        })
    }

    fn fail(&self, reason: impl ToString) -> Error {
        Error::Parquet {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    /// Adds one event with its attack kind (`None`: benign).
    pub fn push(&mut self, e: &LabelledEvent, attack: Option<AttackKind>) -> Result<()> {
        let c = &mut self.columns;
        c.ts.append_value(e.event.ts().millis());
        let ip = match &e.event {
            Event::Api(a) => {
                c.kind.append_value("api");
                c.request_id.append_value(&a.request_id);
                c.method.append_value(&a.method);
                c.path.append_value(&a.path);
                c.route.append_value(&a.route);
                c.status.append_value(i32::from(a.status));
                c.latency.append_value(a.latency_ms);
                c.bytes_in
                    .append_value(i64::try_from(a.bytes_in).unwrap_or(i64::MAX));
                c.bytes_out
                    .append_value(i64::try_from(a.bytes_out).unwrap_or(i64::MAX));
                c.user_agent.append_value(&a.user_agent);
                c.subject.append_option(a.identity.subject.as_deref());
                c.client_id.append_option(a.identity.client_id.as_deref());
                c.token_id.append_option(a.identity.token_id.as_deref());
                c.api_key_hash
                    .append_option(a.identity.api_key_hash.as_deref());
                c.token_event.append_null();
                c.grant_type.append_null();
                a.client_ip
            }
            Event::Token(t) => {
                c.kind.append_value("token");
                c.request_id.append_null();
                c.method.append_null();
                c.path.append_null();
                c.route.append_null();
                c.status.append_null();
                c.latency.append_null();
                c.bytes_in.append_null();
                c.bytes_out.append_null();
                c.user_agent.append_value(&t.user_agent);
                c.subject.append_option(t.subject.as_deref());
                c.client_id.append_option(t.client_id.as_deref());
                c.token_id.append_option(t.token_id.as_deref());
                c.api_key_hash.append_null();
                let kind = serde_json::to_value(t.event).ok();
                c.token_event
                    .append_option(kind.as_ref().and_then(|v| v.as_str()));
                c.grant_type.append_option(t.grant_type.as_deref());
                t.client_ip
            }
        };
        c.client_ip.append_value(ip.to_string());
        c.identity_key.append_value(e.event.identity_key());
        let net = network_of(ip);
        c.asn.append_option(net.map(|n| n.asn));
        c.country.append_option(net.map(|n| n.country));
        c.network.append_option(net.map(|n| n.org));
        c.campaign
            .append_option(e.campaign.and_then(|id| i32::try_from(id).ok()));
        c.attack.append_option(attack.map(AttackKind::as_str));
        self.rows += 1;
        if self.rows % RAW_BATCH == 0 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let columns = self.columns.finish();
        if columns[0].is_empty() {
            return Ok(());
        }
        let batch = RecordBatch::try_new(raw_event_schema(), columns).map_err(|e| self.fail(e))?;
        self.writer.write(&batch).map_err(|e| self.fail(e))
    }

    /// Writes what is left and closes the file; returns its path.
    pub fn finish(mut self) -> Result<std::path::PathBuf> {
        self.flush()?;
        let path = self.path.clone();
        self.writer.close().map_err(|e| Error::Parquet {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::AttackKind;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, Int32Type};
    use arrow_array::Array;
    use outrider_features::{WindowContext, FEATURE_COUNT, FEATURE_NAMES};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn row(key: &str, start: i64, value: f32) -> FeatureRow {
        FeatureRow {
            key: key.into(),
            window_start_ms: start,
            window_end_ms: start + 60_000,
            values: [value; FEATURE_COUNT],
            context: WindowContext::default(),
        }
    }

    #[test]
    fn labelled_rows_round_trip_through_parquet() {
        let campaign = Campaign {
            id: 3,
            kind: AttackKind::CredentialStuffing,
            identity_key: "ip:198.51.100.7".into(),
            related_keys: vec!["sub:victim".into()],
            start_ms: 100_000,
            end_ms: 200_000,
            description: String::new(),
            events: 9,
            keys: Vec::new(),
            intensity: 0.5,
        };
        let rows = vec![
            row("ip:198.51.100.7", 90_000, 1.0),
            row("sub:victim", 150_000, 2.0),
            row("sub:victim", 300_000, 3.0),
            row("sub:bystander", 150_000, 4.0),
        ];
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("features.parquet");
        let n =
            write_features_parquet(&path, &rows, std::slice::from_ref(&campaign)).expect("write");
        assert_eq!(n, 4);

        let file = File::open(&path).expect("open");
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("reader");
        let meta = builder
            .schema()
            .metadata()
            .get("outrider.feature_schema")
            .cloned();
        assert_eq!(meta.as_deref(), Some(outrider_features::SCHEMA_ID));
        let reader = builder.build().expect("build");
        let batches: Vec<RecordBatch> =
            reader.collect::<std::result::Result<_, _>>().expect("read");
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 4);
        assert_eq!(batch.num_columns(), 3 + FEATURE_COUNT + 2);
        let feature = batch
            .column_by_name(FEATURE_NAMES[0])
            .expect("feature column")
            .as_primitive::<Float32Type>();
        assert_eq!(feature.values().to_vec(), vec![1.0, 2.0, 3.0, 4.0]);
        let ids = batch
            .column_by_name("campaign")
            .expect("campaign")
            .as_primitive::<Int32Type>();
        let ids: Vec<Option<i32>> = ids.iter().collect();
        assert_eq!(ids, vec![Some(3), Some(3), None, None]);
        let kinds = batch
            .column_by_name("attack")
            .expect("attack")
            .as_string::<i32>();
        assert_eq!(kinds.value(0), "credential_stuffing");
        assert!(kinds.is_null(3));
    }

    #[test]
    fn raw_events_round_trip_with_labels_and_networks() {
        use crate::generate::{EventStream, GeneratorConfig};
        let cfg = GeneratorConfig {
            users: 30,
            duration_secs: 1_200,
            ..GeneratorConfig::default()
        };
        let mut stream = EventStream::new(&cfg);
        let kinds: std::collections::HashMap<u32, AttackKind> =
            stream.planned_campaigns().into_iter().collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.parquet");
        let mut w = RawEventWriter::create(&path).expect("create");
        let mut events = Vec::new();
        for e in stream.by_ref() {
            w.push(&e, e.campaign.and_then(|c| kinds.get(&c)).copied())
                .expect("push");
            events.push(e);
        }
        w.finish().expect("finish");
        let file = File::open(&path).expect("open");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("reader")
            .build()
            .expect("build");
        let batches: Vec<RecordBatch> =
            reader.collect::<std::result::Result<_, _>>().expect("read");
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, events.len());
        let b = &batches[0];
        assert_eq!(b.schema().fields().len(), raw_event_schema().fields().len());
        let keys = b
            .column_by_name("identity_key")
            .expect("key")
            .as_string::<i32>();
        let attack = b
            .column_by_name("attack")
            .expect("attack")
            .as_string::<i32>();
        let country = b
            .column_by_name("country")
            .expect("country")
            .as_string::<i32>();
        for (i, e) in events.iter().enumerate().take(b.num_rows()) {
            assert_eq!(keys.value(i), e.event.identity_key());
            assert_eq!(attack.is_null(i), e.campaign.is_none());
        }
        assert!(
            (0..b.num_rows()).all(|i| !country.is_null(i)),
            "every generated address has a network"
        );
        let labelled: usize = batches
            .iter()
            .map(|b| b.column_by_name("campaign").expect("campaign").null_count())
            .sum();
        assert_eq!(
            rows - labelled,
            events.iter().filter(|e| e.campaign.is_some()).count()
        );
    }

    #[test]
    fn an_unwritable_path_is_an_error_naming_it() {
        let err = write_features_parquet("/nonexistent-dir/x.parquet", &[], &[]).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-dir/x.parquet"),
            "{err}"
        );
    }
}
