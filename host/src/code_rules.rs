//! Rules about the code itself, checked on every test run (as Vector's and wasmtime's CI check
//! their own layering): the modules form layers whose arrows point down only, and no function
//! outside tests returns a stringly error.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

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

/// The file's code outside tests: test-only files are skipped, every `#[cfg(test)]` item (a
/// `mod tests;` line, an inline module or function through its closing brace) is cut out, and
/// comment lines are dropped (they may name any module).
fn production_code(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    if name == "tests.rs" || name.ends_with("_tests.rs") || name == "code_rules.rs" {
        return None;
    }
    // `src/fuzz/`: the property tests of the decoders, compiled for tests only.
    if path.parent().and_then(Path::file_name) == Some(std::ffi::OsStr::new("fuzz")) {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    Some(without_test_items(&code))
}

/// `code` without its `#[cfg(test)]` items.
fn without_test_items(code: &str) -> String {
    without_items(code, "#[cfg(test)]")
}

/// `code` without the items that follow each `mark`.
fn without_items(code: &str, mark: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find(mark) {
        out.push_str(&rest[..at]);
        let item = &rest[at + mark.len()..];
        // The item ends at its first `;` outside braces, or where its first brace closes.
        let (mut depth, mut end, mut in_string) = (0usize, item.len(), false);
        let mut chars = item.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' if in_string => {
                    chars.next();
                }
                '"' => in_string = !in_string,
                '\'' if !in_string => {
                    // A char literal such as '{' (not a lifetime): skip it whole.
                    let mut ahead = item[i + 1..].chars();
                    if let (Some(_), Some('\'')) = (ahead.next(), ahead.next()) {
                        chars.next();
                        chars.next();
                    }
                }
                '{' if !in_string => depth += 1,
                '}' if !in_string => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if !in_string && depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The top-level modules `code` (in `file`) names: through `crate::x`, `crate::{x, y::z}`, or a
/// `super::` chain that climbs to the crate root. `crate` itself when it is aliased
/// (`use crate as x`), which hides every later path.
fn top_level_targets(file: &Path, code: &str) -> Vec<String> {
    static PATHS: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"\bcrate\s*::\s*(?:([A-Za-z_]\w*)|\{([^}]*)\})|\bcrate\s+as\b|((?:\bsuper\s*::\s*)+)([A-Za-z_]\w*)")
            .expect("regex")
    });
    let depth = module_depth(file);
    let mut found = Vec::new();
    for caps in PATHS.captures_iter(code) {
        if let Some(name) = caps.get(1) {
            found.push(name.as_str().to_owned());
        } else if let Some(group) = caps.get(2) {
            // Top-level entries of the group: the first segment of each.
            let mut level = 0;
            let mut entry = String::new();
            for c in group.as_str().chars().chain(std::iter::once(',')) {
                match c {
                    '{' => level += 1,
                    '}' => level -= 1,
                    ',' if level == 0 => {
                        let first = entry.trim().split("::").next().unwrap_or("").trim();
                        if !first.is_empty() && first != "self" {
                            found.push(first.to_owned());
                        }
                        entry.clear();
                        continue;
                    }
                    _ => {}
                }
                entry.push(c);
            }
        } else if let (Some(chain), Some(name)) = (caps.get(3), caps.get(4)) {
            let climbs = chain.as_str().matches("super").count();
            if climbs >= depth {
                found.push(name.as_str().to_owned());
            }
        } else {
            found.push("crate".to_owned());
        }
    }
    found
}

/// How deep `file`'s module sits below the crate root (`api/mod.rs` 1, `api/record.rs` 2).
fn module_depth(file: &Path) -> usize {
    let Ok(relative) = file.strip_prefix(src_dir()) else {
        return 0;
    };
    let parts = relative.components().count();
    match file.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs") => parts - 1,
        _ => parts,
    }
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
        for target in top_level_targets(file, &code) {
            let target = target.as_str();
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
        .filter(|f| {
            production_code(f).is_some_and(|code| {
                top_level_targets(f, &code)
                    .iter()
                    .any(|t| t == "connectors")
            })
        })
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
        // postgres-types' `FromSql` trait fixes its methods' error type.
        let code = without_items(&code, "FromSql<'a> for");
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
fn the_layer_rule_sees_every_way_to_name_a_module() {
    let file = src_dir().join("api/record.rs");
    let code = "use crate::{runtime::host::Runtime, api::x};\nuse crate::Runtime;\n\
                use super::super::rest::y;\nuse super::time;\nuse crate as hw;";
    assert_eq!(
        top_level_targets(&file, code),
        ["runtime", "api", "Runtime", "rest", "crate"]
    );
    let cut = without_test_items(
        "a\n#[cfg(test)]\nmod tests;\nb\n#[cfg(test)]\nmod t {\n fn f() { '{'; \"}\" }\n}\nc",
    );
    assert_eq!(cut.split_whitespace().collect::<Vec<_>>(), ["a", "b", "c"]);
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
