//! `outrider sql`: DataFusion SQL over the files this crate exports (raw-event and feature
//! Parquet, labels, evaluation tables) and any other Parquet, CSV or JSON-lines file.
//!
//! Each file (or folder of like files) is registered as a table; a folder registers every
//! file in it by its stem, so `--dir out/` after `outrider generate --parquet` makes
//! `events`, `features`, ... queryable at once. Results come back as Arrow batches, printed
//! as a table, CSV or JSON lines, or written to a Parquet/CSV/JSON file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::error::DataFusionError;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};

use crate::error::{Error, Result};

/// The file kinds a table can be read from, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Parquet,
    Csv,
    /// JSON (`.jsonl`, `.ndjson`, `.json`): one object per line (the event files) or one
    /// array of objects (`campaigns.json`).
    JsonLines,
}

impl FileKind {
    /// The kind of `path` by its extension, or `None` for a file SQL cannot read.
    pub fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "parquet" => Some(Self::Parquet),
            "csv" => Some(Self::Csv),
            "jsonl" | "ndjson" | "json" => Some(Self::JsonLines),
            _ => None,
        }
    }

    fn extension(self, path: &Path) -> String {
        path.extension()
            .and_then(|e| e.to_str())
            .map(|e| format!(".{e}"))
            .unwrap_or_default()
    }
}

/// A table to register: a name for SQL and the file it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlTable {
    pub name: String,
    pub path: PathBuf,
}

impl SqlTable {
    /// Parses `name=path`; a bare `path` is named after the file's stem.
    pub fn parse(spec: &str) -> Result<Self> {
        let (name, path) = match spec.split_once('=') {
            Some((name, path)) => (name.trim().to_owned(), PathBuf::from(path.trim())),
            None => {
                let path = PathBuf::from(spec);
                (table_name_of(&path)?, path)
            }
        };
        check_table_name(&name)?;
        Ok(Self { name, path })
    }
}

/// Every .parquet, .csv, .jsonl and .ndjson file directly inside `dir`, named by its stem (`events.parquet` ->
/// `events`). Two files with one stem are refused: the query would be ambiguous.
pub fn tables_in_dir(dir: &Path) -> Result<Vec<SqlTable>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut tables: BTreeMap<String, PathBuf> = BTreeMap::new();
    for entry in entries {
        let path = entry
            .map_err(|source| Error::Read {
                path: dir.to_owned(),
                source,
            })?
            .path();
        // `.json` files beside the exports are reports and campaign lists, not tables:
        // only `.jsonl`/`.ndjson` are taken from a folder (name a `.json` with --table).
        let report = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if !path.is_file() || FileKind::of(&path).is_none() || report {
            continue;
        }
        let name = table_name_of(&path)?;
        if let Some(other) = tables.insert(name.clone(), path.clone()) {
            return Err(Error::Config(format!(
                "`--dir {}`: {} and {} would both be table `{name}`; name one with --table",
                dir.display(),
                other.display(),
                path.display()
            )));
        }
    }
    Ok(tables
        .into_iter()
        .map(|(name, path)| SqlTable { name, path })
        .collect())
}

/// A SQL session over registered files.
pub struct SqlSession {
    ctx: SessionContext,
    tables: Vec<SqlTable>,
}

impl std::fmt::Debug for SqlSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSession")
            .field("tables", &self.tables)
            .finish()
    }
}

impl SqlSession {
    /// Registers every table; an unreadable or unknown file names the table and the path.
    pub async fn open(tables: &[SqlTable]) -> Result<Self> {
        let ctx = SessionContext::new();
        for table in tables {
            register(&ctx, table).await?;
        }
        Ok(Self {
            ctx,
            tables: tables.to_vec(),
        })
    }

    pub fn tables(&self) -> &[SqlTable] {
        &self.tables
    }

    /// Runs one statement and collects its result.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let frame = self.ctx.sql(sql).await.map_err(sql_error)?;
        frame.collect().await.map_err(sql_error)
    }

    /// Runs one statement and writes its result to `path` (Parquet, CSV or JSON lines by
    /// extension); returns the rows written.
    pub async fn query_to_file(&self, sql: &str, path: &Path) -> Result<u64> {
        let kind = FileKind::of(path).ok_or_else(|| {
            Error::Config(format!(
                "`--output {}`: the extension must be .parquet, .csv or .jsonl",
                path.display()
            ))
        })?;
        let frame = self.ctx.sql(sql).await.map_err(sql_error)?;
        let out = path.to_string_lossy().into_owned();
        // One output file, not a folder of partitions: users open it directly.
        let options = DataFrameWriteOptions::new().with_single_file_output(true);
        let written = match kind {
            FileKind::Parquet => frame.write_parquet(&out, options, None).await,
            FileKind::Csv => frame.write_csv(&out, options, None).await,
            FileKind::JsonLines => frame.write_json(&out, options, None).await,
        }
        .map_err(|e| Error::Parquet {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(written.iter().map(rows_written).sum())
    }
}

/// A write's result is one `count` row: the rows written.
fn rows_written(batch: &RecordBatch) -> u64 {
    batch
        .column_by_name("count")
        .and_then(|c| c.as_any().downcast_ref::<arrow_array::UInt64Array>())
        .map_or(0, |counts| counts.iter().flatten().sum())
}

async fn register(ctx: &SessionContext, table: &SqlTable) -> Result<()> {
    let kind = kind_of_table(table)?;
    let path = table.path.to_string_lossy().into_owned();
    let ext = kind.extension(&representative_file(&table.path)?);
    let registered = match kind {
        FileKind::Parquet => {
            let options = ParquetReadOptions::default().file_extension(&ext);
            ctx.register_parquet(&table.name, &path, options).await
        }
        FileKind::Csv => {
            let options = CsvReadOptions::new().has_header(true).file_extension(&ext);
            ctx.register_csv(&table.name, &path, options).await
        }
        FileKind::JsonLines => {
            let mut options = JsonReadOptions::default().file_extension(&ext);
            // `campaigns.json` is one array; the event files are one object per line.
            options.newline_delimited = !starts_with_array(&representative_file(&table.path)?)?;
            ctx.register_json(&table.name, &path, options).await
        }
    };
    registered.map_err(|e| Error::Format {
        path: table.path.clone(),
        reason: format!("cannot register table `{}`: {e}", table.name),
    })
}

/// Whether a JSON file holds one array (`[...]`) rather than one object per line.
fn starts_with_array(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
    Ok(head[..n].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'['))
}

/// A folder is read as one table of its files; their kind is that of the first one.
fn kind_of_table(table: &SqlTable) -> Result<FileKind> {
    let file = representative_file(&table.path)?;
    FileKind::of(&file).ok_or_else(|| Error::Format {
        path: table.path.clone(),
        reason: format!(
            "table `{}`: not a .parquet, .csv or .jsonl file (or a folder of them)",
            table.name
        ),
    })
}

fn representative_file(path: &Path) -> Result<PathBuf> {
    let read_error = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_dir() {
        return Ok(path.to_owned());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_error)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && FileKind::of(p).is_some())
        .collect();
    files.sort();
    files.into_iter().next().ok_or_else(|| Error::Format {
        path: path.to_owned(),
        reason: "the folder holds no .parquet, .csv or .jsonl file".into(),
    })
}

fn table_name_of(path: &Path) -> Result<String> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| Error::Config(format!("cannot name a table after {}", path.display())))?;
    // `ev.campaigns.json` -> `ev_campaigns`: dots are not allowed in a bare SQL name.
    let name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    check_table_name(&name)?;
    Ok(name)
}

fn check_table_name(name: &str) -> Result<()> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "`{name}` is not a usable table name (letters, digits and `_`, not starting with a digit)"
        )))
    }
}

fn sql_error(e: DataFusionError) -> Error {
    Error::Sql(e.to_string())
}

/// Formats batches as an aligned text table, at most `max_rows` rows (the rest counted).
pub fn format_table(batches: &[RecordBatch], max_rows: usize) -> Result<String> {
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut shown = Vec::new();
    let mut left = max_rows;
    for batch in batches {
        if left == 0 {
            break;
        }
        let take = batch.num_rows().min(left);
        shown.push(batch.slice(0, take));
        left -= take;
    }
    let mut text = datafusion::arrow::util::pretty::pretty_format_batches(&shown)
        .map_err(|e| Error::Sql(e.to_string()))?
        .to_string();
    if total > max_rows {
        text.push_str(&format!("\n... {} more rows", total - max_rows));
    }
    text.push_str(&format!("\n{total} rows"));
    Ok(text)
}

/// Writes batches as CSV (with a header) or JSON lines to `out`.
pub fn write_batches(
    batches: &[RecordBatch],
    kind: FileKind,
    out: impl std::io::Write,
) -> Result<()> {
    let fail = |e: datafusion::arrow::error::ArrowError| Error::Sql(e.to_string());
    match kind {
        FileKind::Csv => {
            let mut writer = datafusion::arrow::csv::Writer::new(out);
            batches
                .iter()
                .try_for_each(|b| writer.write(b))
                .map_err(fail)
        }
        FileKind::JsonLines => {
            let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(out);
            batches
                .iter()
                .try_for_each(|b| writer.write(b))
                .map_err(fail)?;
            writer.finish().map_err(fail)
        }
        FileKind::Parquet => Err(Error::Config(
            "Parquet goes to a file: use --output FILE.parquet".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_kinds_follow_the_extension() {
        assert_eq!(
            FileKind::of(Path::new("a/events.parquet")),
            Some(FileKind::Parquet)
        );
        assert_eq!(FileKind::of(Path::new("t.CSV")), Some(FileKind::Csv));
        assert_eq!(
            FileKind::of(Path::new("ev.jsonl")),
            Some(FileKind::JsonLines)
        );
        assert_eq!(FileKind::of(Path::new("model.bin")), None);
        assert_eq!(FileKind::of(Path::new("noext")), None);
    }

    #[test]
    fn table_specs_take_a_name_or_the_files_stem() -> Result<()> {
        let named = SqlTable::parse("f=out/features.parquet")?;
        assert_eq!(named.name, "f");
        assert_eq!(named.path, PathBuf::from("out/features.parquet"));
        let bare = SqlTable::parse("out/ev.campaigns.json")?;
        assert_eq!(bare.name, "ev_campaigns");
        assert!(SqlTable::parse("1x=a.csv").is_err());
        assert!(SqlTable::parse("a-b=a.csv").is_err());
        Ok(())
    }
}
