//! `outrider inventory`: the endpoints traffic uses, with first/last seen and counts, and
//! against given OpenAPI specs the shadow (undeclared) and deprecated-but-used ones.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use outrider_detector::config::SourceKind;
use outrider_detector::normalize::Normalizer;
use outrider_ingest::parse::Format;

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
    config.source.kind = SourceKind::File;
    config.source.path.clone_from(&input);
    if let Some(f) = args.format {
        config.source.format = f;
    }
    config.source.routes.openapi.extend(args.openapi);
    let mut normalizer = Normalizer::new(&config.source)?;
    let text = std::fs::read(&input).with_context(|| format!("cannot read {}", input.display()))?;
    let stream = input.display().to_string();
    let (mut records, mut refused) = (0u64, 0u64);
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        records += 1;
        if normalizer.normalize(line, &stream).is_err() {
            refused += 1;
        }
    }
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
