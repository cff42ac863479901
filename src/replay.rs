//! `outrider replay --to-kafka`: produces a log file's records to a Kafka topic at a given
//! rate, keyed by identity, for demos, load tests and backfills.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use outrider_ingest::identity::{IdentityConfig, IdentityExtractor};
use outrider_ingest::parse::{
    build_parser, trim_line_end, Format, ParserContext, DEFAULT_MAX_LINE_BYTES,
};
use outrider_ingest::source::kafka::{ensure_topic, LineProducer};
use outrider_ingest::source::FileSource;
use outrider_ingest::{Batch, Parsed, Source};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The log file (`-` for standard input).
    #[arg(long, short)]
    pub input: PathBuf,
    /// Produce to Kafka (the one target so far).
    #[arg(long, required = true)]
    pub to_kafka: bool,
    #[arg(long, default_value = "127.0.0.1:19092")]
    pub brokers: String,
    #[arg(long, default_value = "outrider.events")]
    pub topic: String,
    /// Records per second; 0 sends as fast as the broker accepts them.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// The records' format, used to key each record by its identity so one identity's
    /// records stay in one partition, in order. Records that do not parse are still sent
    /// (unkeyed): the detector dead-letters them.
    #[arg(long, default_value = "canonical")]
    pub format: Format,
    /// Partitions of the topic if it has to be created.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
}

pub async fn run(args: ReplayArgs) -> Result<()> {
    anyhow::ensure!(
        args.format != Format::Auto,
        "--format auto is not supported here: name the format"
    );
    let ctx = ParserContext {
        identity: Arc::new(IdentityExtractor::new(&IdentityConfig::default())?),
        max_line_bytes: DEFAULT_MAX_LINE_BYTES,
    };
    let parser = build_parser(args.format, &ctx, None)?;
    ensure_topic(&args.brokers, &args.topic, args.partitions).await?;
    let mut producer = LineProducer::new(&args.brokers)?;
    let mut source = FileSource::open(&args.input).await?;
    let started = Instant::now();
    let mut sent = 0u64;
    while let Batch::Records(records) = source.next_batch(4096).await? {
        for record in records {
            let line = trim_line_end(&record.payload);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let key = match parser.parse(line) {
                Ok(Parsed::Event(e)) => Some(e.identity_key()),
                _ => None,
            };
            producer.send(&args.topic, key.as_deref(), line).await?;
            sent += 1;
            pace(args.rate, sent, started).await;
        }
    }
    let delivered = producer.finish().await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "produced {delivered} records to {} in {secs:.1} s ({:.0} records/s)",
        args.topic,
        delivered as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// Sleeps while ahead of the requested rate (checked every 64 records).
async fn pace(rate: u64, sent: u64, started: Instant) {
    if rate == 0 || sent % 64 != 0 {
        return;
    }
    let due = Duration::from_secs_f64(sent as f64 / rate as f64);
    if let Some(ahead) = due.checked_sub(started.elapsed()) {
        tokio::time::sleep(ahead).await;
    }
}
