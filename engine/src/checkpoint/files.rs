//! A complete checkpoint as a list of files, for copying it to and from storage outside the
//! process (the cluster's object store): what its manifest lists, how to check one file, and
//! how to install a manifest once the files it lists are in place.

use super::manifest::{Manifest, Part};
use super::store::{self, CheckpointError, MANIFEST, SHARED};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One file a checkpoint's manifest lists.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckpointFile {
    /// Its path relative to the checkpoint root: `chk-ID/NAME`, or `shared/NAME`.
    pub rel: String,
    /// Whether it is in the shared directory (a base or increment later checkpoints may list).
    pub shared: bool,
    /// Its length in bytes.
    pub len: u64,
    /// Its xxh3 checksum.
    pub sum: u64,
}

impl CheckpointFile {
    /// Its name inside its directory (the checkpoint's or the shared one).
    pub fn name(&self) -> &str {
        self.rel.rsplit('/').next().unwrap_or(&self.rel)
    }
}

/// The files `m` lists, each once; the name of a part that would leave its directory, when one
/// does.
fn list(root: &Path, id: u64, m: &Manifest) -> Result<Vec<CheckpointFile>, String> {
    let dir = store::checkpoint_dir(root, id);
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let shared = format!("../{SHARED}/");
    let mut out: Vec<CheckpointFile> = Vec::new();
    for p in m.entries.iter().flat_map(|e| &e.parts) {
        let (name, is_shared) = match p.name.strip_prefix(&shared) {
            Some(name) => (name, true),
            None => (p.name.as_str(), false),
        };
        if !valid_name(name) {
            return Err(p.name.clone());
        }
        let f = CheckpointFile {
            rel: if is_shared {
                format!("{SHARED}/{name}")
            } else {
                format!("{dir_name}/{name}")
            },
            shared: is_shared,
            len: p.len,
            sum: p.sum,
        };
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(out)
}

/// A plain file name: no separator, not `.`/`..`, not the manifest's.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && name != MANIFEST
}

/// The manifest text of the complete checkpoint `id` under `root` and the files it lists (the
/// manifest not among them), each once.
pub fn checkpoint_files(
    root: &Path,
    id: u64,
) -> Result<(String, Vec<CheckpointFile>), CheckpointError> {
    let path = store::checkpoint_dir(root, id).join(MANIFEST);
    let text = fs::read_to_string(&path).map_err(|e| CheckpointError::Io {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let files = manifest_files(root, id, &text)?;
    Ok((text, files))
}

/// The files the manifest `text` of checkpoint `id` lists, checked as a manifest read from disk
/// is (its checksum, its id, file names that stay inside the root).
pub fn manifest_files(
    root: &Path,
    id: u64,
    text: &str,
) -> Result<Vec<CheckpointFile>, CheckpointError> {
    let path = store::checkpoint_dir(root, id).join(MANIFEST);
    let m = Manifest::parse(text, &path)?;
    let bad = |reason: String| CheckpointError::Manifest {
        path: path.clone(),
        reason,
    };
    if m.id != id {
        return Err(bad(format!("it is the manifest of checkpoint {}", m.id)));
    }
    list(root, id, &m).map_err(|name| bad(format!("it names the file {name:?}")))
}

/// The local path of `file` under the checkpoint root `root`.
pub fn local_path(root: &Path, file: &CheckpointFile) -> PathBuf {
    root.join(&file.rel)
}

/// Checks the file at `path` against `file`'s length and checksum (read in blocks).
pub fn verify_file(path: &Path, file: &CheckpointFile) -> Result<(), CheckpointError> {
    let part = Part {
        name: file.rel.clone(),
        len: file.len,
        sum: file.sum,
    };
    store::verify(path, &part, false).map(|_| ())
}

/// Whether checkpoint `id` under `root` is complete and every file it lists matches its
/// manifest line; the first problem found otherwise.
pub fn check(root: &Path, id: u64) -> Result<(), CheckpointError> {
    let (_, files) = checkpoint_files(root, id)?;
    for f in &files {
        verify_file(&local_path(root, f), f)?;
    }
    Ok(())
}

/// Writes `text` as the manifest of checkpoint `id` under `root` (to a temporary name, synced,
/// renamed into place), which makes the checkpoint complete: call it once every file the
/// manifest lists is in place.
pub fn install_manifest(root: &Path, id: u64, text: &str) -> Result<PathBuf, CheckpointError> {
    manifest_files(root, id, text)?;
    let dir = store::checkpoint_dir(root, id);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |e: std::io::Error| CheckpointError::Io {
            path,
            reason: e.to_string(),
        }
    };
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let tmp = dir.join(".MANIFEST.tmp");
    fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .map_err(io(&tmp))?;
    let path = dir.join(MANIFEST);
    fs::rename(&tmp, &path).map_err(io(&path))?;
    store::sync_dir(&dir)?;
    Ok(path)
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
