//! Generates the Rust code for every `.proto` file with a vendored protoc, so no system protoc
//! is needed. PROTOC is passed to our own code generation only: exporting it globally would
//! break raft's build script, which rejects this protoc version.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let protos = [
        "protos/common.proto",
        "protos/mon.proto",
        "protos/monpeer.proto",
        "protos/osd.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    // Object data crosses the OSD service several times (client, primary, replicas): as
    // `Bytes` it is shared, not copied, between the decoded message and what is sent on.
    config.bytes([".shoal.osd"]);
    tonic_prost_build::configure()
        .codec_path("crate::codec::SizedCodec")
        .compile_with_config(config, &protos, &["protos"])?;
    Ok(())
}
