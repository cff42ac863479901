//! Feature tables for data scientists: the feature rows (from `outrider-features`, one code
//! path with the live detector) as Parquet, each row labelled with the campaign it belongs to.
//!
//! Columns: `key` (the identity key), `window_start`, `window_end` (UTC timestamps in ms),
//! one `Float32` column per feature in the order of `outrider_features::FEATURE_NAMES`, then
//! `campaign` (`Int32`, null for benign) and `attack` (`Utf8`, the attack kind, null for
//! benign). The file's key-value metadata carries `outrider.feature_schema`.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Int32Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use outrider_features::arrow::to_record_batch;
use outrider_features::FeatureRow;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::generate::Campaign;

/// The campaign a row belongs to: its key is the campaign's identity (or a related key) and
/// its window overlaps the campaign's span. Benign rows get `None`.
pub fn label_rows<'a>(rows: &[FeatureRow], campaigns: &'a [Campaign]) -> Vec<Option<&'a Campaign>> {
    rows.iter()
        .map(|r| {
            campaigns.iter().find(|c| {
                (c.identity_key == r.key || c.related_keys.contains(&r.key))
                    && c.overlaps(r.window_start_ms, r.window_end_ms, 0)
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
    fn an_unwritable_path_is_an_error_naming_it() {
        let err = write_features_parquet("/nonexistent-dir/x.parquet", &[], &[]).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-dir/x.parquet"),
            "{err}"
        );
    }
}
