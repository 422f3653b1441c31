//! Download of missing MNIST files from public mirrors, checked by the SHA-256 of their
//! decompressed content.
//!
//! Each file goes to a hidden temporary file in the target directory and is renamed to its
//! final name (`NAME.gz`, or `NAME` if a mirror served it uncompressed) only once its
//! checksum matches; on any error the temporary file is removed, so no half-written file is
//! ever left behind.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::DataError;
use super::idx::decompressing_reader;
use super::mnist::resolve_file;
use crate::tempfiles::TempFile;

/// The CVDF mirror on Google Cloud Storage.
pub const CVDF_MIRROR: &str = "https://storage.googleapis.com/cvdf-datasets/mnist/";
/// The OSSCI mirror on Amazon S3.
pub const OSSCI_MIRROR: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";
/// The mirrors tried in turn by default.
pub const DEFAULT_MIRRORS: [&str; 2] = [CVDF_MIRROR, OSSCI_MIRROR];

/// A file to make present: its base name (fetched as `NAME.gz`) and the lowercase hex SHA-256
/// of its decompressed content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedFile<'a> {
    /// Base name, e.g. `train-images-idx3-ubyte`.
    pub name: &'a str,
    /// Lowercase hex SHA-256 of the decompressed file.
    pub sha256: &'a str,
    /// The size of the decompressed file in bytes: neither the transfer nor its decompressed
    /// content may exceed it (a mirror sending an endless body is stopped there).
    pub max_bytes: u64,
}

/// The four standard MNIST files with the SHA-256 of their decompressed content.
pub const MNIST_FILES: [ExpectedFile<'static>; 4] = [
    ExpectedFile {
        name: "train-images-idx3-ubyte",
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        max_bytes: 47_040_016,
    },
    ExpectedFile {
        name: "train-labels-idx1-ubyte",
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        max_bytes: 60_008,
    },
    ExpectedFile {
        name: "t10k-images-idx3-ubyte",
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        max_bytes: 7_840_016,
    },
    ExpectedFile {
        name: "t10k-labels-idx1-ubyte",
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        max_bytes: 10_008,
    },
];

/// How [`ensure_files_with`] downloads.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Show an indicatif progress bar and a line per file on stderr.
    pub progress: bool,
    /// The longest one file may take, from the request to the last byte; a mirror that
    /// trickles bytes is given up after it.
    pub deadline: Duration,
    /// Set (e.g. by a Ctrl-C handler) to abandon the download; the partial file is removed.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for DownloadOptions {
    /// Progress shown, a deadline of [`DEFAULT_DEADLINE`], no stop flag.
    fn default() -> Self {
        DownloadOptions {
            progress: true,
            deadline: DEFAULT_DEADLINE,
            stop: None,
        }
    }
}

/// The default deadline of one file: 5 minutes (the largest MNIST file is 9.9 MB).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);

/// Makes sure the four MNIST files are in `dir` (raw or `.gz`), downloading the missing ones
/// from `mirrors` in turn (e.g. [`DEFAULT_MIRRORS`]) and checking them against
/// [`MNIST_FILES`]. Files already present are left alone.
pub fn ensure_mnist(dir: &Path, mirrors: &[&str], progress: bool) -> Result<(), DataError> {
    ensure_files(dir, &MNIST_FILES, mirrors, progress)
}

/// [`ensure_files_with`] with the default options (deadline [`DEFAULT_DEADLINE`] per file)
/// and `progress` as given.
pub fn ensure_files(
    dir: &Path,
    files: &[ExpectedFile<'_>],
    mirrors: &[&str],
    progress: bool,
) -> Result<(), DataError> {
    let options = DownloadOptions {
        progress,
        ..DownloadOptions::default()
    };
    ensure_files_with(dir, files, mirrors, &options)
}

/// Makes sure every file of `files` is in `dir` as `NAME` or `NAME.gz`, downloading each
/// missing one as `MIRROR/NAME.gz` from the first of `mirrors` that serves content whose
/// decompressed SHA-256 matches, within `options.deadline` and
/// [`ExpectedFile::max_bytes`].
///
/// Each download goes to a new temporary file in `dir` (`.NAME.part-PID-N`, opened with
/// `create_new`, so a planted file or symlink is never followed); stale ones left by dead
/// processes are removed first. If `dir` does not exist it is created, and removed again
/// (with the parents created for it) if the download fails.
///
/// A mirror that cannot be reached is not asked again for the next files. If some files
/// remain missing, fails with [`DataError::Missing`], which lists them, the directory, each
/// failed attempt and how to provide the files by hand.
pub fn ensure_files_with(
    dir: &Path,
    files: &[ExpectedFile<'_>],
    mirrors: &[&str],
    options: &DownloadOptions,
) -> Result<(), DataError> {
    if dir.exists() && !dir.is_dir() {
        return Err(DataError::NotADirectory { path: dir.into() });
    }
    let todo: Vec<&ExpectedFile<'_>> = files
        .iter()
        .filter(|f| resolve_file(dir, f.name).is_none())
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    let created = create_dirs(dir)?;
    let result = download_all(dir, &todo, mirrors, options);
    if result.is_err() {
        // Leave no trace of a failed download: the directories it created, deepest first
        // (`remove_dir` only removes empty ones).
        for d in created.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
    result
}

/// Creates `dir` and its missing parents; returns the directories created, outermost first.
fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d {
        if p.as_os_str().is_empty() || p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        d = p.parent();
    }
    missing.reverse();
    fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    Ok(missing)
}

fn download_all(
    dir: &Path,
    todo: &[&ExpectedFile<'_>],
    mirrors: &[&str],
    options: &DownloadOptions,
) -> Result<(), DataError> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15).min(options.deadline))
        .timeout_read(Duration::from_secs(60).min(options.deadline))
        .timeout(options.deadline)
        .build();

    let mut unreachable = HashSet::new();
    let mut missing = Vec::new();
    let mut failures = Vec::new();
    for file in todo {
        let mut file_failures = Vec::new();
        let mut done = false;
        for (m, mirror) in mirrors.iter().enumerate() {
            if unreachable.contains(&m) {
                continue;
            }
            if stopped(options) {
                file_failures.push(DataError::Interrupted { path: dir.into() });
                break;
            }
            let url = join_url(mirror, &format!("{}.gz", file.name));
            match fetch(&agent, &url, dir, file, options) {
                Ok(()) => {
                    done = true;
                    break;
                }
                Err(Fetch::Unreachable(e)) => {
                    unreachable.insert(m);
                    file_failures.push(e);
                }
                Err(Fetch::Failed(e)) => file_failures.push(e),
            }
        }
        if !done {
            missing.push(file.name.to_string());
            failures.extend(file_failures);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(DataError::Missing {
            dir: dir.into(),
            missing,
            failures,
            env_var: "MNIST_DIR",
        })
    }
}

fn stopped(options: &DownloadOptions) -> bool {
    options
        .stop
        .as_ref()
        .is_some_and(|s| s.load(Ordering::Relaxed))
}

fn join_url(base: &str, name: &str) -> String {
    if base.ends_with('/') {
        format!("{base}{name}")
    } else {
        format!("{base}/{name}")
    }
}

/// Why one download attempt failed: `Unreachable` means the mirror itself could not be
/// reached, so it is not worth asking for other files.
enum Fetch {
    Unreachable(DataError),
    Failed(DataError),
}

fn http_err(url: &str, message: impl Into<String>) -> DataError {
    DataError::Http {
        url: url.to_string(),
        message: message.into(),
    }
}

fn fetch(
    agent: &ureq::Agent,
    url: &str,
    dir: &Path,
    file: &ExpectedFile<'_>,
    options: &DownloadOptions,
) -> Result<(), Fetch> {
    let started = Instant::now();
    if options.progress {
        eprintln!("downloading {url}");
    }
    let response = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            return Err(Fetch::Failed(http_err(
                url,
                format!("HTTP status {code} {}", r.status_text()),
            )));
        }
        Err(ureq::Error::Transport(t)) => {
            if started.elapsed() >= options.deadline {
                return Err(Fetch::Failed(DataError::Deadline {
                    url: url.to_string(),
                    deadline: options.deadline,
                    got: 0,
                }));
            }
            // ureq's message starts with the URL, which the error names already.
            let msg = t.to_string();
            let msg = msg
                .strip_prefix(url)
                .map(|m| m.trim_start_matches(": "))
                .unwrap_or(&msg);
            return Err(Fetch::Unreachable(http_err(url, msg)));
        }
    };
    let length: Option<u64> = response
        .header("Content-Length")
        .and_then(|v| v.trim().parse().ok());
    if let Some(len) = length.filter(|&len| len > file.max_bytes) {
        return Err(Fetch::Failed(http_err(
            url,
            format!(
                "announces {len} bytes, more than the {} bytes of the expected file",
                file.max_bytes
            ),
        )));
    }

    let (tmp, out) = TempFile::create(dir, std::ffi::OsStr::new(file.name), "part")
        .map_err(|e| Fetch::Failed(DataError::io(dir, e)))?;
    let got = download_to(
        response.into_reader(),
        out,
        &tmp.path,
        url,
        file,
        length,
        options,
        started,
    )
    .map_err(Fetch::Failed)?;
    if let Some(len) = length.filter(|&len| len != got) {
        return Err(Fetch::Failed(http_err(
            url,
            format!("transfer cut short: expected {len} bytes, got {got}"),
        )));
    }

    let (is_gzip, actual) = match hash_decompressed(&tmp.path, file.max_bytes) {
        Ok(Some(h)) => h,
        Ok(None) => {
            return Err(Fetch::Failed(DataError::TooBig {
                url: url.to_string(),
                limit: file.max_bytes,
                decompressed: true,
            }));
        }
        Err(e) => {
            return Err(Fetch::Failed(http_err(
                url,
                format!("unreadable content: {e}"),
            )));
        }
    };
    if !actual.eq_ignore_ascii_case(file.sha256) {
        return Err(Fetch::Failed(DataError::ChecksumMismatch {
            url: url.to_string(),
            expected: file.sha256.to_ascii_lowercase(),
            actual,
        }));
    }
    let target = if is_gzip {
        dir.join(format!("{}.gz", file.name))
    } else {
        dir.join(file.name)
    };
    fs::rename(&tmp.path, &target).map_err(|e| Fetch::Failed(DataError::io(&target, e)))?;
    tmp.keep();
    if options.progress {
        eprintln!(
            "  {} ({got} bytes, {:.1}s)",
            target.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Streams `body` into `out` (the temporary file at `path`), showing progress, within the
/// deadline (counted from `started`) and `file.max_bytes`; returns the byte count.
#[allow(clippy::too_many_arguments)]
fn download_to(
    mut body: impl Read,
    mut out: File,
    path: &Path,
    url: &str,
    file: &ExpectedFile<'_>,
    length: Option<u64>,
    options: &DownloadOptions,
    started: Instant,
) -> Result<u64, DataError> {
    let bar = if !options.progress {
        ProgressBar::hidden()
    } else if let Some(len) = length {
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_message(format!("{}.gz", file.name));

    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        if stopped(options) {
            bar.abandon();
            return Err(DataError::Interrupted { path: path.into() });
        }
        let deadline_err = |got| DataError::Deadline {
            url: url.to_string(),
            deadline: options.deadline,
            got,
        };
        if started.elapsed() >= options.deadline {
            bar.abandon();
            return Err(deadline_err(got));
        }
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                if started.elapsed() >= options.deadline {
                    return Err(deadline_err(got));
                }
                return Err(http_err(
                    url,
                    format!("transfer failed after {got} bytes: {e}"),
                ));
            }
        };
        got += n as u64;
        if got > file.max_bytes {
            bar.abandon();
            return Err(DataError::TooBig {
                url: url.to_string(),
                limit: file.max_bytes,
                decompressed: false,
            });
        }
        out.write_all(&buf[..n])
            .map_err(|e| DataError::io(path, e))?;
        bar.inc(n as u64);
    }
    out.sync_all().map_err(|e| DataError::io(path, e))?;
    bar.finish_and_clear();
    Ok(got)
}

/// Whether the file at `path` is gzip, and the lowercase hex SHA-256 of its decompressed
/// content; `None` if that content exceeds `max_bytes` (inflation stops there).
fn hash_decompressed(path: &Path, max_bytes: u64) -> io::Result<Option<(bool, String)>> {
    let mut f = BufReader::new(File::open(path)?);
    let mut head = [0u8; 2];
    let is_gzip = f.read_exact(&mut head).is_ok() && head == [0x1f, 0x8b];
    drop(f);
    let r = decompressing_reader(BufReader::new(File::open(path)?))?;
    let mut r = r.take(max_bytes.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if total > max_bytes {
            return Ok(None);
        }
        hasher.update(&buf[..n]);
    }
    Ok(Some((is_gzip, hex(&hasher.finalize()))))
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
