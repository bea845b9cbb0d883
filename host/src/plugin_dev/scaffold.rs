//! `interpose plugin new`: a plugin project from the language's template
//! (`sdk/<lang>/template`), with the plugin's name and the SDK's location filled in.
//!
//! Templates are written as if they lived at `plugins/<name>` of an interpose
//! checkout, so each also works copied there by hand. Scaffolding replaces, in
//! every file: `my-plugin`, `my_plugin` and `MyPlugin` with the new name in the
//! same case, and `../../sdk/` with the absolute path of the SDK's `sdk/`, so the
//! project builds and tests wherever it is created.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::sdk::Sdk;
use super::{Lang, tools_dir};

/// What `interpose plugin new` was asked for.
pub struct NewOptions {
    /// The plugin's name: lowercase letters, digits and dashes.
    pub name: String,
    pub lang: Lang,
    /// The directory the project's directory is created in.
    pub parent: PathBuf,
}

/// Creates `parent/name` from the template and returns its path.
pub fn new(options: &NewOptions) -> Result<PathBuf> {
    check_name(&options.name)?;
    let dir = options.parent.join(&options.name);
    if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!(
            "{} already exists and is not empty: choose another name or --dir, or remove it",
            dir.display()
        );
    }
    if dir.exists() && !dir.is_dir() {
        bail!("{} already exists and is not a directory", dir.display());
    }
    let sdk = Sdk::locate(&tools_dir()?)?;
    let template = sdk.lang_dir(options.lang.sdk_name()).join("template");
    let sdk_dir = sdk.root().join("sdk");
    let sdk_dir = sdk_dir
        .to_str()
        .filter(|path| !path.contains(['"', '\\', '\'']))
        .with_context(|| {
            format!(
                "the SDK's path {} cannot be written into the project's files: set \
                 $INTERPOSE_TOOLS_DIR to a plain path",
                sdk_dir.display()
            )
        })?;
    let names = Names::new(&options.name);
    let substitute = |text: &str| {
        text.replace("my-plugin", &names.kebab)
            .replace("my_plugin", &names.snake)
            .replace("MyPlugin", &names.pascal)
            .replace("../../sdk/", &format!("{sdk_dir}/"))
    };
    let existed = dir.exists();
    let copied = copy_tree(&template, &dir, &substitute);
    if let Err(e) = copied {
        if !existed {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return Err(e)
            .with_context(|| format!("creating {} from {}", dir.display(), template.display()));
    }
    Ok(dir)
}

/// Names become directory, crate, package and class names: keep them to what all
/// of those accept.
fn check_name(name: &str) -> Result<()> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !valid {
        bail!(
            "invalid plugin name `{name}`: use lowercase letters, digits and single dashes, \
             starting with a letter (for example `no-deletes`)"
        );
    }
    Ok(())
}

/// The plugin's name in the cases the templates use.
struct Names {
    kebab: String,
    snake: String,
    pascal: String,
}

impl Names {
    fn new(name: &str) -> Names {
        let pascal = name
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        Names {
            kebab: name.to_owned(),
            snake: name.replace('-', "_"),
            pascal,
        }
    }
}

fn copy_tree(from: &Path, to: &Path, substitute: &dyn Fn(&str) -> String) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let mut entries = std::fs::read_dir(from)
        .with_context(|| format!("reading {}", from.display()))?
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let source = entry.path();
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&source, &target, substitute)?;
            continue;
        }
        let bytes =
            std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
        let bytes = match String::from_utf8(bytes) {
            Ok(text) => substitute(&text).into_bytes(),
            Err(binary) => binary.into_bytes(),
        };
        std::fs::write(&target, bytes).with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_each_case() {
        let names = Names::new("no-deletes-2");
        assert_eq!(
            (
                names.kebab.as_str(),
                names.snake.as_str(),
                names.pascal.as_str()
            ),
            ("no-deletes-2", "no_deletes_2", "NoDeletes2")
        );
    }

    #[test]
    fn names_that_cannot_be_crates_packages_and_classes_are_refused() {
        for good in ["a", "no-deletes", "redact2"] {
            check_name(good).unwrap();
        }
        for bad in [
            "", "No", "2fa", "-x", "x-", "a--b", "a_b", "a b", "a/b", "é",
        ] {
            let err = check_name(bad).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "invalid plugin name `{bad}`: use lowercase letters, digits and single \
                     dashes, starting with a letter (for example `no-deletes`)"
                )
            );
        }
    }
}
