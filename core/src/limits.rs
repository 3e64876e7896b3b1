//! Every limit of PROTOCOL.md section 3.4, as named constants with the reason for each number.
//!
//! These are the defaults; a configurable limit takes its constant as the default and its config
//! validates a range. The relations between them are checked at compile time at the bottom.

/// Largest inbound WebSocket message we accept (after reassembly); bigger ones get
/// `frame_too_large` and are discarded, the connection stays open.
pub const FRAME_BYTES_MAX: usize = 1 << 20;

/// Inbound messages beyond this close the connection with 1009: reading them at all costs more
/// than a polite refusal is worth.
pub const FRAME_BYTES_HARD_CAP: usize = 4 * FRAME_BYTES_MAX;

/// Largest encoded log entry. Bigger hstry payloads go to the blob store (PROTOCOL.md 2.2); the
/// runner truncates message content to fit (section 7).
pub const ENTRY_BYTES_MAX: usize = 1 << 20;

/// Room an outbound frame may take on top of one entry (the envelope of `entry` and
/// `replay_result` frames).
pub const OUTBOUND_ENVELOPE_BYTES_MAX: usize = 64 << 10;

/// The largest frame the server ever sends; client libraries must accept it.
pub const OUTBOUND_FRAME_BYTES_MAX: usize = ENTRY_BYTES_MAX + OUTBOUND_ENVELOPE_BYTES_MAX;

/// Subscriptions one connection may hold (the sessions stream counts as one).
pub const SUBSCRIPTIONS_PER_CONNECTION_MAX: usize = 64;

/// Live queue bound per subscription, in entries; past it the subscription catches up from the
/// log (section 5.2). Configurable down to 1 for tests.
pub const LIVE_QUEUE_ENTRIES_MAX: usize = 1024;

/// Live queue bound per subscription, in bytes.
pub const LIVE_QUEUE_BYTES_MAX: usize = 8 << 20;

/// A socket that makes no write progress for this long is closed with 1008 `too_slow`.
pub const SOCKET_STALL_MS: u64 = 60_000;

/// Longest prompt text, in bytes (UTF-8).
pub const PROMPT_TEXT_BYTES_MAX: usize = 256 << 10;

/// Most images one prompt may carry.
pub const PROMPT_IMAGES_MAX: usize = 8;

/// Most workspace files one prompt may reference.
pub const PROMPT_FILES_MAX: usize = 32;

/// Terminals one connection may hold open.
pub const TERMINALS_PER_CONNECTION_MAX: usize = 8;

/// Largest chunk one files `read` returns.
pub const READ_CHUNK_BYTES_MAX: usize = 512 << 10;

/// Longest session title, in characters.
pub const TITLE_CHARS_MAX: usize = 200;

/// Longest `compact` instructions, in bytes.
pub const COMPACT_INSTRUCTIONS_BYTES_MAX: usize = 16 << 10;

/// Longest `ReqId`, in characters.
pub const REQ_ID_CHARS_MAX: usize = 64;

/// Longest workspace-relative path, in bytes.
pub const PATH_BYTES_MAX: usize = 4096;

/// Most items in one `sessions` reply chunk.
pub const SESSIONS_CHUNK_ITEMS_MAX: usize = 500;

/// `replay` page size: default and maximum.
pub const REPLAY_LIMIT_DEFAULT: u32 = 200;
/// See [`REPLAY_LIMIT_DEFAULT`].
pub const REPLAY_LIMIT_MAX: u32 = 1000;

/// Deepest nesting any decoder accepts: serde_json's own recursion limit, applied to msgpack too,
/// so a hostile body cannot overflow the stack (an abort, not a recoverable panic). Harness data
/// (tool inputs) deeper than this is refused at decode.
pub const DECODE_DEPTH_MAX: usize = 128;

/// Largest offset: offsets stay below 2^53 so JSON numbers are exact in JavaScript.
pub const OFFSET_MAX: u64 = (1 << 53) - 1;

/// Events one runner `events` frame may carry.
pub const RUNNER_EVENTS_PER_FRAME_MAX: usize = 256;

/// Largest runner link frame.
pub const RUNNER_FRAME_BYTES_MAX: usize = 8 << 20;

/// Longest `stderr_tail` of `harness.exited`.
pub const STDERR_TAIL_BYTES_MAX: usize = 4 << 10;

/// Largest blob the log's blob store takes (one hstry attachment or oversized message).
pub const BLOB_BYTES_MAX: usize = 64 << 20;

const _: () = assert!(OUTBOUND_FRAME_BYTES_MAX <= 2 * FRAME_BYTES_MAX);
const _: () = assert!(ENTRY_BYTES_MAX <= FRAME_BYTES_MAX);
const _: () = assert!(FRAME_BYTES_HARD_CAP > FRAME_BYTES_MAX);
const _: () = assert!(PROMPT_TEXT_BYTES_MAX < ENTRY_BYTES_MAX);
const _: () = assert!(REPLAY_LIMIT_DEFAULT <= REPLAY_LIMIT_MAX);
const _: () = assert!(ENTRY_BYTES_MAX < BLOB_BYTES_MAX);
const _: () = assert!(RUNNER_FRAME_BYTES_MAX >= 4 * ENTRY_BYTES_MAX);
