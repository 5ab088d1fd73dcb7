//! `headwater docs`: the book's reference pages, generated from the documented config keys
//! (the same `ConfigKey`s that validation and the REST API's `config/validate` use), so the
//! reference cannot drift from the code. A test fails when the checked-in pages are stale.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::api::connector::ConnectorType;
use crate::api::options::ConfigKey;
use crate::api::registry::Registry;
use crate::runtime::prepare::{COMMON_KEYS, SINK_KEYS, SOURCE_KEYS};

/// Where the reference pages live, under the book's `src/`.
const REFERENCE: &str = "reference";
/// The book's table of contents, whose reference part the generator fills in.
const SUMMARY: &str = "SUMMARY.md";
const START: &str = "<!-- reference:start -->";
const END: &str = "<!-- reference:end -->";

/// One generated page: its path under `reference/` and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub path: PathBuf,
    pub title: String,
    pub text: String,
}

/// Every reference page, in table-of-contents order.
pub fn pages(registry: &Registry) -> Vec<Page> {
    let mut out = vec![page(
        "connectors/common.md",
        "Keys every connector takes",
        "Every connector accepts these keys besides its own; sink connectors also take `topics` \
         or `topics.regex`, source connectors `topic.unsubscribed`. Transforms are configured with the keys in \
         [the transform chain](../transforms/chain.md).",
        &[
            ("All connectors", COMMON_KEYS),
            ("Sink connectors", SINK_KEYS),
            ("Source connectors", SOURCE_KEYS),
        ],
    )];
    let mut connectors: Vec<_> = registry.plugins().iter().collect();
    connectors.sort_by_key(|p| p.class());
    for plugin in connectors {
        let kind = match plugin.connector_type() {
            ConnectorType::Source => "Source connector",
            ConnectorType::Sink => "Sink connector",
        };
        let mut intro = format!(
            "{kind}. Besides these keys it takes [the keys every connector takes](common.md)."
        );
        if !plugin.aliases().is_empty() {
            let aliases: Vec<String> = plugin.aliases().iter().map(|a| format!("`{a}`")).collect();
            write!(intro, " Also accepted as: {}.", aliases.join(", ")).ok();
        }
        out.push(page(
            &format!("connectors/{}.md", plugin.class()),
            plugin.class(),
            &intro,
            &[("Keys", plugin.keys())],
        ));
    }
    out.push(page(
        "transforms/chain.md",
        "The transform chain",
        "`transforms` and `predicates` list aliases at the top of a connector config; each \
         transform is configured under `transforms.<alias>.` (`type`, `predicate`, `negate` and \
         its own keys), each predicate under `predicates.<alias>.` (`type` and its own keys).",
        &[("Keys", crate::transforms::CHAIN_KEYS)],
    ));
    let mut smts: Vec<_> = crate::transforms::plugins().iter().collect();
    smts.sort_by_key(|p| p.class);
    for smt in smts {
        let intro = if smt.has_variants {
            format!(
                "Configured as `{0}$Key` (works on the record key) or `{0}$Value` (the value).",
                smt.class
            )
        } else {
            format!("Configured as `{}`.", smt.class)
        };
        out.push(page(
            &format!("transforms/{}.md", smt.class),
            smt.class,
            &intro,
            &[("Keys (under `transforms.<alias>.`)", smt.keys)],
        ));
    }
    out.push(page(
        &format!("transforms/{}.md", crate::window::CLASS),
        crate::window::CLASS,
        "Windowed aggregates over a source's records (tumbling, hopping, session windows), \
         with state checkpointed together with the source offsets.",
        &[(
            "Keys (under `transforms.<alias>.`)",
            crate::window::config::KEYS,
        )],
    ));
    for class in crate::wasm::CLASSES {
        out.push(page(
            &format!("transforms/{class}.md"),
            class,
            "A WebAssembly component built with headwater-sdk.",
            &[(
                "Keys (under `transforms.<alias>.`)",
                crate::wasm::keys(class),
            )],
        ));
    }
    for (class, keys) in crate::transforms::predicates::KEYS {
        out.push(page(
            &format!("predicates/{class}.md"),
            class,
            "A predicate, configured under `predicates.<alias>.` and named by a transform's \
             `predicate` key.",
            &[("Keys (under `predicates.<alias>.`)", keys)],
        ));
    }
    for (class, keys) in crate::converters::KEYS {
        out.push(page(
            &format!("converters/{class}.md"),
            class,
            "Set as `key.converter` or `value.converter`; its keys go under that prefix, e.g. \
             `value.converter.schemas.enable`.",
            &[("Keys (under `key.converter.` / `value.converter.`)", keys)],
        ));
    }
    out
}

fn page(path: &str, title: &str, intro: &str, sections: &[(&str, &[ConfigKey])]) -> Page {
    let mut text = format!(
        "<!-- Generated by `headwater docs` from the code's ConfigKeys; do not edit. -->\n\n\
         # {title}\n\n{intro}\n"
    );
    for (heading, keys) in sections {
        write!(text, "\n## {heading}\n\n").ok();
        if keys.is_empty() {
            text.push_str("This one takes no keys of its own.\n");
            continue;
        }
        text.push_str("| Key | Type | Default | Description |\n|---|---|---|---|\n");
        for key in *keys {
            text.push_str(&row(key));
        }
    }
    Page {
        path: PathBuf::from(path),
        title: title.to_owned(),
        text,
    }
}

fn row(key: &ConfigKey) -> String {
    let default = match (key.default, key.required) {
        (_, true) => "required".to_owned(),
        (Some(""), false) => "empty".to_owned(),
        (Some(d), false) => code(d),
        (None, false) => String::new(),
    };
    let mut doc = cell(key.doc);
    if !key.allowed.is_empty() {
        let allowed: Vec<String> = key.allowed.iter().map(|a| code(a)).collect();
        write!(doc, " One of: {}.", allowed.join(", ")).ok();
    }
    format!(
        "| {} | {} | {default} | {doc} |\n",
        code(key.name),
        key.kind.as_str().to_lowercase()
    )
}

/// Text safe inside a table cell: no line breaks, pipes escaped.
fn cell(text: &str) -> String {
    text.replace(['\n', '\r'], " ").replace('|', "\\|")
}

/// `text` as inline code in a table cell: a value holding backticks is fenced with more of them.
fn code(text: &str) -> String {
    let fence = if text.contains('`') { "``" } else { "`" };
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{}{pad}{fence}", cell(text))
}

/// The reference part of `SUMMARY.md` (what goes between the markers).
fn summary_part(pages: &[Page]) -> String {
    let mut out = String::new();
    let mut section = "";
    for page in pages {
        let dir = page
            .path
            .parent()
            .and_then(Path::to_str)
            .unwrap_or_default();
        if dir != section {
            section = dir;
            let heading = match dir {
                "connectors" => "Connectors",
                "transforms" => "Transforms",
                "predicates" => "Predicates",
                "converters" => "Converters",
                other => other,
            };
            writeln!(out, "- [{heading}]()").ok();
        }
        writeln!(
            out,
            "  - [{}]({REFERENCE}/{})",
            page.title,
            page.path.display()
        )
        .ok();
    }
    out
}

/// Every file the generator owns under the book's `src/`, with its expected text: the pages,
/// and `SUMMARY.md` with its reference part filled in.
pub fn expected_files(
    registry: &Registry,
    book_src: &Path,
) -> Result<BTreeMap<PathBuf, String>, DocsError> {
    let pages = pages(registry);
    let summary_path = book_src.join(SUMMARY);
    let summary = std::fs::read_to_string(&summary_path).map_err(|source| DocsError::Read {
        path: summary_path.clone(),
        source,
    })?;
    let (Some(start), Some(end)) = (summary.find(START), summary.find(END)) else {
        return Err(DocsError::NoMarkers(summary_path));
    };
    if end < start {
        return Err(DocsError::NoMarkers(summary_path));
    }
    let filled = format!(
        "{}{START}\n{}{}",
        &summary[..start],
        summary_part(&pages),
        &summary[end..]
    );
    let mut files = BTreeMap::new();
    files.insert(summary_path, filled);
    for page in pages {
        files.insert(book_src.join(REFERENCE).join(&page.path), page.text);
    }
    Ok(files)
}

/// Files under `reference/` that the generator does not produce (left from a removed class).
fn strays(book_src: &Path, expected: &BTreeMap<PathBuf, String>) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![book_src.join(REFERENCE)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if !expected.contains_key(&path) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Why the reference could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} has no `{START}` ... `{END}` markers for the reference part", .0.display())]
    NoMarkers(PathBuf),
}

/// Writes the reference pages and the table of contents under `book_src`, removing pages of
/// classes that no longer exist. Returns the files written.
pub fn generate(registry: &Registry, book_src: &Path) -> Result<usize, DocsError> {
    let expected = expected_files(registry, book_src)?;
    for stray in strays(book_src, &expected) {
        std::fs::remove_file(&stray).map_err(|source| DocsError::Write {
            path: stray.clone(),
            source,
        })?;
    }
    for (path, text) in &expected {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| DocsError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(path, text).map_err(|source| DocsError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(expected.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book_src() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src")
    }

    #[test]
    fn the_checked_in_reference_is_current() {
        let registry = crate::registry();
        let expected = expected_files(&registry, &book_src()).unwrap();
        let mut stale: Vec<String> = expected
            .iter()
            .filter(|(path, text)| std::fs::read_to_string(path).ok().as_ref() != Some(text))
            .map(|(path, _)| format!("{} is missing or stale", path.display()))
            .collect();
        stale.extend(
            strays(&book_src(), &expected)
                .into_iter()
                .map(|p| format!("{} documents nothing that exists", p.display())),
        );
        assert!(
            stale.is_empty(),
            "the book's reference does not match the code; regenerate it with \
             `cargo run -- docs` and commit the result:\n{}",
            stale.join("\n")
        );
    }

    #[test]
    fn every_documented_key_has_a_row() {
        let pages = pages(&crate::registry());
        let all: String = pages.iter().map(|p| p.text.as_str()).collect();
        for plugin in crate::registry().plugins() {
            for key in plugin.keys() {
                assert!(
                    all.contains(&format!("| `{}` |", key.name)),
                    "{} key {} has no row",
                    plugin.class(),
                    key.name
                );
            }
        }
        let file_source = pages
            .iter()
            .find(|p| p.title == "headwater.file.FileSource")
            .unwrap();
        assert!(
            file_source.text.contains("| `file` |"),
            "{}",
            file_source.text
        );
    }

    #[test]
    fn cells_cannot_break_the_table() {
        let key = ConfigKey::new("a", crate::api::options::KeyType::String, "one | two")
            .one_of(&["x", "y"]);
        assert_eq!(
            row(&key),
            "| `a` | string |  | one \\| two One of: `x`, `y`. |\n"
        );
        let odd = ConfigKey::new("b", crate::api::options::KeyType::String, "line\nbreak")
            .with_default("`|`");
        assert_eq!(row(&odd), "| `b` | string | `` `\\|` `` | line break |\n");
    }
}
