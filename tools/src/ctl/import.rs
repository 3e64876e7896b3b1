//! `import`: pi session files as hstry conversations, through hstry's own gRPC API (so they
//! become the `history.*` entries of PROTOCOL.md 6.7), keyed by (`source_id: "pi"`,
//! `external_id`: pi's session id).
//!
//! Idempotent: a file whose messages are already there is left alone (nothing is appended); a
//! file that grew since gets only its new messages; one that changed otherwise is written again.

use std::path::PathBuf;

use octo_hstry::proto::read_service_client::ReadServiceClient;
use octo_hstry::proto::write_service_client::WriteServiceClient;
use octo_hstry::proto::{
    self, AppendMessagesRequest, GetMessagesRequest, WriteConversationRequest,
};
use octo_runner::pi::file::PiSessionFile;
use serde_json::{Value, json};
use tonic::transport::Channel;

use super::{Ctx, Failure};

/// The `source_id` of imported pi sessions.
pub const SOURCE: &str = "pi";

/// What an import did to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Written,
    Appended,
    Unchanged,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Written => "written",
            Outcome::Appended => "appended",
            Outcome::Unchanged => "unchanged",
        }
    }
}

fn hstry_address(ctx: &Ctx, given: Option<String>) -> Result<String, Failure> {
    let address = match given {
        Some(address) => address,
        None => {
            let dir = ctx.data_dir()?;
            std::fs::read_to_string(dir.join("hstry-addr"))
                .map(|text| text.trim().to_owned())
                .map_err(|_| {
                    Failure::Usage(format!(
                        "no hstry address: pass --hstry, or start `octo serve` (it writes {})",
                        dir.join("hstry-addr").display()
                    ))
                })?
        }
    };
    Ok(if address.contains("://") {
        address
    } else {
        format!("http://{address}")
    })
}

/// Whether two messages say the same (JSON compared as values, so key order does not matter).
fn same(a: &proto::Message, b: &proto::Message) -> bool {
    let json = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    a.role == b.role && a.content == b.content && json(&a.parts_json) == json(&b.parts_json)
}

fn messages(file: &PiSessionFile) -> Vec<proto::Message> {
    file.messages
        .iter()
        .enumerate()
        .map(|(idx, message)| {
            octo_hstry::convert::hstry_message(
                message,
                i32::try_from(idx).unwrap_or(i32::MAX),
                Some(SOURCE.to_owned()),
            )
        })
        .collect()
}

/// Imports one parsed file.
///
/// # Errors
/// The gRPC status of a refused call.
pub async fn import_file(
    channel: Channel,
    file: &PiSessionFile,
) -> Result<(Outcome, String, usize), tonic::Status> {
    let new = messages(file);
    let mut read = ReadServiceClient::new(channel.clone());
    let mut write = WriteServiceClient::new(channel);
    let existing = match read
        .get_messages(GetMessagesRequest {
            source_id: SOURCE.into(),
            external_id: file.id.clone(),
            ..Default::default()
        })
        .await
    {
        // Not found is an empty answer in hstry's API (HSTRY_API.md 7).
        Ok(response) => {
            Some(response.into_inner()).filter(|found| !found.conversation_id.is_empty())
        }
        Err(status) => return Err(status),
    };
    if let Some(existing) = &existing {
        let old = &existing.messages;
        let prefix = old.len() <= new.len() && old.iter().zip(&new).all(|(a, b)| same(a, b));
        if prefix && old.len() == new.len() {
            return Ok((Outcome::Unchanged, existing.conversation_id.clone(), 0));
        }
        if prefix {
            let added = new[old.len()..].to_vec();
            let count = added.len();
            let response = write
                .append_messages(AppendMessagesRequest {
                    source_id: SOURCE.into(),
                    external_id: file.id.clone(),
                    messages: added,
                    updated_at_ms: new.last().and_then(|m| m.created_at_ms),
                })
                .await?
                .into_inner();
            return Ok((Outcome::Appended, response.conversation_id, count));
        }
    }
    let title = file.name.clone().or_else(|| {
        file.messages
            .iter()
            .find(|m| m.role == octo_core::message::Role::User)
            .map(|m| {
                octo_projections::history::conversations::message_text(m)
                    .chars()
                    .take(80)
                    .collect()
            })
    });
    let count = new.len();
    let response = write
        .write_conversation(WriteConversationRequest {
            conversation: Some(proto::Conversation {
                source_id: SOURCE.into(),
                external_id: file.id.clone(),
                title,
                created_at_ms: file.created_ms,
                updated_at_ms: new.last().and_then(|m| m.created_at_ms),
                model: file.model.as_ref().map(|m| m.model_id.clone()),
                provider: file.model.as_ref().map(|m| m.provider.clone()),
                workspace: (!file.cwd.is_empty()).then(|| file.cwd.clone()),
                metadata_json: "{}".into(),
                harness: Some(SOURCE.into()),
                ..Default::default()
            }),
            messages: new,
        })
        .await?
        .into_inner();
    Ok((Outcome::Written, response.conversation_id, count))
}

pub async fn import(ctx: &Ctx, files: &[PathBuf], hstry: Option<String>) -> Result<(), Failure> {
    let address = hstry_address(ctx, hstry)?;
    let channel = tonic::transport::Endpoint::from_shared(address.clone())
        .map_err(|e| Failure::Usage(format!("{address}: {e}")))?
        .connect()
        .await
        .map_err(|e| Failure::Usage(format!("cannot reach hstry at {address}: {e}")))?;
    let mut failed = 0usize;
    for path in files {
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| octo_runner::pi::file::read(&text).map_err(|e| e.to_string()));
        let file = match parsed {
            Ok(file) => file,
            Err(e) => {
                failed += 1;
                eprintln!("octoctl: {}: {e}", path.display());
                continue;
            }
        };
        match import_file(channel.clone(), &file).await {
            Ok((outcome, conversation, count)) => ctx.emit(
                &json!({"file": path, "pi_session": file.id, "conversation_id": conversation,
                        "outcome": outcome.as_str(), "messages": count}),
                || match outcome {
                    Outcome::Unchanged => format!("{}: unchanged ({conversation})", path.display()),
                    _ => format!(
                        "{}: {} {count} messages as {conversation}",
                        path.display(),
                        outcome.as_str()
                    ),
                },
            ),
            Err(status) => {
                failed += 1;
                eprintln!(
                    "octoctl: {}: hstry refused: {}",
                    path.display(),
                    status.message()
                );
            }
        }
    }
    if failed > 0 {
        return Err(Failure::Refused(format!(
            "{failed} of {} files were not imported",
            files.len()
        )));
    }
    Ok(())
}
