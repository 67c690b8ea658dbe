//! Writing files that must never corrupt what the user already has.
//!
//! A [`FileSet`] writes several files as one:
//!
//! - every target is checked before anything is written (an existing one is refused unless
//!   `force`);
//! - each file goes to an unpredictable temporary name in the target's directory, created
//!   exclusively (`O_CREAT | O_EXCL`: an existing file or symlink there is an error, never
//!   followed) with its final permissions from the start (0600 for secrets), written and
//!   synced;
//! - [`FileSet::commit`] moves them all into place and syncs the directories. Without `force`
//!   a temporary is hard-linked to its target, which fails if the target appeared meanwhile
//!   (no check-then-replace race); with `force` it is renamed over it.
//! - Dropping a set that was not committed removes its temporaries: a run that fails while
//!   writing (or generating what it writes) leaves the previous files untouched.

use rand_core::{OsRng, TryRngCore};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Files written together and moved into place together (see the module documentation).
#[derive(Debug)]
pub struct FileSet {
    force: bool,
    /// `(temporary, target)` pairs written so far.
    pending: Vec<(PathBuf, PathBuf)>,
}

impl FileSet {
    /// A set that will write `targets`; refuses existing ones unless `force`.
    pub fn new(targets: &[PathBuf], force: bool) -> Result<Self, String> {
        if let Some(t) = targets
            .iter()
            .find(|t| !force && t.symlink_metadata().is_ok())
        {
            return Err(format!(
                "{} exists; pass --force to replace it",
                t.display()
            ));
        }
        Ok(Self {
            force,
            pending: Vec::new(),
        })
    }

    /// Writes `bytes` to a fresh temporary beside `target` (owner-only when `secret`).
    pub fn write(&mut self, target: &Path, bytes: &[u8], secret: bool) -> Result<(), String> {
        self.write_with(target, secret, |w| w.write_all(bytes))
    }

    /// [`Self::write`] with the content produced by `fill` into the temporary file; an error
    /// from `fill` (a full disk, a failing encoder) removes the temporary and leaves the target
    /// as it was.
    pub fn write_with(
        &mut self,
        target: &Path,
        secret: bool,
        fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), String> {
        let mut file = self.create(target, secret)?;
        fill(&mut file).map_err(|e| format!("writing {}: {e}", target.display()))?;
        self.finish(file)
    }

    /// Opens a fresh temporary beside `target` (owner-only when `secret`) for a file written
    /// piece by piece; [`Self::finish`] adds it to the set. Dropping the [`OpenFile`] instead
    /// removes the temporary.
    pub fn create(&mut self, target: &Path, secret: bool) -> Result<OpenFile, String> {
        let dir = target.parent().filter(|p| !p.as_os_str().is_empty());
        let name = target
            .file_name()
            .ok_or_else(|| format!("{}: not a file name", target.display()))?
            .to_string_lossy()
            .into_owned();
        let mut suffix = [0u8; 8];
        OsRng
            .try_fill_bytes(&mut suffix)
            .map_err(|e| format!("operating-system randomness: {e}"))?;
        let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let tmp_name = format!(".{name}.{hex}.tmp");
        let tmp = dir.map_or_else(|| PathBuf::from(&tmp_name), |d| d.join(&tmp_name));
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(if secret { 0o600 } else { 0o644 });
        }
        // An existing path makes the exclusive open fail: nothing is removed then.
        let file = opts
            .open(&tmp)
            .map_err(|e| format!("writing {}: {e}", target.display()))?;
        Ok(OpenFile {
            file: Some(BufWriter::with_capacity(1 << 16, file)),
            tmp,
            target: target.to_path_buf(),
        })
    }

    /// Flushes and syncs `file` and adds it to the set (moved into place by [`Self::commit`]).
    pub fn finish(&mut self, mut file: OpenFile) -> Result<(), String> {
        let target = file.target.clone();
        let done = file
            .file
            .take()
            .map(|w| {
                w.into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all())
            })
            .unwrap_or(Ok(()));
        match done {
            Ok(()) => {
                self.pending.push((std::mem::take(&mut file.tmp), target));
                Ok(())
            }
            // `file` is dropped here and removes its temporary.
            Err(e) => Err(format!("writing {}: {e}", target.display())),
        }
    }

    /// Moves every written file into place and syncs the directories.
    pub fn commit(mut self) -> Result<(), String> {
        let pending = std::mem::take(&mut self.pending);
        let mut dirs: Vec<PathBuf> = Vec::new();
        for (i, (tmp, target)) in pending.iter().enumerate() {
            let moved = if self.force {
                fs::rename(tmp, target)
            } else {
                fs::hard_link(tmp, target).and_then(|()| fs::remove_file(tmp))
            };
            if let Err(e) = moved {
                // Nothing more is moved; the temporaries not yet moved are removed.
                for (t, _) in &pending[i..] {
                    let _ = fs::remove_file(t);
                }
                return Err(format!("moving {} into place: {e}", target.display()));
            }
            if let Some(d) = target.parent() {
                let d = if d.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    d.to_path_buf()
                };
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        }
        for d in dirs {
            File::open(&d)
                .and_then(|f| f.sync_all())
                .map_err(|e| format!("syncing {}: {e}", d.display()))?;
        }
        Ok(())
    }
}

/// A temporary file being written for a [`FileSet`] (see [`FileSet::create`]); removed when
/// dropped unless [`FileSet::finish`] took it.
#[derive(Debug)]
pub struct OpenFile {
    file: Option<BufWriter<File>>,
    tmp: PathBuf,
    target: PathBuf,
}

impl OpenFile {
    /// The file this will become.
    pub fn target(&self) -> &Path {
        &self.target
    }
}

impl Write for OpenFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(std::io::Error::other("the file is closed")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            // Close first (dropping the writer flushes into a file about to go).
            self.file.take();
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Drop for FileSet {
    fn drop(&mut self) {
        for (tmp, _) in &self.pending {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Writes one file through a [`FileSet`] of one.
pub fn write_atomic(path: &Path, bytes: &[u8], secret: bool, force: bool) -> Result<(), String> {
    let mut set = FileSet::new(&[path.to_path_buf()], force)?;
    set.write(path, bytes, secret)?;
    set.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk that fills up half-way through a file: the write fails with the reason, the
    /// target keeps its old content, and no temporary is left behind.
    #[test]
    fn a_full_disk_leaves_the_old_file_and_no_temporary() {
        let d = dir("full");
        let target = d.join("answer.bin");
        fs::write(&target, b"old answer").unwrap();
        let mut set = FileSet::new(std::slice::from_ref(&target), true).unwrap();
        let err = set
            .write_with(&target, false, |w| {
                w.write_all(&[7u8; 4096])?;
                Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "no space left on device",
                ))
            })
            .unwrap_err();
        assert!(
            err.contains("answer.bin") && err.contains("no space left"),
            "{err}"
        );
        drop(set);
        assert_eq!(fs::read(&target).unwrap(), b"old answer");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1, "a temporary was left");
        let _ = fs::remove_dir_all(&d);
    }

    /// A target on a file system that refuses new files (Linux's `/proc`, read-only even for
    /// root): a clear error, nothing created.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_read_only_location_is_refused_with_a_reason() {
        let target = PathBuf::from("/proc/ensi-never-written.bin");
        let err = write_atomic(&target, b"x", false, false).unwrap_err();
        assert!(err.contains("ensi-never-written.bin"), "{err}");
        assert!(!target.exists());
    }

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ensi-files-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
        d
    }

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .map(|r| {
                r.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn an_uncommitted_set_leaves_the_old_files_and_no_temporary() {
        let d = dir("drop");
        let (a, b) = (d.join("a.key"), d.join("b.key"));
        fs::write(&a, b"old a").unwrap_or_else(|e| panic!("{e}"));
        fs::write(&b, b"old b").unwrap_or_else(|e| panic!("{e}"));
        {
            let mut set =
                FileSet::new(&[a.clone(), b.clone()], true).unwrap_or_else(|e| panic!("{e}"));
            set.write(&a, b"new a", false)
                .unwrap_or_else(|e| panic!("{e}"));
            // The run fails here (the set is dropped without commit).
        }
        assert_eq!(fs::read(&a).ok().as_deref(), Some(&b"old a"[..]));
        assert_eq!(fs::read(&b).ok().as_deref(), Some(&b"old b"[..]));
        assert_eq!(names(&d), ["a.key", "b.key"]);
        // Committed, every file changes together.
        let mut set = FileSet::new(&[a.clone(), b.clone()], true).unwrap_or_else(|e| panic!("{e}"));
        set.write(&a, b"new a", false)
            .unwrap_or_else(|e| panic!("{e}"));
        set.write(&b, b"new b", false)
            .unwrap_or_else(|e| panic!("{e}"));
        set.commit().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read(&a).ok().as_deref(), Some(&b"new a"[..]));
        assert_eq!(fs::read(&b).ok().as_deref(), Some(&b"new b"[..]));
        assert_eq!(names(&d), ["a.key", "b.key"]);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn existing_targets_and_races_are_refused_without_force() {
        let d = dir("race");
        let a = d.join("a.key");
        fs::write(&a, b"old").unwrap_or_else(|e| panic!("{e}"));
        assert!(FileSet::new(std::slice::from_ref(&a), false).is_err());
        // A target that appears between the check and the commit is not replaced.
        let c = d.join("c.key");
        let mut set =
            FileSet::new(std::slice::from_ref(&c), false).unwrap_or_else(|e| panic!("{e}"));
        set.write(&c, b"mine", false)
            .unwrap_or_else(|e| panic!("{e}"));
        fs::write(&c, b"theirs").unwrap_or_else(|e| panic!("{e}"));
        assert!(set.commit().is_err());
        assert_eq!(fs::read(&c).ok().as_deref(), Some(&b"theirs"[..]));
        assert_eq!(names(&d), ["a.key", "c.key"]);
        let _ = fs::remove_dir_all(&d);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_at_the_target_is_refused_and_secrets_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir("link");
        let victim = d.join("victim.txt");
        fs::write(&victim, b"keep me").unwrap_or_else(|e| panic!("{e}"));
        let s = d.join("secret.key");
        std::os::unix::fs::symlink(&victim, &s).unwrap_or_else(|e| panic!("{e}"));
        assert!(write_atomic(&s, b"SECRET", true, false).is_err());
        assert_eq!(fs::read(&victim).ok().as_deref(), Some(&b"keep me"[..]));
        // With --force the link itself is replaced, never written through.
        write_atomic(&s, b"SECRET", true, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read(&victim).ok().as_deref(), Some(&b"keep me"[..]));
        let meta = fs::symlink_metadata(&s).unwrap_or_else(|e| panic!("{e}"));
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let _ = fs::remove_dir_all(&d);
    }
}
