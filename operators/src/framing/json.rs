//! JSON object framing: a scanner for brace depth (strings and escapes skipped), not a parser.

use super::FramingError;
use super::stage::{Decoder, FrameBuf, framing_flow};
use weir_graph::Flow;

#[derive(Clone)]
struct JsonDecoder {
    max: usize,
    /// Next byte of the buffer to scan.
    pos: usize,
    /// Start of the object being scanned (meaningful while `depth > 0`).
    obj: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl JsonDecoder {
    fn scan(&mut self, buf: &FrameBuf, out: &mut Vec<Vec<u8>>) -> Result<(), FramingError> {
        while self.pos < buf.bytes.len() {
            let b = buf.bytes[self.pos];
            if self.depth > 0 && self.pos + 1 - self.obj > self.max {
                return Err(FramingError::FrameTooLong {
                    offset: buf.at(self.obj),
                    length: (self.pos + 1 - self.obj) as u64,
                    max: self.max,
                });
            }
            if self.depth == 0 {
                match b {
                    b'{' => {
                        self.obj = self.pos;
                        self.depth = 1;
                    }
                    b' ' | b'\t' | b'\r' | b'\n' | b',' | b'[' | b']' => {}
                    b'}' => {
                        return Err(FramingError::Unbalanced {
                            offset: buf.at(self.pos),
                        });
                    }
                    _ => {
                        return Err(FramingError::UnexpectedByte {
                            offset: buf.at(self.pos),
                            byte: b,
                            shown: char::from(b),
                        });
                    }
                }
            } else if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
            } else {
                match b {
                    b'"' => self.in_string = true,
                    b'{' => self.depth += 1,
                    b'}' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            out.push(buf.bytes[self.obj..=self.pos].to_vec());
                        }
                    }
                    _ => {}
                }
            }
            self.pos += 1;
        }
        Ok(())
    }
}

impl Decoder for JsonDecoder {
    fn frames(&mut self, buf: &mut FrameBuf, out: &mut Vec<Vec<u8>>) -> Result<(), FramingError> {
        let r = self.scan(buf, out);
        // Keep only the object in progress.
        let keep = if self.depth > 0 { self.obj } else { self.pos };
        buf.consume(keep);
        self.pos -= keep;
        self.obj = self.obj.saturating_sub(keep);
        r
    }

    fn finish(&mut self, buf: &mut FrameBuf, _out: &mut Vec<Vec<u8>>) -> Result<(), FramingError> {
        if self.depth == 0 {
            return Ok(());
        }
        Err(buf.truncated(self.obj))
    }
}

/// Splits a byte stream into its top-level JSON objects (each emitted as its exact bytes), in
/// a stream of concatenated objects separated by whitespace or commas, or inside one top-level
/// array. Only brace depth is tracked (braces inside strings, escaped quotes included, are
/// skipped); the objects themselves are not validated.
/// Emits when: the closing brace of a top-level object arrives.
/// Backpressures when: downstream backpressures.
/// Completes when: upstream completes outside an object.
/// Cancels when: downstream cancels.
/// Fails when: an object grows past `max_object_length` bytes, a byte other than whitespace,
/// `,`, `[`, `]` or `{` appears between objects, or the stream ends inside an object
/// ([`FramingError`]); or upstream fails.
pub fn json(max_object_length: usize) -> Flow<Vec<u8>, Vec<u8>> {
    framing_flow(
        "json_framing",
        JsonDecoder {
            max: max_object_length,
            pos: 0,
            obj: 0,
            depth: 0,
            in_string: false,
            escaped: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simple::testkit::run;

    fn bytes(v: &[&str]) -> Vec<Vec<Vec<u8>>> {
        vec![v.iter().map(|c| c.as_bytes().to_vec()).collect()]
    }

    fn strings(v: Vec<Vec<u8>>) -> Vec<String> {
        v.into_iter()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    #[test]
    fn objects_with_braces_in_strings_and_escapes() {
        let f = json(64);
        let got = run(
            &f,
            bytes(&[
                "[{\"a\":\"}\\\"{\"},",
                " {\"b\":{\"c\":[1,{}]}}\n",
                "]{\"d\":\"\\\\\"}",
            ]),
        )
        .map(strings);
        assert_eq!(
            got.ok(),
            Some(vec![
                "{\"a\":\"}\\\"{\"}".to_owned(),
                "{\"b\":{\"c\":[1,{}]}}".to_owned(),
                "{\"d\":\"\\\\\"}".to_owned(),
            ])
        );
    }

    #[test]
    fn errors_name_the_position() {
        let e = run(&json(64), bytes(&["{} x"])).expect_err("junk");
        assert_eq!(
            e.to_string(),
            "stage 'json_framing#0' failed: unexpected byte 0x78 ('x') at byte 3, outside any JSON object"
        );
        let e = run(&json(5), bytes(&["{}  {\"ab", "c\":1}"])).expect_err("too long");
        assert_eq!(
            e.to_string(),
            "stage 'json_framing#0' failed: frame starting at byte 4 is 6 bytes long, more than the maximum of 5"
        );
        let e = run(&json(64), bytes(&["{\"a\":", "{}"])).expect_err("truncated");
        assert_eq!(
            e.to_string(),
            "stage 'json_framing#0' failed: stream completed inside a frame starting at byte 0 (7 bytes buffered)"
        );
        // The closing brace counts: a 7-byte object is too long for a maximum of 6.
        let e = run(&json(6), bytes(&["{\"a\":1}"])).expect_err("too long");
        assert_eq!(
            e.to_string(),
            "stage 'json_framing#0' failed: frame starting at byte 0 is 7 bytes long, more than the maximum of 6"
        );
        assert_eq!(
            run(&json(7), bytes(&["{\"a\":1}"])).map(strings).ok(),
            Some(vec!["{\"a\":1}".to_owned()])
        );
        let e = run(&json(64), bytes(&["{}}"])).expect_err("unbalanced");
        assert_eq!(
            e.to_string(),
            "stage 'json_framing#0' failed: unbalanced '}' at byte 2"
        );
    }
}
