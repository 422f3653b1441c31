//! Download of missing files from mirrors, against a real HTTP server on 127.0.0.1.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use symgrad_runtime::data::{
    DataError, ExpectedFile, MNIST_NAMES, ensure_files, ensure_mnist, load_dir,
};

/// One canned response.
#[derive(Clone)]
struct Canned {
    status: u16,
    body: Vec<u8>,
    /// Content-Length to announce (defaults to the body length).
    declared_len: Option<usize>,
}

fn ok(body: Vec<u8>) -> Canned {
    Canned {
        status: 200,
        body,
        declared_len: None,
    }
}

/// Serves `routes` (path -> response, 404 otherwise) on 127.0.0.1 from a background thread,
/// one response per connection. Returns the base URL `http://127.0.0.1:PORT`.
fn serve(routes: HashMap<String, Canned>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let routes = Arc::new(routes);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let routes = Arc::clone(&routes);
            thread::spawn(move || handle(stream, &routes));
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn handle(stream: TcpStream, routes: &HashMap<String, Canned>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let not_found = Canned {
        status: 404,
        body: b"not found".to_vec(),
        declared_len: None,
    };
    let r = routes.get(&path).unwrap_or(&not_found);
    let reason = if r.status == 200 { "OK" } else { "Not Found" };
    let mut out = stream;
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        r.declared_len.unwrap_or(r.body.len())
    );
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&r.body);
    let _ = out.flush();
    // Dropping the stream closes the connection, cutting short any announced-but-unsent body.
}

/// A port on which nothing listens (bound then released).
fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/mnist/")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Four small synthetic IDX files under the standard names: (name, raw bytes).
fn synthetic() -> Vec<(&'static str, Vec<u8>)> {
    let images = |n: u32, seed: u8| {
        let mut v = vec![0, 0, 8, 3];
        for d in [n, 4, 4] {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend((0..n * 16).map(|i| (i as u8).wrapping_mul(seed)));
        v
    };
    let labels = |ls: &[u8]| {
        let mut v = vec![0, 0, 8, 1];
        v.extend_from_slice(&(ls.len() as u32).to_be_bytes());
        v.extend_from_slice(ls);
        v
    };
    vec![
        (MNIST_NAMES[0], images(3, 3)),
        (MNIST_NAMES[1], labels(&[5, 0, 4])),
        (MNIST_NAMES[2], images(2, 5)),
        (MNIST_NAMES[3], labels(&[7, 2])),
    ]
}

/// Expected sums of the synthetic files (owned strings, borrowed into `ExpectedFile`s).
fn sums(files: &[(&'static str, Vec<u8>)]) -> Vec<(&'static str, String)> {
    files.iter().map(|(n, b)| (*n, sha256_hex(b))).collect()
}

fn expected<'a>(sums: &'a [(&'static str, String)]) -> Vec<ExpectedFile<'a>> {
    sums.iter()
        .map(|(name, sha256)| ExpectedFile { name, sha256 })
        .collect()
}

/// Routes serving each file gzip-compressed as `{prefix}NAME.gz`.
fn gz_routes(prefix: &str, files: &[(&'static str, Vec<u8>)]) -> HashMap<String, Canned> {
    files
        .iter()
        .map(|(n, b)| (format!("{prefix}{n}.gz"), ok(gzip(b))))
        .collect()
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn fresh_dir(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("mnist")
}

#[test]
fn downloads_verifies_and_loads() {
    let files = synthetic();
    let sums = sums(&files);
    let base = serve(gz_routes("/mnist/", &files));
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    ensure_files(&dir, &expected(&sums), &[&format!("{base}/mnist/")], true).unwrap();
    let mut want: Vec<String> = MNIST_NAMES.iter().map(|n| format!("{n}.gz")).collect();
    want.sort();
    assert_eq!(dir_entries(&dir), want);
    let m = load_dir(&dir).unwrap();
    assert_eq!(m.train.labels, vec![5, 0, 4]);
    assert_eq!(m.test.len(), 2);
    assert_eq!((m.train.rows, m.train.cols), (4, 4));
    // Everything present now: no mirror is needed.
    ensure_files(&dir, &expected(&sums), &[], false).unwrap();
}

#[test]
fn uncompressed_content_is_kept_raw() {
    let files = synthetic();
    let sums = sums(&files);
    let routes = files
        .iter()
        .map(|(n, b)| (format!("/{n}.gz"), ok(b.clone())))
        .collect();
    let base = serve(routes);
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    // Base URL without trailing slash.
    ensure_files(&dir, &expected(&sums), &[&base], false).unwrap();
    let mut want: Vec<String> = MNIST_NAMES.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(dir_entries(&dir), want);
    load_dir(&dir).unwrap();
}

#[test]
fn only_missing_files_are_fetched() {
    let files = synthetic();
    let sums = sums(&files);
    // The server only has the test labels.
    let routes = gz_routes("/", &files[3..]);
    let base = serve(routes);
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    std::fs::create_dir_all(&dir).unwrap();
    for (n, b) in &files[..3] {
        std::fs::write(dir.join(n), b).unwrap();
    }
    ensure_files(&dir, &expected(&sums), &[&format!("{base}/")], false).unwrap();
    assert!(dir.join("t10k-labels-idx1-ubyte.gz").is_file());
    load_dir(&dir).unwrap();
}

#[test]
fn checksum_mismatch_leaves_nothing() {
    let files = synthetic();
    let sums = sums(&files);
    let mut routes = gz_routes("/", &files);
    let mut bad = files[1].1.clone();
    bad[9] = 1; // a valid label file with other content
    routes.insert(format!("/{}.gz", files[1].0), ok(gzip(&bad)));
    let base = serve(routes);
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    let err = ensure_files(&dir, &expected(&sums), &[&format!("{base}/")], false).unwrap_err();
    let DataError::Missing {
        missing, failures, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(missing, &vec![files[1].0.to_string()]);
    assert!(
        matches!(&failures[..], [DataError::ChecksumMismatch { expected, actual, .. }]
            if *expected == sums[1].1 && *actual == sha256_hex(&bad)),
        "{failures:?}"
    );
    let msg = err.to_string();
    for part in [
        "checksum mismatch",
        "train-labels-idx1-ubyte.gz",
        &base,
        "MNIST_DIR",
    ] {
        assert!(msg.contains(part), "{msg:?} should contain {part:?}");
    }
    // The three good files are there; of the bad one neither it nor a temp file.
    let mut want = vec![
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
    ];
    want.sort();
    assert_eq!(dir_entries(&dir), want);
}

#[test]
fn truncated_transfer_leaves_nothing() {
    let files = synthetic();
    let sums = sums(&files[..1]);
    let gz = gzip(&files[0].1);
    let mut routes = HashMap::new();
    routes.insert(
        format!("/{}.gz", files[0].0),
        Canned {
            status: 200,
            declared_len: Some(gz.len() + 500),
            body: gz[..gz.len() / 2].to_vec(),
        },
    );
    let base = serve(routes);
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    let start = Instant::now();
    let err = ensure_files(&dir, &expected(&sums), &[&base], false).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    let DataError::Missing { failures, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(&failures[..], [DataError::Http { .. }]),
        "{failures:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
    assert!(dir_entries(&dir).is_empty(), "{:?}", dir_entries(&dir));
}

#[test]
fn first_mirror_404_second_succeeds() {
    let files = synthetic();
    let sums = sums(&files);
    let empty = serve(HashMap::new());
    let good = serve(gz_routes("/b/", &files));
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    ensure_files(
        &dir,
        &expected(&sums),
        &[&format!("{empty}/a/"), &format!("{good}/b/")],
        false,
    )
    .unwrap();
    assert_eq!(dir_entries(&dir).len(), 4);
    load_dir(&dir).unwrap();
}

#[test]
fn only_404_reports_status() {
    let files = synthetic();
    let sums = sums(&files[..1]);
    let empty = serve(HashMap::new());
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    let msg = ensure_files(&dir, &expected(&sums), &[&empty], false)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("HTTP status 404"), "{msg}");
    assert!(dir_entries(&dir).is_empty());
}

#[test]
fn unreachable_mirror_says_what_where_how() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    let dead = closed_port_url();
    let start = Instant::now();
    let err = ensure_mnist(&dir, &[&dead], false).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    let DataError::Missing {
        missing, failures, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(missing.len(), 4);
    // An unreachable mirror is asked once, not once per file.
    assert_eq!(failures.len(), 1, "{failures:?}");
    let msg = err.to_string();
    for part in MNIST_NAMES.iter().copied().chain([
        dir.to_str().unwrap(),
        &dead,
        "MNIST_DIR",
        "--data",
        "copy",
    ]) {
        assert!(msg.contains(part), "{msg:?} should contain {part:?}");
    }
    assert!(dir_entries(&dir).is_empty());
}

#[test]
fn no_mirrors_reports_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    let msg = ensure_mnist(&dir, &[], false).unwrap_err().to_string();
    assert!(msg.contains("missing data files"), "{msg}");
    assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
}

/// Serves the real MNIST `.gz` files (if present) and checks that `ensure_mnist` accepts them
/// against the built-in checksums.
#[test]
fn real_mnist_matches_builtin_sums() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let src = match std::env::var_os("MNIST_DIR") {
        Some(v) if !v.is_empty() => root.join(v),
        _ => {
            let d = root.join("../shared/data/mnist");
            if !d.is_dir() {
                eprintln!(
                    "skipping: MNIST_DIR is unset and {} does not exist",
                    d.display()
                );
                return;
            }
            d
        }
    };
    let routes = MNIST_NAMES
        .iter()
        .map(|n| {
            let body = std::fs::read(src.join(format!("{n}.gz"))).unwrap();
            (format!("/mnist/{n}.gz"), ok(body))
        })
        .collect();
    let base = serve(routes);
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    ensure_mnist(&dir, &[&format!("{base}/mnist/")], false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dir_entries(&dir).len(), 4);
}
