//! Decoding an inbound client message into a [`ClientFrame`], or into the exact PROTOCOL.md 13
//! error for it.
//!
//! The message is first read into a generic value (the same for JSON and msgpack, see
//! `wire_value`), then checked by hand in the order of PROTOCOL.md 4.1: shape (`ch`, `type`), ids,
//! then each field, decoded by a map reader that remembers which field failed so the error names
//! it. Never panics on input; nesting is capped so hostile input cannot exhaust the stack. Field
//! limits and rules are `validate`'s; ownership and state are the gateway's.

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, StringDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess};

use crate::codec::{self, Encoding};
use crate::command::{AnswerProblem, Command, InputAnswer};
use crate::error::{Error, ErrorCode};
use crate::frame::client::{
    AgentFrame, ClientFrame, CommandFrame, FilesFrame, FilesRequest, SystemFrame, TerminalFrame,
};
use crate::frame::server::{Ack, ErrorFrame, ServerFrame};
use crate::frame::wire_value::WireValue;
use crate::frame::{Channel, FieldDecoder};
use crate::ids::{CommandId, IdError, ReqId, SessionId, TerminalId};
use crate::limits::FRAME_BYTES_MAX;

/// A frame's top-level fields.
type Fields = BTreeMap<String, WireValue>;

/// Longest value echoed back in an error `ref` (an unknown channel or type), in characters.
const REF_CHARS_MAX: usize = 128;

/// Why a client frame was refused, and where the refusal goes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct FrameError {
    /// What is wrong: one section 13 code with its `ref`.
    pub problem: FrameProblem,
    /// Who gets the error: a rejected `ack`, an `error` frame on the channel, or `system.error`.
    pub reply_to: ReplyTo,
}

/// What is wrong with a client frame. Every variant is a caller error: reply with it and change
/// nothing; the connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameProblem {
    /// `malformed_frame`: not valid JSON or msgpack, or not a map.
    #[error("frame is not a valid {encoding:?} map: {detail}")]
    Malformed { encoding: Encoding, detail: String },
    /// `frame_too_large`, ref `max_frame_bytes`.
    #[error(
        "frame is {len_bytes} bytes, over the {max_bytes}-byte limit (max_frame_bytes); send large files in chunks"
    )]
    TooLarge { len_bytes: usize, max_bytes: usize },
    /// `unknown_channel`, ref the value.
    #[error("unknown channel {value:?}: use agent, files, terminal or system")]
    UnknownChannel { value: String },
    /// `unknown_type`, ref the value.
    #[error("unknown type {value:?} on channel {channel}")]
    UnknownType { channel: Channel, value: String },
    /// `missing_field`, ref the field.
    #[error("missing field {field}")]
    MissingField { field: String },
    /// `invalid_field`, ref the field when one can be named.
    #[error("invalid field {}: {detail}", field.as_deref().unwrap_or("(frame)"))]
    InvalidField {
        field: Option<String>,
        detail: String,
    },
    /// `invalid_id`, ref the field (`command_id`, `session_id`, `id`, `terminal_id`).
    #[error("invalid {field}: {detail}")]
    InvalidId { field: &'static str, detail: String },
}

impl FrameProblem {
    /// The wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameProblem::Malformed { .. } => ErrorCode::MalformedFrame,
            FrameProblem::TooLarge { .. } => ErrorCode::FrameTooLarge,
            FrameProblem::UnknownChannel { .. } => ErrorCode::UnknownChannel,
            FrameProblem::UnknownType { .. } => ErrorCode::UnknownType,
            FrameProblem::MissingField { .. } => ErrorCode::MissingField,
            FrameProblem::InvalidField { .. } => ErrorCode::InvalidField,
            FrameProblem::InvalidId { .. } => ErrorCode::InvalidId,
        }
    }

    /// The wire `ref`.
    pub fn reference(&self) -> Option<&str> {
        match self {
            FrameProblem::Malformed { .. } => None,
            FrameProblem::TooLarge { .. } => Some("max_frame_bytes"),
            FrameProblem::UnknownChannel { value } | FrameProblem::UnknownType { value, .. } => {
                Some(value)
            }
            FrameProblem::MissingField { field } => Some(field),
            FrameProblem::InvalidField { field, .. } => field.as_deref(),
            FrameProblem::InvalidId { field, .. } => Some(field),
        }
    }

    /// The wire `Error`.
    pub fn to_error(&self) -> Error {
        let error = Error::new(self.code(), self.to_string());
        match self.reference() {
            Some(reference) => error.with_ref(reference),
            None => error,
        }
    }
}

impl FrameError {
    /// The section 13 code.
    pub fn code(&self) -> ErrorCode {
        self.problem.code()
    }

    /// The `ref` of the error.
    pub fn reference(&self) -> Option<&str> {
        self.problem.reference()
    }

    /// The wire `Error`.
    pub fn to_error(&self) -> Error {
        self.problem.to_error()
    }

    /// The frame that answers this rejection.
    pub fn reply_frame(&self) -> ServerFrame {
        self.reply_to.error_frame(self.to_error())
    }

    fn system(problem: FrameProblem) -> FrameError {
        FrameError {
            problem,
            reply_to: ReplyTo::System,
        }
    }
}

/// Where the answer to a refused frame goes (PROTOCOL.md 3.3 and 4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyTo {
    /// `system.error`: the frame could not be attributed to a command or request.
    System,
    /// A `rejected` ack: the frame is a command with a valid `command_id`.
    Ack { command_id: CommandId },
    /// An `error` frame on the channel, naming the request or terminal.
    Request {
        channel: Channel,
        id: Option<ReqId>,
        terminal_id: Option<TerminalId>,
    },
}

impl ReplyTo {
    /// The frame that carries `error` to the client.
    pub fn error_frame(&self, error: Error) -> ServerFrame {
        match self {
            ReplyTo::System => ServerFrame::error(
                Channel::System,
                ErrorFrame {
                    id: None,
                    terminal_id: None,
                    error,
                },
            ),
            ReplyTo::Ack { command_id } => ServerFrame::Agent(
                crate::frame::server::AgentServerFrame::Ack(Ack::rejected(*command_id, error)),
            ),
            ReplyTo::Request {
                channel,
                id,
                terminal_id,
            } => ServerFrame::error(
                *channel,
                ErrorFrame {
                    id: id.clone(),
                    terminal_id: *terminal_id,
                    error,
                },
            ),
        }
    }
}

/// Decodes one inbound message, refusing it over [`FRAME_BYTES_MAX`].
///
/// # Errors
/// [`FrameError`] with the section 13 code and `ref`, and where to send it.
pub fn decode_client_frame(encoding: Encoding, bytes: &[u8]) -> Result<ClientFrame, FrameError> {
    decode_client_frame_with_limit(encoding, bytes, FRAME_BYTES_MAX)
}

/// As [`decode_client_frame`] with a configured `max_frame_bytes`.
///
/// # Errors
/// [`FrameError`] with the section 13 code and `ref`, and where to send it.
pub fn decode_client_frame_with_limit(
    encoding: Encoding,
    bytes: &[u8],
    max_frame_bytes: usize,
) -> Result<ClientFrame, FrameError> {
    if bytes.len() > max_frame_bytes {
        return Err(FrameError::system(FrameProblem::TooLarge {
            len_bytes: bytes.len(),
            max_bytes: max_frame_bytes,
        }));
    }
    let malformed =
        |detail: String| FrameError::system(FrameProblem::Malformed { encoding, detail });
    let value = match encoding {
        Encoding::Json => serde_json::from_slice::<WireValue>(bytes)
            .map_err(|error| malformed(error.to_string()))?,
        Encoding::Msgpack => {
            codec::from_msgpack::<WireValue>(bytes).map_err(|error| malformed(error.to_string()))?
        }
    };
    if !matches!(value, WireValue::Map(_)) {
        return Err(malformed("the frame is not a map".to_owned()));
    }
    client_frame_from_value(value).map_err(|mut error| {
        if let FrameProblem::Malformed {
            encoding: problem_encoding,
            ..
        } = &mut error.problem
        {
            *problem_encoding = encoding;
        }
        error
    })
}

/// Decodes a frame already read into a generic value.
pub(crate) fn client_frame_from_value(value: WireValue) -> Result<ClientFrame, FrameError> {
    let WireValue::Map(map) = value else {
        return Err(FrameError::system(FrameProblem::Malformed {
            encoding: Encoding::Json,
            detail: "the frame is not a map".to_owned(),
        }));
    };
    let channel = read_channel(&map).map_err(FrameError::system)?;
    let type_name = match read_type(&map, channel) {
        Ok(type_name) => type_name,
        Err(problem) => {
            // An unknown type with a good request id can still be answered on its channel.
            let reply_to = match read_id(&map, "id", |text| ReqId::new(text)) {
                Ok(id) => ReplyTo::Request {
                    channel,
                    id: Some(id),
                    terminal_id: None,
                },
                Err(_) => ReplyTo::System,
            };
            return Err(FrameError { problem, reply_to });
        }
    };
    match channel {
        Channel::Agent if Command::TYPE_NAMES.contains(&type_name.as_str()) => {
            decode_command(map, &type_name)
        }
        Channel::Agent => decode_agent_request(map, &type_name),
        Channel::Files => decode_files(map, &type_name),
        Channel::Terminal => decode_terminal(map, &type_name),
        Channel::System => decode_system(map, &type_name),
    }
}

fn cut(text: &str) -> String {
    text.chars().take(REF_CHARS_MAX).collect()
}

fn read_channel(map: &Fields) -> Result<Channel, FrameProblem> {
    match map.get("ch") {
        None | Some(WireValue::Null) => Err(FrameProblem::MissingField {
            field: "ch".to_owned(),
        }),
        Some(WireValue::Str(name)) => {
            Channel::parse(name).ok_or_else(|| FrameProblem::UnknownChannel { value: cut(name) })
        }
        Some(_) => Err(FrameProblem::InvalidField {
            field: Some("ch".to_owned()),
            detail: "expected a string".to_owned(),
        }),
    }
}

fn read_type(map: &Fields, channel: Channel) -> Result<String, FrameProblem> {
    match map.get("type") {
        None | Some(WireValue::Null) => Err(FrameProblem::MissingField {
            field: "type".to_owned(),
        }),
        Some(WireValue::Str(name)) => {
            let known = match channel {
                Channel::Agent => {
                    Command::TYPE_NAMES.contains(&name.as_str())
                        || AgentFrame::REQUEST_TYPES.contains(&name.as_str())
                }
                Channel::Files => FilesRequest::TYPE_NAMES.contains(&name.as_str()),
                Channel::Terminal => TerminalFrame::TYPE_NAMES.contains(&name.as_str()),
                Channel::System => SystemFrame::TYPE_NAMES.contains(&name.as_str()),
            };
            if known {
                Ok(name.clone())
            } else {
                Err(FrameProblem::UnknownType {
                    channel,
                    value: cut(name),
                })
            }
        }
        Some(_) => Err(FrameProblem::InvalidField {
            field: Some("type".to_owned()),
            detail: "expected a string".to_owned(),
        }),
    }
}

/// Reads a required id field: absent or `null` is `missing_field`, anything but a well-formed
/// string is `invalid_id`.
fn read_id<T>(
    map: &Fields,
    field: &'static str,
    parse: impl Fn(&str) -> Result<T, IdError>,
) -> Result<T, FrameProblem> {
    match map.get(field) {
        None | Some(WireValue::Null) => Err(FrameProblem::MissingField {
            field: field.to_owned(),
        }),
        Some(WireValue::Str(text)) => parse(text).map_err(|error| FrameProblem::InvalidId {
            field,
            detail: error.to_string(),
        }),
        Some(_) => Err(FrameProblem::InvalidId {
            field,
            detail: "expected a string".to_owned(),
        }),
    }
}

fn decode_command(map: Fields, type_name: &str) -> Result<ClientFrame, FrameError> {
    let command_id = read_id(&map, "command_id", CommandId::parse).map_err(FrameError::system)?;
    let reply_to = ReplyTo::Ack { command_id };
    let reject = |problem: FrameProblem| FrameError {
        problem,
        reply_to: reply_to.clone(),
    };
    let session_id = if Command::type_mints_session(type_name) {
        None
    } else {
        Some(read_id(&map, "session_id", SessionId::parse).map_err(reject)?)
    };
    let answer_problem = (type_name == "input.respond")
        .then(|| answer_problem(&map))
        .flatten();
    let command = match Command::decode_with(type_name, FieldsDecoder(map)) {
        Some(Ok(command)) => command,
        Some(Err(FieldError::Other(detail))) => {
            return Err(reject(answer_problem.unwrap_or(
                FrameProblem::InvalidField {
                    field: None,
                    detail,
                },
            )));
        }
        Some(Err(error)) => return Err(reject(error.into_problem())),
        None => {
            return Err(reject(FrameProblem::UnknownType {
                channel: Channel::Agent,
                value: cut(type_name),
            }));
        }
    };
    Ok(ClientFrame::Agent(AgentFrame::Command(CommandFrame {
        // A client never decides server values (`fork`'s `new_session_id`).
        command: command.client_view(),
        command_id,
        session_id,
    })))
}

/// The precise problem with the answer fields of an `input.respond`, if any.
fn answer_problem(map: &Fields) -> Option<FrameProblem> {
    let present = |field: &str| map.get(field).is_some_and(|value| !value.is_null());
    let value = present("value").then(String::new);
    let confirmed = present("confirmed").then_some(true);
    let cancelled = match map.get("cancelled") {
        Some(WireValue::Bool(cancelled)) => Some(*cancelled),
        Some(WireValue::Null) | None => None,
        Some(_) => Some(true),
    };
    match InputAnswer::from_fields(value, confirmed, cancelled) {
        Ok(_) => None,
        Err(AnswerProblem::Missing) => Some(FrameProblem::MissingField {
            field: "value".to_owned(),
        }),
        Err(problem @ AnswerProblem::Conflict(field)) => Some(FrameProblem::InvalidField {
            field: Some(field.to_owned()),
            detail: problem.to_string(),
        }),
        Err(problem @ AnswerProblem::CancelledFalse) => Some(FrameProblem::InvalidField {
            field: Some("cancelled".to_owned()),
            detail: problem.to_string(),
        }),
    }
}

/// Reads the request id first, so that every later error can name the request.
fn request_reply(map: &Fields, channel: Channel) -> Result<(ReqId, ReplyTo), FrameError> {
    let id = read_id(map, "id", |text| ReqId::new(text)).map_err(FrameError::system)?;
    let reply_to = ReplyTo::Request {
        channel,
        id: Some(id.clone()),
        terminal_id: None,
    };
    Ok((id, reply_to))
}

fn fields<T: DeserializeOwned>(map: Fields, reply_to: &ReplyTo) -> Result<T, FrameError> {
    FieldsDecoder(map)
        .decode::<T>()
        .map_err(|error| FrameError {
            problem: error.into_problem(),
            reply_to: reply_to.clone(),
        })
}

fn check_session(map: &Fields, reply_to: &ReplyTo) -> Result<(), FrameError> {
    read_id(map, "session_id", SessionId::parse)
        .map(|_| ())
        .map_err(|problem| FrameError {
            problem,
            reply_to: reply_to.clone(),
        })
}

fn decode_agent_request(map: Fields, type_name: &str) -> Result<ClientFrame, FrameError> {
    let (_, reply_to) = request_reply(&map, Channel::Agent)?;
    let with_session = matches!(
        type_name,
        "subscribe" | "unsubscribe" | "replay" | "snapshot"
    );
    if with_session {
        check_session(&map, &reply_to)?;
    }
    let frame = match type_name {
        "subscribe" => AgentFrame::Subscribe(fields(map, &reply_to)?),
        "unsubscribe" => AgentFrame::Unsubscribe(fields(map, &reply_to)?),
        "subscribe_sessions" => AgentFrame::SubscribeSessions(fields(map, &reply_to)?),
        "unsubscribe_sessions" => AgentFrame::UnsubscribeSessions(fields(map, &reply_to)?),
        "replay" => AgentFrame::Replay(fields(map, &reply_to)?),
        "snapshot" => AgentFrame::Snapshot(fields(map, &reply_to)?),
        "subscribe_log" => AgentFrame::SubscribeLog(fields(map, &reply_to)?),
        "unsubscribe_log" => AgentFrame::UnsubscribeLog(fields(map, &reply_to)?),
        other => {
            return Err(FrameError {
                problem: FrameProblem::UnknownType {
                    channel: Channel::Agent,
                    value: cut(other),
                },
                reply_to,
            });
        }
    };
    Ok(ClientFrame::Agent(frame))
}

fn decode_files(map: Fields, type_name: &str) -> Result<ClientFrame, FrameError> {
    let (id, reply_to) = request_reply(&map, Channel::Files)?;
    let session_id =
        read_id(&map, "session_id", SessionId::parse).map_err(|problem| FrameError {
            problem,
            reply_to: reply_to.clone(),
        })?;
    let request = match type_name {
        "list" => FilesRequest::List(fields(map, &reply_to)?),
        "stat" => FilesRequest::Stat(fields(map, &reply_to)?),
        "read" => FilesRequest::Read(fields(map, &reply_to)?),
        "write" => FilesRequest::Write(fields(map, &reply_to)?),
        "rename" => FilesRequest::Rename(fields(map, &reply_to)?),
        "delete" => FilesRequest::Delete(fields(map, &reply_to)?),
        other => {
            return Err(FrameError {
                problem: FrameProblem::UnknownType {
                    channel: Channel::Files,
                    value: cut(other),
                },
                reply_to,
            });
        }
    };
    Ok(ClientFrame::Files(FilesFrame {
        request,
        id,
        session_id,
    }))
}

fn decode_terminal(map: Fields, type_name: &str) -> Result<ClientFrame, FrameError> {
    let frame = if type_name == "open" {
        let (_, reply_to) = request_reply(&map, Channel::Terminal)?;
        check_session(&map, &reply_to)?;
        TerminalFrame::Open(fields(map, &reply_to)?)
    } else {
        let terminal_id =
            read_id(&map, "terminal_id", TerminalId::parse).map_err(FrameError::system)?;
        let reply_to = ReplyTo::Request {
            channel: Channel::Terminal,
            id: None,
            terminal_id: Some(terminal_id),
        };
        match type_name {
            "input" => TerminalFrame::Input(fields(map, &reply_to)?),
            "resize" => TerminalFrame::Resize(fields(map, &reply_to)?),
            "close" => TerminalFrame::Close(fields(map, &reply_to)?),
            other => {
                return Err(FrameError {
                    problem: FrameProblem::UnknownType {
                        channel: Channel::Terminal,
                        value: cut(other),
                    },
                    reply_to,
                });
            }
        }
    };
    Ok(ClientFrame::Terminal(frame))
}

fn decode_system(map: Fields, type_name: &str) -> Result<ClientFrame, FrameError> {
    let (_, reply_to) = request_reply(&map, Channel::System)?;
    match type_name {
        "ping" => Ok(ClientFrame::System(SystemFrame::Ping(fields(
            map, &reply_to,
        )?))),
        other => Err(FrameError {
            problem: FrameProblem::UnknownType {
                channel: Channel::System,
                value: cut(other),
            },
            reply_to,
        }),
    }
}

/// Why one field of a frame did not decode, naming it.
#[derive(Debug)]
pub(crate) enum FieldError {
    /// A required field is absent (or `null`).
    Missing(String),
    /// The field's value is the wrong type, out of range or an unknown enum value.
    Invalid { field: String, detail: String },
    /// A rule across fields failed; no single field to name.
    Other(String),
}

impl FieldError {
    fn into_problem(self) -> FrameProblem {
        match self {
            FieldError::Missing(field) => FrameProblem::MissingField { field },
            FieldError::Invalid { field, detail } => FrameProblem::InvalidField {
                field: Some(field),
                detail,
            },
            FieldError::Other(detail) => FrameProblem::InvalidField {
                field: None,
                detail,
            },
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::Missing(field) => write!(f, "missing field `{field}`"),
            FieldError::Invalid { field, detail } => write!(f, "invalid field `{field}`: {detail}"),
            FieldError::Other(detail) => f.write_str(detail),
        }
    }
}

impl std::error::Error for FieldError {}

impl de::Error for FieldError {
    fn custom<T: fmt::Display>(message: T) -> FieldError {
        FieldError::Other(message.to_string())
    }

    fn missing_field(field: &'static str) -> FieldError {
        FieldError::Missing(field.to_owned())
    }
}

/// Decodes body structs from a frame's top-level map, one field at a time.
struct FieldsDecoder(Fields);

impl FieldDecoder for FieldsDecoder {
    type Error = FieldError;

    fn decode<T: DeserializeOwned>(self) -> Result<T, FieldError> {
        let access = FieldAccess {
            entries: self.0.into_iter(),
            pending: None,
        };
        T::deserialize(MapAccessDeserializer::new(access))
    }
}

/// A `MapAccess` over a frame's fields that names the field whose value failed.
struct FieldAccess {
    entries: btree_map::IntoIter<String, WireValue>,
    pending: Option<(String, WireValue)>,
}

impl<'de> MapAccess<'de> for FieldAccess {
    type Error = FieldError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, FieldError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let decoded = seed.deserialize(StringDeserializer::<FieldError>::new(key.clone()))?;
        self.pending = Some((key, value));
        Ok(Some(decoded))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, FieldError> {
        let Some((key, value)) = self.pending.take() else {
            return Err(FieldError::Other(
                "a value was read before its key".to_owned(),
            ));
        };
        let was_null = value.is_null();
        seed.deserialize(value).map_err(|error| {
            // A required field sent as `null` is as missing as an absent one.
            if was_null {
                FieldError::Missing(key)
            } else {
                FieldError::Invalid {
                    field: key,
                    detail: error.to_string(),
                }
            }
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}
