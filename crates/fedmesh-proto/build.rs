//! Compiles the contract in the top-level `proto/` with the pure-Rust `protox` (no `protoc` on
//! the machine), writes the encoded file descriptor set for server reflection, and generates
//! messages, clients and servers into `OUT_DIR`.

use std::path::{Path, PathBuf};

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let package_dir = proto_root.join("fedmesh/v1");
    println!("cargo:rerun-if-changed={}", package_dir.display());

    let mut files: Vec<PathBuf> = std::fs::read_dir(&package_dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let descriptors = protox::compile(&files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("fedmesh_v1_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // RPCs whose behaviour belongs to a later milestone answer UNIMPLEMENTED until then.
        .generate_default_stubs(true)
        .compile_fds(descriptors)?;
    Ok(())
}
