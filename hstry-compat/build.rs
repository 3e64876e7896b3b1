//! Generates hstry's messages and services from the checked-in proto with protox (pure Rust, no
//! `protoc`), and the descriptor set that server reflection serves.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = protox::compile(["proto/hstry_service.proto"], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("hstry_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        // Written by hand so a whole conversation is encoded on every core (src/wire.rs).
        .extern_path(
            ".hstry.service.GetMessagesResponse",
            "crate::wire::GetMessagesResponse",
        )
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
