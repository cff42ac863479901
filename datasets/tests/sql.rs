//! `outrider sql`: DataFusion SQL over the files the generator and the exports write.
#![cfg(feature = "sql")]
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use outrider_datasets::sql::{format_table, tables_in_dir, FileKind, SqlSession, SqlTable};
use outrider_datasets::{generate, Dataset, Error, GeneratorConfig, RawEventWriter, Result};

fn small_dataset() -> Dataset {
    generate(&GeneratorConfig {
        users: 80,
        seed: 11,
        ..GeneratorConfig::default()
    })
}

fn write_raw_events(ds: &Dataset, path: &Path) -> Result<()> {
    let mut writer = RawEventWriter::create(path)?;
    for e in &ds.events {
        let attack = e
            .campaign
            .and_then(|id| ds.campaigns.iter().find(|c| c.id == id))
            .map(|c| c.kind);
        writer.push(e, attack)?;
    }
    writer.finish()?;
    Ok(())
}

/// The events per attack kind ("benign" for none), counted in Rust.
fn expected_counts(ds: &Dataset) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for e in &ds.events {
        let kind = e
            .campaign
            .and_then(|id| ds.campaigns.iter().find(|c| c.id == id))
            .map_or("benign".to_owned(), |c| c.kind.as_str().to_owned());
        *counts.entry(kind).or_insert(0) += 1;
    }
    counts
}

/// Two-column batches (utf8 key, int64 count) as a map.
fn counts_of(batches: &[RecordBatch]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for b in batches {
        // DataFusion reads Parquet strings as views; compare them as plain strings.
        let keys = cast(b.column(0), &DataType::Utf8).unwrap();
        let keys = keys.as_any().downcast_ref::<StringArray>();
        let counts = b.column(1).as_any().downcast_ref::<Int64Array>();
        let (Some(keys), Some(counts)) = (keys, counts) else {
            panic!("unexpected column types: {:?}", b.schema());
        };
        for i in 0..b.num_rows() {
            out.insert(keys.value(i).to_owned(), counts.value(i));
        }
    }
    out
}

#[tokio::test]
async fn sql_counts_the_raw_event_table_by_attack_as_the_generator_labelled_it() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::Config(e.to_string()))?;
    let ds = small_dataset();
    write_raw_events(&ds, &dir.path().join("events.parquet"))?;
    let session = SqlSession::open(&tables_in_dir(dir.path())?).await?;
    let batches = session
        .query(
            "SELECT coalesce(attack, 'benign') AS kind, count(*) AS n \
             FROM events GROUP BY 1 ORDER BY 1",
        )
        .await?;
    let expected = expected_counts(&ds);
    assert!(expected.len() > 2, "the dataset has attacks: {expected:?}");
    assert_eq!(counts_of(&batches), expected);
    let text = format_table(&batches, 2)?;
    assert!(text.contains("more rows"), "{text}");
    assert!(
        text.ends_with(&format!("{} rows", expected.len())),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn json_lines_and_csv_files_are_tables_too_and_results_can_be_written() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::Config(e.to_string()))?;
    let ds = small_dataset();
    let lines: Vec<String> = ds.events.iter().map(|e| e.event.to_json_line()).collect();
    let jsonl = dir.path().join("raw.jsonl");
    std::fs::write(&jsonl, lines.join("\n")).map_err(|e| Error::Config(e.to_string()))?;
    let csv = dir.path().join("scores.csv");
    std::fs::write(&csv, "identity,score\nsub:a,0.9\nsub:b,0.1\nsub:c,0.7\n")
        .map_err(|e| Error::Config(e.to_string()))?;
    let tables = [
        SqlTable::parse(&format!("raw={}", jsonl.display()))?,
        SqlTable::parse(&csv.display().to_string())?,
    ];
    let session = SqlSession::open(&tables).await?;

    let rows = session.query("SELECT count(*) AS n FROM raw").await?;
    let n = rows[0].column(0).as_any().downcast_ref::<Int64Array>();
    assert_eq!(n.map(|a| a.value(0)), Some(ds.events.len() as i64));

    let out = dir.path().join("high.parquet");
    let written = session
        .query_to_file("SELECT identity FROM scores WHERE score > 0.5", &out)
        .await?;
    assert_eq!(written, 2);
    let back = SqlSession::open(&[SqlTable::parse(&format!("high={}", out.display()))?])
        .await?
        .query("SELECT identity FROM high ORDER BY identity")
        .await?;
    let ids = cast(back[0].column(0), &DataType::Utf8).map_err(|e| Error::Sql(e.to_string()))?;
    let ids = ids.as_any().downcast_ref::<StringArray>();
    let ids: Vec<&str> = ids
        .map(|a| (0..a.len()).map(|i| a.value(i)).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["sub:a", "sub:c"]);

    let mut csv_out = Vec::new();
    outrider_datasets::sql::write_batches(&back, FileKind::Csv, &mut csv_out)?;
    assert_eq!(
        String::from_utf8_lossy(&csv_out),
        "identity\nsub:a\nsub:c\n"
    );
    Ok(())
}

#[tokio::test]
async fn a_bad_statement_or_file_is_a_clear_error() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::Config(e.to_string()))?;
    let session = SqlSession::open(&[]).await?;
    let err = session.query("SELECT * FROM nowhere").await.err();
    assert!(
        matches!(&err, Some(Error::Sql(m)) if m.contains("nowhere")),
        "{err:?}"
    );
    let missing = SqlTable::parse(&format!("t={}", dir.path().join("none.parquet").display()))?;
    let err = SqlSession::open(&[missing]).await.err();
    assert!(matches!(&err, Some(Error::Read { .. })), "{err:?}");
    for name in ["a.csv", "a.parquet"] {
        std::fs::write(dir.path().join(name), "x\n1\n")
            .map_err(|e| Error::Config(e.to_string()))?;
    }
    let err = tables_in_dir(dir.path()).err();
    assert!(
        matches!(&err, Some(Error::Config(m)) if m.contains("table `a`")),
        "{err:?}"
    );
    Ok(())
}
