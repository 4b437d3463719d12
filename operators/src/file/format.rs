//! Line formats of the file sources: how one line (without its terminator) becomes an element.
//! Text lines and JSON lines hand out the line itself (a `Bytes` slice of the block it was read
//! in, no copy); CSV splits the line at the byte level into a reused buffer and hands a borrowed
//! [`CsvRecord`] to the user's decoder, so no field becomes a `String`.

use super::json_check;
use bytes::Bytes;
use std::fmt::Display;
use std::str::FromStr;

/// Decodes the lines of a file source.
pub trait LineFormat: Send + 'static {
    /// The element type.
    type Out: Send + 'static;
    /// Decodes one line (its terminator removed): `Ok(None)` skips it, `Err` is a bad line.
    fn decode(&mut self, line: &Bytes) -> Result<Option<Self::Out>, String>;
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
    fn decode(&mut self, line: &Bytes) -> Result<Option<Bytes>, String> {
        match std::str::from_utf8(line) {
            Ok(_) => Ok(Some(line.clone())),
            Err(e) => Err(format!("not UTF-8: {e}")),
        }
    }
}

/// JSON lines: each non-blank line must hold exactly one JSON value (checked, not parsed),
/// handed to `decode` (the identity for [`super::FileSource::json_lines`]).
#[derive(Clone)]
pub struct JsonLines<F> {
    pub(crate) decode: F,
}

impl<T, E, F> LineFormat for JsonLines<F>
where
    T: Send + 'static,
    E: Display,
    F: FnMut(&Bytes) -> Result<T, E> + Send + 'static,
{
    type Out = T;
    fn decode(&mut self, line: &Bytes) -> Result<Option<T>, String> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        json_check::check(line)?;
        (self.decode)(line).map(Some).map_err(|e| e.to_string())
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
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.buf[start..end])
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
    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (buf, ends) = (self.buf, self.ends);
        (0..ends.len()).map(move |i| {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            &buf[start..ends[i]]
        })
    }
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
    pub(crate) ends: Vec<usize>,
}

impl<T, E, F> LineFormat for Csv<F>
where
    T: Send + 'static,
    E: Display,
    F: FnMut(CsvRecord<'_>) -> Result<T, E> + Send + 'static,
{
    type Out = T;
    fn decode(&mut self, line: &Bytes) -> Result<Option<T>, String> {
        if line.is_empty() {
            return Ok(None);
        }
        split_csv(line, self.options.delimiter, &mut self.buf, &mut self.ends)?;
        let rec = CsvRecord {
            buf: &self.buf,
            ends: &self.ends,
        };
        (self.decode)(rec).map(Some).map_err(|e| e.to_string())
    }
    fn has_header(&self) -> bool {
        self.options.header
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
    fn csv_record_accessors_name_the_field() {
        let (mut buf, mut ends) = (Vec::new(), Vec::new());
        split_csv(b"7,x", b',', &mut buf, &mut ends).unwrap();
        let rec = CsvRecord {
            buf: &buf,
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
