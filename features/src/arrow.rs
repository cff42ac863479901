//! Feature rows as an Arrow `RecordBatch`: `key`, `window_start`, `window_end` (timestamps
//! in milliseconds, UTC), then one `Float32` column per feature in schema order. The
//! schema's metadata carries the feature schema id.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::extractor::FeatureRow;
use crate::schema::{FEATURE_NAMES, SCHEMA_ID};

/// The Arrow schema of [`to_record_batch`].
pub fn arrow_schema() -> SchemaRef {
    let time = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let mut fields = vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("window_start", time.clone(), false),
        Field::new("window_end", time, false),
    ];
    fields.extend(
        FEATURE_NAMES
            .iter()
            .map(|n| Field::new(*n, DataType::Float32, false)),
    );
    let metadata = HashMap::from([("outrider.feature_schema".to_owned(), SCHEMA_ID.to_owned())]);
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// The rows as one batch.
pub fn to_record_batch(rows: &[FeatureRow]) -> Result<RecordBatch, ArrowError> {
    let mut keys = StringBuilder::with_capacity(rows.len(), rows.len() * 24);
    let mut starts = TimestampMillisecondBuilder::with_capacity(rows.len()).with_timezone("UTC");
    let mut ends = TimestampMillisecondBuilder::with_capacity(rows.len()).with_timezone("UTC");
    let mut features: Vec<Float32Builder> = FEATURE_NAMES
        .iter()
        .map(|_| Float32Builder::with_capacity(rows.len()))
        .collect();
    for row in rows {
        keys.append_value(&row.key);
        starts.append_value(row.window_start_ms);
        ends.append_value(row.window_end_ms);
        for (b, v) in features.iter_mut().zip(row.values) {
            b.append_value(v);
        }
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(keys.finish()),
        Arc::new(starts.finish()),
        Arc::new(ends.finish()),
    ];
    columns.extend(
        features
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef),
    );
    RecordBatch::try_new(arrow_schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extractor::WindowContext;
    use crate::schema::FEATURE_COUNT;
    use arrow_array::{Array, Float32Array, StringArray};

    #[test]
    fn rows_become_columns_in_schema_order() {
        let mut values = [0.0; FEATURE_COUNT];
        values[3] = 7.5;
        let rows = vec![FeatureRow {
            key: "sub:alice".into(),
            window_start_ms: 0,
            window_end_ms: 60_000,
            values,
            context: WindowContext::default(),
        }];
        let batch = to_record_batch(&rows).expect("batch");
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.num_columns(), 3 + FEATURE_COUNT);
        let keys = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .map(|a| a.value(0).to_owned());
        assert_eq!(keys.as_deref(), Some("sub:alice"));
        let col = batch.column_by_name(FEATURE_NAMES[3]).and_then(|c| {
            c.as_any()
                .downcast_ref::<Float32Array>()
                .map(|a| a.value(0))
        });
        assert_eq!(col, Some(7.5));
        assert_eq!(
            batch
                .schema()
                .metadata()
                .get("outrider.feature_schema")
                .map(String::as_str),
            Some(SCHEMA_ID)
        );
        assert_eq!(to_record_batch(&[]).map(|b| b.num_rows()).ok(), Some(0));
        assert!(batch.column(1).null_count() == 0);
    }
}
