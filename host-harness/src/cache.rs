//! The compiled component, kept on disk between runs: compiling it takes seconds, loading the
//! machine code compiled last time takes milliseconds.
//!
//! One file per component and engine configuration, named by the SHA-256 of the component's
//! bytes and of the engine's compatibility hash (target, compiler flags, tunables, wasmtime's
//! version), so that a new component or another engine never loads code that is not its own.
//! The file holds the serialized component followed by the SHA-256 of those bytes: a file that
//! was truncated or altered fails the check and the component is compiled again.

use std::fs;
use std::hash::{Hash as _, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// What a cache file's name ends with; nothing else in the folder is touched.
const EXTENSION: &str = "cwasm";

/// The length of the checksum that ends each file.
const CHECKSUM_BYTES: usize = 32;

/// Where a compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Read from the cache.
    Cache,
    /// Compiled now (and written to the cache, if it could be).
    Compiled,
}

/// The component compiled for `engine`: from `dir` when a valid entry is there, otherwise
/// compiled and stored in `dir` for the next start. A cache that cannot be read or written
/// costs a compilation, never the start.
pub fn load_or_compile(
    engine: &Engine,
    component: &[u8],
    dir: &Path,
) -> wasmtime::Result<(Component, Source)> {
    let path = dir.join(format!("{}.{EXTENSION}", key(engine, component)));
    match read(engine, &path) {
        Ok(Some(compiled)) => return Ok((compiled, Source::Cache)),
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(path = %path.display(), error = %format!("{error:#}"), "the cached component is unusable; compiling it again");
        }
    }

    let compiled = Component::new(engine, component)
        .map_err(|error| error.context("compiling the SCIM component"))?;
    match write(&compiled, dir, &path) {
        Ok(()) => tracing::info!(path = %path.display(), "cached the compiled component"),
        Err(error) => {
            tracing::warn!(dir = %dir.display(), error = %format!("{error:#}"), "the compiled component could not be cached");
        }
    }
    Ok((compiled, Source::Compiled))
}

/// The entry's name: SHA-256 over the component and the engine's compatibility hash, in hex.
fn key(engine: &Engine, component: &[u8]) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    hasher.0.update(component);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher
        .0
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Feeds what `Hash` writes into SHA-256, so that the key is the same from one build of this
/// host to the next (std's `DefaultHasher` promises no such thing).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Only the SHA-256 digest is used; `Hash` implementations never read this back.
        0
    }
}

/// The cached component, if there is a valid entry at `path`.
fn read(engine: &Engine, path: &Path) -> anyhow::Result<Option<Component>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let Some(split) = bytes.len().checked_sub(CHECKSUM_BYTES) else {
        anyhow::bail!("{} is too short to be a cache entry", path.display());
    };
    let (serialized, checksum) = bytes.split_at(split);
    if Sha256::digest(serialized).as_slice() != checksum {
        anyhow::bail!("{} does not match its checksum", path.display());
    }
    // SAFETY: `Component::deserialize` runs the machine code in `serialized` as it is, so the
    // bytes must be what `Component::serialize` wrote for an engine compatible with this one:
    // - they come from this host's own cache folder (created by it, owner-only where the
    //   platform has modes), under a name that includes the engine's compatibility hash, and
    //   wasmtime checks its version and the engine's configuration in the header again;
    // - the file was written whole before it got its name (temporary file, then rename), and its
    //   SHA-256 matches, so a truncated or altered file was refused above;
    // - the bytes were copied into memory first: a change to the file from now on cannot reach
    //   the code that runs (`deserialize_file` would map the file itself).
    let component = unsafe { Component::deserialize(engine, serialized) }
        .map_err(|error| anyhow::anyhow!("{error:#}"))
        .with_context(|| format!("loading {}", path.display()))?;
    Ok(Some(component))
}

/// Writes the entry: to a temporary file in the same folder, synced, then renamed over `path`,
/// so that a reader sees the whole file or none. Other entries (older components or engines)
/// are removed.
fn write(component: &Component, dir: &Path, path: &Path) -> anyhow::Result<()> {
    let serialized = component
        .serialize()
        .map_err(|error| anyhow::anyhow!("{error:#}"))
        .context("serializing the compiled component")?;
    create_private_dir(dir)?;

    let temporary = dir.join(format!(
        ".{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let written = (|| -> anyhow::Result<()> {
        let mut file = fs::File::create(&temporary)
            .with_context(|| format!("creating {}", temporary.display()))?;
        file.write_all(&serialized)?;
        file.write_all(&Sha256::digest(&serialized))?;
        file.sync_all()?;
        fs::rename(&temporary, path)
            .with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written?;

    for stale in entries(dir)?.into_iter().filter(|entry| entry != path) {
        let _ = fs::remove_file(stale);
    }
    Ok(())
}

/// The cache entries in `dir`.
fn entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == EXTENSION))
        .collect())
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        // The compiled code is run as it is found: only this host's user may place it there.
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("creating the cache folder {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::{Limits, PluginHost};

    /// A component small enough to compile in a moment: the cache does not care what it does.
    const COMPONENT: &[u8] = br#"(component (core module (func (export "f"))))"#;

    fn engine() -> Engine {
        PluginHost::engine_for(&Limits::default()).unwrap()
    }

    #[test]
    fn second_load_comes_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let (_, first) = load_or_compile(&engine, COMPONENT, dir.path()).unwrap();
        let (_, second) = load_or_compile(&engine, COMPONENT, dir.path()).unwrap();
        assert_eq!((first, second), (Source::Compiled, Source::Cache));
        assert_eq!(entries(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn truncated_or_altered_entry_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        load_or_compile(&engine, COMPONENT, dir.path()).unwrap();
        let path = entries(dir.path()).unwrap().remove(0);
        let whole = fs::read(&path).unwrap();

        fs::write(&path, &whole[..whole.len() / 2]).unwrap();
        let (_, source) = load_or_compile(&engine, COMPONENT, dir.path()).unwrap();
        assert_eq!(source, Source::Compiled);

        let mut altered = whole.clone();
        altered[whole.len() / 3] ^= 0xff;
        fs::write(&path, &altered).unwrap();
        let (_, source) = load_or_compile(&engine, COMPONENT, dir.path()).unwrap();
        assert_eq!(source, Source::Compiled);

        let (_, source) = load_or_compile(&engine, COMPONENT, dir.path()).unwrap();
        assert_eq!(source, Source::Cache);
    }

    #[test]
    fn another_component_replaces_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        load_or_compile(&engine, COMPONENT, dir.path()).unwrap();
        let other = br#"(component (core module (func (export "g"))))"#;
        let (_, source) = load_or_compile(&engine, other, dir.path()).unwrap();
        assert_eq!(source, Source::Compiled);
        assert_eq!(entries(dir.path()).unwrap().len(), 1);
    }
}
