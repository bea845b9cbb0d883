//! `interpose plugin build`: a plugin project into a WebAssembly component, with
//! the language's own tools.
//!
//! - Rust (`Cargo.toml`): `cargo build --release --target wasm32-wasip2`; the
//!   component is cargo's `<lib name>.wasm` in the project's target directory.
//! - Python (`plugin.py`): componentize-py against `wit/`, world
//!   `interceptor-plugin` (`interceptor-plugin-http` when `capabilities.toml`
//!   declares `http`, for the `wasi:http` bindings), with the SDK on the module path.
//! - JavaScript (`package.json`): the SDK's `build/build.mjs` (esbuild, then
//!   componentize-js with its bindings patched; see `sdk/js/README.md`), against the
//!   same world as Python.
//!
//! Python and JavaScript components go to `<project>/target/<dir name>.wasm`
//! unless an output is given. The capabilities the project declares in
//! `capabilities.toml` are then embedded in the component (its
//! `interpose-capabilities` section), and the component is compiled into the
//! proxy's compiled-plugin cache, so that `interpose run` starts without compiling it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use interpose::plugin::Origin;
use interpose::plugin::trust::capabilities::{self, Capabilities};

use super::sdk::Sdk;
use super::toolchain::{self, COMPONENTIZE_PY_VERSION, RUST_TARGET};
use super::{Lang, output, run, tools_dir};

/// What `interpose plugin build` was asked for.
pub struct BuildOptions {
    /// The plugin project's directory.
    pub dir: PathBuf,
    /// Where to write the component, instead of the language's default place.
    pub output: Option<PathBuf>,
    /// The language, instead of telling it from the project's files.
    pub lang: Option<Lang>,
    /// Rebuild a JavaScript plugin whose inputs did not change.
    pub force: bool,
}

/// Builds the plugin and returns the component's path.
pub fn build(options: &BuildOptions) -> Result<PathBuf> {
    let dir = std::path::absolute(&options.dir)
        .with_context(|| format!("resolving {}", options.dir.display()))?;
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let lang = match options.lang {
        Some(lang) => lang,
        None => detect(&dir)?,
    };
    let output = options
        .output
        .as_deref()
        .map(std::path::absolute)
        .transpose()
        .context("resolving the output path")?;
    eprintln!("building the {lang} plugin in {}", dir.display());
    let started = Instant::now();
    let built = match lang {
        Lang::Rust => build_rust(&dir, output.as_deref()),
        Lang::Python => build_python(&dir, output),
        Lang::Js => build_js(&dir, output, options.force),
    }?;
    embed_capabilities(&dir, &built)?;
    let bytes = std::fs::metadata(&built)
        .with_context(|| format!("the build wrote no {}", built.display()))?
        .len();
    eprintln!(
        "built {} ({:.1} MiB) in {:.1?}",
        built.display(),
        bytes as f64 / (1024.0 * 1024.0),
        started.elapsed()
    );
    precompile(&built)?;
    Ok(built)
}

/// Compiles the component into the compiled-plugin cache, as `interpose run` looks
/// it up, so that the first start after the build maps it instead of compiling it
/// (seconds for Python and JavaScript). A component that does not compile fails the
/// build here rather than the first start.
fn precompile(component: &Path) -> Result<()> {
    let started = Instant::now();
    let origin = interpose::plugin::precompile(component).with_context(|| {
        format!(
            "the build wrote {}, but interpose cannot load it",
            component.display()
        )
    })?;
    match origin {
        Some(Origin::Compiled) => eprintln!(
            "compiled it for interpose in {:.1?} (cached: `interpose run` starts without compiling)",
            started.elapsed()
        ),
        Some(Origin::Cached) => eprintln!("already compiled for interpose (in the cache)"),
        None => eprintln!(
            "not compiled ahead: the compiled-plugin cache is off (${} is empty, or no home), so \
             `interpose run` compiles it at every start",
            interpose::plugin::CACHE_DIR_ENV
        ),
    }
    Ok(())
}

/// The world a Python or JavaScript plugin is built against: with `wasi:http` when
/// the project declares outbound HTTP (componentize-py and componentize-js make
/// bindings for the world's imports only, and componentize-py imports all of them,
/// so plugins that do not call out do not get it).
fn guest_world(dir: &Path) -> Result<&'static str> {
    let declared = read_declared(dir)?;
    Ok(match declared {
        Some(declared) if !declared.http.is_empty() => "interceptor-plugin-http",
        _ => "interceptor-plugin",
    })
}

/// The project's `capabilities.toml`, when it has one.
fn read_declared(dir: &Path) -> Result<Option<Capabilities>> {
    let file = dir.join(CAPABILITIES_FILE);
    if !file.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    toml::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} is not valid", file.display()))
}

/// The file of a plugin project that declares what the plugin needs.
pub const CAPABILITIES_FILE: &str = "capabilities.toml";

/// Embeds the project's `capabilities.toml`, when it has one, into the built
/// component (replacing a declaration a previous build left). Written aside, then
/// renamed over: cargo hard-links its output, which must not change under it.
fn embed_capabilities(dir: &Path, built: &Path) -> Result<()> {
    let Some(declared) = read_declared(dir)? else {
        return Ok(());
    };
    let file = dir.join(CAPABILITIES_FILE);
    let wasm = std::fs::read(built).with_context(|| format!("cannot read {}", built.display()))?;
    let with_section = capabilities::embed(&wasm, &declared)
        .with_context(|| format!("{}: cannot embed {}", built.display(), file.display()))?;
    write_through_partial(built, |partial| {
        std::fs::write(partial, &with_section)
            .with_context(|| format!("writing {}", partial.display()))
    })?;
    eprintln!("embedded the capabilities declared in {}", file.display());
    Ok(())
}

/// The language of the project in `dir`, from the file that marks it.
fn detect(dir: &Path) -> Result<Lang> {
    let markers = [
        ("Cargo.toml", Lang::Rust),
        ("plugin.py", Lang::Python),
        ("package.json", Lang::Js),
    ];
    for (file, lang) in markers {
        if dir.join(file).is_file() {
            return Ok(lang);
        }
    }
    bail!(
        "cannot tell which language the plugin in {} is written in: it has no Cargo.toml (Rust), \
         plugin.py (Python) or package.json (JavaScript). Create a plugin with `interpose plugin \
         new NAME --lang rust|python|js`, or pass --lang",
        dir.display()
    )
}

/// `<dir>/target/<dir name>.wasm`.
fn default_output(dir: &Path) -> Result<PathBuf> {
    let name = dir.file_name().with_context(|| {
        format!(
            "{} has no directory name to name the component after: pass -o",
            dir.display()
        )
    })?;
    let mut file = name.to_owned();
    file.push(".wasm");
    Ok(dir.join("target").join(file))
}

/// Writes `out` through `<out>.partial`, so a failed build leaves no half
/// component where the old one was.
fn write_through_partial(out: &Path, build: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = out.parent().context("the output has a parent directory")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let built = build(&partial);
    if built.is_err() {
        let _ = std::fs::remove_file(&partial);
        return built;
    }
    std::fs::rename(&partial, out).with_context(|| format!("writing {}", out.display()))
}

fn build_rust(dir: &Path, out: Option<&Path>) -> Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} has no Cargo.toml, the manifest of a Rust plugin",
            dir.display()
        );
    }
    toolchain::rust_target(dir)?;
    let metadata = output(
        Command::new("cargo")
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--manifest-path",
            ])
            .arg(&manifest),
    )
    .with_context(|| format!("reading {} with `cargo metadata`", manifest.display()))?;
    let (target_dir, lib) = cdylib_of(&metadata, &manifest)?;
    run(
        Command::new("cargo")
            .args([
                "build",
                "--lib",
                "--release",
                "--target",
                RUST_TARGET,
                "--manifest-path",
            ])
            .arg(&manifest),
        "cargo build",
    )
    .with_context(|| format!("building {} for {RUST_TARGET}", manifest.display()))?;
    let built = target_dir
        .join(RUST_TARGET)
        .join("release")
        .join(format!("{lib}.wasm"));
    if !built.is_file() {
        bail!("cargo built no {}", built.display());
    }
    match out {
        None => Ok(built),
        Some(out) => {
            write_through_partial(out, |partial| {
                std::fs::copy(&built, partial)
                    .map(drop)
                    .with_context(|| format!("copying {} to {}", built.display(), out.display()))
            })?;
            Ok(out.to_owned())
        }
    }
}

/// The target directory and the name of the `cdylib` library of the package whose
/// manifest is `manifest`, from `cargo metadata` output.
fn cdylib_of(metadata: &str, manifest: &Path) -> Result<(PathBuf, String)> {
    let metadata: serde_json::Value = serde_json::from_str(metadata)
        .context("`cargo metadata` printed something that is not JSON")?;
    let target_dir = metadata["target_directory"]
        .as_str()
        .context("`cargo metadata` gave no target directory")?;
    let wanted = manifest.canonicalize()?;
    let package = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|package| {
            package["manifest_path"]
                .as_str()
                .and_then(|path| Path::new(path).canonicalize().ok())
                .is_some_and(|path| path == wanted)
        })
        .with_context(|| format!("{} defines no package", manifest.display()))?;
    let lib = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|target| {
            target["crate_types"]
                .as_array()
                .is_some_and(|types| types.iter().any(|t| t == "cdylib"))
        })
        .and_then(|target| target["name"].as_str())
        .with_context(|| {
            format!(
                "{} builds no component: a plugin crate needs `[lib] crate-type = [\"cdylib\", \
                 \"rlib\"]`",
                manifest.display()
            )
        })?;
    Ok((PathBuf::from(target_dir), lib.replace('-', "_")))
}

/// The module componentize-py wraps: it imports the plugin and binds it to the WIT
/// exports.
const PYTHON_APP: &str = "\
import plugin as _entry

from interpose_plugin._component import bind

Interceptor = bind(_entry)
";

fn build_python(dir: &Path, out: Option<PathBuf>) -> Result<PathBuf> {
    if !dir.join("plugin.py").is_file() {
        bail!(
            "{} has no plugin.py, the module a Python plugin starts from",
            dir.display()
        );
    }
    let out = match out {
        Some(out) => out,
        None => default_output(dir)?,
    };
    let tools = tools_dir()?;
    let sdk = Sdk::locate(&tools)?;
    let componentize_py = toolchain::componentize_py(&tools)?;
    // The app module lives outside the plugin and SDK directories, so nothing
    // generated lands in the source tree.
    let work = tempfile::Builder::new()
        .prefix("interpose-python-plugin-")
        .tempdir()
        .context("creating a scratch directory")?;
    std::fs::write(work.path().join("interpose_app.py"), PYTHON_APP)?;
    eprintln!(
        "componentizing {} with componentize-py {COMPONENTIZE_PY_VERSION} (15-30 s)",
        dir.join("plugin.py").display()
    );
    write_through_partial(&out, |partial| {
        run(
            Command::new(&componentize_py)
                // componentize-py looks for a venv's site-packages through
                // VIRTUAL_ENV; the plugin must see only its own directory and the SDK.
                .env_remove("VIRTUAL_ENV")
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .arg("--quiet")
                .arg("-d")
                .arg(sdk.wit())
                .args(["-w", guest_world(dir)?, "componentize", "interpose_app"])
                .arg("-p")
                .arg(work.path())
                .arg("-p")
                .arg(dir)
                .arg("-p")
                .arg(sdk.lang_dir("python"))
                .arg("-o")
                .arg(partial),
            "componentize-py",
        )
        .context("componentize-py could not build the plugin (its message is above)")
    })?;
    Ok(out)
}

fn build_js(dir: &Path, out: Option<PathBuf>, force: bool) -> Result<PathBuf> {
    let out = match out {
        Some(out) => out,
        None => default_output(dir)?,
    };
    let tools = tools_dir()?;
    let sdk = Sdk::locate(&tools)?;
    let js_sdk = sdk.lang_dir("js");
    let toolchain = toolchain::js(&tools, &js_sdk.join("toolchain"))?;
    let mut command = Command::new("node");
    // Its messages name files relative to the working directory: the plugin's.
    command.current_dir(dir);
    command.arg(js_sdk.join("build").join("build.mjs"));
    if force {
        command.arg("--force");
    }
    command
        .arg("--toolchain")
        .arg(&toolchain)
        .arg("--wit")
        .arg(sdk.wit())
        .arg("--world")
        .arg(guest_world(dir)?)
        .arg(dir)
        .arg(&out);
    run(&mut command, "the JavaScript build")
        .context("building the JavaScript plugin (the build's message is above)")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_a_project_is_not_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let err = detect(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot tell which language the plugin in"),
            "{err}"
        );
        std::fs::write(dir.path().join("package.json"), "{}").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Lang::Js);
        std::fs::write(dir.path().join("plugin.py"), "").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Lang::Python);
        std::fs::write(dir.path().join("Cargo.toml"), "").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Lang::Rust);
    }

    #[test]
    fn the_cdylib_and_target_directory_come_from_cargo_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("Cargo.toml");
        std::fs::write(&manifest, "").unwrap();
        let metadata = serde_json::json!({
            "target_directory": "/t",
            "packages": [
                {"manifest_path": "/elsewhere/Cargo.toml", "targets": []},
                {"manifest_path": manifest, "targets": [
                    {"name": "demo_x", "crate_types": ["cdylib", "rlib"]},
                ]},
            ],
        });
        assert_eq!(
            cdylib_of(&metadata.to_string(), &manifest).unwrap(),
            (PathBuf::from("/t"), "demo_x".to_owned())
        );
        let no_lib = serde_json::json!({
            "target_directory": "/t",
            "packages": [{"manifest_path": manifest, "targets": [{"name": "x", "crate_types": ["bin"]}]}],
        });
        let err = cdylib_of(&no_lib.to_string(), &manifest)
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("builds no component: a plugin crate needs `[lib] crate-type = [\"cdylib\", \"rlib\"]`"), "{err}");
    }
}
