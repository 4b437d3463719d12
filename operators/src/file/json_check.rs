//! A byte-level JSON syntax check (RFC 8259) for JSON lines: one value per line, nesting at
//! most [`MAX_DEPTH`] deep. It validates; it builds nothing.

/// How deep arrays and objects may nest.
pub(crate) const MAX_DEPTH: usize = 128;

/// Checks that `s` holds exactly one JSON value (surrounding whitespace allowed).
pub(crate) fn check(s: &[u8]) -> Result<(), String> {
    if std::str::from_utf8(s).is_err() {
        return Err("not UTF-8".to_owned());
    }
    let mut p = Parser { s, i: 0 };
    p.ws();
    p.value(0)?;
    p.ws();
    if p.i < s.len() {
        return Err(p.unexpected("after the JSON value"));
    }
    Ok(())
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn unexpected(&self, what: &str) -> String {
        match self.peek() {
            Some(b) => format!(
                "invalid JSON: unexpected {:?} at column {} {what}",
                char::from(b),
                self.i + 1
            ),
            None => format!(
                "invalid JSON: the line ends at column {} {what}",
                self.i + 1
            ),
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), String> {
        if depth >= MAX_DEPTH {
            return Err(format!("invalid JSON: nested deeper than {MAX_DEPTH}"));
        }
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.eat(b'}') {
                    return Ok(());
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.unexpected("where an object key was expected"));
                    }
                    self.string()?;
                    self.ws();
                    if !self.eat(b':') {
                        return Err(self.unexpected("where ':' was expected"));
                    }
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    if self.eat(b'}') {
                        return Ok(());
                    }
                    if !self.eat(b',') {
                        return Err(self.unexpected("where ',' or '}' was expected"));
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    if self.eat(b']') {
                        return Ok(());
                    }
                    if !self.eat(b',') {
                        return Err(self.unexpected("where ',' or ']' was expected"));
                    }
                }
            }
            Some(b'"') => self.string(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.unexpected("where a value was expected")),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.unexpected("in a literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<(), String> {
        self.eat(b'-');
        if !self.eat(b'0') && self.digits() == 0 {
            return Err(self.unexpected("in a number"));
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(self.unexpected("in a number's fraction"));
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(self.unexpected("in a number's exponent"));
            }
        }
        Ok(())
    }

    fn string(&mut self) -> Result<(), String> {
        self.i += 1;
        loop {
            match self.peek() {
                None => return Err(self.unexpected("inside a string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            self.i += 1;
                            for _ in 0..4 {
                                if !matches!(self.peek(), Some(b) if b.is_ascii_hexdigit()) {
                                    return Err(self.unexpected("in a \\u escape"));
                                }
                                self.i += 1;
                            }
                        }
                        _ => return Err(self.unexpected("in an escape")),
                    }
                }
                Some(0..0x20) => return Err(self.unexpected("(a control byte) inside a string")),
                Some(_) => self.i += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn valid_values() {
        for ok in [
            r#"{"a":1,"b":[true,false,null],"c":{"d":"x\"y\u00e9"}}"#,
            "[]",
            "{}",
            " 3.5e-2 ",
            "-0",
            "\"caf\u{e9}\"",
            "[1, [2, [3]]]",
        ] {
            assert_eq!(check(ok.as_bytes()), Ok(()), "{ok}");
        }
    }

    #[test]
    fn invalid_values_say_where() {
        let cases = [
            (
                r#"{"a":1,}"#,
                "invalid JSON: unexpected '}' at column 8 where an object key was expected",
            ),
            (
                r#"{"a" 1}"#,
                "invalid JSON: unexpected '1' at column 6 where ':' was expected",
            ),
            (
                "[1 2]",
                "invalid JSON: unexpected '2' at column 4 where ',' or ']' was expected",
            ),
            (
                "01",
                "invalid JSON: unexpected '1' at column 2 after the JSON value",
            ),
            (
                "tru",
                "invalid JSON: unexpected 't' at column 1 in a literal",
            ),
            (
                r#""abc"#,
                "invalid JSON: the line ends at column 5 inside a string",
            ),
            (
                "1.",
                "invalid JSON: the line ends at column 3 in a number's fraction",
            ),
            (
                "{} {}",
                "invalid JSON: unexpected '{' at column 4 after the JSON value",
            ),
            (
                "",
                "invalid JSON: the line ends at column 1 where a value was expected",
            ),
        ];
        for (bad, want) in cases {
            assert_eq!(check(bad.as_bytes()).unwrap_err(), want, "{bad}");
        }
        let deep = "[".repeat(200);
        assert_eq!(
            check(deep.as_bytes()).unwrap_err(),
            "invalid JSON: nested deeper than 128"
        );
        assert_eq!(check(b"\"\xff\"").unwrap_err(), "not UTF-8");
    }
}
