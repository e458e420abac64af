//! Generates the wire types from `schemas/` with protox: no system `protoc` needed.
//! Two files: the client contract (`chat/v1/chat.proto`) and what nodes tell
//! each other (`chat/cluster/v1/cluster.proto`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let protos = [root.join("chat/v1/chat.proto"), root.join("chat/cluster/v1/cluster.proto")];
    println!("cargo:rerun-if-changed={}", root.display());
    let fds = protox::compile(&protos, [&root])?;
    prost_build::Config::new().bytes(["."]).compile_fds(fds)?;
    Ok(())
}
