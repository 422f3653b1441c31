//! Temporary files written next to their target (checkpoints being saved, downloads in
//! progress): a registry of the ones this process is writing, so that a signal handler can
//! remove them before exiting ([`remove_in_progress`]), and the removal of stale ones left by
//! processes that died (`kill -9`, power loss) the next time the same target is written.
//!
//! Temporary names are `.NAME.KIND-PID-N` in the target's directory (`KIND` is `tmp` for
//! checkpoints and `part` for downloads), so the writer's process id can be read back.

// The writer side is used by the `download` and `checkpoint` features only.
#![cfg_attr(
    not(any(feature = "download", feature = "checkpoint")),
    allow(dead_code)
)]

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

static IN_PROGRESS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes every temporary file this process is writing right now (a checkpoint being saved, a
/// download in progress). Meant for a Ctrl-C / SIGTERM handler that exits the process at once:
/// call it just before `std::process::exit`. Returns the files removed.
pub fn remove_in_progress() -> Vec<PathBuf> {
    let list = match IN_PROGRESS.lock() {
        Ok(l) => l.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    list.into_iter()
        .filter(|p| fs::remove_file(p).is_ok())
        .collect()
}

/// A temporary file created with `create_new` (never following or reusing an existing path,
/// symlinks included), registered for [`remove_in_progress`], and removed on drop unless
/// [`TempFile::keep`] was called (after a successful rename).
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
    kept: bool,
}

impl TempFile {
    /// Creates `.NAME.KIND-PID-N` in `dir` for the target file name `name`, trying further
    /// counter values while the name is taken. Also removes stale temporaries of the same
    /// target left by dead processes.
    pub(crate) fn create(
        dir: &Path,
        name: &std::ffi::OsStr,
        kind: &str,
    ) -> io::Result<(Self, File)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        remove_stale(dir, name, kind);
        let pid = std::process::id();
        let mut last_err = None;
        for _ in 0..1000 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut tmp_name = prefix(name, kind);
            tmp_name.push(format!("{pid}-{n}"));
            let path = dir.join(tmp_name);
            register(&path);
            match File::create_new(&path) {
                Ok(f) => return Ok((TempFile { path, kept: false }, f)),
                Err(e) => {
                    unregister(&path);
                    if e.kind() != io::ErrorKind::AlreadyExists {
                        return Err(e);
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("no free temporary name")))
    }

    /// Keeps the file (it was renamed into place): it is no longer removed.
    pub(crate) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
        unregister(&self.path);
    }
}

fn register(path: &Path) {
    let mut list = IN_PROGRESS.lock().unwrap_or_else(|p| p.into_inner());
    list.push(path.to_path_buf());
}

fn unregister(path: &Path) {
    let mut list = IN_PROGRESS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = list.iter().rposition(|p| p == path) {
        list.swap_remove(i);
    }
}

/// `.NAME.KIND-`: the start of every temporary name of target `name`.
fn prefix(name: &std::ffi::OsStr, kind: &str) -> OsString {
    let mut s = OsString::from(".");
    s.push(name);
    s.push(format!(".{kind}-"));
    s
}

/// Removes the temporaries `.NAME.KIND-PID-N` in `dir` whose process `PID` is not running
/// (Linux: no `/proc/PID`; elsewhere: not modified for a day). Returns the files removed.
pub(crate) fn remove_stale(dir: &Path, name: &std::ffi::OsStr, kind: &str) -> Vec<PathBuf> {
    let prefix = prefix(name, kind);
    let Some(prefix) = prefix.to_str() else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|f| f.strip_prefix(prefix)) else {
            continue;
        };
        let Some((pid, n)) = rest.split_once('-') else {
            continue;
        };
        let (Ok(pid), true) = (pid.parse::<u32>(), n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        if pid == std::process::id() || process_alive(pid, &entry.path()) {
            continue;
        }
        if fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

#[cfg(target_os = "linux")]
fn process_alive(pid: u32, _file: &Path) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(not(target_os = "linux"))]
fn process_alive(_pid: u32, file: &Path) -> bool {
    // Without a portable liveness check, only files untouched for a day count as stale.
    fs::symlink_metadata(file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_none_or(|age| age < std::time::Duration::from_secs(24 * 3600))
}

/// The directory of `path` (`.` for a bare file name) and its file name.
#[cfg_attr(not(any(feature = "checkpoint", feature = "train")), allow(dead_code))]
pub(crate) fn split_path(
    path: &Path,
) -> Result<(PathBuf, &std::ffi::OsStr), (&'static str, io::Error)> {
    let file_name = path.file_name().ok_or_else(|| {
        (
            "choosing a file name",
            io::Error::other("path has no file name"),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, file_name))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory
/// (`.NAME.tmp-PID-N`, created with `create_new`), `fsync`, rename over `path`, then (on Unix)
/// `fsync` of the directory. The temporary file is removed if anything fails (and by
/// [`crate::tempfiles::remove_in_progress`] from a signal handler); stale ones of the same
/// target left by dead processes are removed first. Returns what failed and why.
#[cfg_attr(not(any(feature = "checkpoint", feature = "train")), allow(dead_code))]
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), (&'static str, io::Error)> {
    let (dir, file_name) = split_path(path)?;
    if path.is_dir() {
        return Err((
            "checking the path",
            io::Error::other("is a directory, not a file name"),
        ));
    }
    let (tmp, mut f) =
        TempFile::create(&dir, file_name, "tmp").map_err(|e| ("creating temporary file", e))?;
    f.write_all(bytes)
        .map_err(|e| ("writing temporary file", e))?;
    f.sync_all().map_err(|e| ("syncing temporary file", e))?;
    drop(f);
    fs::rename(&tmp.path, path).map_err(|e| ("renaming temporary file into place", e))?;
    tmp.keep();
    #[cfg(unix)]
    if let Ok(d) = File::open(&dir) {
        // Makes the rename durable; failure here does not undo a completed write.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_in_progress_removes_the_files_being_written() {
        let dir = std::env::temp_dir().join(format!("symgrad-tempfiles-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (tmp, _f) = TempFile::create(&dir, std::ffi::OsStr::new("t.bin"), "tmp").unwrap();
        assert!(tmp.path.exists());
        let removed = remove_in_progress();
        assert!(removed.contains(&tmp.path), "{removed:?}");
        assert!(!tmp.path.exists());
        drop(tmp);
        // A kept file is no longer in progress.
        let (tmp, _f) = TempFile::create(&dir, std::ffi::OsStr::new("k.bin"), "tmp").unwrap();
        let kept = tmp.path.clone();
        tmp.keep();
        assert!(!remove_in_progress().contains(&kept));
        assert!(kept.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
