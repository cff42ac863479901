//! Loading any feature table, CSV or Parquet, with a label column: so models can be
//! trained and evaluated on data from elsewhere with the same harness.
//!
//! - Feature columns: the ones named, or by default every numeric column (integers,
//!   floats, booleans as 0/1) except the label, the group and the excluded columns. A
//!   table written by `outrider features` (its metadata names the feature schema) uses
//!   exactly the schema's feature columns by default, so its `campaign` column is not
//!   taken for a feature. A missing value in a feature column is an error naming the
//!   column and row.
//! - The label column, read as benign or attack: numbers (0 benign, anything else
//!   attack), booleans, or text (empty, `0`, `false`, `benign`, `normal`, `none`,
//!   `null` are benign; `1` and `true` mean an attack of kind `attack`; any other text is
//!   the attack kind, as in `outrider features`' `attack` column). Nulls are benign.
//! - An optional group column (an identity, an API, a tenant): identity-level metrics
//!   group rows by it.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use ndarray::Array2;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};

/// What to read from a table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableOptions {
    pub label_column: Option<String>,
    pub group_column: Option<String>,
    /// Feature columns in this order; empty: the default choice (see the module docs).
    pub features: Vec<String>,
    /// Columns never taken as features.
    pub exclude: Vec<String>,
}

/// A loaded table.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureTable {
    pub path: PathBuf,
    /// The feature columns, in the order of `x`'s columns.
    pub columns: Vec<String>,
    pub x: Array2<f32>,
    /// Per row: `None` benign, else the attack kind.
    pub labels: Option<Vec<Option<String>>>,
    pub groups: Option<Vec<String>>,
    /// The `outrider.feature_schema` metadata of tables `outrider features` wrote.
    pub schema_id: Option<String>,
    /// Earliest window start and latest window end, when the table has those columns.
    pub span_ms: Option<(i64, i64)>,
}

impl FeatureTable {
    pub fn rows(&self) -> usize {
        self.x.nrows()
    }

    /// Per row: attack or not (`None` without a label column).
    pub fn is_attack(&self) -> Option<Vec<bool>> {
        self.labels
            .as_ref()
            .map(|l| l.iter().map(Option::is_some).collect())
    }
}

/// Loads a `.csv` or `.parquet` table.
pub fn load_table(path: impl AsRef<Path>, opts: &TableOptions) -> Result<FeatureTable> {
    let path = path.as_ref();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let raw = match ext.as_deref() {
        Some("csv") => read_csv(path)?,
        Some("parquet" | "pq") => read_parquet(path)?,
        _ => {
            return Err(Error::Format {
                path: path.to_owned(),
                reason: "unknown table type: use a .csv or .parquet file".into(),
            })
        }
    };
    build(path, raw, opts)
}

/// A column as read, before choosing features.
#[derive(Debug)]
enum Column {
    /// Numbers (NaN marks a missing value).
    Numeric(Vec<f64>),
    /// Text (None: missing).
    Text(Vec<Option<String>>),
    /// Timestamps in ms (span only).
    Time(Vec<Option<i64>>),
}

#[derive(Debug)]
struct RawTable {
    names: Vec<String>,
    columns: Vec<Column>,
    rows: usize,
    schema_id: Option<String>,
}

fn format_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn build(path: &Path, raw: RawTable, opts: &TableOptions) -> Result<FeatureTable> {
    let index: HashMap<&str, usize> = raw
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let find = |name: &str| {
        index.get(name).copied().ok_or_else(|| {
            format_error(
                path,
                format!("no column `{name}` (columns: {})", raw.names.join(", ")),
            )
        })
    };
    let label_idx = opts.label_column.as_deref().map(find).transpose()?;
    let group_idx = opts.group_column.as_deref().map(find).transpose()?;
    let feature_names: Vec<String> = if !opts.features.is_empty() {
        opts.features.clone()
    } else if raw.schema_id.is_some() {
        outrider_features::FEATURE_NAMES
            .iter()
            .filter(|n| index.contains_key(**n))
            .map(|n| (*n).to_owned())
            .collect()
    } else {
        raw.names
            .iter()
            .enumerate()
            .filter(|(i, n)| {
                Some(*i) != label_idx
                    && Some(*i) != group_idx
                    && !opts.exclude.contains(n)
                    && matches!(raw.columns[*i], Column::Numeric(_))
            })
            .map(|(_, n)| n.clone())
            .collect()
    };
    if feature_names.is_empty() {
        return Err(format_error(path, "no numeric feature columns"));
    }
    let mut x = Array2::<f32>::zeros((raw.rows, feature_names.len()));
    for (j, name) in feature_names.iter().enumerate() {
        let Column::Numeric(values) = &raw.columns[find(name)?] else {
            return Err(format_error(
                path,
                format!("column `{name}` is not numeric"),
            ));
        };
        for (i, v) in values.iter().enumerate() {
            if v.is_nan() {
                return Err(format_error(
                    path,
                    format!(
                        "column `{name}` has no value in row {} (fill or drop missing values)",
                        i + 1
                    ),
                ));
            }
            x[[i, j]] = *v as f32;
        }
    }
    let labels = label_idx.map(|i| labels_of(&raw.columns[i]));
    let groups = group_idx.map(|i| match &raw.columns[i] {
        Column::Text(v) => v.iter().map(|g| g.clone().unwrap_or_default()).collect(),
        Column::Numeric(v) => v.iter().map(|g| g.to_string()).collect(),
        Column::Time(v) => v
            .iter()
            .map(|g| g.unwrap_or_default().to_string())
            .collect(),
    });
    let time_of = |name: &str| match index.get(name).map(|&i| &raw.columns[i]) {
        Some(Column::Time(v)) => Some(v.iter().flatten().copied().collect::<Vec<i64>>()),
        _ => None,
    };
    let span_ms = match (time_of("window_start"), time_of("window_end")) {
        (Some(s), Some(e)) => s.iter().min().copied().zip(e.iter().max().copied()),
        _ => None,
    };
    Ok(FeatureTable {
        path: path.to_owned(),
        columns: feature_names,
        x,
        labels,
        groups,
        schema_id: raw.schema_id,
        span_ms,
    })
}

/// Reads a label: `None` benign, else the attack kind.
pub fn parse_label(text: &str) -> Option<String> {
    let t = text.trim();
    match t.to_ascii_lowercase().as_str() {
        "" | "0" | "0.0" | "false" | "benign" | "normal" | "none" | "null" => None,
        "1" | "1.0" | "true" => Some("attack".to_owned()),
        _ => Some(t.to_owned()),
    }
}

fn labels_of(column: &Column) -> Vec<Option<String>> {
    match column {
        Column::Numeric(v) => v
            .iter()
            .map(|&x| (x != 0.0 && !x.is_nan()).then(|| "attack".to_owned()))
            .collect(),
        Column::Text(v) => v
            .iter()
            .map(|t| t.as_deref().and_then(parse_label))
            .collect(),
        Column::Time(v) => v.iter().map(|_| None).collect(),
    }
}

// ---- CSV ----

/// Splits RFC 4180 CSV into records (quoted fields may hold commas, quotes as `""` and
/// newlines).
fn csv_records(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut line = 1;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                line += 1;
                record.push(std::mem::take(&mut field));
                if !(record.len() == 1 && record[0].is_empty()) {
                    records.push(std::mem::take(&mut record));
                }
                record.clear();
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(format!("a quoted field is not closed (line {line})"));
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

fn read_csv(path: &Path) -> Result<RawTable> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let records = csv_records(&text).map_err(|r| format_error(path, r))?;
    let Some((header, rows)) = records.split_first() else {
        return Err(format_error(path, "empty file: no header"));
    };
    for (i, r) in rows.iter().enumerate() {
        if r.len() != header.len() {
            return Err(format_error(
                path,
                format!(
                    "row {} has {} fields, the header {}",
                    i + 1,
                    r.len(),
                    header.len()
                ),
            ));
        }
    }
    let columns = (0..header.len())
        .map(|j| {
            let numeric: Option<Vec<f64>> = rows
                .iter()
                .map(|r| {
                    let v = r[j].trim();
                    if v.is_empty() {
                        Some(f64::NAN)
                    } else {
                        v.parse::<f64>().ok().filter(|x| x.is_finite())
                    }
                })
                .collect();
            // A column of nothing but blanks is text, not numbers.
            match numeric.filter(|v| v.iter().any(|x| !x.is_nan()) || rows.is_empty()) {
                Some(v) => Column::Numeric(v),
                None => Column::Text(
                    rows.iter()
                        .map(|r| Some(r[j].clone()).filter(|s| !s.is_empty()))
                        .collect(),
                ),
            }
        })
        .collect();
    Ok(RawTable {
        names: header.iter().map(|h| h.trim().to_owned()).collect(),
        columns,
        rows: rows.len(),
        schema_id: None,
    })
}

// ---- Parquet ----

fn read_parquet(path: &Path) -> Result<RawTable> {
    let fail = |e: &dyn std::fmt::Display| {
        format_error(path, format!("cannot read the Parquet table: {e}"))
    };
    let file = File::open(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| fail(&e))?;
    let schema = builder.schema().clone();
    let schema_id = schema.metadata().get("outrider.feature_schema").cloned();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut columns: Vec<Column> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Column::Text(Vec::new()),
            DataType::Timestamp(..) | DataType::Date64 => Column::Time(Vec::new()),
            _ => Column::Numeric(Vec::new()),
        })
        .collect();
    let reader = builder.build().map_err(|e| fail(&e))?;
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(|e| fail(&e))?;
        for (j, array) in batch.columns().iter().enumerate() {
            append(&mut columns[j], array)
                .map_err(|r| format_error(path, format!("column `{}`: {r}", names[j])))?;
        }
        rows += batch.num_rows();
    }
    Ok(RawTable {
        names,
        columns,
        rows,
        schema_id,
    })
}

fn append(column: &mut Column, array: &ArrayRef) -> Result<(), String> {
    macro_rules! numbers {
        ($v:expr, $t:ty) => {{
            let a = array.as_primitive::<$t>();
            $v.extend((0..a.len()).map(|i| {
                if a.is_null(i) {
                    f64::NAN
                } else {
                    a.value(i) as f64
                }
            }));
        }};
    }
    match column {
        Column::Numeric(v) => match array.data_type() {
            DataType::Float32 => numbers!(v, Float32Type),
            DataType::Float64 => numbers!(v, Float64Type),
            DataType::Int8 => numbers!(v, Int8Type),
            DataType::Int16 => numbers!(v, Int16Type),
            DataType::Int32 => numbers!(v, Int32Type),
            DataType::Int64 => numbers!(v, Int64Type),
            DataType::UInt8 => numbers!(v, UInt8Type),
            DataType::UInt16 => numbers!(v, UInt16Type),
            DataType::UInt32 => numbers!(v, UInt32Type),
            DataType::UInt64 => numbers!(v, UInt64Type),
            DataType::Boolean => {
                let a = array.as_boolean();
                v.extend((0..a.len()).map(|i| {
                    if a.is_null(i) {
                        f64::NAN
                    } else {
                        f64::from(u8::from(a.value(i)))
                    }
                }));
            }
            // Other types (lists, structs, binary) are never features: keep them empty.
            _ => v.extend(std::iter::repeat_n(f64::NAN, array.len())),
        },
        Column::Text(v) => match array.data_type() {
            DataType::Utf8 => {
                let a = array.as_string::<i32>();
                v.extend((0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i).to_owned())));
            }
            DataType::LargeUtf8 => {
                let a = array.as_string::<i64>();
                v.extend((0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i).to_owned())));
            }
            DataType::Utf8View => {
                let a = array.as_string_view();
                v.extend((0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i).to_owned())));
            }
            t => return Err(format!("unexpected type {t}")),
        },
        Column::Time(v) => match array.data_type() {
            DataType::Timestamp(unit, _) => {
                use arrow_array::types::{
                    TimestampMicrosecondType as Us, TimestampMillisecondType as Ms,
                    TimestampNanosecondType as Ns, TimestampSecondType as S,
                };
                use arrow_schema::TimeUnit;
                macro_rules! times {
                    ($t:ty, $to_ms:expr) => {{
                        let a = array.as_primitive::<$t>();
                        let to_ms = $to_ms;
                        v.extend((0..a.len()).map(|i| (!a.is_null(i)).then(|| to_ms(a.value(i)))));
                    }};
                }
                match unit {
                    TimeUnit::Second => times!(S, |x: i64| x.saturating_mul(1000)),
                    TimeUnit::Millisecond => times!(Ms, |x: i64| x),
                    TimeUnit::Microsecond => times!(Us, |x: i64| x / 1000),
                    TimeUnit::Nanosecond => times!(Ns, |x: i64| x / 1_000_000),
                }
            }
            _ => v.extend(std::iter::repeat_n(None, array.len())),
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn csv_with_quotes_labels_and_groups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(
            dir.path(),
            "t.csv",
            "api,requests,\"bytes, out\",is_attack,note\n\
             \"/pay\",3,100.5,0,\"said \"\"hi\"\"\"\n\
             /pay,40,9e3,1,\"two\nlines\"\r\n\
             /acc,2,0,bola,\n",
        );
        let t = load_table(
            &p,
            &TableOptions {
                label_column: Some("is_attack".into()),
                group_column: Some("api".into()),
                ..TableOptions::default()
            },
        )
        .expect("load");
        assert_eq!(t.columns, ["requests", "bytes, out"]);
        assert_eq!(t.x.shape(), &[3, 2]);
        assert_eq!(t.x[[1, 1]], 9000.0);
        assert_eq!(
            t.labels.as_deref(),
            Some(&[None, Some("attack".to_owned()), Some("bola".to_owned())][..])
        );
        assert_eq!(
            t.groups.as_deref(),
            Some(&["/pay".to_owned(), "/pay".into(), "/acc".into()][..])
        );
        assert_eq!(t.is_attack(), Some(vec![false, true, true]));
    }

    #[test]
    fn clear_errors_for_bad_tables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = TableOptions {
            label_column: Some("label".into()),
            ..TableOptions::default()
        };
        let missing = write(dir.path(), "m.csv", "a,b\n1,2\n");
        let err = load_table(&missing, &opts).unwrap_err().to_string();
        assert!(
            err.contains("no column `label`") && err.contains("a, b"),
            "{err}"
        );
        let gap = write(dir.path(), "g.csv", "a,label\n1,0\n,1\n");
        let err = load_table(&gap, &opts).unwrap_err().to_string();
        assert!(err.contains("`a` has no value in row 2"), "{err}");
        let ragged = write(dir.path(), "r.csv", "a,label\n1,0,9\n");
        let err = load_table(&ragged, &opts).unwrap_err().to_string();
        assert!(err.contains("row 1 has 3 fields"), "{err}");
        let open = write(dir.path(), "o.csv", "a,label\n\"1,0\n");
        assert!(load_table(&open, &opts)
            .unwrap_err()
            .to_string()
            .contains("not closed"));
        let err = load_table(dir.path().join("x.json"), &opts)
            .unwrap_err()
            .to_string();
        assert!(err.contains(".csv or .parquet"), "{err}");
        let err = load_table(dir.path().join("nope.csv"), &opts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read"), "{err}");
        let text_only = write(dir.path(), "t.csv", "name,label\nx,0\n");
        assert!(load_table(&text_only, &opts)
            .unwrap_err()
            .to_string()
            .contains("no numeric feature"));
    }

    #[test]
    fn feature_tables_written_by_outrider_read_back_with_their_schema() {
        use crate::generate::{AttackKind, Campaign};
        use outrider_features::{FeatureRow, WindowContext, FEATURE_COUNT, FEATURE_NAMES};
        let row = |key: &str, start: i64, v: f32| FeatureRow {
            key: key.into(),
            window_start_ms: start,
            window_end_ms: start + 60_000,
            values: [v; FEATURE_COUNT],
            context: WindowContext::default(),
        };
        let rows = vec![
            row("sub:a", 0, 1.0),
            row("ip:6.6.6.6", 100_000, 9.0),
            row("sub:b", 200_000, 2.0),
        ];
        let campaign = Campaign {
            id: 4,
            kind: AttackKind::Ddos,
            identity_key: "ip:6.6.6.6".into(),
            keys: Vec::new(),
            related_keys: Vec::new(),
            start_ms: 90_000,
            end_ms: 120_000,
            description: String::new(),
            events: 3,
            intensity: 0.5,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.parquet");
        crate::export::write_features_parquet(&path, &rows, &[campaign]).expect("write");
        let t = load_table(
            &path,
            &TableOptions {
                label_column: Some("attack".into()),
                group_column: Some("key".into()),
                ..TableOptions::default()
            },
        )
        .expect("load");
        // The schema's features, not the `campaign` column.
        assert_eq!(t.columns, FEATURE_NAMES);
        assert_eq!(t.schema_id.as_deref(), Some(outrider_features::SCHEMA_ID));
        assert_eq!(t.x[[1, 0]], 9.0);
        assert_eq!(
            t.labels.as_deref(),
            Some(&[None, Some("ddos".to_owned()), None][..])
        );
        assert_eq!(
            t.groups.as_deref().map(|g| g[1].as_str()),
            Some("ip:6.6.6.6")
        );
        assert_eq!(t.span_ms, Some((0, 260_000)));
        // Asking for a column the table lacks names it.
        let err = load_table(
            &path,
            &TableOptions {
                features: vec!["nope".into()],
                ..TableOptions::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("no column `nope`"), "{err}");
    }

    #[test]
    fn labels_read_as_benign_or_attack_kinds() {
        for benign in ["", " 0 ", "false", "Benign", "NORMAL", "none", "null"] {
            assert_eq!(parse_label(benign), None, "{benign:?}");
        }
        assert_eq!(parse_label("1").as_deref(), Some("attack"));
        assert_eq!(parse_label("TRUE").as_deref(), Some("attack"));
        assert_eq!(parse_label("token_replay").as_deref(), Some("token_replay"));
    }
}
