//! `format = "auto"`: a convenience for trying Outrider on a log file, never a silent guess.
//!
//! Every concrete format's parser reads the sampled lines; a format is chosen only when it
//! reads every one of them and no other format does. Otherwise detection fails and says
//! which formats fit (set `source.format`) or why none did.

use super::{build_parser, Format, ParseError, ParserContext};
use crate::error::{Error, Result};

/// Lines looked at.
pub const SAMPLE_LINES: usize = 20;

/// The one format that reads every non-blank line of `sample`.
pub fn detect(sample: &[&[u8]], ctx: &ParserContext) -> Result<Format> {
    let lines: Vec<&[u8]> = sample
        .iter()
        .copied()
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .take(SAMPLE_LINES)
        .collect();
    if lines.is_empty() {
        return Err(Error::Config(
            "format `auto`: no lines to detect the format from; set `source.format`".into(),
        ));
    }
    let mut fits = Vec::new();
    let mut misses = Vec::new();
    for format in Format::CONCRETE {
        match first_refusal(format, &lines, ctx)? {
            None => fits.push(format),
            Some((line, e)) => misses.push(format!("{format}: line {line}: {e}")),
        }
    }
    match fits.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::Config(format!(
            "format `auto`: no format reads the first {} lines; set `source.format`. {}",
            lines.len(),
            misses.join("; ")
        ))),
        many => {
            Err(Error::Config(format!(
            "format `auto`: the first {} lines read as {}; set `source.format` to the right one",
            lines.len(),
            many.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(" and ")
        )))
        }
    }
}

/// The first line `format` refuses (1-based), if any.
fn first_refusal(
    format: Format,
    lines: &[&[u8]],
    ctx: &ParserContext,
) -> Result<Option<(usize, ParseError)>> {
    let parser = build_parser(format, ctx, None)?;
    Ok(lines
        .iter()
        .enumerate()
        .find_map(|(i, l)| parser.parse(l).err().map(|e| (i + 1, e))))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::identity::{IdentityConfig, IdentityExtractor};

    fn ctx() -> ParserContext {
        ParserContext {
            identity: Arc::new(IdentityExtractor::with_key(
                &IdentityConfig::default(),
                b"k",
            )),
            max_line_bytes: 64 * 1024,
        }
    }

    #[test]
    fn canonical_lines_are_recognised() {
        let line = br#"{"type":"api","ts":1795341600000,"request_id":"r","method":"GET","path":"/a","status":200,"client_ip":"192.0.2.1"}"#;
        assert_eq!(
            detect(&[line, b"\n", line], &ctx()).unwrap(),
            Format::Canonical
        );
    }

    #[test]
    fn lines_no_format_reads_are_refused_with_the_reasons() {
        let err = detect(&[b"hello world"], &ctx()).unwrap_err().to_string();
        assert!(
            err.contains("no format reads") && err.contains("canonical:"),
            "{err}"
        );
        assert!(detect(&[b"  "], &ctx()).is_err());
    }
}
