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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::DataError;
use super::idx::decompressing_reader;
use super::mnist::resolve_file;

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
}

/// The four standard MNIST files with the SHA-256 of their decompressed content.
pub const MNIST_FILES: [ExpectedFile<'static>; 4] = [
    ExpectedFile {
        name: "train-images-idx3-ubyte",
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    ExpectedFile {
        name: "train-labels-idx1-ubyte",
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    ExpectedFile {
        name: "t10k-images-idx3-ubyte",
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    ExpectedFile {
        name: "t10k-labels-idx1-ubyte",
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
];

/// Makes sure the four MNIST files are in `dir` (raw or `.gz`), downloading the missing ones
/// from `mirrors` in turn (e.g. [`DEFAULT_MIRRORS`]) and checking them against
/// [`MNIST_FILES`]. Files already present are left alone.
pub fn ensure_mnist(dir: &Path, mirrors: &[&str], progress: bool) -> Result<(), DataError> {
    ensure_files(dir, &MNIST_FILES, mirrors, progress)
}

/// Makes sure every file of `files` is in `dir` as `NAME` or `NAME.gz`, downloading each
/// missing one as `MIRROR/NAME.gz` from the first of `mirrors` that serves content whose
/// decompressed SHA-256 matches. `progress` shows an indicatif progress bar on stderr.
///
/// A mirror that cannot be reached is not asked again for the next files. If some files
/// remain missing, fails with [`DataError::Missing`], which lists them, the directory, each
/// failed attempt and how to provide the files by hand.
pub fn ensure_files(
    dir: &Path,
    files: &[ExpectedFile<'_>],
    mirrors: &[&str],
    progress: bool,
) -> Result<(), DataError> {
    let todo: Vec<&ExpectedFile<'_>> = files
        .iter()
        .filter(|f| resolve_file(dir, f.name).is_none())
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(60))
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
            let url = join_url(mirror, &format!("{}.gz", file.name));
            match fetch(&agent, &url, dir, file, progress) {
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
        })
    }
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

/// Removes the temporary file on drop unless it was renamed.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn temp_path(dir: &Path, name: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.part-{}-{n}", std::process::id()))
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
    progress: bool,
) -> Result<(), Fetch> {
    let response = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            return Err(Fetch::Failed(http_err(
                url,
                format!("HTTP status {code} {}", r.status_text()),
            )));
        }
        Err(ureq::Error::Transport(t)) => {
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

    let tmp = TempFile {
        path: temp_path(dir, file.name),
        keep: false,
    };
    let got = download_to(
        response.into_reader(),
        &tmp.path,
        url,
        file.name,
        length,
        progress,
    )
    .map_err(Fetch::Failed)?;
    if let Some(len) = length.filter(|&len| len != got) {
        return Err(Fetch::Failed(http_err(
            url,
            format!("transfer cut short: expected {len} bytes, got {got}"),
        )));
    }

    let (is_gzip, actual) = hash_decompressed(&tmp.path)
        .map_err(|e| Fetch::Failed(http_err(url, format!("unreadable content: {e}"))))?;
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
    let mut tmp = tmp;
    tmp.keep = true;
    Ok(())
}

/// Streams `body` into a new file at `path`, showing progress; returns the byte count.
fn download_to(
    mut body: impl Read,
    path: &Path,
    url: &str,
    name: &str,
    length: Option<u64>,
    progress: bool,
) -> Result<u64, DataError> {
    let mut out = File::create(path).map_err(|e| DataError::io(path, e))?;
    let bar = if !progress {
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
    bar.set_message(format!("{name}.gz"));

    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                return Err(http_err(
                    url,
                    format!("transfer failed after {got} bytes: {e}"),
                ));
            }
        };
        out.write_all(&buf[..n])
            .map_err(|e| DataError::io(path, e))?;
        got += n as u64;
        bar.inc(n as u64);
    }
    out.sync_all().map_err(|e| DataError::io(path, e))?;
    bar.finish_and_clear();
    Ok(got)
}

/// Whether the file at `path` is gzip, and the lowercase hex SHA-256 of its decompressed
/// content.
fn hash_decompressed(path: &Path) -> io::Result<(bool, String)> {
    let mut f = BufReader::new(File::open(path)?);
    let mut head = [0u8; 2];
    let is_gzip = f.read_exact(&mut head).is_ok() && head == [0x1f, 0x8b];
    drop(f);
    let mut r = decompressing_reader(BufReader::new(File::open(path)?))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    Ok((is_gzip, hex(&hasher.finalize())))
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
