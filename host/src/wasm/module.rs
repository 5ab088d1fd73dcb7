//! Loading a plugin: read the `.wasm`, compile it once (cached on disk by content hash and
//! engine version), check which contract it speaks, and prepare it for fast instantiation.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};

use super::bindings::{checker::CheckerPre, transformer::TransformerPre};
use super::engine::{EngineError, engine};
use super::host::HostState;

/// The version of `wit/headwater-plugin.wit` this host speaks.
pub const WIT_VERSION: &str = "0.1.0";
const PACKAGE: &str = "headwater:plugin";
/// The engine version in cache keys (pinned in host/Cargo.toml); the settings hash covers the
/// rest.
const WASMTIME: &str = "48.0.8";

/// Which world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `transformer`: records in, records out.
    Transform,
    /// `checker`: records in, violations out.
    Check,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transform => "transform",
            Self::Check => "check",
        }
    }
}

/// A component ready to instantiate.
#[derive(Clone)]
pub enum Prepared {
    Transform(TransformerPre<HostState>),
    Check(CheckerPre<HostState>),
}

/// What identifies a version of the module file, to notice changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl FileStamp {
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }
}

/// A loaded module.
#[derive(Clone)]
pub struct Module {
    pub path: PathBuf,
    pub kind: Kind,
    pub prepared: Prepared,
    pub stamp: FileStamp,
    /// Hex SHA-256 of the file.
    pub digest: String,
    /// It imports the `state` interface (a stateful transform).
    pub stateful: bool,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("digest", &self.digest)
            .finish()
    }
}

/// Why a plugin file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot read module {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a component wasmtime can compile; the message says what the file is instead.
    #[error("{0}")]
    NotAComponent(String),
    /// A component, but not one of ours (or of another WIT version).
    #[error("{}: {reason}", path.display())]
    Contract { path: PathBuf, reason: String },
    #[error("cannot link {}: {message}", path.display())]
    Link { path: PathBuf, message: String },
    /// A reloaded file that cannot replace the running one.
    #[error("{0}")]
    Incompatible(String),
    /// The plugin failed to start (`init` refused its config, or it trapped).
    #[error(transparent)]
    Start(#[from] super::instance::CallError),
}

/// Loads `path`, compiling through the cache in `cache_dir` when given.
pub fn load(path: &Path, cache_dir: Option<&Path>) -> Result<Module, LoadError> {
    let read = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let stamp = FileStamp::of(path).map_err(read)?;
    let bytes = std::fs::read(path).map_err(read)?;
    let digest = hex(&Sha256::digest(&bytes));
    let engine = engine()?;
    let component = match cache_dir {
        Some(dir) => cached_compile(engine, &bytes, &digest, dir),
        None => Component::new(engine, &bytes),
    }
    .map_err(|e| LoadError::NotAComponent(not_a_component(path, &bytes, &e)))?;
    let kind = contract(engine, &component).map_err(|e| LoadError::Contract {
        path: path.to_path_buf(),
        reason: e.0,
    })?;
    let mut linker: Linker<HostState> = Linker::new(engine);
    let link = |e: wasmtime::Error| LoadError::Link {
        path: path.to_path_buf(),
        message: format!("{e:#}"),
    };
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link)?;
    let prepared = match kind {
        Kind::Transform => {
            super::bindings::transformer::Transformer::add_to_linker::<_, HasSelf<_>>(
                &mut linker,
                |s| s,
            )
            .map_err(link)?;
            super::bindings::state::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
                .map_err(link)?;
            let pre = linker.instantiate_pre(&component).map_err(link)?;
            Prepared::Transform(TransformerPre::new(pre).map_err(link)?)
        }
        Kind::Check => {
            super::bindings::checker::Checker::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
                .map_err(link)?;
            let pre = linker.instantiate_pre(&component).map_err(link)?;
            Prepared::Check(CheckerPre::new(pre).map_err(link)?)
        }
    };
    let stateful = component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with(&format!("{PACKAGE}/state@")));
    Ok(Module {
        path: path.to_path_buf(),
        kind,
        prepared,
        stamp,
        digest,
        stateful,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn not_a_component(path: &Path, bytes: &[u8], e: &wasmtime::Error) -> String {
    // A core module (wasm32-wasip1, wasm32-unknown-unknown) has version 1 in its header;
    // components have 0x0d.
    let hint = if bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
        " It is a core WebAssembly module, not a component: build it with `--target wasm32-wasip2` \
         (`headwater plugin build` does)."
    } else {
        ""
    };
    format!(
        "{} is not a loadable WebAssembly component: {e}.{hint}",
        path.display()
    )
}

/// How a component fails the plugin contract.
#[derive(Debug)]
struct ContractError(String);

/// Compiles `bytes`, or loads the artifact a previous compile left in `dir`.
fn cached_compile(
    engine: &wasmtime::Engine,
    bytes: &[u8],
    digest: &str,
    dir: &Path,
) -> wasmtime::Result<Component> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let file = dir.join(format!(
        "{digest}-wasmtime{WASMTIME}-{:016x}.cwasm",
        hasher.finish()
    ));
    if file.exists() {
        match deserialize(engine, &file) {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "Cached WASM artifact unusable; recompiling.");
            }
        }
    }
    let component = Component::new(engine, bytes)?;
    let artifact = component.serialize()?;
    if let Err(e) = write_artifact(dir, &file, &artifact) {
        tracing::warn!(dir = %dir.display(), error = %e, "Cannot cache the compiled WASM module; it will be compiled again next time.");
    }
    Ok(component)
}

/// Loads a precompiled artifact from the host's own cache.
#[allow(unsafe_code)]
fn deserialize(engine: &wasmtime::Engine, file: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file is one this host wrote with `Component::serialize` into its own data
    // dir, named after the source's SHA-256, the wasmtime version and the engine settings;
    // wasmtime checks the header for version and settings again. Anyone who can write the
    // data dir can already change what the host runs.
    unsafe { Component::deserialize_file(engine, file) }
}

fn write_artifact(dir: &Path, file: &Path, artifact: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, artifact)?;
    std::fs::rename(&tmp, file)
}

/// Which world the component implements, from its exports; refuses other contract versions.
fn contract(engine: &wasmtime::Engine, component: &Component) -> Result<Kind, ContractError> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let ours: Vec<(&str, &str)> = exports
        .iter()
        .filter_map(|name| {
            name.strip_prefix(PACKAGE)?
                .strip_prefix('/')?
                .split_once('@')
        })
        .collect();
    if ours.is_empty() {
        return Err(ContractError(format!(
            "not a Headwater plugin: it exports none of the {PACKAGE}@{WIT_VERSION} interfaces \
             (exports: {}). Build plugins with headwater-sdk (`headwater plugin new`).",
            if exports.is_empty() {
                "nothing".to_owned()
            } else {
                exports.join(", ")
            }
        )));
    }
    if let Some((_, version)) = ours.iter().find(|(_, v)| *v != WIT_VERSION) {
        return Err(ContractError(format!(
            "built against {PACKAGE}@{version}, but this Headwater speaks {PACKAGE}@{WIT_VERSION}; \
             rebuild the plugin with headwater-sdk {WIT_VERSION}"
        )));
    }
    let has = |iface: &str| ours.iter().any(|(i, _)| *i == iface);
    match (has("lifecycle"), has("transform"), has("quality")) {
        (true, true, false) => Ok(Kind::Transform),
        (true, false, true) => Ok(Kind::Check),
        _ => Err(ContractError(format!(
            "exports {} but a plugin exports lifecycle plus either transform or quality",
            ours.iter()
                .map(|(i, v)| format!("{PACKAGE}/{i}@{v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wit_file_has_the_version_the_host_speaks() {
        let wit = include_str!("../../../wit/headwater-plugin.wit");
        assert!(wit.contains(&format!("package {PACKAGE}@{WIT_VERSION};")));
    }

    #[test]
    fn a_core_module_gets_a_build_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core.wasm");
        // The smallest core module: magic + version 1.
        std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
        let err = load(&path, None).unwrap_err().to_string();
        assert!(err.contains("--target wasm32-wasip2"), "{err}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = load(Path::new("/nonexistent/plugin.wasm"), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot read module /nonexistent/plugin.wasm"),
            "{err}"
        );
    }
}
