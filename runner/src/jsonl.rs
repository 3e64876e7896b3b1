//! Framing of a harness's JSON-lines stdout (pi's RPC mode, HARNESSES.md section 4).
//!
//! Records are split on `\n` only: payloads carry raw U+2028/U+2029, which Unicode-aware line
//! readers would split on. A trailing `\r` is dropped. One line may hold several JSON values
//! (seen with oqto), so each line is read with a streaming decoder. A bad value is reported and
//! the decoder goes on with the next line; a line over the limit is reported and skipped without
//! being buffered, so memory stays bounded whatever the harness writes.

use serde_json::Value;

/// Longest line kept, in bytes. pi 0.73.1 writes lines of hundreds of KiB (each update carries
/// whole snapshots); HARNESSES.md advises not to cap below ~16 MiB.
pub const LINE_BYTES_MAX: usize = 16 << 20;

/// One decoded record, or why a stretch of output was dropped.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Value(Value),
    /// A value that is not JSON; the rest of its line was dropped.
    Bad {
        detail: String,
    },
    /// A line over the limit, dropped whole.
    TooLong {
        bytes: usize,
    },
}

/// Incremental decoder: feed it stdout chunks as they come.
#[derive(Debug)]
pub struct LineDecoder {
    buffer: Vec<u8>,
    line_bytes_max: usize,
    /// Bytes of an overlong line seen so far; its end is being skipped.
    skipping: Option<usize>,
}

impl Default for LineDecoder {
    fn default() -> LineDecoder {
        LineDecoder::new(LINE_BYTES_MAX)
    }
}

impl LineDecoder {
    /// A decoder that keeps lines up to `line_bytes_max` bytes.
    pub fn new(line_bytes_max: usize) -> LineDecoder {
        LineDecoder {
            buffer: Vec::new(),
            line_bytes_max,
            skipping: None,
        }
    }

    /// Decodes every complete line of `chunk` (with what was buffered before) into `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<Record>) {
        while !chunk.is_empty() {
            let newline = chunk.iter().position(|byte| *byte == b'\n');
            let (piece, rest, complete) = match newline {
                Some(at) => (&chunk[..at], &chunk[at + 1..], true),
                None => (chunk, &[][..], false),
            };
            chunk = rest;
            if let Some(skipped) = self.skipping.as_mut() {
                *skipped += piece.len();
                if complete {
                    out.push(Record::TooLong { bytes: *skipped });
                    self.skipping = None;
                }
                continue;
            }
            if self.buffer.len() + piece.len() > self.line_bytes_max {
                let seen = self.buffer.len() + piece.len();
                self.buffer.clear();
                if complete {
                    out.push(Record::TooLong { bytes: seen });
                } else {
                    self.skipping = Some(seen);
                }
                continue;
            }
            self.buffer.extend_from_slice(piece);
            if complete {
                let line = std::mem::take(&mut self.buffer);
                decode_line(&line, out);
            }
        }
    }

    /// Decodes a last line without a newline (at end of stream).
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        if let Some(skipped) = self.skipping.take() {
            out.push(Record::TooLong { bytes: skipped });
        }
        let line = std::mem::take(&mut self.buffer);
        decode_line(&line, out);
    }
}

fn decode_line(line: &[u8], out: &mut Vec<Record>) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    for value in serde_json::Deserializer::from_slice(line).into_iter::<Value>() {
        match value {
            Ok(value) => out.push(Record::Value(value)),
            Err(e) => {
                out.push(Record::Bad {
                    detail: e.to_string(),
                });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn decode_all(chunks: &[&[u8]], max: usize) -> Vec<Record> {
        let mut decoder = LineDecoder::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.push(chunk, &mut out);
        }
        decoder.finish(&mut out);
        out
    }

    #[test]
    fn splits_on_newline_only_and_reads_several_values_per_line() {
        let text = "{\"a\":\"x\u{2028}y\"}\r\n{\"b\":1}{\"c\":2}\n\n{\"d\":3}";
        let out = decode_all(&[text.as_bytes()], LINE_BYTES_MAX);
        assert_eq!(
            out,
            vec![
                Record::Value(json!({"a": "x\u{2028}y"})),
                Record::Value(json!({"b": 1})),
                Record::Value(json!({"c": 2})),
                Record::Value(json!({"d": 3})),
            ]
        );
    }

    #[test]
    fn bad_and_overlong_lines_are_reported_and_skipped() {
        let long = format!("{{\"x\":\"{}\"}}", "z".repeat(100));
        let text = format!("not json\n{long}\n{{\"ok\":true}}\n");
        let out = decode_all(&[text.as_bytes()], 64);
        assert!(matches!(out[0], Record::Bad { .. }), "{out:?}");
        assert_eq!(out[1], Record::TooLong { bytes: long.len() });
        assert_eq!(out[2], Record::Value(json!({"ok": true})));
        assert_eq!(out.len(), 3);
        // The overlong line arriving in pieces is skipped without being buffered.
        let pieces: Vec<&[u8]> = text.as_bytes().chunks(7).collect();
        assert_eq!(decode_all(&pieces, 64), out);
    }

    proptest! {
        #[test]
        fn chunking_never_changes_the_records(cuts in proptest::collection::vec(0usize..400, 0..12)) {
            let text = "{\"type\":\"message_update\",\"d\":\"a\u{2029}b\"}\n{\"x\":1} {\"y\":[1,2]}\r\nbroken{\n{\"z\":null}\n".repeat(3);
            let bytes = text.as_bytes();
            let whole = decode_all(&[bytes], LINE_BYTES_MAX);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cuts {
                chunks.push(&bytes[start..cut]);
                start = cut;
            }
            chunks.push(&bytes[start..]);
            prop_assert_eq!(decode_all(&chunks, LINE_BYTES_MAX), whole);
        }
    }
}
