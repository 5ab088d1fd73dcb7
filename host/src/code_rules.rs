//! Rules about the code itself, checked on every test run (as Vector's and wasmtime's CI check
//! their own layering): the modules form layers whose arrows point down only, and no function
//! outside tests returns a stringly error.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The top-level modules from the bottom up. A module may use only modules listed before it.
/// `lib.rs` and `main.rs` compose everything and are not checked.
const LAYERS: &[&str] = &[
    // The plugin API: depends on nothing of ours.
    "api",
    // Storage and config, on the API alone.
    "offsets",
    "state",
    "config",
    "schema_registry",
    // Clients.
    "converters",
    "kafka",
    // Steps built on state.
    "wasm",
    "window",
    // SMTs and the chain (which builds WASM and window steps).
    "transforms",
    "connectors",
    "runtime",
    // Surfaces.
    "rest",
    "client",
    "cli",
];

/// The top layer: these may also call what `lib.rs` composes (`crate::registry()`).
const SURFACES: &[&str] = &["rest", "client", "cli"];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code outside tests: test-only files are skipped, and a file's `#[cfg(test)]`
/// module (always its last item here) is cut off.
fn production_code(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    if name == "tests.rs" || name.ends_with("_tests.rs") || name == "code_rules.rs" {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let code = match text.find("#[cfg(test)]\nmod ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    };
    // Comments may name any module.
    Some(
        code.lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// The top-level module a file belongs to (`None` for `lib.rs` and `main.rs`).
fn module_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(src_dir()).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let module = first.strip_suffix(".rs").unwrap_or(first);
    (module != "lib" && module != "main").then(|| module.to_owned())
}

#[test]
fn layers_point_down() {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    assert!(files.len() > 50, "found only {} files", files.len());
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let uses = regex::Regex::new(r"\bcrate::([a-z_]+)").expect("regex");
    let mut violations = BTreeSet::new();
    for file in &files {
        let (Some(module), Some(code)) = (module_of(file), production_code(file)) else {
            continue;
        };
        let Some(own) = rank(&module) else {
            violations.insert(format!(
                "{}: module `{module}` is not in LAYERS (code_rules.rs): place it in a layer",
                file.display()
            ));
            continue;
        };
        for used in uses.captures_iter(&code) {
            let target = &used[1];
            if target == module || SURFACES.contains(&module.as_str()) && target == "registry" {
                continue;
            }
            match rank(target) {
                Some(r) if r < own => {}
                _ => {
                    violations.insert(format!(
                        "{}: `{module}` uses `crate::{target}`, which is not below it",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "arrows pointing up the layers (see LAYERS in host/src/code_rules.rs):\n{}",
        violations.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// The runtime and the surfaces sit above the connectors but must not name one: they reach
/// connectors through the registry `lib.rs` builds, so a connector can be added or removed
/// without touching them.
#[test]
fn only_the_registry_names_connectors() {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| module_of(f).is_some_and(|m| m != "connectors"))
        .filter(|f| production_code(f).is_some_and(|code| code.contains("crate::connectors")))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "these files name crate::connectors (use the registry instead):\n{}",
        offenders.join("\n")
    );
}

/// The generic arguments of each `Result<..>` in `code`, split at top-level commas.
fn result_arguments(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(at) = code[from..].find("Result<") {
        let start = from + at + "Result<".len();
        let preceded_by_ident = from + at > 0
            && (bytes[from + at - 1].is_ascii_alphanumeric() || bytes[from + at - 1] == b'_');
        from = start;
        if preceded_by_ident {
            continue;
        }
        let (mut depth, mut args, mut current) = (1usize, Vec::new(), String::new());
        for c in code[start..].chars() {
            match c {
                '<' | '(' | '[' => depth += 1,
                '>' | ')' | ']' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                ',' if depth == 1 => {
                    args.push(std::mem::take(&mut current));
                    continue;
                }
                _ => {}
            }
            current.push(c);
        }
        args.push(current);
        found.push(args.into_iter().map(|a| a.trim().to_owned()).collect());
    }
    found
}

fn is_stringly(error: &str) -> bool {
    let compact: String = error.chars().filter(|c| !c.is_whitespace()).collect();
    compact == "String"
        || compact.starts_with('&') && compact.ends_with("str")
        || compact.starts_with("Box<dyn") && compact.contains("Error")
        || compact == "BoxError"
}

#[test]
fn no_stringly_errors() {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let Some(code) = production_code(file) else {
            continue;
        };
        for args in result_arguments(&code) {
            if let Some(error) = args.get(1)
                && is_stringly(error)
            {
                violations.push(format!("{}: Result<{}>", file.display(), args.join(", ")));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "functions return errors without a type (use a thiserror enum that keeps the source):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_rules_see_what_they_look_for() {
    assert_eq!(
        result_arguments("fn f() -> Option<Result<Vec<(u8, u8)>, String>> {}"),
        vec![vec!["Vec<(u8, u8)>".to_owned(), "String".to_owned()]]
    );
    assert!(is_stringly("&'static str"));
    assert!(is_stringly("Box<dyn std::error::Error + Send>"));
    assert!(!is_stringly("ConfigError"));
    assert!(result_arguments("io::Result<()>")[0].len() == 1);
    assert!(result_arguments("MyResult<u8, String>").is_empty());
}
