//! Log parsers. Each format has its own module and a parser implementing [`LineParser`];
//! the format is set per source ([`Format`]), and `auto` detection only picks a format when
//! exactly one parser reads every sampled line.
//!
//! A parser never panics: every failure is a [`ParseError`] whose reason is counted and
//! dead-lettered by the caller. Records that parse but carry no signal (an admin event, a
//! health check) are [`Parsed::Skipped`] with a reason, counted but not dead-lettered.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::identity::IdentityExtractor;

pub mod aws_apigw;
pub mod canonical;
pub mod detect;
pub mod envoy;
pub mod fields;
mod flat_json;
pub mod keycloak;
pub mod kong;
pub mod mapping;
pub mod nginx;

pub use canonical::parse_line;
pub use mapping::MappingConfig;

/// Lines longer than this are refused unless the caller sets another cap.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;

/// Why a line was refused. The names are stable: they label metrics and dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParseErrorReason {
    Empty,
    Oversized,
    InvalidUtf8,
    MalformedJson,
    Truncated,
    MissingField,
    WrongType,
    InvalidValue,
}

impl ParseErrorReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Oversized => "oversized",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::MalformedJson => "malformed_json",
            Self::Truncated => "truncated",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::InvalidValue => "invalid_value",
        }
    }
}

impl fmt::Display for ParseErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct ParseError {
    pub reason: ParseErrorReason,
    pub detail: String,
}

impl ParseError {
    pub fn new(reason: ParseErrorReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    pub fn missing(field: &str) -> Self {
        Self::new(
            ParseErrorReason::MissingField,
            format!("missing field `{field}`"),
        )
    }

    pub fn invalid(field: &str, detail: impl fmt::Display) -> Self {
        Self::new(
            ParseErrorReason::InvalidValue,
            format!("`{field}`: {detail}"),
        )
    }

    pub fn wrong_type(field: &str, expected: &str) -> Self {
        Self::new(
            ParseErrorReason::WrongType,
            format!("`{field}`: expected {expected}"),
        )
    }
}

/// What a parser made of one line.
// Nearly every line is an event: boxing it would cost an allocation per line for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Event(Event),
    /// A well-formed record that carries no signal for detection; the reason labels a counter.
    Skipped(&'static str),
}

/// The input formats Outrider reads.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Outrider's canonical JSON lines (`docs/canonical-format.md`).
    #[default]
    Canonical,
    /// Envoy access logs in JSON with the default format's fields.
    Envoy,
    /// NGINX with a JSON `log_format`.
    NginxJson,
    /// NGINX's classic `combined` format.
    NginxCombined,
    /// Kong's file-log / http-log plugin JSON.
    Kong,
    /// AWS API Gateway access logs (REST and HTTP APIs) in JSON with `$context` variables.
    AwsApigw,
    /// Keycloak login and admin events.
    Keycloak,
    /// Any JSON, mapped by configured field paths (`[source.mapping]`).
    Mapping,
    /// Detect from the first lines; refuses to guess when more than one format fits.
    Auto,
}

impl Format {
    /// The concrete formats, in the order auto-detection tries them.
    pub const CONCRETE: [Format; 7] = [
        Format::Canonical,
        Format::Envoy,
        Format::Kong,
        Format::AwsApigw,
        Format::Keycloak,
        Format::NginxJson,
        Format::NginxCombined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Canonical => "canonical",
            Format::Envoy => "envoy",
            Format::NginxJson => "nginx_json",
            Format::NginxCombined => "nginx_combined",
            Format::Kong => "kong",
            Format::AwsApigw => "aws_apigw",
            Format::Keycloak => "keycloak",
            Format::Mapping => "mapping",
            Format::Auto => "auto",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
            let known: Vec<&str> = Format::CONCRETE.iter().map(|f| f.as_str()).collect();
            format!(
                "unknown format {s:?}; one of {}, mapping, auto",
                known.join(", ")
            )
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every parser is built with.
#[derive(Debug, Clone)]
pub struct ParserContext {
    pub identity: Arc<IdentityExtractor>,
    pub max_line_bytes: usize,
}

/// One log format's parser.
pub trait LineParser: Send + Sync + fmt::Debug {
    fn format(&self) -> Format;
    /// Parses one line (a trailing `\r` or `\n` is ignored).
    fn parse(&self, line: &[u8]) -> Result<Parsed, ParseError>;
}

/// Builds the parser for a concrete format (`auto` is resolved by [`detect`] first).
pub fn build_parser(
    format: Format,
    ctx: &ParserContext,
    mapping: Option<&MappingConfig>,
) -> crate::Result<Box<dyn LineParser>> {
    Ok(match format {
        Format::Canonical => Box::new(CanonicalParser {
            max_line_bytes: ctx.max_line_bytes,
        }),
        Format::Envoy => Box::new(envoy::EnvoyParser::new(ctx.clone())),
        Format::NginxJson => Box::new(nginx::NginxJsonParser::new(ctx.clone())),
        Format::NginxCombined => Box::new(nginx::NginxCombinedParser::new(ctx.clone())),
        Format::Kong => Box::new(kong::KongParser::new(ctx.clone())),
        Format::AwsApigw => Box::new(aws_apigw::AwsApigwParser::new(ctx.clone())),
        Format::Keycloak => Box::new(keycloak::KeycloakParser::new(ctx.clone())),
        Format::Mapping => {
            let mapping = mapping.ok_or_else(|| {
                crate::Error::Config("format `mapping` needs a `[source.mapping]` section".into())
            })?;
            Box::new(mapping::MappingParser::new(ctx.clone(), mapping.clone())?)
        }
        Format::Auto => {
            return Err(crate::Error::Config(
                "format `auto` must be resolved from sample lines before building a parser".into(),
            ))
        }
    })
}

/// The canonical format as a [`LineParser`].
#[derive(Debug, Clone)]
pub struct CanonicalParser {
    pub max_line_bytes: usize,
}

impl LineParser for CanonicalParser {
    fn format(&self) -> Format {
        Format::Canonical
    }
    fn parse(&self, line: &[u8]) -> Result<Parsed, ParseError> {
        parse_line(line, self.max_line_bytes).map(Parsed::Event)
    }
}

/// The checks every format starts with: line ending trimmed, size cap, blank, UTF-8.
pub fn check_line(line: &[u8], max_bytes: usize) -> Result<&str, ParseError> {
    let line = check_line_bytes(line, max_bytes)?;
    std::str::from_utf8(line).map_err(|e| {
        ParseError::new(
            ParseErrorReason::InvalidUtf8,
            format!("at byte {}", e.valid_up_to()),
        )
    })
}

/// [`check_line`] without the UTF-8 pass, for parsers whose JSON reader validates the
/// strings it reads anyway (see [`utf8_or`] for the reason when it fails).
pub fn check_line_bytes(line: &[u8], max_bytes: usize) -> Result<&[u8], ParseError> {
    let line = trim_line_end(line);
    if line.len() > max_bytes {
        return Err(ParseError::new(
            ParseErrorReason::Oversized,
            format!("{} bytes, over the cap of {max_bytes}", line.len()),
        ));
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::new(ParseErrorReason::Empty, "blank line"));
    }
    Ok(line)
}

/// The error for a line a byte-level JSON reader refused: invalid UTF-8 when the line is,
/// so the reason is the same whichever reader a format uses.
pub fn utf8_or(line: &[u8], e: serde_json::Error) -> ParseError {
    match std::str::from_utf8(line) {
        Ok(_) => classify(e),
        Err(u) => ParseError::new(
            ParseErrorReason::InvalidUtf8,
            format!("at byte {}", u.valid_up_to()),
        ),
    }
}

pub fn trim_line_end(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = line {
        line = rest;
    }
    line
}

/// Maps a serde_json error to a reason: syntax, truncation, missing field, wrong type.
pub fn classify(e: serde_json::Error) -> ParseError {
    use serde_json::error::Category;
    let detail = e.to_string();
    let reason = match e.classify() {
        Category::Eof => ParseErrorReason::Truncated,
        Category::Syntax | Category::Io => ParseErrorReason::MalformedJson,
        Category::Data if detail.starts_with("missing field") => ParseErrorReason::MissingField,
        Category::Data if detail.starts_with("invalid type") => ParseErrorReason::WrongType,
        Category::Data => ParseErrorReason::InvalidValue,
    };
    ParseError { reason, detail }
}
