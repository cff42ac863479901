//! `outrider inventory`: the endpoints traffic uses, with first/last seen and counts, and
//! against given OpenAPI specs the shadow (undeclared) and deprecated-but-used ones.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use outrider_detector::normalize::normalize_file;
use outrider_ingest::parse::Format;
use outrider_ingest::ParseErrorReason;

use crate::config;

#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// A log file to build the inventory from; without it, the detector's last saved
    /// inventory (`<data_dir>/inventory.json`) is shown.
    #[arg(long, short)]
    pub input: Option<PathBuf>,
    /// The log format (overrides `source.format`).
    #[arg(long)]
    pub format: Option<Format>,
    /// OpenAPI 3 specs (YAML or JSON) that declare the APIs; repeat for several.
    #[arg(long)]
    pub openapi: Vec<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InventoryArgs) -> Result<()> {
    let mut config = config::load(args.config.as_deref())?;
    let Some(input) = args.input else {
        let path = config.alerts.data_dir.join("inventory.json");
        let saved = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no saved inventory at {} (run the detector, or pass --input)",
                path.display()
            )
        })?;
        println!("{saved}");
        return Ok(());
    };
    if let Some(f) = args.format {
        config.source.format = f;
    }
    config.source.routes.openapi.extend(args.openapi);
    let (mut records, mut refused) = (0u64, 0u64);
    let normalizer = normalize_file(&input, &config.source, |outcome| match outcome {
        // Blank lines are not records here.
        Err(e) if e.reason == ParseErrorReason::Empty => {}
        Err(_) => {
            records += 1;
            refused += 1;
        }
        Ok(_) => records += 1,
    })?;
    let report = normalizer.inventory().report();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
        println!(
            "{records} records read, {refused} refused ({} format)",
            normalizer.format()
        );
    }
    Ok(())
}
