//! The stored form of one entry: a small fixed header, then the rest as named msgpack.
//!
//! ```text
//! [0]       format version (1)
//! [1]       kind: 0 command, 1 event
//! [2..10]   ts_ms, i64 big-endian        (written by the writer)
//! [10..18]  producer seq, u64 big-endian (written by the writer)
//! [18..34]  session id, 16 bytes
//! [34]      user id length n (1..=128), then n bytes
//! [..]      body type length m (1..=255), then m bytes
//! [..]      msgpack map {producer, command_id?, body}
//! ```
//!
//! The header lets reads filter by kind, session, user and type without decoding msgpack, and
//! lets callers encode in their own task while the single writer only patches `ts_ms` and `seq`
//! in place. The offset is not stored: it is the key.

use serde::{Deserialize, Serialize};

use octo_core::{Body, CommandId, Kind, LogEntry, Offset, Producer, ProducerId, SessionId, UserId};

const VERSION: u8 = 1;
const TS_AT: usize = 2;
const SEQ_AT: usize = 10;
const SESSION_AT: usize = 18;
const USER_LEN_AT: usize = 34;

#[derive(Serialize)]
struct TailRef<'a> {
    producer: &'a ProducerId,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_id: Option<CommandId>,
    body: &'a Body,
}

#[derive(Deserialize)]
struct Tail {
    producer: ProducerId,
    #[serde(default)]
    command_id: Option<CommandId>,
    body: Body,
}

/// Encodes an entry with `ts_ms` and `seq` zeroed, for [`patch`] to fill in.
pub(crate) fn encode(
    kind: Kind,
    user_id: &UserId,
    session_id: &SessionId,
    producer: &ProducerId,
    command_id: Option<CommandId>,
    body: &Body,
) -> Result<Vec<u8>, String> {
    let user = user_id.as_str().as_bytes();
    let type_name = body.type_name().as_bytes();
    let user_len = u8::try_from(user.len()).map_err(|_| "user id over 255 bytes".to_owned())?;
    let type_len = u8::try_from(type_name.len())
        .ok()
        .filter(|len| *len > 0)
        .ok_or_else(|| "body type must be 1..255 bytes".to_owned())?;
    let mut record = Vec::with_capacity(64 + user.len() + type_name.len() + 256);
    record.push(VERSION);
    record.push(match kind {
        Kind::Command => 0,
        Kind::Event => 1,
    });
    record.extend_from_slice(&[0; 16]);
    record.extend_from_slice(session_id.as_bytes());
    record.push(user_len);
    record.extend_from_slice(user);
    record.push(type_len);
    record.extend_from_slice(type_name);
    octo_core::codec::write_msgpack(
        &mut record,
        &TailRef {
            producer,
            command_id,
            body,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(record)
}

/// Writes the writer-assigned `ts_ms` and `seq` into an encoded record.
pub(crate) fn patch(record: &mut [u8], ts_ms: i64, seq: u64) {
    assert!(
        record.len() > USER_LEN_AT,
        "record was not produced by encode"
    );
    record[TS_AT..TS_AT + 8].copy_from_slice(&ts_ms.to_be_bytes());
    record[SEQ_AT..SEQ_AT + 8].copy_from_slice(&seq.to_be_bytes());
}

/// The header fields, read without decoding the body.
pub(crate) struct Header<'a> {
    pub kind: Kind,
    pub ts_ms: i64,
    pub seq: u64,
    pub session_id: SessionId,
    pub user_id: &'a str,
    pub type_name: &'a str,
    tail_at: usize,
}

fn take<const N: usize>(record: &[u8], at: usize) -> Result<[u8; N], String> {
    record
        .get(at..at + N)
        .and_then(|slice| slice.try_into().ok())
        .ok_or_else(|| format!("record truncated at byte {at}"))
}

/// Reads the header of a stored record.
pub(crate) fn header(record: &[u8]) -> Result<Header<'_>, String> {
    let [version, kind] = take::<2>(record, 0)?;
    if version != VERSION {
        return Err(format!("unknown record version {version}"));
    }
    let kind = match kind {
        0 => Kind::Command,
        1 => Kind::Event,
        other => return Err(format!("unknown kind byte {other}")),
    };
    let ts_ms = i64::from_be_bytes(take::<8>(record, TS_AT)?);
    let seq = u64::from_be_bytes(take::<8>(record, SEQ_AT)?);
    let session_id =
        SessionId::from_bytes(take::<16>(record, SESSION_AT)?).map_err(|e| e.to_string())?;
    let [user_len] = take::<1>(record, USER_LEN_AT)?;
    let user_at = USER_LEN_AT + 1;
    let user_end = user_at + usize::from(user_len);
    let user_id = record
        .get(user_at..user_end)
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .ok_or("user id truncated or not UTF-8")?;
    let [type_len] = take::<1>(record, user_end)?;
    let type_at = user_end + 1;
    let type_end = type_at + usize::from(type_len);
    let type_name = record
        .get(type_at..type_end)
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .ok_or("body type truncated or not UTF-8")?;
    Ok(Header {
        kind,
        ts_ms,
        seq,
        session_id,
        user_id,
        type_name,
        tail_at: type_end,
    })
}

/// Decodes a stored record into the entry at `offset`, checking that header and body agree.
pub(crate) fn decode(offset: Offset, record: &[u8]) -> Result<LogEntry, String> {
    let header = header(record)?;
    let tail_bytes = record.get(header.tail_at..).ok_or("record has no body")?;
    let tail: Tail = octo_core::codec::from_msgpack(tail_bytes).map_err(|e| e.to_string())?;
    let user_id = UserId::new(header.user_id).map_err(|e| e.to_string())?;
    if tail.body.type_name() != header.type_name {
        return Err(format!(
            "header says type {:?}, body says {:?}",
            header.type_name,
            tail.body.type_name()
        ));
    }
    let entry = LogEntry {
        offset,
        ts_ms: header.ts_ms,
        user_id,
        session_id: header.session_id,
        kind: header.kind,
        producer: Producer {
            id: tail.producer,
            seq: header.seq,
        },
        command_id: tail.command_id,
        body: tail.body,
    };
    // A body of a newer type than this build knows is kept as `Body::Unknown` so readers can skip
    // it (PROTOCOL.md 1.3); only appends refuse unknown bodies.
    if entry.body.kind().is_some() {
        entry.check().map_err(|e| e.to_string())?;
    }
    Ok(entry)
}
