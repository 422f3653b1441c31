//! The MNIST and Fashion-MNIST datasets: four IDX files in one directory.

use std::path::{Path, PathBuf};

use super::DataError;
use super::idx::{IdxKind, IdxReader, open_idx_file};

/// The base names of the four standard files, in the order train images, train labels, test
/// images, test labels. Each may be present raw (`NAME`) or gzip-compressed (`NAME.gz`).
/// Fashion-MNIST uses the same names.
pub const MNIST_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Number of classes; every label must be below this.
pub const NUM_CLASSES: u8 = 10;

/// One split of a dataset: `len()` grayscale images with their labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Pixels of all images, `len() * rows * cols` bytes, image after image, row-major.
    pub images: Vec<u8>,
    /// One label (0..=9) per image.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

impl Dataset {
    /// Number of images (and labels).
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i` (`rows * cols` bytes, row-major). Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.images[i * n..(i + 1) * n]
    }

    /// Label of image `i`. Panics if `i >= len()`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// Reads an image file and its label file (each raw or gzip) and checks that they agree
    /// in count, that the images have pixels and that every label is below 10. The two
    /// headers are compared before either body is inflated.
    pub fn from_files(images_path: &Path, labels_path: &Path) -> Result<Dataset, DataError> {
        let (images, labels) = open_pair(images_path, labels_path)?;
        read_pair(images, labels)
    }
}

/// Opens an image file and its label file and checks their headers against each other: the
/// same count, images of at least one pixel. Nothing is inflated beyond the headers.
fn open_pair(
    images_path: &Path,
    labels_path: &Path,
) -> Result<(IdxReader<'static>, IdxReader<'static>), DataError> {
    let images = open_idx_file(images_path, IdxKind::Images)?;
    let labels = open_idx_file(labels_path, IdxKind::Labels)?;
    if images.dims()[0] != labels.dims()[0] {
        return Err(DataError::CountMismatch {
            images_path: images_path.into(),
            images: images.dims()[0],
            labels_path: labels_path.into(),
            labels: labels.dims()[0],
        });
    }
    let (rows, cols) = image_size(&images);
    if rows == 0 || cols == 0 {
        return Err(DataError::EmptyImages {
            path: images_path.into(),
            rows,
            cols,
        });
    }
    Ok((images, labels))
}

fn image_size(images: &IdxReader<'_>) -> (usize, usize) {
    (images.dims()[1], images.dims()[2])
}

/// Reads the bodies of a pair checked by [`open_pair`] and checks the labels.
fn read_pair(images: IdxReader<'_>, labels: IdxReader<'_>) -> Result<Dataset, DataError> {
    let labels_path = labels.path().to_path_buf();
    let images = images.read_data()?;
    let labels = labels.read_data()?;
    if let Some((index, &label)) = labels
        .data
        .iter()
        .enumerate()
        .find(|&(_, &l)| l >= NUM_CLASSES)
    {
        return Err(DataError::LabelOutOfRange {
            path: labels_path,
            index,
            label,
        });
    }
    Ok(Dataset {
        images: images.data,
        labels: labels.data,
        rows: images.dims[1],
        cols: images.dims[2],
    })
}

/// A dataset's training and test splits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mnist {
    /// The training split (60,000 images for MNIST).
    pub train: Dataset,
    /// The test split (10,000 images for MNIST).
    pub test: Dataset,
}

/// Which dataset of the MNIST family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetKind {
    /// Handwritten digits (LeCun et al.).
    Mnist,
    /// Zalando's Fashion-MNIST, same format and file names.
    Fashion,
}

impl DatasetKind {
    /// The environment variable naming the data directory: `MNIST_DIR` or `FASHION_MNIST_DIR`.
    pub fn env_var(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "MNIST_DIR",
            DatasetKind::Fashion => "FASHION_MNIST_DIR",
        }
    }

    /// The directory used when neither an explicit one nor the environment variable is given:
    /// `./data/mnist` for MNIST, `/usr/share/datasets/fashion-mnist` (where Debian's
    /// `dataset-fashion-mnist` package installs it) for Fashion-MNIST.
    pub fn default_dir(self) -> PathBuf {
        match self {
            DatasetKind::Mnist => PathBuf::from("data/mnist"),
            DatasetKind::Fashion => PathBuf::from("/usr/share/datasets/fashion-mnist"),
        }
    }

    /// The base names of the four files (the standard [`MNIST_NAMES`] for both kinds; the
    /// Debian package installs them as `NAME.gz`).
    pub fn file_names(self) -> [&'static str; 4] {
        MNIST_NAMES
    }
}

/// The data directory: `explicit` if given, else the kind's environment variable
/// (`$MNIST_DIR` / `$FASHION_MNIST_DIR`) if set and non-empty, else
/// [`DatasetKind::default_dir`].
pub fn find_data_dir(explicit: Option<&Path>, kind: DatasetKind) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    match std::env::var_os(kind.env_var()) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => kind.default_dir(),
    }
}

/// The file for base name `name` in `dir`: `dir/name` if it exists, else `dir/name.gz` if
/// that exists, else `None`.
pub fn resolve_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

/// Loads the four standard files from `dir`, each raw or gzip-compressed; see
/// [`load_dir_with`] (this is `load_dir_with(dir, DatasetKind::Mnist, None)`).
pub fn load_dir(dir: &Path) -> Result<Mnist, DataError> {
    load_dir_with(dir, DatasetKind::Mnist, None)
}

/// Loads the four standard files of a `kind` data set from `dir`, each raw or
/// gzip-compressed, checking that the images are `expected` (rows, columns) if given.
///
/// Fails before reading any data if `dir` exists but is not a directory
/// ([`DataError::NotADirectory`]), if a file is absent ([`DataError::Missing`], listing every
/// absent file and naming `kind`'s environment variable), and before inflating any body if the
/// headers disagree: image and label counts ([`DataError::CountMismatch`]), images without
/// pixels ([`DataError::EmptyImages`]), a split without images ([`DataError::Empty`]), images
/// of another size than `expected` ([`DataError::ImageSize`]) or test images of another size
/// than the training images ([`DataError::SplitSizeMismatch`]). Every error names its file.
pub fn load_dir_with(
    dir: &Path,
    kind: DatasetKind,
    expected: Option<(usize, usize)>,
) -> Result<Mnist, DataError> {
    if dir.exists() && !dir.is_dir() {
        return Err(DataError::NotADirectory { path: dir.into() });
    }
    let mut found = Vec::with_capacity(4);
    let mut missing = Vec::new();
    for name in kind.file_names() {
        match resolve_file(dir, name) {
            Some(p) => found.push(p),
            None => missing.push(name.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(DataError::Missing {
            dir: dir.into(),
            missing,
            failures: Vec::new(),
            env_var: kind.env_var(),
        });
    }
    let train = open_pair(&found[0], &found[1])?;
    let test = open_pair(&found[2], &found[3])?;
    for (pair, what) in [(&train, "training"), (&test, "test")] {
        if pair.0.dims()[0] == 0 {
            return Err(DataError::Empty {
                path: pair.0.path().into(),
                what,
            });
        }
        let (rows, cols) = image_size(&pair.0);
        match expected {
            Some((expected_rows, expected_cols))
                if (rows, cols) != (expected_rows, expected_cols) =>
            {
                return Err(DataError::ImageSize {
                    path: pair.0.path().into(),
                    rows,
                    cols,
                    expected_rows,
                    expected_cols,
                });
            }
            _ => {}
        }
    }
    if image_size(&train.0) != image_size(&test.0) {
        return Err(DataError::SplitSizeMismatch {
            train_path: found[0].clone(),
            train: image_size(&train.0),
            test_path: found[2].clone(),
            test: image_size(&test.0),
        });
    }
    Ok(Mnist {
        train: read_pair(train.0, train.1)?,
        test: read_pair(test.0, test.1)?,
    })
}

/// Finds the directory with [`find_data_dir`] and loads it with [`load_dir_with`] (any image
/// size, as long as training and test images agree).
pub fn load(kind: DatasetKind, explicit: Option<&Path>) -> Result<Mnist, DataError> {
    load_dir_with(&find_data_dir(explicit, kind), kind, None)
}
