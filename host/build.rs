//! Embeds the plugin SDK (`wit/`, `sdk/`) in the `interpose` binary, so that
//! `interpose plugin new` and `interpose plugin build` work without a checkout.
//!
//! Writes `$OUT_DIR/plugin_sdk.rs`: one `include_bytes!` per file, which makes
//! rustc rebuild the binary when a file's contents change. A file added to or
//! removed from the SDK is picked up when this script runs again (a clean
//! build, or `touch host/build.rs`); the `embedded_sdk_matches_the_checkout`
//! test says so when the list is out of date. Watching the directories instead
//! would rebuild the whole crate whenever Python writes a `__pycache__`.

#[path = "src/plugin_dev/sdk_files.rs"]
mod sdk_files;

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/plugin_dev/sdk_files.rs");
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir)
        .parent()
        .expect("host/ has a parent");
    let files = sdk_files::list(root).expect("list the plugin SDK files under wit/ and sdk/");

    let mut code = String::from("pub static FILES: &[(&str, &[u8])] = &[\n");
    for file in &files {
        let path = root.join(file);
        writeln!(
            code,
            "    ({file:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .expect("write to a String");
    }
    code.push_str("];\n");
    let workspace = root.join("Cargo.toml");
    writeln!(
        code,
        "pub static WORKSPACE_MANIFEST: &str = include_str!({:?});",
        workspace.display().to_string()
    )
    .expect("write to a String");

    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("plugin_sdk.rs");
    std::fs::write(&out, code).expect("write plugin_sdk.rs");
}
