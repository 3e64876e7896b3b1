//! `GetMessagesResponse`, written by hand instead of generated: a whole conversation is thousands
//! of messages, and the generated type could only be encoded on one core after all of them were
//! built. This one also carries messages already encoded, each on whichever core converted it,
//! so sending it is one copy. On the wire it is exactly hstry's message (field 1
//! `conversation_id`, field 2 repeated `Message`), and it decodes into `messages` as the generated
//! type would.

use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};

use crate::proto::Message;

/// hstry's `GetMessagesResponse`.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct GetMessagesResponse {
    /// Field 1.
    pub conversation_id: String,
    /// Field 2: the messages a decode gives, and any a server builds one by one.
    pub messages: Vec<Message>,
    /// Messages already encoded as whole field-2 records (key, length, body), sent after
    /// `messages`, in order; one buffer may hold a run of them.
    encoded: Vec<Vec<u8>>,
}

const CONVERSATION_ID: u32 = 1;
const MESSAGES: u32 = 2;

impl GetMessagesResponse {
    /// A response of messages encoded with [`encode_message`] or [`encode_message_into`].
    pub fn encoded(conversation_id: String, encoded: Vec<Vec<u8>>) -> GetMessagesResponse {
        GetMessagesResponse {
            conversation_id,
            messages: Vec::new(),
            encoded,
        }
    }
}

/// One message as the field-2 record of a [`GetMessagesResponse`].
pub fn encode_message(message: &Message) -> Vec<u8> {
    let mut buf = Vec::with_capacity(encoding::message::encoded_len(MESSAGES, message));
    encode_message_into(message, &mut buf);
    buf
}

/// Appends one message's field-2 record to `buf`: a run of them is one buffer, not one
/// allocation per message.
pub fn encode_message_into(message: &Message, buf: &mut Vec<u8>) {
    buf.reserve(encoding::message::encoded_len(MESSAGES, message));
    encoding::message::encode(MESSAGES, message, buf);
}

impl prost::Message for GetMessagesResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if !self.conversation_id.is_empty() {
            encoding::string::encode(CONVERSATION_ID, &self.conversation_id, buf);
        }
        for message in &self.messages {
            encoding::message::encode(MESSAGES, message, buf);
        }
        for record in &self.encoded {
            buf.put_slice(record);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            CONVERSATION_ID => {
                encoding::string::merge(wire_type, &mut self.conversation_id, buf, ctx).map_err(
                    |mut e| {
                        e.push("GetMessagesResponse", "conversation_id");
                        e
                    },
                )
            }
            MESSAGES => encoding::message::merge_repeated(wire_type, &mut self.messages, buf, ctx)
                .map_err(|mut e| {
                    e.push("GetMessagesResponse", "messages");
                    e
                }),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let id = if self.conversation_id.is_empty() {
            0
        } else {
            encoding::string::encoded_len(CONVERSATION_ID, &self.conversation_id)
        };
        id + encoding::message::encoded_len_repeated(MESSAGES, &self.messages)
            + self.encoded.iter().map(Vec::len).sum::<usize>()
    }

    fn clear(&mut self) {
        self.conversation_id.clear();
        self.messages.clear();
        self.encoded.clear();
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn message(idx: i32) -> Message {
        Message {
            idx,
            role: "assistant".to_owned(),
            content: format!("answer {idx}: ünïcode and \"quotes\""),
            parts_json: r#"[{"type":"text","text":"answer"}]"#.to_owned(),
            created_at_ms: Some(1_700_000_000_000 + i64::from(idx)),
            model: Some("m".to_owned()),
            id: Some(format!("id-{idx}")),
            ..Message::default()
        }
    }

    #[test]
    fn encoded_messages_are_the_same_bytes_as_built_ones_and_decode_back() {
        let messages: Vec<Message> = (0..50).map(message).collect();
        let built = GetMessagesResponse {
            conversation_id: "c-1".to_owned(),
            messages: messages.clone(),
            encoded: Vec::new(),
        };
        let encoded = GetMessagesResponse::encoded(
            "c-1".to_owned(),
            messages.iter().map(encode_message).collect(),
        );
        let bytes = encoded.encode_to_vec();
        assert_eq!(bytes, built.encode_to_vec());
        assert_eq!(bytes.len(), encoded.encoded_len());
        let decoded = GetMessagesResponse::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(decoded, built);
    }

    #[test]
    fn the_wire_is_hstrys_field_numbers() {
        // Built by hand from the proto: field 1 (string), field 2 (message {idx = 7}).
        let bytes = [0x0a, 0x01, b'c', 0x12, 0x02, 0x08, 0x07];
        let decoded = GetMessagesResponse::decode(&bytes[..]).expect("decodes");
        assert_eq!(decoded.conversation_id, "c");
        assert_eq!(decoded.messages.len(), 1);
        assert_eq!(decoded.messages[0].idx, 7);
        let again = GetMessagesResponse::encoded(
            "c".to_owned(),
            vec![encode_message(&Message {
                idx: 7,
                ..Message::default()
            })],
        )
        .encode_to_vec();
        assert_eq!(again, bytes);
        // An unknown field is skipped, as generated code does.
        let with_unknown = [0x0a, 0x01, b'c', 0x18, 0x05];
        let decoded = GetMessagesResponse::decode(&with_unknown[..]).expect("decodes");
        assert_eq!(decoded.conversation_id, "c");
        assert!(decoded.messages.is_empty());
    }
}
