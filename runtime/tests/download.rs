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
    DataError, DownloadOptions, ExpectedFile, MNIST_NAMES, ensure_files, ensure_files_with,
    ensure_mnist, load_dir,
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
        .map(|(name, sha256)| ExpectedFile {
            name,
            sha256,
            max_bytes: 1 << 20,
        })
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
    assert!(!dir.exists(), "{:?}", dir_entries(&dir));
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
    assert!(!dir.exists());
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
    assert!(!dir.exists());
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

// ---------------------------------------------------------------------------------------------
// Issue 12 regressions: deadline, size cap, temporary files, created directories.
// ---------------------------------------------------------------------------------------------

/// Serves `path` with a custom writer: after the request is read, `respond` writes to the
/// connection (e.g. trickling or endless bodies). Returns the base URL.
fn serve_with(respond: fn(&mut TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" || line == "\n" => break,
                        Ok(_) => {}
                    }
                }
                let mut out = stream;
                respond(&mut out);
            });
        }
    });
    format!("http://127.0.0.1:{port}/")
}

fn one_file(max_bytes: u64) -> [ExpectedFile<'static>; 1] {
    [ExpectedFile {
        name: "t10k-labels-idx1-ubyte",
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        max_bytes,
    }]
}

fn quiet(deadline: Duration) -> DownloadOptions {
    DownloadOptions {
        progress: false,
        deadline,
        stop: None,
    }
}

#[test]
fn a_trickling_mirror_hits_the_deadline() {
    // One byte every 5 s, forever.
    let base = serve_with(|out| {
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n");
        loop {
            if out.write_all(b"x").and_then(|_| out.flush()).is_err() {
                return;
            }
            thread::sleep(Duration::from_secs(5));
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    let start = Instant::now();
    let options = quiet(Duration::from_millis(700));
    let err = ensure_files_with(&dir, &one_file(10_000), &[&base], &options).unwrap_err();
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
    let DataError::Missing { failures, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(&failures[..], [DataError::Deadline { .. }]),
        "{failures:?}"
    );
    assert!(err.to_string().contains("deadline"), "{err}");
    assert!(!dir.exists(), "the directory created for it is removed");
}

#[test]
fn an_endless_body_is_cut_at_the_expected_size() {
    // No Content-Length, and bytes without end.
    let base = serve_with(|out| {
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        let chunk = vec![7u8; 1 << 16];
        while out.write_all(&chunk).is_ok() {}
    });
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    std::fs::create_dir_all(&dir).unwrap();
    let err = ensure_files_with(
        &dir,
        &one_file(100_000),
        &[&base],
        &quiet(Duration::from_secs(20)),
    )
    .unwrap_err();
    let DataError::Missing { failures, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(
            &failures[..],
            [DataError::TooBig {
                limit: 100_000,
                decompressed: false,
                ..
            }]
        ),
        "{failures:?}"
    );
    assert!(dir_entries(&dir).is_empty(), "{:?}", dir_entries(&dir));
}

#[test]
fn an_announced_length_above_the_cap_is_refused() {
    let mut routes = HashMap::new();
    routes.insert("/t10k-labels-idx1-ubyte.gz".to_string(), ok(vec![0; 5000]));
    let base = serve(routes);
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    let msg = ensure_files_with(
        &dir,
        &one_file(4000),
        &[&base],
        &quiet(Duration::from_secs(20)),
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("announces 5000 bytes"), "{msg}");
    assert!(msg.contains("4000"), "{msg}");
}

#[test]
fn a_gzip_bomb_is_not_inflated_past_the_expected_size() {
    // 16 MiB of zeros in a small gzip; the expected file is 1 MiB.
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..16 {
        e.write_all(&zeros).unwrap();
    }
    let bomb = e.finish().unwrap();
    let mut routes = HashMap::new();
    routes.insert("/t10k-labels-idx1-ubyte.gz".to_string(), ok(bomb));
    let base = serve(routes);
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    let err = ensure_files_with(
        &dir,
        &one_file(1 << 20),
        &[&base],
        &quiet(Duration::from_secs(20)),
    )
    .unwrap_err();
    let DataError::Missing { failures, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(
            &failures[..],
            [DataError::TooBig {
                decompressed: true,
                ..
            }]
        ),
        "{failures:?}"
    );
    assert!(err.to_string().contains("once decompressed"), "{err}");
}

#[cfg(unix)]
#[test]
fn a_planted_symlink_at_the_temporary_name_is_not_followed() {
    let files = synthetic();
    let sums = sums(&files);
    let base = serve(gz_routes("/", &files));
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    std::fs::create_dir_all(&dir).unwrap();
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    // Every name this process could pick next for any of the four files.
    let pid = std::process::id();
    for (name, _) in &files {
        for n in 0..300 {
            std::os::unix::fs::symlink(&victim, dir.join(format!(".{name}.part-{pid}-{n}")))
                .unwrap();
        }
    }
    ensure_files(&dir, &expected(&sums), &[&base], false).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    load_dir(&dir).unwrap();
}

#[test]
fn stale_partial_downloads_of_dead_processes_are_removed() {
    let files = synthetic();
    let sums = sums(&files);
    let base = serve(gz_routes("/", &files));
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    std::fs::create_dir_all(&dir).unwrap();
    // PID 4194305 is above Linux's largest pid_max: never a running process. PID 1 always is.
    let stale = dir.join(".train-images-idx3-ubyte.part-4194305-7");
    let live = dir.join(".train-images-idx3-ubyte.part-1-0");
    let other = dir.join(".unrelated.part-4194305-0");
    for p in [&stale, &live, &other] {
        std::fs::write(p, vec![0u8; 1000]).unwrap();
    }
    ensure_files(&dir, &expected(&sums), &[&base], false).unwrap();
    assert!(!stale.exists());
    if cfg!(target_os = "linux") {
        assert!(live.exists(), "a live process's file is left alone");
    }
    assert!(other.exists(), "another target's file is left alone");
}

#[test]
fn a_failed_download_removes_the_directories_it_created() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/mnist");
    let dead = closed_port_url();
    ensure_mnist(&dir, &[&dead], false).unwrap_err();
    assert!(!tmp.path().join("a").exists());
    // An existing directory is kept.
    let existing = tmp.path().join("kept");
    std::fs::create_dir(&existing).unwrap();
    ensure_mnist(&existing, &[&dead], false).unwrap_err();
    assert!(existing.is_dir());
}

#[test]
fn a_file_as_the_directory_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("data");
    std::fs::write(&file, b"x").unwrap();
    let err = ensure_mnist(&file, &[], false).unwrap_err();
    assert!(matches!(err, DataError::NotADirectory { .. }), "{err:?}");
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn a_set_stop_flag_abandons_the_download() {
    let files = synthetic();
    let sums = sums(&files);
    let base = serve(gz_routes("/", &files));
    let tmp = tempfile::tempdir().unwrap();
    let dir = fresh_dir(&tmp);
    let options = DownloadOptions {
        progress: false,
        deadline: Duration::from_secs(20),
        stop: Some(Arc::new(std::sync::atomic::AtomicBool::new(true))),
    };
    let err = ensure_files_with(&dir, &expected(&sums), &[&base], &options).unwrap_err();
    assert!(err.to_string().contains("interrupted"), "{err}");
    assert!(!dir.exists());
}
