//! Logged commands (PROTOCOL.md section 4): what a client asks for. Effects arrive only as events.
//!
//! These are the bodies as logged. Decoding checks types only; limits and field rules (title
//! length, prompt size) are `validate`'s, and state rules (is a run open?) belong to whoever holds
//! the session projection.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use crate::field::null_as_default;
use crate::ids::{Offset, SessionId};
use crate::message::{ImageInput, ModelRef, ThinkingLevel};

tagged_catalogue! {
    /// A command body as logged: the client frame minus `ch`, `command_id` and `session_id`, plus
    /// the values the server decides (`fork` gets `new_session_id`).
    pub enum Command {
        "session.create" => SessionCreate,
        "session.rename" => SessionRename,
        "session.delete" => SessionDelete,
        "fork" => Fork,
        "prompt" => Prompt,
        "abort" => Abort,
        "set_model" => SetModel,
        "set_thinking_level" => SetThinkingLevel,
        "compact" => Compact,
        "input.respond" => InputRespond,
    }
}

impl Command {
    /// The command as the client sent it: server-decided values cleared.
    #[must_use]
    pub fn client_view(&self) -> Command {
        match self {
            Command::Fork(fork) => Command::Fork(Fork {
                new_session_id: None,
                ..fork.clone()
            }),
            other => other.clone(),
        }
    }

    /// What two sends of one `command_id` must agree on to be the same command: the client view
    /// with defaults spelled out, so a retry that sends a default explicitly (`when_busy:
    /// "follow_up"`) is not a conflict with one that left it out.
    #[must_use]
    pub fn idempotency_view(&self) -> Command {
        match self.client_view() {
            Command::Prompt(prompt) => Command::Prompt(Prompt {
                when_busy: Some(prompt.when_busy.unwrap_or_default()),
                ..prompt
            }),
            other => other,
        }
    }

    /// Whether the frame carries no `session_id` (the gateway mints one).
    pub fn mints_session(&self) -> bool {
        matches!(self, Command::SessionCreate(_))
    }

    /// Whether the command starts a new session's harness (`session.create`, `fork`): settled by
    /// `harness.started` or `harness.exited`, never by `command.failed` (PROTOCOL.md 4.2).
    pub fn starts_harness(&self) -> bool {
        matches!(self, Command::SessionCreate(_) | Command::Fork(_))
    }

    /// Whether a command of this `type` travels without `session_id`.
    pub fn type_mints_session(type_name: &str) -> bool {
        type_name == "session.create"
    }
}

/// `session.create`: a new session on `harness` in `workspace` (relative to the user's
/// workspaces base).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCreate {
    pub harness: String,
    pub workspace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<ThinkingLevel>,
    /// 1..200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// `session.rename`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRename {
    /// 1..200 characters.
    pub title: String,
}

/// `session.delete`: no fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionDelete {}

/// `fork`: a new session whose view is the source's up to `at_offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fork {
    pub at_offset: Offset,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Decided by the gateway when it appends the command; a client never sends it (the frame
    /// decoder drops it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_session_id: Option<SessionId>,
}

/// What a prompt does when the agent is already working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenBusy {
    /// Inject it into the running turn.
    Steer,
    /// Queue it until the run ends (the default).
    #[default]
    FollowUp,
}

/// `prompt`: a user message. `Prompt { text: "x".into(), ..Default::default() }` builds a plain
/// one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Prompt {
    pub text: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub images: Vec<ImageInput>,
    /// Workspace-relative paths.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub files: Vec<String>,
    /// Absent means [`WhenBusy::FollowUp`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_busy: Option<WhenBusy>,
}

/// `abort`: no fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Abort {}

/// `set_model`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetModel {
    pub provider: String,
    pub model_id: String,
}

/// `set_thinking_level`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetThinkingLevel {
    pub level: ThinkingLevel,
}

/// `compact`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Compact {
    /// Up to 16 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// `input.respond`: the answer to an `input.requested`. On the wire exactly one of `value`,
/// `confirmed` or `cancelled: true` sits beside `request_id`; [`InputAnswer`] makes any other
/// combination unrepresentable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRespond {
    pub request_id: String,
    pub answer: InputAnswer,
}

/// The one answer an `input.respond` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputAnswer {
    /// `value: string` (select, input, editor).
    Value(String),
    /// `confirmed: bool` (confirm).
    Confirmed(bool),
    /// `cancelled: true`.
    Cancelled,
}

/// Why the answer fields of an `input.respond` do not make exactly one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerProblem {
    /// None of `value`, `confirmed`, `cancelled` (`missing_field`, ref `value`).
    Missing,
    /// A second answer field (`invalid_field`, ref the second field).
    Conflict(&'static str),
    /// `cancelled: false` (`invalid_field`, ref `cancelled`).
    CancelledFalse,
}

impl InputAnswer {
    /// The wire field names of an answer.
    pub const FIELDS: [&'static str; 3] = ["value", "confirmed", "cancelled"];

    /// Builds the answer from the three optional wire fields (`None` for absent or `null`).
    ///
    /// # Errors
    /// [`AnswerProblem`] unless exactly one is present and `cancelled` is `true`.
    pub fn from_fields(
        value: Option<String>,
        confirmed: Option<bool>,
        cancelled: Option<bool>,
    ) -> Result<InputAnswer, AnswerProblem> {
        let present = [value.is_some(), confirmed.is_some(), cancelled.is_some()];
        if let Some(second) = present
            .iter()
            .enumerate()
            .filter(|(_, is_present)| **is_present)
            .nth(1)
            .map(|(idx, _)| InputAnswer::FIELDS[idx])
        {
            return Err(AnswerProblem::Conflict(second));
        }
        match (value, confirmed, cancelled) {
            (Some(value), _, _) => Ok(InputAnswer::Value(value)),
            (_, Some(confirmed), _) => Ok(InputAnswer::Confirmed(confirmed)),
            (_, _, Some(true)) => Ok(InputAnswer::Cancelled),
            (_, _, Some(false)) => Err(AnswerProblem::CancelledFalse),
            (None, None, None) => Err(AnswerProblem::Missing),
        }
    }
}

impl fmt::Display for AnswerProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerProblem::Missing => f.write_str(
                "missing field `value`: send exactly one of value, confirmed, cancelled",
            ),
            AnswerProblem::Conflict(field) => write!(
                f,
                "field `{field}` is a second answer: send exactly one of value, confirmed, cancelled"
            ),
            AnswerProblem::CancelledFalse => {
                f.write_str("field `cancelled` must be true when present")
            }
        }
    }
}

impl Serialize for InputRespond {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut state = serializer.serialize_struct("InputRespond", 2)?;
        state.serialize_field("request_id", &self.request_id)?;
        match &self.answer {
            InputAnswer::Value(value) => state.serialize_field("value", value)?,
            InputAnswer::Confirmed(confirmed) => state.serialize_field("confirmed", confirmed)?,
            InputAnswer::Cancelled => state.serialize_field("cancelled", &true)?,
        }
        state.end()
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum RespondField {
    RequestId,
    Value,
    Confirmed,
    Cancelled,
    #[serde(other)]
    Other,
}

struct RespondVisitor;

impl<'de> Visitor<'de> for RespondVisitor {
    type Value = InputRespond;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an input.respond map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InputRespond, A::Error> {
        let mut request_id: Option<String> = None;
        let mut value: Option<String> = None;
        let mut confirmed: Option<bool> = None;
        let mut cancelled: Option<bool> = None;
        while let Some(key) = map.next_key::<RespondField>()? {
            match key {
                RespondField::RequestId => {
                    if request_id.is_some() {
                        return Err(de::Error::duplicate_field("request_id"));
                    }
                    request_id = Some(map.next_value()?);
                }
                RespondField::Value => value = map.next_value()?,
                RespondField::Confirmed => confirmed = map.next_value()?,
                RespondField::Cancelled => cancelled = map.next_value()?,
                RespondField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let request_id = request_id.ok_or_else(|| de::Error::missing_field("request_id"))?;
        let answer =
            InputAnswer::from_fields(value, confirmed, cancelled).map_err(
                |problem| match problem {
                    AnswerProblem::Missing => de::Error::missing_field("value"),
                    other => de::Error::custom(other),
                },
            )?;
        Ok(InputRespond { request_id, answer })
    }
}

impl<'de> Deserialize<'de> for InputRespond {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(
            "InputRespond",
            &["request_id", "value", "confirmed", "cancelled"],
            RespondVisitor,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> Result<Command, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn input_respond_needs_exactly_one_answer() {
        let ok = [
            (
                r#"{"type":"input.respond","request_id":"q","value":"a"}"#,
                InputAnswer::Value("a".into()),
            ),
            (
                r#"{"type":"input.respond","request_id":"q","confirmed":false}"#,
                InputAnswer::Confirmed(false),
            ),
            (
                r#"{"type":"input.respond","request_id":"q","cancelled":true,"value":null}"#,
                InputAnswer::Cancelled,
            ),
        ];
        for (text, answer) in ok {
            let decoded = decode(text).expect("one answer");
            assert_eq!(
                decoded,
                Command::InputRespond(InputRespond {
                    request_id: "q".into(),
                    answer
                }),
                "{text}"
            );
        }
        for text in [
            r#"{"type":"input.respond","request_id":"q"}"#,
            r#"{"type":"input.respond","request_id":"q","value":"a","confirmed":true}"#,
            r#"{"type":"input.respond","request_id":"q","cancelled":false}"#,
            r#"{"type":"input.respond","value":"a"}"#,
        ] {
            assert!(decode(text).is_err(), "{text}");
        }
    }

    #[test]
    fn answer_problems_name_the_field() {
        assert_eq!(
            InputAnswer::from_fields(Some("a".into()), None, Some(true)),
            Err(AnswerProblem::Conflict("cancelled"))
        );
        assert_eq!(
            InputAnswer::from_fields(None, Some(true), Some(true)),
            Err(AnswerProblem::Conflict("cancelled"))
        );
        assert_eq!(
            InputAnswer::from_fields(None, None, None),
            Err(AnswerProblem::Missing)
        );
    }

    #[test]
    fn client_view_clears_the_minted_session() {
        let fork = Command::Fork(Fork {
            at_offset: Offset::ZERO,
            title: None,
            new_session_id: Some(SessionId::new()),
        });
        let Command::Fork(view) = fork.client_view() else {
            panic!("client_view changed the variant");
        };
        assert_eq!(view.new_session_id, None);
    }

    #[test]
    fn type_names_are_unique_and_match() {
        let mut names = Command::TYPE_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Command::TYPE_NAMES.len());
        let prompt = Command::Prompt(Prompt {
            text: "x".into(),
            ..Default::default()
        });
        assert_eq!(prompt.type_name(), "prompt");
    }
}
