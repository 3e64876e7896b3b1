//! Fuzzes the client frame decoder (PROTOCOL.md 3.2, 13) in both encodings.
//!
//! Invariants checked: decoding never panics; an error always carries a frame error code, a `ref`
//! for every code but `malformed_frame`, and a reply frame that encodes; a decoded frame
//! re-encodes and decodes to itself. It does not fuzz validation or the log decoders (the
//! proptests in core/tests/protocol/bad_input.rs cover those).

#![no_main]

use libfuzzer_sys::fuzz_target;
use octo_core::Encoding;
use octo_core::codec;
use octo_core::error::ErrorCode;
use octo_core::frame::decode_client_frame;
use octo_core::validate::{FieldLimits, validate_client_frame};

fuzz_target!(|data: &[u8]| {
    for encoding in [Encoding::Json, Encoding::Msgpack] {
        match decode_client_frame(encoding, data) {
            Ok(frame) => {
                let _ = validate_client_frame(&frame, &FieldLimits::default());
                let bytes = codec::encode(encoding, &frame).expect("a decoded frame encodes");
                let again =
                    decode_client_frame(encoding, &bytes).expect("a re-encoded frame decodes");
                assert_eq!(again, frame, "re-decoding changed the frame");
            }
            Err(error) => {
                let needs_ref = error.code() != ErrorCode::MalformedFrame;
                assert_eq!(error.reference().is_some(), needs_ref, "{error:?}");
                let reply = error.reply_frame();
                codec::to_json(&reply).expect("the reply encodes as JSON");
                codec::to_msgpack(&reply).expect("the reply encodes as msgpack");
            }
        }
    }
});
