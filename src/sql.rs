//! `outrider sql`: DataFusion SQL over exported Parquet, CSV and JSON-lines files.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use outrider_datasets::sql::{
    format_table, tables_in_dir, write_batches, FileKind, SqlSession, SqlTable,
};

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The statement, e.g. "SELECT attack, count(*) FROM events GROUP BY attack".
    pub query: String,
    /// A table as NAME=PATH, or a PATH named after its file stem; a folder of like files
    /// is one table. Repeatable.
    #[arg(long = "table", short = 't')]
    pub tables: Vec<String>,
    /// Register every .parquet, .csv and .jsonl file in this folder by its stem
    /// (`out/events.parquet` -> `events`).
    #[arg(long, short = 'd')]
    pub dir: Vec<PathBuf>,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
    pub format: SqlFormat,
    /// Rows printed in the table format (the rest are counted).
    #[arg(long, default_value_t = 100)]
    pub max_rows: usize,
    /// Write the result to this file instead (.parquet, .csv or .jsonl).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SqlFormat {
    Table,
    Csv,
    Jsonl,
}

pub async fn run(args: SqlArgs) -> Result<()> {
    let mut tables = Vec::new();
    for dir in &args.dir {
        tables.extend(tables_in_dir(dir)?);
    }
    for spec in &args.tables {
        tables.push(SqlTable::parse(spec).with_context(|| format!("--table {spec}"))?);
    }
    if tables.is_empty() {
        bail!("no tables: give --dir FOLDER or --table NAME=PATH");
    }
    let session = SqlSession::open(&tables).await?;
    if let Some(path) = &args.output {
        let rows = session.query_to_file(&args.query, path).await?;
        eprintln!("wrote {rows} rows to {}", path.display());
        return Ok(());
    }
    let batches = session.query(&args.query).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.format {
        SqlFormat::Table => writeln!(out, "{}", format_table(&batches, args.max_rows)?)?,
        SqlFormat::Csv => write_batches(&batches, FileKind::Csv, &mut out)?,
        SqlFormat::Jsonl => write_batches(&batches, FileKind::JsonLines, &mut out)?,
    }
    Ok(())
}
