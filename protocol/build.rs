//! Generates the wire types from `schemas/` with protox: no system `protoc` needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let proto = root.join("chat/v1/chat.proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let fds = protox::compile([&proto], [&root])?;
    prost_build::Config::new().bytes(["."]).compile_fds(fds)?;
    Ok(())
}
