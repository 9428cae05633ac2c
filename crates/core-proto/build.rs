//! Copies the descriptor set `temporalio-protos` compiled (exported through its `links` key) so
//! the JSON history helpers can read and write proto3 JSON without copying any `.proto` file.

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let target = out.join("temporal_descriptors.bin");
    let source = std::env::var("DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH")
        .expect("temporalio-protos exports its descriptor set path");
    println!("cargo:rerun-if-changed={source}");
    std::fs::copy(&source, &target).expect("copying the Temporal descriptor set");
}
