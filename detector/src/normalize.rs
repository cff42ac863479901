//! From raw records to events ready for features: the right parser for the record's topic,
//! the route template resolved (OpenAPI, learned, heuristic), and the API inventory updated.
//! The pipeline and model training share it, so a model is trained on what it will score.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use outrider_ingest::identity::IdentityExtractor;
use outrider_ingest::inventory::Inventory;
use outrider_ingest::parse::{build_parser, detect::detect, Format, LineParser, ParserContext};
use outrider_ingest::route::resolver::{RouteResolver, RouteSource};
use outrider_ingest::{Event, ParseError, Parsed};

use crate::config::{SourceConfig, SourceKind};
use crate::error::{Error, Result};

#[derive(Debug)]
pub struct Normalizer {
    default: Box<dyn LineParser>,
    by_stream: HashMap<String, Box<dyn LineParser>>,
    routes: RouteResolver,
    inventory: Inventory,
}

impl Normalizer {
    /// Builds the parsers the source configuration names; `auto` is resolved from the
    /// first lines of a file source.
    pub fn new(source: &SourceConfig) -> Result<Self> {
        let ctx = ParserContext {
            identity: Arc::new(IdentityExtractor::new(&source.identity)?),
            max_line_bytes: source.max_line_bytes,
        };
        let format = resolve_format(source, &ctx)?;
        let default = build_parser(format, &ctx, source.mapping.as_ref())?;
        let mut by_stream = HashMap::new();
        for t in &source.kafka.topics {
            if t.format == Format::Auto {
                return Err(Error::Config(format!(
                    "`source.kafka.topics`: topic {} needs a concrete format, not `auto`",
                    t.topic
                )));
            }
            let parser = build_parser(t.format, &ctx, source.mapping.as_ref())?;
            by_stream.insert(t.topic.clone(), parser);
        }
        tracing::info!(format = %default.format(), "parser ready");
        let routes = RouteResolver::new(&source.routes)?;
        // With specs, the inventory can tell shadow and unused endpoints from declared ones.
        let inventory = if routes.has_specs() {
            Inventory::with_declared(routes.operations())
        } else {
            Inventory::new()
        };
        Ok(Self {
            default,
            by_stream,
            routes,
            inventory,
        })
    }

    /// Parses one record from `stream` (a Kafka topic or a file name).
    pub fn normalize(&mut self, payload: &[u8], stream: &str) -> Result<Parsed, ParseError> {
        let parser = self.by_stream.get(stream).unwrap_or(&self.default);
        let mut parsed = parser.parse(payload)?;
        if let Parsed::Event(Event::Api(e)) = &mut parsed {
            let resolved = self.routes.resolve(&e.method, &e.path);
            // The API's own spec beats everything; a learned template replaces the parser's
            // heuristic one but not a template the log carried (AWS `resourcePath`); the
            // heuristic is what the parser already wrote.
            let replace = match resolved.source {
                RouteSource::OpenApi => true,
                RouteSource::Learned => e.route == outrider_ingest::route::template(&e.path),
                RouteSource::Heuristic => false,
            };
            if replace {
                e.route.clone_from(&resolved.route);
            }
            self.inventory.observe(e, &resolved);
        }
        Ok(parsed)
    }

    pub fn format(&self) -> Format {
        self.default.format()
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }
}

/// Reads a file line by line through a normalizer built for it (`auto` resolved from its
/// first lines), handing each record's outcome to `each`; returns the normalizer, whose
/// inventory then covers the file.
pub fn normalize_file(
    path: &Path,
    source: &SourceConfig,
    mut each: impl FnMut(Result<Parsed, ParseError>),
) -> Result<Normalizer> {
    use std::io::BufRead;
    let io = |source| {
        Error::Source(outrider_ingest::Error::Io {
            path: path.to_owned(),
            source,
        })
    };
    let mut source = source.clone();
    source.kind = SourceKind::File;
    source.path = path.to_owned();
    let mut normalizer = Normalizer::new(&source)?;
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let stream = path.display().to_string();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
            return Ok(normalizer);
        }
        each(normalizer.normalize(&line, &stream));
    }
}

/// `auto` becomes the one format that reads a file's first lines; Kafka needs it named.
fn resolve_format(source: &SourceConfig, ctx: &ParserContext) -> Result<Format> {
    if source.format != Format::Auto {
        return Ok(source.format);
    }
    match source.kind {
        SourceKind::File if source.path != Path::new("-") => {
            let sample = read_head(&source.path)?;
            let lines: Vec<&[u8]> = sample.split(|b| *b == b'\n').collect();
            let format = detect(&lines, ctx)?;
            tracing::info!(%format, path = %source.path.display(), "format detected");
            Ok(format)
        }
        _ => Err(Error::Config(
            "`source.format = \"auto\"` works only for a file path; name the format".into(),
        )),
    }
}

/// The first 64 KiB of a file, cut at the last complete line.
fn read_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |source| {
        Error::Source(outrider_ingest::Error::Io {
            path: path.to_owned(),
            source,
        })
    };
    let mut buf = Vec::with_capacity(64 * 1024);
    std::fs::File::open(path)
        .map_err(io)?
        .take(64 * 1024)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if let Some(end) = buf.iter().rposition(|b| *b == b'\n') {
        buf.truncate(end);
    }
    Ok(buf)
}
