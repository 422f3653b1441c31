//! IDX reader and MNIST loader: in-memory good and bad files (raw and gzip), and the real
//! MNIST from `$MNIST_DIR`.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use symgrad_runtime::data::{
    DataError, DatasetKind, IdxKind, IdxReader, MNIST_FILES, MNIST_NAMES, find_data_dir, load_dir,
    load_dir_with, parse_idx,
};

fn images_bytes(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for d in [n, rows, cols] {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

fn labels_bytes(labels: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 1];
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn pixels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 256) as u8).collect()
}

fn parse_err(bytes: &[u8], name: &str, kind: IdxKind) -> String {
    let err =
        parse_idx(Cursor::new(bytes), Path::new(name), kind).expect_err("parse should have failed");
    err.to_string()
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} should contain {p:?}");
    }
}

#[test]
fn good_images_raw_and_gzip() {
    let px = pixels(3 * 4 * 5);
    let raw = images_bytes(3, 4, 5, &px);
    for bytes in [raw.clone(), gzip(&raw)] {
        let a = parse_idx(Cursor::new(&bytes), Path::new("x"), IdxKind::Images).unwrap();
        assert_eq!(a.dims, vec![3, 4, 5]);
        assert_eq!(a.data, px);
    }
}

#[test]
fn good_labels_raw_and_gzip() {
    let raw = labels_bytes(&[5, 0, 4, 1, 9]);
    for bytes in [raw.clone(), gzip(&raw)] {
        let a = parse_idx(Cursor::new(&bytes), Path::new("x"), IdxKind::Labels).unwrap();
        assert_eq!(a.dims, vec![5]);
        assert_eq!(a.data, vec![5, 0, 4, 1, 9]);
    }
}

#[test]
fn empty_arrays_are_fine() {
    let a = parse_idx(
        Cursor::new(labels_bytes(&[])),
        Path::new("x"),
        IdxKind::Labels,
    )
    .unwrap();
    assert_eq!(a.dims, vec![0]);
    assert!(a.data.is_empty());
}

#[test]
fn bad_magic() {
    let mut b = images_bytes(1, 2, 2, &[0; 4]);
    b[2] = 0x09;
    let msg = parse_err(&b, "train-images-idx3-ubyte", IdxKind::Images);
    assert_mentions(
        &msg,
        &[
            "train-images-idx3-ubyte",
            "bad magic number 0x00000903",
            "expected 0x00000803",
        ],
    );
    // Not IDX at all, gzip-compressed.
    let msg = parse_err(&gzip(b"hello world, no idx"), "t.gz", IdxKind::Labels);
    assert_mentions(&msg, &["t.gz", "bad magic number", "expected 0x00000801"]);
}

#[test]
fn wrong_dims_count() {
    let mut b = images_bytes(1, 2, 2, &[0; 4]);
    b[3] = 2;
    let msg = parse_err(&b, "imgs.idx", IdxKind::Images);
    assert_mentions(
        &msg,
        &[
            "imgs.idx",
            "wrong number of dimensions: expected 3, found 2",
        ],
    );
    // A label file where images are expected.
    let msg = parse_err(&labels_bytes(&[1, 2]), "lbl", IdxKind::Images);
    assert_mentions(&msg, &["lbl", "expected 3, found 1"]);
}

#[test]
fn truncated_header() {
    let b = images_bytes(1, 2, 2, &[0; 4]);
    for (len, got) in [(0usize, 0u64), (3, 3), (10, 10)] {
        let msg = parse_err(&b[..len], "short.idx", IdxKind::Images);
        assert_mentions(
            &msg,
            &[
                "short.idx",
                &format!("truncated header: expected 16 bytes, got {got}"),
            ],
        );
    }
    let msg = parse_err(&gzip(&b[..10]), "short.idx.gz", IdxKind::Images);
    assert_mentions(&msg, &["short.idx.gz", "truncated header"]);
}

#[test]
fn truncated_data() {
    let full = images_bytes(2, 28, 28, &pixels(2 * 28 * 28));
    let cut = &full[..16 + 1000];
    for bytes in [cut.to_vec(), gzip(cut)] {
        let msg = parse_err(&bytes, "train-images-idx3-ubyte.gz", IdxKind::Images);
        assert_eq!(
            msg,
            "train-images-idx3-ubyte.gz: truncated: expected 1568 bytes of pixels, got 1000"
        );
    }
    let labels = labels_bytes(&[1, 2, 3]);
    let msg = parse_err(&labels[..9], "l", IdxKind::Labels);
    assert_mentions(&msg, &["l: truncated: expected 3 bytes of labels, got 1"]);
}

#[test]
fn truncated_gzip_stream() {
    let raw = images_bytes(2, 28, 28, &pixels(2 * 28 * 28));
    let gz = gzip(&raw);
    let msg = parse_err(&gz[..gz.len() / 2], "cut.gz", IdxKind::Images);
    assert!(msg.starts_with("cut.gz: "), "{msg}");
}

#[test]
fn trailing_bytes() {
    let mut b = labels_bytes(&[1, 2, 3]);
    b.extend_from_slice(&[7, 7, 7]);
    for bytes in [b.clone(), gzip(&b)] {
        let msg = parse_err(&bytes, "labels.idx", IdxKind::Labels);
        assert_mentions(
            &msg,
            &["labels.idx", "3 trailing bytes", "3 bytes of labels"],
        );
    }
}

#[test]
fn absurd_size() {
    let mut b = vec![0, 0, 8, 3];
    for d in [u32::MAX, u32::MAX, u32::MAX] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    let msg = parse_err(&b, "huge", IdxKind::Images);
    assert_mentions(&msg, &["huge", "absurd size"]);
    let mut b = vec![0, 0, 8, 3];
    for d in [100_000u32, 1000, 1000] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    let msg = parse_err(&b, "big", IdxKind::Images);
    assert_mentions(&msg, &["big", "absurd size"]);
}

/// Writes a synthetic dataset to `dir`: `n_train`/`n_test` 3x2 images; files listed in `gz`
/// are gzip-compressed.
fn write_dataset(dir: &Path, train_labels: &[u8], n_train_images: u32, gz: &[&str]) {
    let files: [(&str, Vec<u8>); 4] = [
        (
            MNIST_NAMES[0],
            images_bytes(n_train_images, 3, 2, &pixels(n_train_images as usize * 6)),
        ),
        (MNIST_NAMES[1], labels_bytes(train_labels)),
        (MNIST_NAMES[2], images_bytes(2, 3, 2, &pixels(12))),
        (MNIST_NAMES[3], labels_bytes(&[7, 2])),
    ];
    for (name, bytes) in files {
        if gz.contains(&name) {
            std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

#[test]
fn load_dir_mixed_raw_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &[5, 0, 4], 3, &[MNIST_NAMES[0], MNIST_NAMES[3]]);
    let m = load_dir(dir.path()).unwrap();
    assert_eq!(m.train.len(), 3);
    assert_eq!(m.test.len(), 2);
    assert!(!m.train.is_empty());
    assert_eq!((m.train.rows, m.train.cols), (3, 2));
    assert_eq!(m.train.image(1), &pixels(18)[6..12]);
    assert_eq!(m.train.labels, vec![5, 0, 4]);
    assert_eq!(m.test.labels, vec![7, 2]);
}

#[test]
fn count_mismatch_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &[5, 0, 4, 1], 3, &[MNIST_NAMES[0]]);
    let err = load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::CountMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert_mentions(
        &msg,
        &[
            "train-images-idx3-ubyte.gz: 3 images",
            "train-labels-idx1-ubyte: 4 labels",
        ],
    );
}

#[test]
fn label_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &[5, 0, 10], 3, &[]);
    let msg = load_dir(dir.path()).unwrap_err().to_string();
    assert_mentions(
        &msg,
        &[
            "train-labels-idx1-ubyte",
            "label 10 at index 2 is out of range",
        ],
    );
}

#[test]
fn bad_file_in_dir_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &[5, 0, 4], 3, &[MNIST_NAMES[2]]);
    // Cut the gzip test images short.
    let p = dir.path().join("t10k-images-idx3-ubyte.gz");
    let gz = std::fs::read(&p).unwrap();
    std::fs::write(&p, &gz[..gz.len() - 12]).unwrap();
    let msg = load_dir(dir.path()).unwrap_err().to_string();
    assert!(msg.contains(&p.display().to_string()), "{msg}");
}

#[test]
fn missing_files_say_where_and_how() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MNIST_NAMES[1]), labels_bytes(&[1])).unwrap();
    let err = load_dir(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert_mentions(
        &msg,
        &[
            &dir.path().display().to_string(),
            "train-images-idx3-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
            "MNIST_DIR",
            "--data",
        ],
    );
    assert!(!msg.contains("train-labels-idx1-ubyte"), "{msg}");
}

#[test]
fn find_data_dir_prefers_explicit() {
    let p = Path::new("/some/where");
    assert_eq!(find_data_dir(Some(p), DatasetKind::Mnist), p);
    assert_eq!(find_data_dir(Some(p), DatasetKind::Fashion), p);
    assert_eq!(
        DatasetKind::Fashion.default_dir(),
        Path::new("/usr/share/datasets/fashion-mnist")
    );
    assert_eq!(DatasetKind::Mnist.default_dir(), Path::new("data/mnist"));
}

/// The real MNIST directory: `$MNIST_DIR` (relative paths taken from the repository root),
/// else `<repo>/../shared/data/mnist`; `None` (skip) only if the variable is unset and the
/// default is absent.
fn real_mnist_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::var_os("MNIST_DIR") {
        Some(v) if !v.is_empty() => Some(root.join(v)),
        _ => {
            let d = root.join("../shared/data/mnist");
            if d.is_dir() {
                Some(d)
            } else {
                eprintln!(
                    "skipping: MNIST_DIR is unset and {} does not exist",
                    d.display()
                );
                None
            }
        }
    }
}

fn histogram(labels: &[u8]) -> [usize; 10] {
    let mut h = [0; 10];
    for &l in labels {
        h[l as usize] += 1;
    }
    h
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn real_mnist() {
    let Some(dir) = real_mnist_dir() else { return };
    let m = load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.train.len(), 60_000);
    assert_eq!(m.test.len(), 10_000);
    for d in [&m.train, &m.test] {
        assert_eq!((d.rows, d.cols), (28, 28));
        assert_eq!(d.images.len(), d.len() * 784);
        assert_eq!(histogram(&d.labels).iter().sum::<usize>(), d.len());
    }
    assert_eq!(&m.train.labels[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(&m.test.labels[..5], &[7, 2, 1, 0, 4]);
    assert_eq!(
        histogram(&m.train.labels),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        histogram(&m.test.labels),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    let sum = |d: &[u8]| d.iter().map(|&p| u64::from(p)).sum::<u64>();
    assert_eq!(sum(&m.train.images), 1_567_298_545);
    assert_eq!(sum(&m.test.images), 264_923_200);
    assert_eq!(sum(m.train.image(0)), 27_525);
    // The label files rebuilt from what was parsed have the published SHA-256 sums.
    let train_labels = sha256_hex(&[
        &labels_bytes(&[])[..4],
        &60_000u32.to_be_bytes(),
        &m.train.labels,
    ]);
    assert_eq!(train_labels, MNIST_FILES[1].sha256);
    let test_images = sha256_hex(&[&images_bytes(10_000, 28, 28, &[]), &m.test.images]);
    assert_eq!(test_images, MNIST_FILES[2].sha256);
}

#[test]
fn real_fashion_mnist_if_installed() {
    let dir = DatasetKind::Fashion.default_dir();
    if !dir.is_dir() {
        eprintln!(
            "skipping: {} absent (apt-get install dataset-fashion-mnist)",
            dir.display()
        );
        return;
    }
    let m = load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((m.train.len(), m.test.len()), (60_000, 10_000));
    assert_eq!((m.train.rows, m.train.cols), (28, 28));
    assert_eq!(&m.train.labels[..4], &[9, 0, 0, 3]);
    assert_eq!(histogram(&m.train.labels), [6000; 10]);
    assert_eq!(histogram(&m.test.labels), [1000; 10]);
}

// ---------------------------------------------------------------------------------------------
// Issue 12 regressions: image sizes, headers compared before bodies, capped inflation,
// Fashion-MNIST hints, a file as the data directory.
// ---------------------------------------------------------------------------------------------

/// Writes the four files with the given image sizes `(count, rows, cols)` for train and test
/// (labels all 1).
fn write_sized(dir: &Path, train: (u32, u32, u32), test: (u32, u32, u32)) {
    for ((n, r, c), names) in [(train, &MNIST_NAMES[..2]), (test, &MNIST_NAMES[2..])] {
        let px = pixels((n * r * c) as usize);
        std::fs::write(dir.join(names[0]), images_bytes(n, r, c, &px)).unwrap();
        std::fs::write(dir.join(names[1]), labels_bytes(&vec![1; n as usize])).unwrap();
    }
}

#[test]
fn images_of_another_size_than_the_model_name_file_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    write_sized(dir.path(), (4, 28, 27), (2, 28, 27));
    let err = load_dir_with(dir.path(), DatasetKind::Mnist, Some((28, 28))).unwrap_err();
    assert!(matches!(err, DataError::ImageSize { .. }), "{err:?}");
    assert_mentions(
        &err.to_string(),
        &["train-images-idx3-ubyte", "28x27", "28x28"],
    );
    // 1x1 images, and without an expected size they load.
    write_sized(dir.path(), (3, 1, 1), (2, 1, 1));
    let msg = load_dir_with(dir.path(), DatasetKind::Mnist, Some((28, 28)))
        .unwrap_err()
        .to_string();
    assert_mentions(&msg, &["train-images-idx3-ubyte", "1x1", "28x28"]);
    let m = load_dir_with(dir.path(), DatasetKind::Mnist, None).unwrap();
    assert_eq!((m.train.rows, m.train.cols, m.test.len()), (1, 1, 2));
}

#[test]
fn train_and_test_of_different_sizes_name_both_files() {
    let dir = tempfile::tempdir().unwrap();
    write_sized(dir.path(), (4, 28, 28), (2, 28, 27));
    let err = load_dir(dir.path()).unwrap_err();
    assert!(
        matches!(err, DataError::SplitSizeMismatch { .. }),
        "{err:?}"
    );
    assert_mentions(
        &err.to_string(),
        &[
            "t10k-images-idx3-ubyte",
            "28x27",
            "train-images-idx3-ubyte",
            "28x28",
        ],
    );
    // With an expected size, the test file is the one named.
    let msg = load_dir_with(dir.path(), DatasetKind::Mnist, Some((28, 28)))
        .unwrap_err()
        .to_string();
    assert_mentions(&msg, &["t10k-images-idx3-ubyte", "28x27", "28x28"]);
}

#[test]
fn images_with_zero_rows_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_sized(dir.path(), (4, 0, 28), (2, 0, 28));
    let err = load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::EmptyImages { .. }), "{err:?}");
    assert_mentions(&err.to_string(), &["train-images-idx3-ubyte", "0x28"]);
}

#[test]
fn an_empty_test_set_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_sized(dir.path(), (4, 28, 28), (0, 28, 28));
    let err = load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }), "{err:?}");
    assert_mentions(&err.to_string(), &["t10k-images-idx3-ubyte", "no image"]);
}

#[test]
fn headers_are_compared_before_any_body_is_read() {
    // The training images announce 5 images but hold 1 byte of pixels; the labels say 3.
    // Comparing the headers first reports the count mismatch, not the truncated body.
    let dir = tempfile::tempdir().unwrap();
    write_sized(dir.path(), (3, 2, 2), (2, 2, 2));
    std::fs::write(dir.path().join(MNIST_NAMES[0]), images_bytes(5, 2, 2, &[9])).unwrap();
    let err = load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::CountMismatch { .. }), "{err:?}");
    // Likewise a 28x27 test file is reported before a broken training body is read.
    write_sized(dir.path(), (3, 28, 28), (2, 28, 27));
    std::fs::write(
        dir.path().join(MNIST_NAMES[0]),
        images_bytes(3, 28, 28, &[9]),
    )
    .unwrap();
    let err = load_dir_with(dir.path(), DatasetKind::Mnist, Some((28, 28))).unwrap_err();
    assert!(matches!(err, DataError::ImageSize { .. }), "{err:?}");
}

#[test]
fn inflation_stops_shortly_after_the_announced_size() {
    // 3 labels followed by 64 MiB of zeros (a 64 KiB gzip): the reader stops after a
    // bounded probe instead of inflating everything to count it.
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(&labels_bytes(&[1, 2, 3])).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        e.write_all(&zeros).unwrap();
    }
    let gz = e.finish().unwrap();
    assert!(gz.len() < 1 << 20);
    let msg = parse_err(&gz, "bomb.gz", IdxKind::Labels);
    assert_mentions(&msg, &["bomb.gz", "at least", "trailing bytes"]);
    assert!(!msg.contains(&(64u64 << 20).to_string()), "{msg}");
}

#[test]
fn the_reader_reads_only_the_header_until_asked() {
    // A counting reader shows that IdxReader::new consumes the header and no more of a raw
    // file (buffering aside): the body is only read by read_data.
    struct Counting<'a>(&'a [u8], std::rc::Rc<std::cell::Cell<usize>>);
    impl std::io::Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = std::io::Read::read(&mut self.0, buf)?;
            self.1.set(self.1.get() + n);
            Ok(n)
        }
    }
    let bytes = images_bytes(100, 28, 28, &pixels(100 * 784));
    let count = std::rc::Rc::new(std::cell::Cell::new(0));
    let r = IdxReader::new(
        Counting(&bytes, count.clone()),
        Path::new("x"),
        IdxKind::Images,
    )
    .unwrap();
    assert_eq!(r.dims(), &[100, 28, 28]);
    assert_eq!(r.data_len(), 78_400);
    assert!(count.get() <= 2 + 16, "read {} bytes", count.get());
    let a = r.read_data().unwrap();
    assert_eq!(a.data.len(), 78_400);
}

#[test]
fn fashion_mnist_problems_name_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    let msg = load_dir_with(dir.path(), DatasetKind::Fashion, None)
        .unwrap_err()
        .to_string();
    assert_mentions(&msg, &["FASHION_MNIST_DIR", "--data"]);
    assert!(!msg.contains("set MNIST_DIR"), "{msg}");
    let msg = load_dir_with(dir.path(), DatasetKind::Mnist, None)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("set MNIST_DIR"), "{msg}");
}

#[test]
fn a_file_as_the_data_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = load_dir(&file).unwrap_err();
    assert!(matches!(err, DataError::NotADirectory { .. }), "{err:?}");
    assert_mentions(&err.to_string(), &["not-a-dir", "not a directory"]);
}
