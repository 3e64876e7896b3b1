//! The two encodings of PROTOCOL.md 1.2: JSON and msgpack (rmp-serde, named: string keys, enums
//! tagged by `type` as in JSON, `bytes` as `bin`).
//!
//! Decoders never panic on input: every failure is a [`DecodeError`]. Sizes are checked before any
//! parsing work, so an oversized input costs nothing but its length check, and nesting is capped
//! at [`DECODE_DEPTH_MAX`] in both encodings so hostile input cannot exhaust the stack.

use serde::Deserialize as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::limits::DECODE_DEPTH_MAX;

/// A wire encoding; the WebSocket subprotocols `octo.v1.json` and `octo.v1.msgpack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Json,
    Msgpack,
}

impl Encoding {
    /// The WebSocket subprotocol name.
    pub const fn subprotocol(self) -> &'static str {
        match self {
            Encoding::Json => "octo.v1.json",
            Encoding::Msgpack => "octo.v1.msgpack",
        }
    }

    /// The encoding for a subprotocol name, if it is one of ours.
    pub fn from_subprotocol(name: &str) -> Option<Encoding> {
        match name {
            "octo.v1.json" => Some(Encoding::Json),
            "octo.v1.msgpack" => Some(Encoding::Msgpack),
            _ => None,
        }
    }
}

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Caller error (`frame_too_large`): refused before parsing.
    #[error("input is {len_bytes} bytes, over the {max_bytes}-byte limit")]
    TooLarge { len_bytes: usize, max_bytes: usize },
    /// Caller error (`malformed_frame` or a field error): not valid for the expected type.
    #[error("cannot decode {encoding:?}: {detail}")]
    Invalid { encoding: Encoding, detail: String },
}

/// Why a value could not be encoded (a bug, or a value over a limit).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoder refused the value (non-string map keys and the like: a bug in the caller).
    #[error("cannot encode {encoding:?}: {detail}")]
    Unencodable { encoding: Encoding, detail: String },
}

/// Encodes `value` as JSON.
///
/// # Errors
/// [`EncodeError::Unencodable`] when serde_json refuses the value.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    serde_json::to_vec(value).map_err(|e| EncodeError::Unencodable {
        encoding: Encoding::Json,
        detail: e.to_string(),
    })
}

/// Encodes `value` as named msgpack (maps with string keys).
///
/// # Errors
/// [`EncodeError::Unencodable`] when rmp-serde refuses the value.
pub fn to_msgpack<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    thread_local! {
        /// Where this thread encodes: grown once, so an encoding is one exact allocation and
        /// one copy instead of a buffer that doubles its way up from nothing.
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    /// A scratch buffer that grew past this (one huge value) is not kept.
    const SCRATCH_KEPT_MAX: usize = 1 << 20;
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            let encoded = write_msgpack(&mut scratch, value).map(|()| scratch.as_slice().to_vec());
            if scratch.capacity() > SCRATCH_KEPT_MAX {
                *scratch = Vec::new();
            }
            encoded
        }
        // A value whose serialization encodes another value (re-entry): a buffer of its own.
        Err(_) => {
            let mut buffer = Vec::new();
            write_msgpack(&mut buffer, value).map(|()| buffer)
        }
    })
}

/// Appends named msgpack of `value` to `buffer` (no intermediate allocation).
///
/// # Errors
/// [`EncodeError::Unencodable`] when rmp-serde refuses the value.
pub fn write_msgpack<T: Serialize + ?Sized>(
    buffer: &mut Vec<u8>,
    value: &T,
) -> Result<(), EncodeError> {
    let mut serializer = rmp_serde::Serializer::new(buffer).with_struct_map();
    value
        .serialize(&mut serializer)
        .map_err(|e| EncodeError::Unencodable {
            encoding: Encoding::Msgpack,
            detail: e.to_string(),
        })
}

/// Encodes in the given encoding.
///
/// # Errors
/// See [`to_json`] and [`to_msgpack`].
pub fn encode<T: Serialize + ?Sized>(
    encoding: Encoding,
    value: &T,
) -> Result<Vec<u8>, EncodeError> {
    match encoding {
        Encoding::Json => to_json(value),
        Encoding::Msgpack => to_msgpack(value),
    }
}

/// Decodes JSON.
///
/// # Errors
/// [`DecodeError::Invalid`] for anything that is not a valid `T`.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError::Invalid {
        encoding: Encoding::Json,
        detail: e.to_string(),
    })
}

/// Decodes msgpack.
///
/// # Errors
/// [`DecodeError::Invalid`] for anything that is not a valid `T`, including trailing bytes and
/// nesting deeper than [`DECODE_DEPTH_MAX`].
pub fn from_msgpack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let invalid = |detail: String| DecodeError::Invalid {
        encoding: Encoding::Msgpack,
        detail,
    };
    // Read straight from the slice: strings and map keys are borrowed from it, not copied into a
    // scratch buffer first (the reader-based path costs a `read_to_end` per string and key).
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(bytes);
    // rmp-serde allows 1024 levels, which overflows a 2 MiB stack in debug builds once serde's
    // tagged-enum buffering recurses over them; a stack overflow aborts the process.
    deserializer.set_max_depth(DECODE_DEPTH_MAX);
    let value = T::deserialize(&mut deserializer).map_err(|e| invalid(e.to_string()))?;
    // The value must be all there is: another marker, whatever follows it, is refused.
    match serde::de::IgnoredAny::deserialize(&mut deserializer) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e))
            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Ok(value)
        }
        _ => Err(invalid("trailing bytes after the value".to_owned())),
    }
}

/// Decodes in the given encoding, refusing inputs over `max_bytes` before parsing.
///
/// # Errors
/// [`DecodeError::TooLarge`] over `max_bytes`, else as [`from_json`] / [`from_msgpack`].
pub fn decode<T: DeserializeOwned>(
    encoding: Encoding,
    bytes: &[u8],
    max_bytes: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max_bytes {
        return Err(DecodeError::TooLarge {
            len_bytes: bytes.len(),
            max_bytes,
        });
    }
    match encoding {
        Encoding::Json => from_json(bytes),
        Encoding::Msgpack => from_msgpack(bytes),
    }
}
