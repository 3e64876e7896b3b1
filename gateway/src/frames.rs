//! Encoded `entry` frames shared by every subscriber of a session: one live entry watched by a
//! thousand sockets is encoded once per encoding, not a thousand times. A direct-mapped cache:
//! each (offset, encoding) has one slot, keyed by the subscribed session too (a fork's view
//! shows its parent's entries under its own id); a newer frame replaces an older in its slot.
//! Every delivery looks it up, so a slot costs one uncontended lock and no hashing.

use std::sync::Mutex;

use axum::extract::ws::Message;
use octo_core::frame::{AgentServerFrame, EntryFrame, ServerFrame};
use octo_core::{Encoding, LogEntry, Offset, SessionId};

/// Frames kept per encoding; a subscriber further behind than this encodes its own.
pub const CACHED_FRAMES_MAX: usize = 4096;

/// See the module documentation.
pub struct FrameCache {
    slots: Box<[Mutex<Option<Cached>>]>,
}

struct Cached {
    session_id: SessionId,
    offset: Offset,
    message: Message,
}

impl Default for FrameCache {
    fn default() -> FrameCache {
        FrameCache {
            slots: (0..CACHED_FRAMES_MAX * 2)
                .map(|_| Mutex::new(None))
                .collect(),
        }
    }
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
        let slot = self.slot(entry.offset, encoding);
        if let Some(cached) = &*lock(slot)
            && cached.offset == entry.offset
            && cached.session_id == session_id
        {
            return Some(cached.message.clone());
        }
        let frame = ServerFrame::Agent(AgentServerFrame::Entry(EntryFrame {
            session_id,
            entry: entry.clone(),
        }));
        let message = encode(encoding, &frame)?;
        *lock(slot) = Some(Cached {
            session_id,
            offset: entry.offset,
            message: message.clone(),
        });
        Some(message)
    }

    fn slot(&self, offset: Offset, encoding: Encoding) -> &Mutex<Option<Cached>> {
        let encoding = match encoding {
            Encoding::Json => 0,
            Encoding::Msgpack => 1,
        };
        &self.slots[(offset.get() % CACHED_FRAMES_MAX as u64) as usize * 2 + encoding]
    }
}

fn lock(slot: &Mutex<Option<Cached>>) -> std::sync::MutexGuard<'_, Option<Cached>> {
    slot.lock()
        .expect("a frame cache slot's lock is never poisoned")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_at(offset: u64, session_id: SessionId) -> LogEntry {
        let json = format!(
            r#"{{"offset":{offset},"ts_ms":1795549163000,"user_id":"u1","session_id":"{session_id}","kind":"event","producer":{{"id":"gw:n1","seq":1}},"body":{{"type":"session.renamed","title":"t","source":"user"}}}}"#
        );
        octo_core::codec::from_json(json.as_bytes()).expect("a valid entry")
    }

    fn text(message: &Message) -> String {
        match message {
            Message::Text(text) => text.as_str().to_owned(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn a_frame_is_the_entry_under_the_subscribed_session() {
        let cache = FrameCache::default();
        let (own, fork) = (SessionId::new(), SessionId::new());
        let entry = entry_at(7, own);
        for session_id in [own, fork, own] {
            let message = cache
                .entry(session_id, &entry, Encoding::Json)
                .expect("encodes");
            let expected = encode(
                Encoding::Json,
                &ServerFrame::Agent(AgentServerFrame::Entry(EntryFrame {
                    session_id,
                    entry: entry.clone(),
                })),
            )
            .expect("encodes");
            assert_eq!(text(&message), text(&expected));
        }
        // Same slot, a later offset: the newer frame, never the older one.
        let later = entry_at(7 + CACHED_FRAMES_MAX as u64, own);
        let message = cache.entry(own, &later, Encoding::Json).expect("encodes");
        assert!(text(&message).contains(&format!("\"offset\":{}", later.offset.get())));
        let msgpack = cache
            .entry(own, &later, Encoding::Msgpack)
            .expect("encodes");
        assert!(matches!(msgpack, Message::Binary(_)));
    }
}
