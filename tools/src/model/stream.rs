//! The two streaming shapes: OpenAI chat-completion chunks and Anthropic message events, over SSE.
//! A client that goes away ends the stream at the next write or during a wait (`aborted`).

use std::time::Duration;

use axum::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::Turn;

/// The client went away.
struct Gone;

/// Writes SSE frames to the response body, pacing and watching for the client leaving.
pub(super) struct SseWriter {
    sender: mpsc::Sender<Bytes>,
    release: watch::Receiver<u64>,
    hang_cap: Duration,
    content_sent: usize,
}

impl SseWriter {
    pub(super) fn new(
        sender: mpsc::Sender<Bytes>,
        mut release: watch::Receiver<u64>,
        hang_cap: Duration,
    ) -> SseWriter {
        release.borrow_and_update();
        SseWriter {
            sender,
            release,
            hang_cap,
            content_sent: 0,
        }
    }

    async fn pause(&self, delay: Duration) -> Result<(), Gone> {
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            () = self.sender.closed() => Err(Gone),
        }
    }

    async fn send(&self, event: Option<&str>, data: &str, delay: Duration) -> Result<(), Gone> {
        if !delay.is_zero() {
            self.pause(delay).await?;
        }
        let frame = match event {
            Some(event) => format!("event: {event}\ndata: {data}\n\n"),
            None => format!("data: {data}\n\n"),
        };
        self.sender.send(Bytes::from(frame)).await.map_err(|_| Gone)
    }

    /// Holds the stream until a release, the client leaving, or the cap.
    async fn hang(&mut self, turn: &Turn) -> Result<(), Gone> {
        let cap = turn.hang_ms.map_or(self.hang_cap, Duration::from_millis);
        tokio::select! {
            () = tokio::time::sleep(cap) => Ok(()),
            _ = self.release.changed() => Ok(()),
            () = self.sender.closed() => Err(Gone),
        }
    }

    /// Counts a content chunk; true when the turn says to drop the connection now.
    fn content_chunk(&mut self, turn: &Turn) -> bool {
        self.content_sent += 1;
        turn.drop_after
            .is_some_and(|after| self.content_sent >= after)
    }
}

fn split_text(text: &str, pieces: usize) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    let chars: Vec<char> = text.chars().collect();
    let step = chars.len().div_ceil(pieces.max(1)).max(1);
    chars
        .chunks(step)
        .map(|chunk| chunk.iter().collect())
        .collect()
}

fn call_id(call: &super::ToolCall, prefix: &str) -> String {
    call.id.clone().unwrap_or_else(|| {
        format!(
            "{prefix}{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        )
    })
}

fn usage(turn: &Turn) -> Value {
    turn.usage
        .clone()
        .unwrap_or_else(|| json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}))
}

/// A whole (non-streamed) OpenAI completion.
pub(super) fn openai_whole(turn: &Turn, model: &str) -> Value {
    let mut message = json!({"role": "assistant", "content": if turn.text.is_empty() { Value::Null } else { Value::from(turn.text.clone()) }});
    if !turn.tool_calls.is_empty() {
        message["tool_calls"] = turn
            .tool_calls
            .iter()
            .map(|call| {
                json!({"id": call_id(call, "call_"), "type": "function",
                "function": {"name": call.name, "arguments": call.arguments.to_string()}})
            })
            .collect();
    }
    let finish = if turn.tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    json!({"id": "chatcmpl-octo", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage(turn)})
}

/// Streams a turn as OpenAI chat-completion chunks; returns the outcome.
pub(super) async fn openai(mut writer: SseWriter, turn: &Turn, model: &str) -> &'static str {
    match openai_stream(&mut writer, turn, model).await {
        Ok(outcome) => outcome,
        Err(Gone) => "aborted",
    }
}

async fn openai_stream(
    writer: &mut SseWriter,
    turn: &Turn,
    model: &str,
) -> Result<&'static str, Gone> {
    let id = format!(
        "chatcmpl-{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    );
    let delay = Duration::from_millis(turn.chunk_delay_ms.unwrap_or(10));
    let pieces = turn.chunks.unwrap_or(3);
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    writer
        .send(
            None,
            &chunk(json!({"role": "assistant", "content": ""}), None),
            Duration::ZERO,
        )
        .await?;
    for piece in split_text(&turn.thinking, pieces) {
        writer
            .send(
                None,
                &chunk(json!({"reasoning_content": piece}), None),
                delay,
            )
            .await?;
        if writer.content_chunk(turn) {
            return Ok("dropped");
        }
    }
    for piece in split_text(&turn.text, pieces) {
        writer
            .send(None, &chunk(json!({"content": piece}), None), delay)
            .await?;
        if writer.content_chunk(turn) {
            return Ok("dropped");
        }
    }
    if turn.hang {
        writer.hang(turn).await?;
    }
    if let Some(message) = &turn.stream_error {
        let error = json!({"error": {"message": message, "type": "server_error", "code": null}});
        writer
            .send(None, &error.to_string(), Duration::ZERO)
            .await?;
        return Ok("stream_error");
    }
    for (index, call) in turn.tool_calls.iter().enumerate() {
        let start = json!({"tool_calls": [{"index": index, "id": call_id(call, "call_"), "type": "function",
            "function": {"name": call.name, "arguments": ""}}]});
        writer.send(None, &chunk(start, None), delay).await?;
        for piece in split_text(&call.arguments.to_string(), 2) {
            writer
                .send(
                    None,
                    &chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                        None,
                    ),
                    delay,
                )
                .await?;
            if writer.content_chunk(turn) {
                return Ok("dropped");
            }
        }
    }
    let finish = if turn.tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    writer
        .send(None, &chunk(json!({}), Some(finish)), delay)
        .await?;
    let with_usage = json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [], "usage": usage(turn)});
    writer
        .send(None, &with_usage.to_string(), Duration::ZERO)
        .await?;
    writer.send(None, "[DONE]", Duration::ZERO).await?;
    Ok("ok")
}

/// Streams a turn as Anthropic message events; returns the outcome.
pub(super) async fn anthropic(mut writer: SseWriter, turn: &Turn, model: &str) -> &'static str {
    match anthropic_stream(&mut writer, turn, model).await {
        Ok(outcome) => outcome,
        Err(Gone) => "aborted",
    }
}

async fn anthropic_stream(
    writer: &mut SseWriter,
    turn: &Turn,
    model: &str,
) -> Result<&'static str, Gone> {
    let delay = Duration::from_millis(turn.chunk_delay_ms.unwrap_or(10));
    let pieces = turn.chunks.unwrap_or(3);
    let usage = usage(turn);
    async fn event(
        writer: &SseWriter,
        name: &str,
        mut data: Value,
        delay: Duration,
    ) -> Result<(), Gone> {
        data["type"] = Value::from(name);
        writer.send(Some(name), &data.to_string(), delay).await
    }
    let message_id = format!("msg_{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    event(writer, "message_start", json!({"message": {"id": message_id, "type": "message", "role": "assistant",
        "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": usage.get("prompt_tokens").cloned().unwrap_or(json!(10)), "output_tokens": 1}}}), delay).await?;
    let mut index = 0;
    if !turn.thinking.is_empty() {
        event(
            writer,
            "content_block_start",
            json!({"index": index, "content_block": {"type": "thinking", "thinking": ""}}),
            delay,
        )
        .await?;
        for piece in split_text(&turn.thinking, pieces) {
            event(
                writer,
                "content_block_delta",
                json!({"index": index, "delta": {"type": "thinking_delta", "thinking": piece}}),
                delay,
            )
            .await?;
            if writer.content_chunk(turn) {
                return Ok("dropped");
            }
        }
        event(
            writer,
            "content_block_delta",
            json!({"index": index, "delta": {"type": "signature_delta", "signature": "octo"}}),
            delay,
        )
        .await?;
        event(writer, "content_block_stop", json!({"index": index}), delay).await?;
        index += 1;
    }
    if !turn.text.is_empty() {
        event(
            writer,
            "content_block_start",
            json!({"index": index, "content_block": {"type": "text", "text": ""}}),
            delay,
        )
        .await?;
        for piece in split_text(&turn.text, pieces) {
            event(
                writer,
                "content_block_delta",
                json!({"index": index, "delta": {"type": "text_delta", "text": piece}}),
                delay,
            )
            .await?;
            if writer.content_chunk(turn) {
                return Ok("dropped");
            }
        }
        if turn.hang {
            writer.hang(turn).await?;
        }
        event(writer, "content_block_stop", json!({"index": index}), delay).await?;
        index += 1;
    } else if turn.hang {
        writer.hang(turn).await?;
    }
    if let Some(message) = &turn.stream_error {
        event(
            writer,
            "error",
            json!({"error": {"type": "overloaded_error", "message": message}}),
            Duration::ZERO,
        )
        .await?;
        return Ok("stream_error");
    }
    for call in &turn.tool_calls {
        event(
            writer,
            "content_block_start",
            json!({"index": index, "content_block": {"type": "tool_use",
            "id": call_id(call, "toolu_"), "name": call.name, "input": {}}}),
            delay,
        )
        .await?;
        for piece in split_text(&call.arguments.to_string(), 2) {
            event(writer, "content_block_delta", json!({"index": index, "delta": {"type": "input_json_delta", "partial_json": piece}}), delay).await?;
            if writer.content_chunk(turn) {
                return Ok("dropped");
            }
        }
        event(writer, "content_block_stop", json!({"index": index}), delay).await?;
        index += 1;
    }
    let stop = if turn.tool_calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    event(
        writer,
        "message_delta",
        json!({"delta": {"stop_reason": stop, "stop_sequence": null},
        "usage": {"output_tokens": usage.get("completion_tokens").cloned().unwrap_or(json!(5))}}),
        delay,
    )
    .await?;
    event(writer, "message_stop", json!({}), delay).await?;
    Ok("ok")
}
