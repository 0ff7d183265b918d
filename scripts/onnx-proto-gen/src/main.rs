//! Compiles `onnx-ml.proto` with protox and writes prost's Rust types for it.
//!
//! Usage: `onnx-proto-gen PROTO INCLUDE_DIR OUT_DIR` (writes `OUT_DIR/onnx.rs`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [proto, include, out] = args.as_slice() else {
        return Err("usage: onnx-proto-gen PROTO INCLUDE_DIR OUT_DIR".into());
    };
    let files = protox::compile([proto], [include])?;
    prost_build::Config::new().out_dir(out).compile_fds(files)?;
    Ok(())
}
