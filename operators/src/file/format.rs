//! Line formats of the file sources: how one line (without its terminator) becomes an element.
//! Text lines and JSON lines hand out the line itself (a `Bytes` slice of the block it was read
//! in, no copy); CSV splits the line at the byte level and hands a borrowed [`CsvRecord`] to the
//! user's decoder, so no field becomes a `String` (fields point into the line; only a line with
//! quotes is unescaped, into a reused buffer).

use bytes::Bytes;
use std::fmt::Display;
use std::str::FromStr;

/// One line of a file (its terminator removed), borrowed from the block it was read in.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub(crate) block: &'a Bytes,
    pub(crate) len: usize,
}

impl<'a> Line<'a> {
    /// The line's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        &self.block[..self.len]
    }
    /// The line as `Bytes` sharing the block (no copy).
    pub fn to_bytes(&self) -> Bytes {
        self.block.slice(..self.len)
    }
}

/// Decodes the lines of a file source.
pub trait LineFormat: Send + 'static {
    /// The element type.
    type Out: Send + 'static;
    /// Decodes one line: `Ok(None)` skips it, `Err` (the reason) makes it a bad line.
    fn decode(&mut self, line: Line<'_>) -> Result<Option<Self::Out>, String>;
    /// Whether the first line of every file is a header to skip.
    fn has_header(&self) -> bool {
        false
    }
}

/// Text lines: each line as `Bytes`, checked to be UTF-8 (so `std::str::from_utf8` on it
/// cannot fail).
#[derive(Clone, Debug, Default)]
pub struct TextLines;

impl LineFormat for TextLines {
    type Out = Bytes;
    fn decode(&mut self, line: Line<'_>) -> Result<Option<Bytes>, String> {
        match std::str::from_utf8(line.as_bytes()) {
            Ok(_) => Ok(Some(line.to_bytes())),
            Err(e) => Err(format!("not UTF-8: {e}")),
        }
    }
}

/// JSON lines as `Bytes`: each non-blank line must hold exactly one JSON value (checked, not
/// parsed).
#[derive(Clone, Debug, Default)]
pub struct JsonBytes;

impl LineFormat for JsonBytes {
    type Out = Bytes;
    fn decode(&mut self, line: Line<'_>) -> Result<Option<Bytes>, String> {
        let b = line.as_bytes();
        if b.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        check_json(b)?;
        Ok(Some(line.to_bytes()))
    }
}

/// JSON lines decoded by `decode` from each checked line's bytes.
#[derive(Clone)]
pub struct JsonLines<F> {
    pub(crate) decode: F,
}

impl<T, E, F> LineFormat for JsonLines<F>
where
    T: Send + 'static,
    E: Display,
    F: FnMut(&[u8]) -> Result<T, E> + Send + 'static,
{
    type Out = T;
    fn decode(&mut self, line: Line<'_>) -> Result<Option<T>, String> {
        let b = line.as_bytes();
        if b.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        check_json(b)?;
        (self.decode)(b).map(Some).map_err(|e| e.to_string())
    }
}

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

/// One CSV record, borrowed from the source's reused buffers: its fields as byte slices
/// (quotes removed, doubled quotes undone).
#[derive(Debug, Clone, Copy)]
pub struct CsvRecord<'a> {
    buf: &'a [u8],
    /// Where each field starts; `None`: each starts where the one before ends.
    starts: Option<&'a [usize]>,
    ends: &'a [usize],
}

impl<'a> CsvRecord<'a> {
    /// How many fields the record has.
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    /// Whether the record has no field (never the case for a decoded line).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    /// Field `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        Some(&self.buf[self.start(i)..end])
    }
    fn start(&self, i: usize) -> usize {
        match self.starts {
            Some(s) => s[i],
            None if i == 0 => 0,
            None => self.ends[i - 1],
        }
    }
    /// Field `i`, or an error naming it.
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
    pub fn int<T: CsvInt>(&self, i: usize) -> Result<T, CsvFieldError> {
        let f = self.field(i)?;
        T::parse_bytes(f).ok_or_else(|| CsvFieldError::Parse {
            index: i,
            text: String::from_utf8_lossy(f).into_owned(),
            ty: std::any::type_name::<T>(),
            reason: "not an integer in range".to_owned(),
        })
    }
    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let rec = *self;
        (0..rec.len()).map(move |i| &rec.buf[rec.start(i)..rec.ends[i]])
    }
}

/// An integer type [`CsvRecord::int`] parses straight from bytes.
pub trait CsvInt: Sized {
    /// The value of `b` (an optional sign for signed types, then at least one ASCII digit),
    /// `None` when it is not one or out of range.
    fn parse_bytes(b: &[u8]) -> Option<Self>;
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
        }
    )*};
}

csv_int!(u8: false, u16: false, u32: false, u64: false, usize: false, i8: true, i16: true, i32: true, i64: true, isize: true);

/// Splits a line in place, each field's start and end in `starts` and `ends` pointing into
/// the line itself; `false` (and nothing usable) when the line holds a quote.
fn split_plain(line: &[u8], delimiter: u8, starts: &mut Vec<usize>, ends: &mut Vec<usize>) -> bool {
    starts.clear();
    ends.clear();
    starts.push(0);
    for i in memchr::memchr2_iter(delimiter, b'"', line) {
        if line[i] == b'"' {
            return false;
        }
        ends.push(i);
        starts.push(i + 1);
    }
    ends.push(line.len());
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
    pub(crate) options: CsvOptions,
    pub(crate) decode: F,
    pub(crate) buf: Vec<u8>,
    pub(crate) starts: Vec<usize>,
    pub(crate) ends: Vec<usize>,
}

impl<T, E, F> LineFormat for Csv<F>
where
    T: Send + 'static,
    E: Display,
    F: FnMut(CsvRecord<'_>) -> Result<T, E> + Send + 'static,
{
    type Out = T;
    fn decode(&mut self, line: Line<'_>) -> Result<Option<T>, String> {
        let line = line.as_bytes();
        if line.is_empty() {
            return Ok(None);
        }
        let delimiter = self.options.delimiter;
        let rec = if split_plain(line, delimiter, &mut self.starts, &mut self.ends) {
            CsvRecord {
                buf: line,
                starts: Some(&self.starts),
                ends: &self.ends,
            }
        } else {
            split_csv(line, delimiter, &mut self.buf, &mut self.ends)?;
            CsvRecord {
                buf: &self.buf,
                starts: None,
                ends: &self.ends,
            }
        };
        (self.decode)(rec).map(Some).map_err(|e| e.to_string())
    }
    fn has_header(&self) -> bool {
        self.options.header
    }
}

/// Checks that `line` holds exactly one JSON value, without building it (serde_json).
fn check_json(line: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(line)
        .map(|_| ())
        .map_err(|e| format!("invalid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Result<Vec<String>, String> {
        let (mut buf, mut ends) = (Vec::new(), Vec::new());
        split_csv(line.as_bytes(), b',', &mut buf, &mut ends)?;
        let rec = CsvRecord {
            buf: &buf,
            starts: None,
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
        let (mut starts, mut ends) = (Vec::new(), Vec::new());
        for line in ["a,b,c", "a,,c,", "x", ""] {
            assert!(split_plain(line.as_bytes(), b',', &mut starts, &mut ends));
            let rec = CsvRecord {
                buf: line.as_bytes(),
                starts: Some(&starts),
                ends: &ends,
            };
            let plain: Vec<String> = rec
                .iter()
                .map(|f| String::from_utf8(f.to_vec()).unwrap())
                .collect();
            assert_eq!(plain, fields(line).unwrap(), "{line:?}");
        }
        assert!(!split_plain(b"a,\"b\"", b',', &mut starts, &mut ends));
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
            starts: None,
            ends: &ends,
        };
        assert_eq!(rec.int::<u16>(0), Ok(7));
        assert_eq!(
            rec.int::<u16>(1).unwrap_err().to_string(),
            "field 1 (\"x\") is not a valid u16: not an integer in range"
        );
    }

    #[test]
    fn csv_record_accessors_name_the_field() {
        let (mut buf, mut ends) = (Vec::new(), Vec::new());
        split_csv(b"7,x", b',', &mut buf, &mut ends).unwrap();
        let rec = CsvRecord {
            buf: &buf,
            starts: None,
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
    }
}
