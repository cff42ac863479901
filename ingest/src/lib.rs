//! Outrider ingest: the event model, the canonical JSON-lines format, and the sources that
//! feed the detector (JSONL files or stdin, Kafka).
//!
//! Layout:
//! - [`event`]: `ApiEvent` (a gateway access-log record), `TokenEvent` (a token-server record)
//!   and the identity they carry.
//! - [`parse`]: Outrider's canonical JSON lines; a parser never panics and names its reason.
//! - [`route`]: concrete path -> route template and the object ids in it.
//! - [`source`]: where raw records come from, with their position for commits and dead letters.
//! - [`dead_letter`]: where bad input goes, with its reason and position.

pub mod dead_letter;
pub mod error;
pub mod event;
pub mod identity;
pub mod inventory;
pub mod parse;
pub mod route;
pub mod source;

pub use error::{Error, Result};
pub use event::{ApiEvent, ClientOrigin, Event, EventTime, Identity, TokenEvent, TokenEventKind};
pub use parse::{
    build_parser, parse_line, Format, LineParser, ParseError, ParseErrorReason, Parsed,
};
pub use source::{Batch, Record, Source, SourcePosition};
