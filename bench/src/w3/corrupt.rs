//! The four corruptions of RELIABILITY S5, applied to the newest complete checkpoint between
//! two runs of the job, and the fingerprints that show older checkpoints stay byte-identical.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How the newest complete checkpoint is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Corruption {
    /// One byte of a stage file flipped.
    FlipByte,
    /// The manifest cut to half its length.
    TruncateManifest,
    /// A stage file removed.
    DeleteFile,
    /// The manifest made unreadable (`chmod 000`; root reads it anyway).
    ChmodManifest,
}

impl Corruption {
    /// The name on the command line and in the JSON line.
    pub fn name(self) -> &'static str {
        match self {
            Corruption::FlipByte => "flip-byte",
            Corruption::TruncateManifest => "truncate-manifest",
            Corruption::DeleteFile => "delete-file",
            Corruption::ChmodManifest => "chmod-manifest",
        }
    }
}

/// The complete checkpoints under `state` (directories `chk-<id>` holding a `MANIFEST`), by id.
pub fn complete(state: &Path) -> std::io::Result<BTreeMap<u64, PathBuf>> {
    let mut out = BTreeMap::new();
    let rd = match std::fs::read_dir(state) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_prefix("chk-").and_then(|d| d.parse().ok())
            && entry.path().join("MANIFEST").exists()
        {
            out.insert(id, entry.path());
        }
    }
    Ok(out)
}

/// The sha256 of every file under each checkpoint directory, by file.
pub fn fingerprints(dirs: &[PathBuf]) -> std::io::Result<BTreeMap<PathBuf, String>> {
    let mut out = BTreeMap::new();
    for d in dirs {
        for entry in std::fs::read_dir(d)? {
            let p = entry?.path();
            let digest = Sha256::digest(std::fs::read(&p)?);
            out.insert(p, digest.iter().map(|b| format!("{b:02x}")).collect());
        }
    }
    Ok(out)
}

/// The files of `before` that still exist and changed (a file retention removed is no change).
pub fn changed(before: &BTreeMap<PathBuf, String>) -> usize {
    before
        .iter()
        .filter(|(p, sum)| {
            p.exists()
                && std::fs::read(p)
                    .map(|b| {
                        let d = Sha256::digest(b);
                        d.iter().map(|b| format!("{b:02x}")).collect::<String>() != **sum
                    })
                    .unwrap_or(true)
        })
        .count()
}

/// Damages checkpoint directory `dir` as `how`; the file it damaged.
pub fn apply(dir: &Path, how: Corruption) -> std::io::Result<PathBuf> {
    let manifest = dir.join("MANIFEST");
    let stage_file = || -> std::io::Result<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "state"))
            .collect();
        files.sort();
        files.into_iter().next().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} holds no stage file", dir.display()),
            )
        })
    };
    match how {
        Corruption::FlipByte => {
            let p = stage_file()?;
            let mut b = std::fs::read(&p)?;
            let at = b.len() / 2;
            match b.get_mut(at) {
                Some(x) => *x ^= 0x40,
                None => b.push(0),
            }
            std::fs::write(&p, b)?;
            Ok(p)
        }
        Corruption::TruncateManifest => {
            let len = std::fs::metadata(&manifest)?.len();
            std::fs::File::options()
                .write(true)
                .open(&manifest)?
                .set_len(len / 2)?;
            Ok(manifest)
        }
        Corruption::DeleteFile => {
            let p = stage_file()?;
            std::fs::remove_file(&p)?;
            Ok(p)
        }
        Corruption::ChmodManifest => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o000))?;
            Ok(manifest)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir::engine::checkpoint::store;
    use weir::graph::{Snapshot, StageId};

    fn states(v: u8) -> store::StageStates {
        let mut s = store::StageStates::new();
        s.insert((StageId(1), 0), Some(Snapshot::from_bytes(vec![v; 9])));
        s.insert((StageId(2), 0), None);
        s
    }

    #[test]
    fn each_corruption_makes_the_store_skip_the_checkpoint_and_spares_older_ones() {
        for how in [
            Corruption::FlipByte,
            Corruption::TruncateManifest,
            Corruption::DeleteFile,
        ] {
            let root = std::env::temp_dir().join(format!(
                "weir-corrupt-{}-{}",
                std::process::id(),
                how.name()
            ));
            let _ = std::fs::remove_dir_all(&root);
            for id in 1..=3 {
                store::write(&root, id, &states(id as u8), 3).unwrap();
            }
            let all = complete(&root).unwrap();
            assert_eq!(all.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
            let older: Vec<PathBuf> = all.range(..3).map(|(_, p)| p.clone()).collect();
            let prints = fingerprints(&older).unwrap();
            assert_eq!(prints.len(), 4, "a manifest and a stage file each");
            let damaged = apply(&all[&3], how).unwrap();
            assert!(damaged.starts_with(&all[&3]), "{}", damaged.display());
            // The store no longer restores checkpoint 3: it falls back to 2.
            assert_eq!(
                store::latest(&root).unwrap().map(|r| r.id),
                Some(2),
                "{how:?}"
            );
            assert_eq!(changed(&prints), 0);
            std::fs::write(older[0].join("MANIFEST"), b"changed").unwrap();
            assert_eq!(changed(&prints), 1);
            let _ = std::fs::remove_dir_all(&root);
        }
    }
}
