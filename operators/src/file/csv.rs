//! CSV at the byte level: a record's fields are byte slices of the block the line was read in
//! (no field becomes a `String`; only a line holding quotes is unescaped, into a reused
//! buffer), integers are parsed straight from the bytes (eight digits at a time), and the lines
//! of a block are cut and split in one pass that finds newlines, delimiters and quotes eight
//! bytes at a time.

use super::format::{Line, LineFormat, Run, RunLimits, RunStop, decode_lines};
use bytes::Bytes;
use std::fmt::Display;
use std::str::FromStr;

/// How CSV lines are split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// The field delimiter (default `,`).
    pub delimiter: u8,
    /// Whether the first line of each file is a header to skip (default `false`).
    pub header: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            header: false,
        }
    }
}

impl CsvOptions {
    /// The default options with the first line of each file skipped as a header.
    pub fn with_header() -> Self {
        Self {
            header: true,
            ..Self::default()
        }
    }
}

/// A field of a CSV record that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvFieldError {
    /// The record has fewer fields.
    #[error("field {index} is missing (the record has {len} fields)")]
    Missing {
        /// The field's index (0-based).
        index: usize,
        /// How many fields the record has.
        len: usize,
    },
    /// The field is not UTF-8.
    #[error("field {index} is not UTF-8")]
    NotUtf8 {
        /// The field's index (0-based).
        index: usize,
    },
    /// The field does not parse as the wanted type.
    #[error("field {index} ({text:?}) is not a valid {ty}: {reason}")]
    Parse {
        /// The field's index (0-based).
        index: usize,
        /// The field.
        text: String,
        /// The wanted type.
        ty: &'static str,
        /// What the parser said.
        reason: String,
    },
}

/// One CSV record, borrowed from the block it was read in (or, for a line with quotes, from the
/// source's reused buffer): its fields as byte slices (quotes removed, doubled quotes undone).
#[derive(Debug, Clone, Copy)]
pub struct CsvRecord<'a> {
    /// The bytes the fields lie in.
    buf: &'a [u8],
    /// Where field 0 starts.
    first: usize,
    /// Bytes between a field's end and the next one's start (1: a delimiter; 0: unescaped).
    gap: usize,
    /// Where each field ends.
    ends: &'a [usize],
}

impl<'a> CsvRecord<'a> {
    /// How many fields the record has.
    #[inline]
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    /// Whether the record has no field (never the case for a decoded line).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    /// Where field `i` lies in `buf`.
    #[inline]
    fn bounds(&self, i: usize) -> Option<(usize, usize)> {
        let end = *self.ends.get(i)?;
        let start = match i.checked_sub(1) {
            None => self.first,
            Some(j) => self.ends[j] + self.gap,
        };
        Some((start, end))
    }
    /// Field `i`, if there is one.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let (start, end) = self.bounds(i)?;
        Some(&self.buf[start..end])
    }
    /// Field `i`, or an error naming it.
    #[inline]
    pub fn field(&self, i: usize) -> Result<&'a [u8], CsvFieldError> {
        self.get(i).ok_or(CsvFieldError::Missing {
            index: i,
            len: self.len(),
        })
    }
    /// Field `i` as text.
    pub fn str(&self, i: usize) -> Result<&'a str, CsvFieldError> {
        std::str::from_utf8(self.field(i)?).map_err(|_| CsvFieldError::NotUtf8 { index: i })
    }
    /// Field `i` parsed with `FromStr` (no allocation for the standard number types).
    pub fn parse<T: FromStr>(&self, i: usize) -> Result<T, CsvFieldError>
    where
        T::Err: Display,
    {
        let s = self.str(i)?;
        s.parse().map_err(|e: T::Err| CsvFieldError::Parse {
            index: i,
            text: s.to_owned(),
            ty: std::any::type_name::<T>(),
            reason: e.to_string(),
        })
    }
    /// Field `i` as an integer, parsed from its bytes (optional sign, ASCII digits; no UTF-8
    /// check or allocation).
    #[inline]
    pub fn int<T: CsvInt>(&self, i: usize) -> Result<T, CsvFieldError> {
        let Some((start, end)) = self.bounds(i) else {
            return Err(CsvFieldError::Missing {
                index: i,
                len: self.len(),
            });
        };
        if let Some((neg, magnitude)) = swar_magnitude(self.buf, start, end)
            && let Some(v) = T::from_magnitude(neg, magnitude)
        {
            return Ok(v);
        }
        let f = &self.buf[start..end];
        T::parse_bytes(f).ok_or_else(|| int_error::<T>(i, f))
    }
    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let rec = *self;
        (0..rec.len()).filter_map(move |i| rec.get(i))
    }
}

#[cold]
fn int_error<T>(index: usize, f: &[u8]) -> CsvFieldError {
    CsvFieldError::Parse {
        index,
        text: String::from_utf8_lossy(f).into_owned(),
        ty: std::any::type_name::<T>(),
        reason: "not an integer in range".to_owned(),
    }
}

/// An integer type [`CsvRecord::int`] parses straight from bytes.
pub trait CsvInt: Sized {
    /// The value of `b` (an optional sign for signed types, then at least one ASCII digit),
    /// `None` when it is not one or out of range.
    fn parse_bytes(b: &[u8]) -> Option<Self>;
    /// The value `-magnitude` (when `neg`) or `magnitude`, `None` when out of range or not
    /// accepted ([`CsvInt::parse_bytes`] then decides; the default always defers to it).
    fn from_magnitude(neg: bool, magnitude: u64) -> Option<Self> {
        let _ = (neg, magnitude);
        None
    }
}

macro_rules! csv_int {
    ($($t:ty: $signed:expr),*) => {$(
        impl CsvInt for $t {
            fn parse_bytes(b: &[u8]) -> Option<Self> {
                let (neg, digits) = match b {
                    [b'-', rest @ ..] if $signed => (true, rest),
                    [b'+', rest @ ..] => (false, rest),
                    _ => (false, b),
                };
                if digits.is_empty() {
                    return None;
                }
                let mut v: $t = 0;
                for &d in digits {
                    let d = d.wrapping_sub(b'0');
                    if d > 9 {
                        return None;
                    }
                    v = v.checked_mul(10)?;
                    v = if neg {
                        v.checked_sub(<$t>::try_from(d).ok()?)?
                    } else {
                        v.checked_add(<$t>::try_from(d).ok()?)?
                    };
                }
                Some(v)
            }
            #[inline]
            fn from_magnitude(neg: bool, magnitude: u64) -> Option<Self> {
                if neg {
                    if !$signed {
                        return None;
                    }
                    <$t>::try_from(-i128::from(magnitude)).ok()
                } else {
                    <$t>::try_from(magnitude).ok()
                }
            }
        }
    )*};
}

csv_int!(u8: false, u16: false, u32: false, u64: false, usize: false, i8: true, i16: true, i32: true, i64: true, isize: true);

/// `0x01` in every byte.
const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte.
const HIGH: u64 = 0x8080_8080_8080_8080;
/// `'0'` in every byte.
const ZEROS: u64 = 0x3030_3030_3030_3030;

/// The high bit of each byte of `w` that equals the byte repeated in `pattern`, nothing else.
#[inline(always)]
fn bytes_equal(w: u64, pattern: u64) -> u64 {
    let t = w ^ pattern;
    // A byte's high bit survives `(t & 0x7f) + 0x7f | t` only when the byte is zero.
    !(((t & !HIGH).wrapping_add(!HIGH)) | t) & HIGH
}

/// The sign and value of the integer at `buf[start..end]` read eight digits at a time: `None`
/// when it has no digit, more than 16, a byte that is not a digit, or fewer than eight bytes of
/// `buf` from where its digits start (the caller then parses it byte by byte).
#[inline]
fn swar_magnitude(buf: &[u8], start: usize, end: usize) -> Option<(bool, u64)> {
    let (neg, start) = match buf.get(start) {
        Some(b'-') => (true, start + 1),
        Some(b'+') => (false, start + 1),
        _ => (false, start),
    };
    let len = end.checked_sub(start)?;
    match len {
        1..=8 => Some((neg, u64::from(eight_digits(buf, start, len)?))),
        9..=16 => {
            let high = eight_digits(buf, start, len - 8)?;
            let low = eight_digits(buf, end - 8, 8)?;
            Some((neg, u64::from(high) * 100_000_000 + u64::from(low)))
        }
        _ => None,
    }
}

/// The value of the `len` (1 to 8) ASCII digits at `buf[start..]`, read as one word from the
/// eight bytes there; `None` when one of them is not a digit or `buf` ends sooner.
#[inline(always)]
fn eight_digits(buf: &[u8], start: usize, len: usize) -> Option<u32> {
    let w = u64::from_le_bytes(*buf.get(start..)?.first_chunk::<8>()?);
    // The digits move to the high bytes (the bytes after them fall off), the low ones become
    // leading zeros: the word reads as eight digits.
    let shift = 8 * (8 - len as u32);
    let v = (w << shift) | ZEROS.checked_shr(64 - shift).unwrap_or(0);
    let digits = (v & 0xf0f0_f0f0_f0f0_f0f0) == ZEROS
        && (v.wrapping_add(0x0606_0606_0606_0606) & 0xf0f0_f0f0_f0f0_f0f0) == ZEROS;
    if !digits {
        return None;
    }
    // Pairs, then fours, then all eight (the first digit is the lowest byte).
    let v = v - ZEROS;
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    let v = ((v & 0x0000_00ff_0000_00ff).wrapping_mul(100 + (1_000_000 << 32))
        + ((v >> 16) & 0x0000_00ff_0000_00ff).wrapping_mul(1 + (10_000 << 32)))
        >> 32;
    Some(v as u32)
}

/// The positions of the delimiters of an unquoted line in `ends` (its fields end there and at
/// the line's end); `false` (and nothing usable) when the line holds a quote.
fn delimiters(line: &[u8], delimiter: u8, ends: &mut Vec<usize>) -> bool {
    ends.clear();
    for i in memchr::memchr2_iter(delimiter, b'"', line) {
        if line[i] == b'"' {
            return false;
        }
        ends.push(i);
    }
    true
}

/// Splits `line` into fields: their bytes concatenated in `buf`, each field's end in `ends`.
pub(crate) fn split_csv(
    line: &[u8],
    delimiter: u8,
    buf: &mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> Result<(), String> {
    buf.clear();
    ends.clear();
    let len = line.len();
    let mut i = 0;
    loop {
        if i < len && line[i] == b'"' {
            let open = i;
            i += 1;
            loop {
                let Some(j) = memchr::memchr(b'"', &line[i..]) else {
                    return Err(format!(
                        "the quoted field at column {} is not closed",
                        open + 1
                    ));
                };
                buf.extend_from_slice(&line[i..i + j]);
                i += j + 1;
                if line.get(i) == Some(&b'"') {
                    buf.push(b'"');
                    i += 1;
                } else {
                    break;
                }
            }
            if i < len && line[i] != delimiter {
                return Err(format!(
                    "unexpected {:?} after the quoted field at column {}",
                    char::from(line[i]),
                    open + 1
                ));
            }
        } else {
            let j = memchr::memchr(delimiter, &line[i..]).map_or(len, |j| i + j);
            buf.extend_from_slice(&line[i..j]);
            i = j;
        }
        ends.push(buf.len());
        if i >= len {
            return Ok(());
        }
        i += 1;
    }
}

/// CSV: each non-empty line split at `delimiter` and handed to `decode` as a [`CsvRecord`].
#[derive(Clone)]
pub struct Csv<F> {
    options: CsvOptions,
    decode: F,
    /// The unescaped fields of a line with quotes.
    buf: Vec<u8>,
    /// The field ends of the line being decoded.
    ends: Vec<usize>,
}

impl<F> Csv<F> {
    /// The format splitting by `options` and decoding records with `decode`.
    pub(crate) fn new(options: CsvOptions, decode: F) -> Self {
        Self {
            options,
            decode,
            buf: Vec::new(),
            ends: Vec::new(),
        }
    }
}

impl<T, E, F> Csv<F>
where
    E: Display,
    F: FnMut(CsvRecord<'_>) -> Result<T, E>,
{
    /// Decodes the non-empty line (its terminator removed) at `data[start..end]`, whose
    /// delimiters' positions are in `self.ends` unless it holds a quote.
    #[inline(always)]
    fn decode_split(
        &mut self,
        data: &[u8],
        start: usize,
        end: usize,
        quoted: bool,
    ) -> Result<T, String> {
        let rec = if quoted {
            split_csv(
                &data[start..end],
                self.options.delimiter,
                &mut self.buf,
                &mut self.ends,
            )?;
            CsvRecord {
                buf: &self.buf,
                first: 0,
                gap: 0,
                ends: &self.ends,
            }
        } else {
            self.ends.push(end);
            CsvRecord {
                buf: data,
                first: start,
                gap: 1,
                ends: &self.ends,
            }
        };
        (self.decode)(rec).map_err(|e| e.to_string())
    }
}

impl<T, E, F> LineFormat for Csv<F>
where
    T: Send + 'static,
    E: Display,
    F: FnMut(CsvRecord<'_>) -> Result<T, E> + Send + 'static,
{
    type Out = T;
    fn decode(&mut self, line: Line<'_>) -> Result<Option<T>, String> {
        let bytes = line.as_bytes();
        if bytes.is_empty() {
            return Ok(None);
        }
        let quoted = !delimiters(bytes, self.options.delimiter, &mut self.ends);
        self.decode_split(bytes, 0, bytes.len(), quoted).map(Some)
    }

    fn has_header(&self) -> bool {
        self.options.header
    }

    /// Cuts and splits the lines in one pass over the block: eight bytes at a time, the
    /// positions of newlines, delimiters and quotes come out of one mask.
    fn decode_run(
        &mut self,
        block: &Bytes,
        from: usize,
        limits: RunLimits,
        out: &mut Vec<T>,
    ) -> Run {
        let delimiter = self.options.delimiter;
        if matches!(delimiter, b'\n' | b'\r' | b'"') {
            return decode_lines(self, block, from, limits, out);
        }
        let data: &[u8] = block;
        let (pd, pq, pn) = (
            ONES * u64::from(delimiter),
            ONES * u64::from(b'"'),
            ONES * u64::from(b'\n'),
        );
        let mut lines = 0;
        // The start of the line being split, whether it holds a quote.
        let mut start = from;
        let mut quoted = false;
        self.ends.clear();
        if out.len() >= limits.max_out {
            return Run::done(from, 0);
        }
        let mut at = from;
        while at < data.len() {
            let (mut mask, width) = match data[at..].first_chunk::<8>() {
                Some(w) => {
                    let w = u64::from_le_bytes(*w);
                    (
                        bytes_equal(w, pd) | bytes_equal(w, pq) | bytes_equal(w, pn),
                        8,
                    )
                }
                None => {
                    let rest = &data[at..];
                    let mut m = 0u64;
                    for (k, &b) in rest.iter().enumerate() {
                        if b == delimiter || b == b'"' || b == b'\n' {
                            m |= 0x80 << (8 * k);
                        }
                    }
                    (m, rest.len())
                }
            };
            while mask != 0 {
                let p = at + (mask.trailing_zeros() / 8) as usize;
                mask &= mask - 1;
                match data[p] {
                    b'\n' => {
                        if p - start > limits.max_line {
                            return Run {
                                end: start,
                                lines,
                                stop: Some(RunStop::TooLong),
                            };
                        }
                        let end = if p > start && data[p - 1] == b'\r' {
                            p - 1
                        } else {
                            p
                        };
                        if end > start {
                            match self.decode_split(data, start, end, quoted) {
                                Ok(x) => out.push(x),
                                Err(reason) => {
                                    return Run {
                                        end: start,
                                        lines,
                                        stop: Some(RunStop::Bad {
                                            len: end - start,
                                            raw: p + 1 - start,
                                            reason,
                                        }),
                                    };
                                }
                            }
                        }
                        lines += 1;
                        start = p + 1;
                        quoted = false;
                        self.ends.clear();
                        if out.len() >= limits.max_out {
                            return Run::done(start, lines);
                        }
                    }
                    b'"' => quoted = true,
                    _ => self.ends.push(p),
                }
            }
            at += width;
        }
        Run::done(start, lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Result<Vec<String>, String> {
        let (mut buf, mut ends) = (Vec::new(), Vec::new());
        split_csv(line.as_bytes(), b',', &mut buf, &mut ends)?;
        let rec = CsvRecord {
            buf: &buf,
            first: 0,
            gap: 0,
            ends: &ends,
        };
        Ok(rec
            .iter()
            .map(|f| String::from_utf8(f.to_vec()).unwrap())
            .collect())
    }

    #[test]
    fn csv_fields_quotes_and_empty_fields() {
        assert_eq!(fields("a,b,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(fields("a,,c,").unwrap(), ["a", "", "c", ""]);
        assert_eq!(fields("x").unwrap(), ["x"]);
        assert_eq!(
            fields(r#""a,b","say ""hi""",z"#).unwrap(),
            ["a,b", r#"say "hi""#, "z"]
        );
        assert_eq!(fields(r#""""#).unwrap(), [""]);
        assert_eq!(
            fields(r#"a,"open"#).unwrap_err(),
            "the quoted field at column 3 is not closed"
        );
        assert_eq!(
            fields(r#""a"b,c"#).unwrap_err(),
            "unexpected 'b' after the quoted field at column 1"
        );
    }

    #[test]
    fn unquoted_lines_split_in_place_like_quoted_ones() {
        let mut ends = Vec::new();
        for line in ["a,b,c", "a,,c,", "x", ""] {
            assert!(delimiters(line.as_bytes(), b',', &mut ends));
            ends.push(line.len());
            let rec = CsvRecord {
                buf: line.as_bytes(),
                first: 0,
                gap: 1,
                ends: &ends,
            };
            let plain: Vec<String> = rec
                .iter()
                .map(|f| String::from_utf8(f.to_vec()).unwrap())
                .collect();
            assert_eq!(plain, fields(line).unwrap(), "{line:?}");
        }
        assert!(!delimiters(b"a,\"b\"", b',', &mut ends));
    }

    #[test]
    fn a_word_matches_exactly_the_bytes_equal_to_the_pattern() {
        for b in [0u8, b',', b'\n', 0x7f, 0x80, 0xff] {
            let w = u64::from_le_bytes([b, 1, b, 0x80 | b, b ^ 1, 0xff, b, 0]);
            let want = (0..8)
                .filter(|&k| w.to_le_bytes()[k] == b)
                .fold(0u64, |m, k| m | 0x80 << (8 * k));
            assert_eq!(bytes_equal(w, ONES * u64::from(b)), want, "{b:#x}");
        }
    }

    #[test]
    fn integers_parse_from_bytes_with_their_range() {
        assert_eq!(u64::parse_bytes(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(u64::parse_bytes(b"18446744073709551616"), None);
        assert_eq!(i8::parse_bytes(b"-128"), Some(-128));
        assert_eq!(i8::parse_bytes(b"128"), None);
        assert_eq!(i32::parse_bytes(b"+42"), Some(42));
        assert_eq!(u32::parse_bytes(b"-1"), None);
        for bad in [&b""[..], b"-", b"1a", b" 1", b"1.0"] {
            assert_eq!(i64::parse_bytes(bad), None, "{bad:?}");
        }
        let (mut buf, mut ends) = (Vec::new(), Vec::new());
        split_csv(b"7,x", b',', &mut buf, &mut ends).unwrap();
        let rec = CsvRecord {
            buf: &buf,
            first: 0,
            gap: 0,
            ends: &ends,
        };
        assert_eq!(rec.int::<u16>(0), Ok(7));
        assert_eq!(
            rec.int::<u16>(1).unwrap_err().to_string(),
            "field 1 (\"x\") is not a valid u16: not an integer in range"
        );
    }

    /// A record over `line` split in place, with room after it for word reads.
    fn int_at<T: CsvInt>(line: &[u8], i: usize) -> Result<T, CsvFieldError> {
        let mut ends = Vec::new();
        assert!(delimiters(line, b',', &mut ends));
        ends.push(line.len());
        CsvRecord {
            buf: line,
            first: 0,
            gap: 1,
            ends: &ends,
        }
        .int(i)
    }

    #[test]
    fn integers_read_eight_digits_at_a_time_agree_with_the_bytewise_parser() {
        let cases: [&[u8]; 18] = [
            b"0",
            b"7",
            b"-7",
            b"+7",
            b"12345678",
            b"123456789",
            b"9999999999999999",
            b"-9999999999999999",
            b"4294967295",
            b"4294967296",
            b"-0",
            b"1a",
            b"a1",
            b"12345678:",
            b"1/",
            b"-",
            b"",
            b"99999999999999999999",
        ];
        for c in cases {
            // The field first (word reads see the rest of the line), then at the end of the
            // line (too close to it for a word: the bytewise path).
            let mut line = c.to_vec();
            line.extend_from_slice(b",1234567890123456789");
            assert_eq!(
                int_at::<u32>(&line, 0).ok(),
                u32::parse_bytes(c),
                "{:?}",
                String::from_utf8_lossy(c)
            );
            assert_eq!(int_at::<i64>(&line, 0).ok(), i64::parse_bytes(c));
            assert_eq!(int_at::<u64>(&line, 0).ok(), u64::parse_bytes(c));
            assert_eq!(int_at::<i8>(&line, 0).ok(), i8::parse_bytes(c));
            assert_eq!(int_at::<i64>(c, 0).ok(), i64::parse_bytes(c));
        }
        assert_eq!(int_at::<i64>(b"-9223372036854775808,0", 0), Ok(i64::MIN));
        assert_eq!(int_at::<u8>(b"255,0000000000", 0), Ok(255));
        assert!(int_at::<u8>(b"256,0000000000", 0).is_err());
    }

    #[test]
    fn csv_record_accessors_name_the_field() {
        let (mut buf, mut ends) = (Vec::new(), Vec::new());
        split_csv(b"7,x", b',', &mut buf, &mut ends).unwrap();
        let rec = CsvRecord {
            buf: &buf,
            first: 0,
            gap: 0,
            ends: &ends,
        };
        assert_eq!(rec.len(), 2);
        assert_eq!(rec.parse::<u32>(0), Ok(7));
        assert_eq!(
            rec.parse::<u32>(1).unwrap_err().to_string(),
            "field 1 (\"x\") is not a valid u32: invalid digit found in string"
        );
        assert_eq!(
            rec.field(2).unwrap_err().to_string(),
            "field 2 is missing (the record has 2 fields)"
        );
        assert_eq!(
            rec.int::<u8>(2).unwrap_err().to_string(),
            "field 2 is missing (the record has 2 fields)"
        );
    }
}
