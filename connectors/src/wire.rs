//! Framing on the wire and the element codecs: raw bytes, UTF-8 lines, JSON values, and the
//! JSON [`Envelope`] (format in docs/wire-format.md).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use weir_operators::framing::{FramingError, LengthField, StreamDecoder};

/// Default maximum frame length: 1 MiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// How frames are delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// Each frame is followed by `\n` (newline-delimited; JSON lines are this framing).
    #[default]
    Lines,
    /// Each frame is preceded by its length as a 4-byte big-endian unsigned integer (payload
    /// only, header not counted).
    LengthPrefixed,
}

impl Framing {
    /// A decoder for one byte stream, frames at most `max` payload bytes.
    pub(crate) fn decoder(self, max: usize) -> Result<StreamDecoder, FramingError> {
        match self {
            Self::Lines => StreamDecoder::delimiter(b"\n", max),
            Self::LengthPrefixed => {
                let total = max.checked_add(4).ok_or_else(|| {
                    FramingError::InvalidParameter(format!("max frame length {max} is too large"))
                })?;
                StreamDecoder::length_field(LengthField::new(4, total).strip_header(true))
            }
        }
    }

    /// Appends `payload` framed to `out`; an error says why it cannot be framed.
    pub(crate) fn encode(
        self,
        payload: &[u8],
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        if payload.len() > max {
            return Err(format!(
                "{} bytes long, more than the maximum frame length of {max}",
                payload.len()
            ));
        }
        match self {
            Self::Lines => {
                if let Some(i) = payload.iter().position(|&b| b == b'\n') {
                    return Err(format!(
                        "holds a newline at byte {i}, which would end its line"
                    ));
                }
                out.extend_from_slice(payload);
                out.push(b'\n');
            }
            Self::LengthPrefixed => {
                let len = u32::try_from(payload.len())
                    .map_err(|_| format!("{} bytes do not fit a u32 length", payload.len()))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(payload);
            }
        }
        Ok(())
    }
}

/// The JSON wire envelope other programs produce into and consume from a job: one JSON object
/// per frame, `{"type": .., "key": .., "payload": .., "timestamp": ..}`. `type` is required,
/// `key` (a string) and `timestamp` (milliseconds since the Unix epoch) are optional, `payload`
/// is any JSON value (null when absent); unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// What the message is (an application-defined name).
    #[serde(rename = "type")]
    pub kind: String,
    /// The key the message belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The message body.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// Event time in milliseconds since the Unix epoch, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

impl Envelope {
    /// An envelope of `kind` carrying `payload`, without key or timestamp.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            kind: kind.into(),
            key: None,
            payload,
            timestamp: None,
        }
    }
    /// With a key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// With an event time (milliseconds since the Unix epoch).
    pub fn with_timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
}

/// Turns a frame's payload into an element; the error says why it does not decode and gives
/// the frame back.
pub(crate) type DecodeFn<T> = Arc<dyn Fn(Vec<u8>) -> Result<T, (String, Vec<u8>)> + Send + Sync>;
/// Appends an element's payload (unframed); the error says why it cannot be encoded.
pub(crate) type EncodeFn<T> = Arc<dyn Fn(&T, &mut Vec<u8>) -> Result<(), String> + Send + Sync>;

/// Frames as they are.
pub(crate) fn decode_bytes() -> DecodeFn<Vec<u8>> {
    Arc::new(Ok)
}

/// Frames as UTF-8 text, a trailing `\r` removed.
pub(crate) fn decode_text() -> DecodeFn<String> {
    Arc::new(|mut f: Vec<u8>| {
        if f.last() == Some(&b'\r') {
            f.pop();
        }
        String::from_utf8(f)
            .map_err(|e| (format!("invalid UTF-8: {}", e.utf8_error()), e.into_bytes()))
    })
}

/// Frames as JSON documents of `T`.
pub(crate) fn decode_json<T: DeserializeOwned + Send + 'static>() -> DecodeFn<T> {
    Arc::new(|f: Vec<u8>| match serde_json::from_slice(&f) {
        Ok(x) => Ok(x),
        Err(e) => Err((format!("invalid JSON: {e}"), f)),
    })
}

/// Byte elements as they are.
pub(crate) fn encode_bytes() -> EncodeFn<Vec<u8>> {
    Arc::new(|x: &Vec<u8>, out: &mut Vec<u8>| {
        out.extend_from_slice(x);
        Ok(())
    })
}

/// Text elements as their UTF-8 bytes.
pub(crate) fn encode_text() -> EncodeFn<String> {
    Arc::new(|x: &String, out: &mut Vec<u8>| {
        out.extend_from_slice(x.as_bytes());
        Ok(())
    })
}

/// Elements as compact JSON (one line: serde_json escapes newlines inside strings).
pub(crate) fn encode_json<T: Serialize + Send + 'static>() -> EncodeFn<T> {
    Arc::new(|x: &T, out: &mut Vec<u8>| {
        serde_json::to_writer(&mut *out, x).map_err(|e| format!("cannot encode as JSON: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_read_the_documented_format() {
        let full = r#"{"type":"click","key":"u1","payload":{"x":1},"timestamp":1700000000000,"extra":true}"#;
        let e: Envelope = serde_json::from_str(full).unwrap();
        assert_eq!(
            e,
            Envelope::new("click", serde_json::json!({"x": 1}))
                .with_key("u1")
                .with_timestamp(1_700_000_000_000)
        );
        let bare: Envelope = serde_json::from_str(r#"{"type":"tick"}"#).unwrap();
        assert_eq!(bare, Envelope::new("tick", serde_json::Value::Null));
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            r#"{"type":"tick","payload":null}"#
        );
        assert!(serde_json::from_str::<Envelope>(r#"{"key":"k"}"#).is_err());
    }

    #[test]
    fn framing_encodes_lines_and_length_prefixes() {
        let mut out = Vec::new();
        Framing::Lines.encode(b"ab", 4, &mut out).unwrap();
        Framing::LengthPrefixed.encode(b"xyz", 4, &mut out).unwrap();
        assert_eq!(out, b"ab\n\0\0\0\x03xyz".to_vec());
        assert_eq!(
            Framing::Lines.encode(b"a\nb", 4, &mut out),
            Err("holds a newline at byte 1, which would end its line".into())
        );
        assert_eq!(
            Framing::LengthPrefixed.encode(b"abcde", 4, &mut out),
            Err("5 bytes long, more than the maximum frame length of 4".into())
        );
    }
}
