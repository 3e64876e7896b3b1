//! `octo-bench codec`: encode and decode speed of the frames on Octo's hot paths, in both
//! encodings: the outbound `entry` frame of a text delta (the most frequent frame) and of a
//! finished assistant message, the inbound `prompt` command through the client frame decoder, and
//! a stored log entry decoded as the log's readers do.

use std::time::{Duration, Instant};

use octo_core::event::{StreamMessageEnd, StreamTextDelta};
use octo_core::frame::{AgentServerFrame, EntryFrame};
use octo_core::message::{TextPart, ToolCallPart};
use octo_core::{
    Body, CommandId, Encoding, Event, Kind, LogEntry, Message, MessageId, Offset, Part, PartId,
    Producer, ProducerId, Role, ServerFrame, SessionId, UserId, codec, decode_client_frame,
};
use serde_json::json;

/// Arguments of `octo-bench codec`.
#[derive(Debug, clap::Args)]
pub struct CodecArgs {
    /// Seconds to run each measurement.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
}

fn entry(body: Event) -> anyhow::Result<LogEntry> {
    Ok(LogEntry {
        offset: Offset::new(1_234_567)?,
        ts_ms: 1_795_549_163_000,
        user_id: UserId::new("u1")?,
        session_id: SessionId::new(),
        kind: Kind::Event,
        producer: Producer {
            id: ProducerId::new("rn-u1")?,
            seq: 4242,
        },
        command_id: None,
        body: Body::Event(body),
    })
}

fn delta_entry() -> anyhow::Result<LogEntry> {
    entry(Event::StreamTextDelta(StreamTextDelta {
        message_id: MessageId::new(),
        part_id: PartId::new(),
        index: 0,
        delta: "The function returns early when the cache is warm, so the second call ".into(),
    }))
}

fn message_end_entry() -> anyhow::Result<LogEntry> {
    let text = "Here is what I changed and why. ".repeat(128);
    entry(Event::StreamMessageEnd(StreamMessageEnd {
        message: Message {
            id: MessageId::new(),
            role: Role::Assistant,
            parts: vec![
                Part::Text(TextPart {
                    id: PartId::new(),
                    text,
                    truncated: false,
                }),
                Part::ToolCall(ToolCallPart {
                    id: PartId::new(),
                    tool_call_id: "call_93268fa1".into(),
                    name: "bash".into(),
                    input: json!({"command": "cargo test -p octo-log", "timeout": 120}),
                }),
            ],
            created_ms: 1_795_549_163_752,
            completed_ms: Some(1_795_549_163_880),
            provider: Some("fake".into()),
            model_id: Some("fake-model".into()),
            stop_reason: Some(octo_core::message::StopReason::ToolUse),
            error: None,
            harness_ref: None,
        },
    }))
}

/// Runs `op` repeatedly for `run_for`; returns operations per second.
fn measure(run_for: Duration, mut op: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut n_ops = 0u64;
    while started.elapsed() < run_for {
        for _ in 0..64 {
            op()?;
        }
        n_ops += 64;
    }
    Ok(n_ops as f64 / started.elapsed().as_secs_f64())
}

fn figures(ops_per_s: f64, bytes: usize) -> serde_json::Value {
    json!({
        "bytes": bytes,
        "ops_per_s": ops_per_s.round(),
        "mb_per_s": (ops_per_s * bytes as f64 / 1e6 * 10.0).round() / 10.0,
    })
}

/// Runs the codec benchmark.
///
/// # Errors
/// A frame that does not encode or decode (a bug).
pub fn run(args: &CodecArgs) -> anyhow::Result<serde_json::Value> {
    let run_for = Duration::from_secs_f64(args.seconds);
    let mut report = serde_json::Map::new();
    for encoding in [Encoding::Json, Encoding::Msgpack] {
        let name = match encoding {
            Encoding::Json => "json",
            Encoding::Msgpack => "msgpack",
        };
        for (label, entry) in [
            ("entry_text_delta", delta_entry()?),
            ("entry_message_end", message_end_entry()?),
        ] {
            let frame = ServerFrame::Agent(AgentServerFrame::Entry(EntryFrame {
                session_id: entry.session_id,
                entry: entry.clone(),
            }));
            let bytes = codec::encode(encoding, &frame)?;
            let encode = measure(run_for, || {
                std::hint::black_box(codec::encode(encoding, std::hint::black_box(&frame))?);
                Ok(())
            })?;
            report.insert(
                format!("{name}_encode_{label}"),
                figures(encode, bytes.len()),
            );
            let decode = measure(run_for, || {
                let decoded: ServerFrame =
                    codec::decode(encoding, std::hint::black_box(&bytes), usize::MAX)?;
                std::hint::black_box(decoded);
                Ok(())
            })?;
            report.insert(
                format!("{name}_decode_{label}"),
                figures(decode, bytes.len()),
            );
        }
        let prompt = match encoding {
            Encoding::Json => serde_json::to_vec(&json!({
                "ch": "agent", "type": "prompt", "command_id": CommandId::new(),
                "session_id": SessionId::new(), "text": "Run the tests and fix what fails.",
            }))?,
            Encoding::Msgpack => rmp_serde::to_vec_named(&json!({
                "ch": "agent", "type": "prompt", "command_id": CommandId::new(),
                "session_id": SessionId::new(), "text": "Run the tests and fix what fails.",
            }))?,
        };
        let decode = measure(run_for, || {
            std::hint::black_box(decode_client_frame(
                encoding,
                std::hint::black_box(&prompt),
            )?);
            Ok(())
        })?;
        report.insert(
            format!("{name}_decode_client_prompt"),
            figures(decode, prompt.len()),
        );
    }
    // A stored entry decoded as the log's readers and subscribers do (msgpack, named).
    for (label, entry) in [
        ("text_delta", delta_entry()?),
        ("message_end", message_end_entry()?),
    ] {
        let stored = codec::to_msgpack(&entry)?;
        let decode = measure(run_for, || {
            let decoded: LogEntry = codec::from_msgpack(std::hint::black_box(&stored))?;
            std::hint::black_box(decoded);
            Ok(())
        })?;
        report.insert(
            format!("msgpack_decode_log_entry_{label}"),
            figures(decode, stored.len()),
        );
    }
    Ok(json!({ "bench": "codec", "seconds_per_figure": args.seconds, "figures": report }))
}
