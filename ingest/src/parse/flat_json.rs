//! A single-pass reader for the shape nearly every JSON access-log line has: one flat object
//! whose values are plain strings, non-negative integers, `true`, `false` or `null`.
//!
//! It reads such a line into a [`Slots`] record without serde: one UTF-8 check over the whole
//! line (instead of one per string), string ends taken from a bitmap of the line's quotes
//! (see [`Quotes`]), keys matched by the record directly, string values borrowed, integers
//! read in place. Anything it does not read exactly as serde_json would (an escape, a
//! control character, a nested value, a negative or fractional number, a syntax error)
//! makes it give up, and the caller reads the line with serde_json instead. So the fast path
//! never decides an outcome the full reader would decide differently: it only answers for
//! lines the full reader accepts, with the same record. The tests in `envoy.rs` hold it to
//! that on edited and arbitrary lines.

use std::borrow::Cow;

use super::envoy::{Scalar, Slots};

/// Reads `line` into `record`, which should be fresh; `false` when the line needs the full
/// JSON reader (`record` may then hold some of the line's values).
pub(crate) fn scan<'a, T: Slots<'a>>(line: &'a [u8], record: &mut T) -> bool {
    scan_object(line, record).is_some()
}

fn scan_object<'a, T: Slots<'a>>(line: &'a [u8], record: &mut T) -> Option<()> {
    // Substrings cut at ASCII delimiters (quotes) of valid UTF-8 are valid UTF-8 too, so
    // this one check covers every key and value taken from the line.
    let text = std::str::from_utf8(line).ok()?;
    let mut c = Cursor {
        text,
        pos: 0,
        quotes: Quotes::new(line),
    };
    c.skip_ws();
    c.expect(b'{')?;
    c.skip_ws();
    if !c.eat(b'}') {
        loop {
            let key = c.string()?;
            c.skip_ws();
            c.expect(b':')?;
            c.skip_ws();
            let value = c.scalar()?;
            // A repeated key keeps its last value, as the serde reader does.
            if let Some(slot) = record.slot(key) {
                *slot = Some(value);
            }
            c.skip_ws();
            if c.eat(b'}') {
                break;
            }
            c.expect(b',')?;
            c.skip_ws();
        }
    }
    c.skip_ws();
    (c.pos == text.len()).then_some(())
}

/// A position in the line being read.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    quotes: Quotes<'a>,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        self.text.as_bytes().get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// JSON whitespace only: serde_json refuses other blanks (form feed, vertical tab).
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Steps over `b` if it comes next.
    fn eat(&mut self, b: u8) -> bool {
        let here = self.peek() == Some(b);
        self.pos += usize::from(here);
        here
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        self.eat(b).then_some(())
    }

    /// A string, borrowed from the line. Its quotes are the next two of the line: strings
    /// are read in order, and a quote anywhere else is a syntax error that stops the scan
    /// before the next string. Taking the end from [`Quotes`] rather than from the cursor
    /// keeps the processor from waiting on one byte after another.
    fn string(&mut self) -> Option<&'a str> {
        let open = self.quotes.next()?;
        if open != self.pos {
            return None;
        }
        let close = self.quotes.next()?;
        self.pos = close + 1;
        self.text.get(open + 1..close)
    }

    fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => self.string().map(|s| Scalar::Str(Cow::Borrowed(s))),
            b'0'..=b'9' => self.uint().map(Scalar::UInt),
            b'n' => self.literal(b"null", Scalar::Null),
            b't' => self.literal(b"true", Scalar::Bool(true)),
            b'f' => self.literal(b"false", Scalar::Bool(false)),
            // Negative numbers, objects, arrays and junk are left to serde_json.
            _ => None,
        }
    }

    /// A non-negative integer as serde_json reads it into a `u64`.
    fn uint(&mut self) -> Option<u64> {
        let rest = self.rest();
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        // Past 19 digits a u64 may overflow (serde_json then reads a float); a leading zero
        // before more digits is an error; a fraction or an exponent makes a float.
        let leading_zero = digits > 1 && rest.first() == Some(&b'0');
        if digits > 19 || leading_zero || matches!(rest.get(digits), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.pos += digits;
        rest.get(..digits)?.iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
    }

    fn literal(&mut self, word: &[u8], value: Scalar<'a>) -> Option<Scalar<'a>> {
        self.rest().starts_with(word).then(|| {
            self.pos += word.len();
            value
        })
    }
}

/// The quotes of a line in order, found 64 bytes at a time as a bitmap: the next one is a
/// count of trailing zeros away, instead of at the end of a byte loop whose exit the
/// processor mispredicts for nearly every string. A block holding a backslash or a control
/// character is refused whole (`None`, which sends the line to serde_json), so within the
/// blocks that are read every quote delimits a string.
struct Quotes<'a> {
    line: &'a [u8],
    /// The index of the 64-byte block in `mask`; `usize::MAX` before the first.
    block: usize,
    /// Bit `i` is set when byte `64 * block + i` is a quote not yet returned.
    mask: u64,
}

impl<'a> Quotes<'a> {
    fn new(line: &'a [u8]) -> Self {
        Self {
            line,
            block: usize::MAX,
            mask: 0,
        }
    }

    /// The position of the next quote; `None` at the end of the line, or when a block on the
    /// way has an escape or a control character.
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.load(self.block.wrapping_add(1))?;
        }
        let bit = self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(self.block * 64 + bit)
    }

    fn load(&mut self, block: usize) -> Option<()> {
        let bytes = self
            .line
            .get(block.checked_mul(64)?..)
            .filter(|b| !b.is_empty())?;
        let mask = match bytes.get(..64) {
            Some(whole) => quote_mask(whole),
            None => {
                // The last, partial block, padded with spaces (neither quotes nor refused).
                let mut padded = [b' '; 64];
                padded.iter_mut().zip(bytes).for_each(|(p, b)| *p = *b);
                quote_mask(&padded)
            }
        }?;
        self.block = block;
        self.mask = mask;
        Some(())
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Bit `i` set when `block[i]` is a quote; `None` when the block holds a backslash or a
/// byte below 0x20. Eight bytes at a time, without branches.
fn quote_mask(block: &[u8]) -> Option<u64> {
    let mut quotes = 0;
    let mut refused = 0;
    for (i, chunk) in block.chunks_exact(8).enumerate() {
        let word = <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes);
        quotes |= gather_high_bits(bytes_equal(word, b'"')) << (8 * i);
        // "Some byte is zero / below 0x20" tests: exact as to whether any byte is.
        let backslash = word ^ (ONES * u64::from(b'\\'));
        refused |= backslash.wrapping_sub(ONES) & !backslash;
        refused |= word.wrapping_sub(ONES * 0x20) & !word;
    }
    (refused & HIGH == 0).then_some(quotes)
}

/// The high bit of each byte of `word` that equals `b`, and no other bit.
fn bytes_equal(word: u64, b: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ (ONES * u64::from(b));
    // A byte's high bit ends up set when any of its bits is: no carry crosses bytes.
    !(((x & LOW7) + LOW7) | x) & HIGH
}

/// The high bits of the eight bytes of `high` (no other bit set), as the low eight bits.
fn gather_high_bits(high: u64) -> u64 {
    // Each bit lands in the top byte at its byte's index, and no two products overlap.
    ((high >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_masks_are_exact_for_every_byte_in_every_position() {
        for b in 0..=255u8 {
            for at in 0..64 {
                let mut block = [b'a'; 64];
                block[at] = b;
                let mask = quote_mask(&block);
                if b == b'\\' || b < 0x20 {
                    assert_eq!(mask, None, "byte {b:#x} at {at}");
                } else if b == b'"' {
                    assert_eq!(mask, Some(1 << at), "quote at {at}");
                } else {
                    assert_eq!(mask, Some(0), "byte {b:#x} at {at}");
                }
            }
        }
        assert_eq!(quote_mask(&[b'"'; 64]), Some(u64::MAX));
    }

    #[test]
    fn quotes_come_in_order_across_blocks_and_in_the_padded_tail() {
        let mut line = vec![b'x'; 300];
        let at = [0, 5, 63, 64, 127, 200, 299];
        for &i in &at {
            line[i] = b'"';
        }
        let all = |line: &[u8]| {
            let mut quotes = Quotes::new(line);
            std::iter::from_fn(|| quotes.next()).collect::<Vec<_>>()
        };
        assert_eq!(all(&line), at);
        // A block with an escape is refused whole, even past its last quote.
        line[280] = b'\\';
        assert_eq!(all(&line), at[..6]);
        line[210] = b'\\';
        assert_eq!(all(&line), at[..5]);
        assert!(all(b"").is_empty());
        assert_eq!(all(b"\"\""), [0, 1]);
    }
}
