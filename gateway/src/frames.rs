//! Encoded `entry` frames shared by every subscriber of a session: one live entry watched by a
//! thousand sockets is encoded once per encoding, not a thousand times. A small cache keyed by
//! (subscribed session, offset, encoding), oldest dropped first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use axum::extract::ws::Message;
use octo_core::frame::{AgentServerFrame, EntryFrame, ServerFrame};
use octo_core::{Encoding, LogEntry, Offset, SessionId};

/// Frames kept; a subscriber further behind than this encodes its own.
pub const CACHED_FRAMES_MAX: usize = 4096;

type Key = (SessionId, Offset, Encoding);

/// See the module documentation.
#[derive(Default)]
pub struct FrameCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Looked up once per delivery: a fast hash, not SipHash (keys are the server's own).
    frames: HashMap<Key, Message, foldhash::fast::RandomState>,
    order: VecDeque<Key>,
}

/// Encodes a server frame as a WebSocket message in `encoding`.
pub fn encode(encoding: Encoding, frame: &ServerFrame) -> Option<Message> {
    match encoding {
        Encoding::Json => octo_core::codec::to_json(frame)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(|text| Message::Text(text.into())),
        Encoding::Msgpack => octo_core::codec::to_msgpack(frame)
            .ok()
            .map(|bytes| Message::Binary(bytes.into())),
    }
}

impl FrameCache {
    /// The `entry` frame of `entry` for a subscription to `session_id`, encoded once.
    pub fn entry(
        &self,
        session_id: SessionId,
        entry: &LogEntry,
        encoding: Encoding,
    ) -> Option<Message> {
        let key = (session_id, entry.offset, encoding);
        if let Some(message) = self.lock().frames.get(&key) {
            return Some(message.clone());
        }
        let frame = ServerFrame::Agent(AgentServerFrame::Entry(EntryFrame {
            session_id,
            entry: entry.clone(),
        }));
        let message = encode(encoding, &frame)?;
        let mut inner = self.lock();
        if inner.frames.insert(key, message.clone()).is_none() {
            inner.order.push_back(key);
            while inner.order.len() > CACHED_FRAMES_MAX {
                if let Some(oldest) = inner.order.pop_front() {
                    inner.frames.remove(&oldest);
                }
            }
        }
        Some(message)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("the frame cache lock is never poisoned")
    }
}
