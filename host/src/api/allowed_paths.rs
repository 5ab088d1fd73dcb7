//! Where connectors created over the REST API may read and write files: `[files]
//! allowed_paths` in the worker config, the data directory by default.
//!
//! A REST caller is not the operator: without a limit, a FileSource created over the API could
//! read any file the process can (`/etc/passwd`, a private key) and a FileSink could write
//! anywhere. Configs in `connectors.d/` are the operator's own and are not confined. A path is
//! compared after resolving `..` and symbolic links, so neither a `../` nor a link planted in
//! an allowed directory leads outside; a path that does not exist yet (a sink's output) is
//! resolved through its deepest existing ancestor.

use std::path::{Component, Path, PathBuf};

/// The directories files may be in, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedPaths {
    roots: Vec<PathBuf>,
}

/// A path outside every allowed directory, or one that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{path} is {why}; a connector created over the REST API may only use files under {roots} ([files] allowed_paths in the worker config), or be defined in connectors.d/"
)]
pub struct PathNotAllowed {
    pub path: String,
    why: String,
    roots: String,
}

impl AllowedPaths {
    /// The given directories, each resolved (one that does not exist is created, so a data
    /// directory named before the host made it still counts).
    pub fn new(dirs: &[PathBuf]) -> std::io::Result<Self> {
        let mut roots = Vec::with_capacity(dirs.len());
        for dir in dirs {
            std::fs::create_dir_all(dir)?;
            roots.push(dir.canonicalize()?);
        }
        Ok(Self { roots })
    }

    /// No directory at all: every path is refused.
    pub fn none() -> Self {
        Self { roots: Vec::new() }
    }

    /// Whether `path` (a file or directory, existing or not) is under an allowed directory.
    pub fn check(&self, path: &Path) -> Result<PathBuf, PathNotAllowed> {
        let refuse = |why: String| PathNotAllowed {
            path: path.display().to_string(),
            why,
            roots: self.describe_roots(),
        };
        let resolved = resolve(path).map_err(|e| refuse(format!("not resolvable ({e})")))?;
        if self.roots.iter().any(|root| resolved.starts_with(root)) {
            Ok(resolved)
        } else if resolved.as_path() == path {
            Err(refuse("outside them".to_owned()))
        } else {
            Err(refuse(format!(
                "{} once resolved, outside them",
                resolved.display()
            )))
        }
    }

    /// Whether every file a glob pattern can match is under an allowed directory: its
    /// directory part before the first wildcard is checked, and a pattern whose wildcards
    /// could climb out (`..` after one) is refused. The files it matches are checked again
    /// when they are opened ([`AllowedPaths::check`]), as a link among them may point outside.
    pub fn check_glob(&self, pattern: &str) -> Result<(), PathNotAllowed> {
        let path = Path::new(pattern);
        let mut base = PathBuf::new();
        let mut wild = false;
        for component in path.components() {
            let text = component.as_os_str().to_string_lossy();
            if wild {
                if component == Component::ParentDir {
                    return Err(PathNotAllowed {
                        path: pattern.to_owned(),
                        why: "a pattern with `..` after a wildcard".to_owned(),
                        roots: self.describe_roots(),
                    });
                }
            } else if text.contains(['*', '?', '[']) {
                wild = true;
            } else {
                base.push(component);
            }
        }
        if base.as_os_str().is_empty() {
            base.push(".");
        }
        self.check(&base).map(|_| ())
    }

    fn describe_roots(&self) -> String {
        let roots: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
        if roots.is_empty() {
            "no directory".to_owned()
        } else {
            roots.join(", ")
        }
    }
}

/// `path` absolute, without `.` or `..`, with every symbolic link of its existing part
/// followed; the part that does not exist yet is appended as written (without `..`).
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let mut existing = absolute.as_path();
    let mut missing = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(mut resolved) => {
                for component in missing.iter().rev() {
                    match component {
                        Component::ParentDir => {
                            resolved.pop();
                        }
                        Component::CurDir => {}
                        other => resolved.push(other.as_os_str()),
                    }
                }
                return Ok(resolved);
            }
            // Not there yet, or a file stands where a directory should be (the connector will
            // fail to open it, saying so): judged by the part that exists.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                let (Some(parent), Some(last)) =
                    (existing.parent(), existing.components().next_back())
                else {
                    return Err(e);
                };
                missing.push(last);
                existing = parent;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_compared_after_resolving_dots_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("data");
        let outside = dir.path().join("secret");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("key"), "k").unwrap();
        let paths = AllowedPaths::new(std::slice::from_ref(&allowed)).unwrap();
        std::fs::write(allowed.join("in.jsonl"), "{}").unwrap();
        std::os::unix::fs::symlink(outside.join("key"), allowed.join("link")).unwrap();
        std::os::unix::fs::symlink(&outside, allowed.join("dirlink")).unwrap();

        assert!(paths.check(&allowed.join("in.jsonl")).is_ok());
        assert!(
            paths.check(&allowed.join("new/out/file.parquet")).is_ok(),
            "not yet existing"
        );
        assert!(paths.check(&allowed.join("sub/../in.jsonl")).is_ok());
        assert!(
            paths.check(&allowed.join("in.jsonl/under-a-file")).is_ok(),
            "a path that cannot exist is judged by its existing part"
        );
        for escape in [
            allowed.join("../secret/key"),
            allowed.join("link"),
            allowed.join("dirlink/key"),
            allowed.join("dirlink/new-file"),
            allowed.join("new/../../secret/x"),
            PathBuf::from("/etc/passwd"),
        ] {
            let error = paths.check(&escape).unwrap_err();
            assert!(
                error.to_string().contains("[files] allowed_paths"),
                "{escape:?}: {error}"
            );
        }
        assert!(
            paths
                .check(&allowed.join("link"))
                .unwrap_err()
                .to_string()
                .contains("once resolved"),
            "the message says where the link leads"
        );

        assert!(
            paths
                .check_glob(&format!("{}/*.jsonl", allowed.display()))
                .is_ok()
        );
        assert!(
            paths
                .check_glob(&format!("{}/**/x", allowed.display()))
                .is_ok()
        );
        assert!(
            paths
                .check_glob(&format!("{}/*/../../secret/*", allowed.display()))
                .is_err()
        );
        assert!(
            paths
                .check_glob(&format!("{}/dirlink/*", allowed.display()))
                .is_err()
        );
        assert!(paths.check_glob("/etc/*").is_err());
    }
}
