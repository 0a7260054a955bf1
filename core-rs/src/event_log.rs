//! Event-log encoding: a batch of run events as one Postgres binary `COPY` stream.
//!
//! Appending events with `COPY flowhost.events (run_id, type, step, attempt, data) FROM STDIN
//! (FORMAT BINARY)` costs one round trip per batch and no parsing of text on the server: each
//! field arrives in its binary wire form. The format is the one `COPY ... (FORMAT BINARY)`
//! documents: a fixed header, then per row a 16-bit field count and each field as a 32-bit length
//! (-1 for NULL) followed by its bytes, then a 16-bit -1 trailer. All integers are big-endian.
//!
//! The `data` column is `jsonb`, whose binary form is a version byte (1) and the JSON text. The
//! JSON writer here is what the Python binding uses to serialise `data` straight into the stream.

use crate::error::CoreResult;
use crate::CoreError;

/// The columns an encoded stream fills, in order: the column list of the `COPY` statement.
pub const COLUMNS: &str = "run_id, type, step, attempt, data";

/// The `COPY` statement that ingests an encoded stream.
pub const COPY_STATEMENT: &str =
    "COPY flowhost.events (run_id, type, step, attempt, data) FROM STDIN (FORMAT BINARY)";

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
const FIELDS_PER_ROW: i16 = 5;
const JSONB_VERSION: u8 = 1;
const NULL_FIELD: i32 = -1;
const TRAILER: i16 = -1;

/// One event to append. `data` is written by the caller through [`RowWriter::data`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHead<'a> {
    /// The run's id, as the 16 bytes of the UUID (big-endian, as `uuid.UUID.bytes`).
    pub run_id: [u8; 16],
    /// The event type, e.g. `step.completed`.
    pub kind: &'a str,
    /// The step the event belongs to, if any.
    pub step: Option<&'a str>,
    /// The step's attempt number, if any.
    pub attempt: Option<i32>,
}

/// Builds one binary `COPY` stream of events.
///
/// ```
/// use flowhost_core::event_log::{CopyEncoder, EventHead};
///
/// let mut encoder = CopyEncoder::new();
/// let head = EventHead { run_id: [7; 16], kind: "log", step: Some("charge"), attempt: Some(1) };
/// let mut row = encoder.row(&head).unwrap();
/// row.data(|json| {
///     json.extend_from_slice(b"{\"message\":");
///     flowhost_core::event_log::write_json_string(json, "charged")
/// })
/// .unwrap();
/// let stream = encoder.finish();
/// assert!(stream.starts_with(b"PGCOPY\n\xff\r\n\0"));
/// assert!(stream.ends_with(&[0xff, 0xff]));
/// ```
#[derive(Debug, Clone)]
pub struct CopyEncoder {
    buffer: Vec<u8>,
    rows: usize,
}

impl Default for CopyEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl CopyEncoder {
    /// An encoder with the stream's header written.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An encoder whose buffer holds `bytes` before it grows (a batch's size is often known).
    #[must_use]
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buffer = Vec::with_capacity(bytes.max(SIGNATURE.len() + 10));
        buffer.extend_from_slice(SIGNATURE);
        buffer.extend_from_slice(&0_i32.to_be_bytes()); // flags: no OIDs
        buffer.extend_from_slice(&0_i32.to_be_bytes()); // no header extension
        Self { buffer, rows: 0 }
    }

    /// The rows written so far.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Starts a row with the event's head; its `data` must follow through the returned writer.
    ///
    /// # Errors
    /// [`CoreError::InvalidArgument`] if `kind` or `step` contains a NUL character, which a
    /// Postgres `text` value cannot hold. Nothing is written then.
    pub fn row(&mut self, head: &EventHead<'_>) -> CoreResult<RowWriter<'_>> {
        check_text("the event type", head.kind)?;
        if let Some(step) = head.step {
            check_text("the step name", step)?;
        }
        let start = self.buffer.len();
        self.buffer.extend_from_slice(&FIELDS_PER_ROW.to_be_bytes());
        write_field(&mut self.buffer, &head.run_id);
        write_field(&mut self.buffer, head.kind.as_bytes());
        match head.step {
            Some(step) => write_field(&mut self.buffer, step.as_bytes()),
            None => self.buffer.extend_from_slice(&NULL_FIELD.to_be_bytes()),
        }
        match head.attempt {
            Some(attempt) => write_field(&mut self.buffer, &attempt.to_be_bytes()),
            None => self.buffer.extend_from_slice(&NULL_FIELD.to_be_bytes()),
        }
        Ok(RowWriter {
            encoder: self,
            start,
        })
    }

    /// The finished stream: what to send to [`COPY_STATEMENT`].
    #[must_use]
    pub fn finish(mut self) -> Vec<u8> {
        self.buffer.extend_from_slice(&TRAILER.to_be_bytes());
        self.buffer
    }
}

/// The unfinished row of a [`CopyEncoder`]: its `data` field comes next.
///
/// Dropping it without calling [`RowWriter::data`] removes the row, so a failure while
/// serialising `data` leaves the stream as it was before the row.
#[derive(Debug)]
pub struct RowWriter<'a> {
    encoder: &'a mut CopyEncoder,
    start: usize,
}

impl RowWriter<'_> {
    /// Writes the `data` field: `write` appends the JSON text to the buffer it is given.
    ///
    /// # Errors
    /// Whatever `write` returns, or [`CoreError::InvalidArgument`] if the JSON text exceeds the
    /// 1 GiB a Postgres field can hold. The row is removed then.
    pub fn data<E>(mut self, write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<(), E>
    where
        E: From<CoreError>,
    {
        let buffer = &mut self.encoder.buffer;
        let length_at = buffer.len();
        buffer.extend_from_slice(&0_i32.to_be_bytes());
        buffer.push(JSONB_VERSION);
        if let Err(error) = write(buffer) {
            buffer.truncate(self.start);
            return Err(error);
        }
        let Ok(length) = i32::try_from(buffer.len() - length_at - 4) else {
            buffer.truncate(self.start);
            return Err(CoreError::InvalidArgument(
                "an event's data is larger than the 1 GiB Postgres allows in a field".to_owned(),
            )
            .into());
        };
        buffer[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
        self.encoder.rows += 1;
        // The row is complete: forget `start`, so that dropping `self` keeps it.
        self.start = usize::MAX;
        Ok(())
    }
}

impl Drop for RowWriter<'_> {
    fn drop(&mut self) {
        if self.start != usize::MAX {
            self.encoder.buffer.truncate(self.start);
        }
    }
}

fn write_field(buffer: &mut Vec<u8>, bytes: &[u8]) {
    // Heads are names and ids: far below the i32 limit, which `check_text` does not need to test.
    let length = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    buffer.extend_from_slice(&length.to_be_bytes());
    buffer.extend_from_slice(bytes);
}

fn check_text(what: &str, text: &str) -> CoreResult<()> {
    if text.contains('\0') {
        return Err(CoreError::InvalidArgument(format!(
            "{what} contains a NUL character, which Postgres text cannot hold: {text:?}"
        )));
    }
    if text.len() > 1 << 20 {
        return Err(CoreError::InvalidArgument(format!(
            "{what} is {} bytes long; at most 1 MiB is accepted",
            text.len()
        )));
    }
    Ok(())
}

/// Appends `text` as a JSON string (quoted and escaped) to `buffer`.
///
/// # Errors
/// [`CoreError::InvalidArgument`] if `text` contains a NUL character: `jsonb` refuses `\u0000`,
/// and refusing here names the value instead of failing the whole `COPY` on the server.
pub fn write_json_string(buffer: &mut Vec<u8>, text: &str) -> CoreResult<()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buffer.reserve(text.len() + 2);
    buffer.push(b'"');
    let bytes = text.as_bytes();
    let mut clean_from = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0 => {
                return Err(CoreError::InvalidArgument(format!(
                    "a string contains a NUL character, which jsonb cannot hold: {text:?}"
                )))
            }
            0x01..=0x1f => {
                buffer.extend_from_slice(&bytes[clean_from..index]);
                buffer.extend_from_slice(b"\\u00");
                buffer.push(HEX[usize::from(byte >> 4)]);
                buffer.push(HEX[usize::from(byte & 0xf)]);
                clean_from = index + 1;
                continue;
            }
            _ => continue,
        };
        buffer.extend_from_slice(&bytes[clean_from..index]);
        buffer.extend_from_slice(escape);
        clean_from = index + 1;
    }
    buffer.extend_from_slice(&bytes[clean_from..]);
    buffer.push(b'"');
    Ok(())
}

/// Appends `value` as a JSON number to `buffer`: the shortest text that reads back as `value`.
///
/// # Errors
/// [`CoreError::InvalidArgument`] for NaN and the infinities, which JSON has no form for.
pub fn write_json_float(buffer: &mut Vec<u8>, value: f64) -> CoreResult<()> {
    if !value.is_finite() {
        return Err(CoreError::InvalidArgument(format!(
            "{value} is not a JSON number (NaN and infinities have no JSON form)"
        )));
    }
    // `{:?}` is the shortest round-trip form; unlike `{}` it uses an exponent for large and
    // small magnitudes (`1e300`, not 301 digits), which JSON and Postgres read alike.
    let text = format!("{value:?}");
    buffer.extend_from_slice(text.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head<'a>(kind: &'a str, step: Option<&'a str>, attempt: Option<i32>) -> EventHead<'a> {
        EventHead {
            run_id: *b"0123456789abcdef",
            kind,
            step,
            attempt,
        }
    }

    fn json(text: &str) -> Vec<u8> {
        let mut buffer = Vec::new();
        write_json_string(&mut buffer, text).unwrap();
        buffer
    }

    #[test]
    fn an_empty_stream_is_header_and_trailer() {
        let stream = CopyEncoder::new().finish();
        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(stream, expected);
    }

    #[test]
    fn a_row_has_five_fields_with_nulls_and_a_jsonb_version_byte() {
        let mut encoder = CopyEncoder::new();
        encoder
            .row(&head("emit", None, Some(2)))
            .unwrap()
            .data(|buffer| {
                buffer.extend_from_slice(b"{}");
                Ok::<(), CoreError>(())
            })
            .unwrap();
        assert_eq!(encoder.rows(), 1);
        let stream = encoder.finish();
        let row = &stream[19..stream.len() - 2];
        let mut expected = vec![0, 5];
        expected.extend_from_slice(&[0, 0, 0, 16]);
        expected.extend_from_slice(b"0123456789abcdef");
        expected.extend_from_slice(&[0, 0, 0, 4]);
        expected.extend_from_slice(b"emit");
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // step: NULL
        expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 2]); // attempt: int4 2
        expected.extend_from_slice(&[0, 0, 0, 3, 1, b'{', b'}']); // jsonb v1 "{}"
        assert_eq!(row, expected);
    }

    #[test]
    fn a_failed_data_write_removes_the_row() {
        let mut encoder = CopyEncoder::new();
        let before = encoder.clone().finish();
        let result = encoder
            .row(&head("log", Some("a"), None))
            .unwrap()
            .data(|buffer| {
                buffer.extend_from_slice(b"{\"half");
                Err(CoreError::InvalidArgument("no".to_owned()))
            });
        assert!(result.is_err());
        assert_eq!(encoder.rows(), 0);
        assert_eq!(encoder.finish(), before);
    }

    #[test]
    fn a_row_dropped_without_data_is_removed() {
        let mut encoder = CopyEncoder::new();
        drop(encoder.row(&head("log", None, None)).unwrap());
        assert_eq!(encoder.finish(), CopyEncoder::new().finish());
    }

    #[test]
    fn nul_characters_in_text_are_refused_before_anything_is_written() {
        let mut encoder = CopyEncoder::new();
        let error = encoder.row(&head("lo\0g", None, None)).unwrap_err();
        assert!(error.to_string().contains("event type"));
        let error = encoder.row(&head("log", Some("st\0ep"), None)).unwrap_err();
        assert!(error.to_string().contains("step name"));
        assert_eq!(encoder.finish(), CopyEncoder::new().finish());
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_control_characters() {
        assert_eq!(json("plain"), b"\"plain\"");
        assert_eq!(json("a\"b\\c"), b"\"a\\\"b\\\\c\"");
        assert_eq!(json("\n\r\t\u{1}\u{1f}"), b"\"\\n\\r\\t\\u0001\\u001f\"");
        assert_eq!(json("é€😀"), "\"é€😀\"".as_bytes());
        assert!(write_json_string(&mut Vec::new(), "a\0b").is_err());
    }

    #[test]
    fn json_floats_are_shortest_round_trip_and_finite() {
        let text = |value: f64| {
            let mut buffer = Vec::new();
            write_json_float(&mut buffer, value).unwrap();
            String::from_utf8(buffer).unwrap()
        };
        assert_eq!(text(0.1), "0.1");
        assert_eq!(text(1.0), "1.0");
        assert_eq!(text(-0.0), "-0.0");
        assert_eq!(text(1e300), "1e300");
        assert_eq!(text(2.5e-8), "2.5e-8");
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(write_json_float(&mut Vec::new(), value).is_err());
        }
    }
}
