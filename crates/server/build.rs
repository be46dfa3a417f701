//! Generates the command table's source list from `commands/*.json`: one entry per file, with
//! the file's JSON embedded and its `function` bound to the Rust handler it names. A spec naming
//! a handler that does not exist fails the build, so the table and the code cannot drift apart.

use std::fmt::Write;
use std::path::Path;

fn main() {
    command_table();
    grpc_service();
}

/// Generates the KServe V2 gRPC service (the server, and the client locus-benchmark drives it with) from `proto/inference.proto`, with
/// the vendored protoc.
fn grpc_service() {
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/inference.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    // SAFETY: the build script is single-threaded; protoc's path is read by the generator.
    unsafe { std::env::set_var("PROTOC", protoc) };
    tonic_prost_build::configure()
        .compile_protos(
            std::slice::from_ref(&proto),
            &[proto.parent().unwrap().to_path_buf()],
        )
        .expect("inference.proto compiles");
}

fn command_table() {
    // The specs live at the repository's top level: the Redis module reads them too.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../commands");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("commands/ directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = String::from("pub static SPEC_SOURCES: &[SpecSource] = &[\n");
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(&path).expect("readable spec");
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, body) = json
            .as_object()
            .and_then(|o| o.iter().next())
            .expect("one command per file");
        let handler = match body.get("function").and_then(|f| f.as_str()) {
            Some(f) => {
                let (module, func) = f.split_once("::").expect("function is module::name");
                let func = match func {
                    "type" | "move" | "ref" | "fn" | "match" | "loop" => format!("r#{func}"),
                    other => other.to_string(),
                };
                format!("Some(crate::cmd::{module}::{func})")
            }
            None => "None".to_string(),
        };
        writeln!(
            out,
            "    SpecSource {{ file: {:?}, json: include_str!({:?}), handler: {} }},",
            path.file_name().unwrap().to_string_lossy(),
            path.display().to_string(),
            handler
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("command_specs.rs");
    std::fs::write(dest, out).unwrap();
}
