//! Data loading: IDX files (raw or gzip), the MNIST and Fashion-MNIST datasets, and a
//! checked download of MNIST from public mirrors.
//!
//! Every error names the file (or URL) it is about and what is wrong with it; see
//! [`DataError`].

#[cfg(feature = "download")]
pub mod download;
pub mod idx;
pub mod mnist;

use std::fmt::Write as _;
use std::path::PathBuf;

#[cfg(feature = "download")]
pub use download::{
    DEFAULT_DEADLINE, DEFAULT_MIRRORS, DownloadOptions, ExpectedFile, MNIST_FILES, ensure_files,
    ensure_files_with, ensure_mnist,
};
pub use idx::{IdxArray, IdxKind, IdxReader, open_idx_file, parse_idx, read_idx_file};
pub use mnist::{
    Dataset, DatasetKind, MNIST_NAMES, Mnist, find_data_dir, load, load_dir, load_dir_with,
    resolve_file,
};

/// Everything that can go wrong while reading, checking or downloading data.
///
/// Each message starts with the path (or URL) of the file concerned, e.g.
/// `train-images-idx3-ubyte.gz: truncated: expected 47040000 bytes of pixels, got 1000`.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An I/O error while reading or writing `path` (also a corrupt gzip stream).
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The first bytes are not an IDX magic number of the expected kind.
    #[error("{}: bad magic number 0x{found:08x}, expected 0x{expected:08x} ({what})", .path.display())]
    BadMagic {
        /// The file concerned.
        path: PathBuf,
        /// The magic number expected.
        expected: u32,
        /// The magic number found.
        found: u32,
        /// What the expected magic means, e.g. "u8 images, 3 dimensions".
        what: &'static str,
    },
    /// The magic number declares a number of dimensions other than the expected one.
    #[error("{}: wrong number of dimensions: expected {expected}, found {found}", .path.display())]
    WrongDims {
        /// The file concerned.
        path: PathBuf,
        /// Dimensions expected (3 for images, 1 for labels).
        expected: usize,
        /// Dimensions declared by the file.
        found: usize,
    },
    /// The file ends inside its header.
    #[error("{}: truncated header: expected {expected} bytes, got {got}", .path.display())]
    TruncatedHeader {
        /// The file concerned.
        path: PathBuf,
        /// Header length in bytes.
        expected: u64,
        /// Bytes actually present.
        got: u64,
    },
    /// The file holds fewer data bytes than its dimensions say.
    #[error("{}: truncated: expected {expected} bytes of {what}, got {got}", .path.display())]
    Truncated {
        /// The file concerned.
        path: PathBuf,
        /// "pixels" or "labels".
        what: &'static str,
        /// Data bytes the header announces.
        expected: u64,
        /// Data bytes actually present.
        got: u64,
    },
    /// The file holds more bytes than its dimensions say.
    #[error("{}: {}{extra} trailing bytes after the {expected} bytes of {what} the header announces", .path.display(), if *.at_least { "at least " } else { "" })]
    TrailingBytes {
        /// The file concerned.
        path: PathBuf,
        /// "pixels" or "labels".
        what: &'static str,
        /// Data bytes the header announces.
        expected: u64,
        /// Bytes found after them (at most [`idx::TRAILING_PROBE`] are read).
        extra: u64,
        /// Whether reading stopped at [`idx::TRAILING_PROBE`] bytes, so there may be more.
        at_least: bool,
    },
    /// The dimensions describe an absurdly large array.
    #[error("{}: absurd size: dimensions {dims:?} make more than {limit} bytes", .path.display())]
    TooLarge {
        /// The file concerned.
        path: PathBuf,
        /// The declared dimensions.
        dims: Vec<u32>,
        /// The largest accepted size in bytes.
        limit: u64,
    },
    /// An image file and its label file disagree on the number of items.
    #[error("{}: {images} images, but {}: {labels} labels", .images_path.display(), .labels_path.display())]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Number of images.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Number of labels.
        labels: usize,
    },
    /// The images have a size other than the one expected (the model's input).
    #[error("{}: images are {rows}x{cols} pixels (rows x columns), but {expected_rows}x{expected_cols} are expected", .path.display())]
    ImageSize {
        /// The image file.
        path: PathBuf,
        /// Rows of its images.
        rows: usize,
        /// Columns of its images.
        cols: usize,
        /// Rows expected.
        expected_rows: usize,
        /// Columns expected.
        expected_cols: usize,
    },
    /// The training and test images differ in size.
    #[error("{}: test images are {}x{} pixels, but the training images in {} are {}x{}", .test_path.display(), .test.0, .test.1, .train_path.display(), .train.0, .train.1)]
    SplitSizeMismatch {
        /// The training image file.
        train_path: PathBuf,
        /// Its image size (rows, columns).
        train: (usize, usize),
        /// The test image file.
        test_path: PathBuf,
        /// Its image size (rows, columns).
        test: (usize, usize),
    },
    /// The images have no pixel (zero rows or zero columns).
    #[error("{}: images of {rows}x{cols} pixels hold no pixel", .path.display())]
    EmptyImages {
        /// The image file.
        path: PathBuf,
        /// Rows of its images.
        rows: usize,
        /// Columns of its images.
        cols: usize,
    },
    /// A split holds no image at all (training on it or evaluating it means nothing).
    #[error("{}: holds no image (0 {what} images)", .path.display())]
    Empty {
        /// The image file.
        path: PathBuf,
        /// "training" or "test".
        what: &'static str,
    },
    /// The data path exists but is not a directory.
    #[error("{}: is not a directory (the data path must be a directory holding the four IDX files)", .path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// A download took longer than its deadline.
    #[error("{url}: no complete download within the deadline of {}s ({got} bytes received)", .deadline.as_secs_f64())]
    Deadline {
        /// The URL requested.
        url: String,
        /// The deadline.
        deadline: std::time::Duration,
        /// Bytes received until then.
        got: u64,
    },
    /// A download (or its decompressed content) exceeded the size of the file it should be.
    #[error("{url}: more than {limit} bytes{}, larger than the expected file; stopped", if *.decompressed { " once decompressed" } else { "" })]
    TooBig {
        /// The URL requested.
        url: String,
        /// The largest size accepted.
        limit: u64,
        /// Whether the limit was hit by the decompressed content (else by the transfer).
        decompressed: bool,
    },
    /// A download was abandoned because its stop flag was set (Ctrl-C).
    #[error("{}: download interrupted", .path.display())]
    Interrupted {
        /// The file (or directory) being downloaded.
        path: PathBuf,
    },
    /// A label is not a digit class (0..=9).
    #[error("{}: label {label} at index {index} is out of range (must be < 10)", .path.display())]
    LabelOutOfRange {
        /// The label file.
        path: PathBuf,
        /// Index of the offending label.
        index: usize,
        /// Its value.
        label: u8,
    },
    /// Downloaded content whose decompressed SHA-256 differs from the expected one.
    #[error(
        "{url}: checksum mismatch: expected SHA-256 {expected} of the decompressed content, got {actual}"
    )]
    ChecksumMismatch {
        /// Where the content came from.
        url: String,
        /// Expected hex SHA-256.
        expected: String,
        /// Actual hex SHA-256.
        actual: String,
    },
    /// An HTTP or transport failure (bad status, refused connection, body cut short).
    #[error("{url}: {message}")]
    Http {
        /// The URL requested.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Some dataset files are absent (and could not be downloaded, if that was tried).
    #[error("{}", missing_message(.dir, .missing, .failures, .env_var))]
    Missing {
        /// The directory looked in.
        dir: PathBuf,
        /// Base names of the missing files (each accepted raw or with `.gz`).
        missing: Vec<String>,
        /// Why each download attempt failed, each naming its URL (empty if no download
        /// was tried).
        failures: Vec<DataError>,
        /// The environment variable naming the data directory (`MNIST_DIR` or
        /// `FASHION_MNIST_DIR`), named in the hint.
        env_var: &'static str,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

fn missing_message(
    dir: &std::path::Path,
    missing: &[String],
    failures: &[DataError],
    env_var: &str,
) -> String {
    let mut s = format!(
        "{}: missing data files: {} (looked for each name with and without .gz in {})",
        dir.display(),
        missing.join(", "),
        dir.display()
    );
    if !failures.is_empty() {
        s.push_str("; download failed:");
        for f in failures {
            let _ = write!(s, " [{f}]");
        }
    }
    let _ = write!(
        s,
        "; to provide them, set {env_var} (or pass --data <dir>) to a directory holding the \
         four IDX files, or copy them (raw or .gz) into {}",
        dir.display()
    );
    s
}
