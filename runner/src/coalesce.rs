//! Delta coalescing (PROTOCOL.md 6.4): consecutive deltas of one part arriving within 50 ms become
//! one event of at most 16 KiB, so the log holds a few delta entries per second, not one per token.
//!
//! A pure layer over the translator's output: feed it events with the time they were produced;
//! it returns what is ready. Any event other than a delta of the held part flushes the held delta
//! first, so order is kept; call [`Coalescer::flush_due`] on a timer so a held delta is not late by
//! more than the window.

use octo_core::{Event, Ms, PartId};

/// How long a delta may wait for the next one of the same part.
pub const COALESCE_WINDOW_MS: Ms = 50;

/// The largest coalesced `delta`, in bytes.
pub const COALESCED_DELTA_BYTES_MAX: usize = 16 << 10;

/// Holds at most one delta at a time.
#[derive(Debug, Default)]
pub struct Coalescer {
    held: Option<(Event, Ms)>,
}

fn delta_of(event: &mut Event) -> Option<(PartId, &mut String)> {
    match event {
        Event::StreamTextDelta(delta) => Some((delta.part_id, &mut delta.delta)),
        Event::StreamThinkingDelta(delta) => Some((delta.part_id, &mut delta.delta)),
        Event::StreamToolCallDelta(delta) => Some((delta.part_id, &mut delta.delta)),
        _ => None,
    }
}

impl Coalescer {
    /// Takes the next event (produced at `now_ms`) and returns the events ready to append.
    pub fn push(&mut self, mut event: Event, now_ms: Ms) -> Vec<Event> {
        let mut ready = Vec::new();
        let Some((part_id, delta)) = delta_of(&mut event) else {
            ready.extend(self.take());
            ready.push(event);
            return ready;
        };
        let incoming = std::mem::take(delta);
        if let Some((held, first_ms)) = &mut self.held
            && let Some((held_part, held_delta)) = delta_of(held)
            && held_part == part_id
            && now_ms - *first_ms <= COALESCE_WINDOW_MS
            && held_delta.len() + incoming.len() <= COALESCED_DELTA_BYTES_MAX
        {
            held_delta.push_str(&incoming);
            return ready;
        }
        ready.extend(self.take());
        if let Some((_, delta)) = delta_of(&mut event) {
            *delta = incoming;
        }
        self.held = Some((event, now_ms));
        ready
    }

    /// The held delta if its window has passed at `now_ms`.
    pub fn flush_due(&mut self, now_ms: Ms) -> Option<Event> {
        match &self.held {
            Some((_, first_ms)) if now_ms - *first_ms > COALESCE_WINDOW_MS => self.take(),
            _ => None,
        }
    }

    /// Whether a delta is held back.
    pub fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    /// The held delta, whatever its age (at the end of a stream).
    pub fn take(&mut self) -> Option<Event> {
        self.held.take().map(|(event, _)| event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use octo_core::MessageId;
    use octo_core::event::{Notice, NoticeLevel, StreamTextDelta};

    fn delta(message_id: MessageId, part_id: PartId, text: &str) -> Event {
        Event::StreamTextDelta(StreamTextDelta {
            message_id,
            part_id,
            index: 0,
            delta: text.to_owned(),
        })
    }

    fn text(event: &Event) -> &str {
        match event {
            Event::StreamTextDelta(delta) => &delta.delta,
            _ => "",
        }
    }

    #[test]
    fn deltas_within_the_window_merge_and_order_is_kept() {
        let (message_id, a, b) = (MessageId::new(), PartId::new(), PartId::new());
        let mut coalescer = Coalescer::default();
        assert!(coalescer.push(delta(message_id, a, "Ru"), 0).is_empty());
        assert!(coalescer.push(delta(message_id, a, "nnin"), 20).is_empty());
        assert!(coalescer.push(delta(message_id, a, "g it."), 50).is_empty());
        // Another part flushes the held one first.
        let out = coalescer.push(delta(message_id, b, "{"), 60);
        assert_eq!(out.len(), 1);
        assert_eq!(text(&out[0]), "Running it.");
        // A non-delta flushes too, and comes after.
        let notice = Event::Notice(Notice {
            level: NoticeLevel::Info,
            text: "n".into(),
        });
        let out = coalescer.push(notice.clone(), 70);
        assert_eq!(out.len(), 2);
        assert_eq!(text(&out[0]), "{");
        assert_eq!(out[1], notice);
        assert!(coalescer.take().is_none());
    }

    #[test]
    fn the_window_and_the_size_bound_split() {
        let (message_id, a) = (MessageId::new(), PartId::new());
        let mut coalescer = Coalescer::default();
        coalescer.push(delta(message_id, a, "one"), 0);
        assert!(coalescer.flush_due(50).is_none(), "still inside the window");
        let late = coalescer.push(delta(message_id, a, "two"), 51);
        assert_eq!(late.iter().map(text).collect::<Vec<_>>(), vec!["one"]);
        assert_eq!(coalescer.flush_due(102).as_ref().map(text), Some("two"));
        let big = "x".repeat(COALESCED_DELTA_BYTES_MAX);
        coalescer.push(delta(message_id, a, &big), 200);
        let out = coalescer.push(delta(message_id, a, "y"), 201);
        assert_eq!(out.len(), 1, "16 KiB is the most one delta carries");
        assert_eq!(coalescer.take().as_ref().map(text), Some("y"));
    }
}
