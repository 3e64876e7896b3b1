//! Captured pi transcripts (../shared/design/samples, kept here as fixtures) through the framing:
//! every line is one record with a `type`, whatever the chunk boundaries.

use octo_runner::jsonl::{LineDecoder, Record};

fn decode(bytes: &[u8], chunk_bytes: usize) -> Vec<Record> {
    let mut decoder = LineDecoder::default();
    let mut out = Vec::new();
    for chunk in bytes.chunks(chunk_bytes) {
        decoder.push(chunk, &mut out);
    }
    decoder.finish(&mut out);
    out
}

#[test]
fn captured_rpc_transcripts_decode_line_by_line() {
    let fixtures = [
        (
            "pi-0.73.1-rpc-tool-turn-and-abort.jsonl",
            &include_bytes!("fixtures/pi-0.73.1-rpc-tool-turn-and-abort.jsonl")[..],
        ),
        (
            "pi-1.3.0-rpc-tool-turn.jsonl",
            &include_bytes!("fixtures/pi-1.3.0-rpc-tool-turn.jsonl")[..],
        ),
        (
            "pi-0.73.1-session.jsonl",
            &include_bytes!("fixtures/pi-0.73.1-session.jsonl")[..],
        ),
        (
            "pi-0.73.1-session-fork.jsonl",
            &include_bytes!("fixtures/pi-0.73.1-session-fork.jsonl")[..],
        ),
    ];
    for (name, bytes) in fixtures {
        let n_lines = bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .count();
        let records = decode(bytes, bytes.len());
        assert_eq!(records.len(), n_lines, "{name}: one record per line");
        for record in &records {
            let Record::Value(value) = record else {
                panic!("{name}: {record:?}")
            };
            assert!(
                value.get("type").and_then(|t| t.as_str()).is_some(),
                "{name}: {value}"
            );
        }
        for chunk_bytes in [1, 7, 4096] {
            assert_eq!(
                decode(bytes, chunk_bytes),
                records,
                "{name} in chunks of {chunk_bytes}"
            );
        }
    }
}
