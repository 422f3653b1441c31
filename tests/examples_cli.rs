//! The `mnist` and `finetune` examples as a user runs them: exit codes and messages for bad
//! flags, bad save paths, bad data and checkpoints, signals, and the quiet output (issue 12).
//!
//! These tests run the example binaries built in `target/<profile>/examples/`: `cargo test`
//! builds them (it builds every example); with a single `--test examples_cli`, run
//! `cargo build --release --examples` first. The data are small synthetic 28x28 IDX files in a
//! temporary directory, so nothing is downloaded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use symgrad::prelude::*;

/// A directory under cargo's per-package temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("examples_cli-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// The example binary `name`, next to this test's `deps/` directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is not built: `cargo test` builds the examples; with `--test examples_cli` alone, \
         run `cargo build --release --examples` first",
        path.display()
    );
    path
}

fn idx_images(n: usize, rows: u32, cols: u32) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for d in [n as u32, rows, cols] {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend((0..n * (rows * cols) as usize).map(|i| (i * 31 % 251) as u8));
    v
}

fn idx_labels(n: usize) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 1];
    v.extend_from_slice(&(n as u32).to_be_bytes());
    v.extend((0..n).map(|i| (i % 10) as u8));
    v
}

/// Writes a synthetic data set of `train` and `test` images of `rows x cols` into `dir`.
fn write_data(dir: &Path, train: usize, test: usize, rows: u32, cols: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let files = [
        ("train-images-idx3-ubyte", idx_images(train, rows, cols)),
        ("train-labels-idx1-ubyte", idx_labels(train)),
        ("t10k-images-idx3-ubyte", idx_images(test, rows, cols)),
        ("t10k-labels-idx1-ubyte", idx_labels(test)),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// A temporary directory holding a small valid data set in `data/`.
fn small_data() -> (TempDir, PathBuf) {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    write_data(&data, 256, 64, 28, 28);
    (tmp, data)
}

fn run(name: &str, args: &[&str]) -> Output {
    Command::new(example(name))
        .args(args)
        .env_remove("MNIST_DIR")
        .env_remove("FASHION_MNIST_DIR")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for n in needles {
        assert!(haystack.contains(n), "{haystack:?} should contain {n:?}");
    }
}

#[test]
fn out_of_range_numeric_flags_are_rejected_by_the_parser() {
    let (_tmp, data) = small_data();
    let data = data.to_str().unwrap();
    for bad in [
        ["--lr", "inf"],
        ["--lr", "NaN"],
        ["--lr", "-1"],
        ["--lr", "0"],
        ["--batch-size", "0"],
        ["--threads", "0"],
        ["--min-accuracy", "101"],
        ["--min-accuracy", "NaN"],
        ["--min-accuracy", "-5"],
        ["--epochs", "-1"],
    ] {
        let out = run(
            "mnist",
            &[&bad[..], &["--data", data, "--epochs", "0"][..]].concat(),
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert_contains(&stderr, &[bad[0]]);
    }
    for bad in [["--lr", "inf"], ["--train-size", "0"], ["--epochs", "0"]] {
        let out = run("finetune", &bad);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert_contains(&stderr, &[bad[0]]);
    }
}

#[test]
fn a_bad_save_path_is_reported_before_training() {
    let (tmp, data) = small_data();
    let data = data.to_str().unwrap();
    let missing_dir = tmp.path().join("no/such/m.safetensors");
    let a_dir = tmp.path().join("data");
    for (save, why) in [
        (missing_dir.as_path(), "does not exist"),
        (a_dir.as_path(), "is a directory"),
    ] {
        let out = run(
            "mnist",
            &[
                "--data",
                data,
                "--epochs",
                "1",
                "--save",
                save.to_str().unwrap(),
            ],
        );
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
        assert_contains(
            &stderr,
            &["--save", save.file_name().unwrap().to_str().unwrap(), why],
        );
        assert!(!stdout.contains("epoch"), "nothing trained: {stdout}");
    }
}

/// Spawns `mnist` with `args`, waits until it prints the line starting with `model ` (training
/// is about to start), calls `then(pid)`, and returns the exit code, stdout and stderr.
fn run_and_interfere(args: &[&str], then: impl FnOnce(u32)) -> (Option<i32>, String, String) {
    let mut child = Command::new(example("mnist"))
        .args(args)
        .env_remove("MNIST_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.starts_with("model ") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let started = rx.recv_timeout(Duration::from_secs(120)).is_ok();
    if started {
        then(child.id());
    }
    let status = child.wait_with_output().unwrap();
    let stdout = reader.join().unwrap();
    assert!(
        started,
        "training never started: {stdout}{}",
        text(&status.stderr)
    );
    (status.status.code(), stdout, text(&status.stderr))
}

#[test]
fn a_save_failing_mid_run_stops_training_with_an_error() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    write_data(&data, 6000, 64, 28, 28);
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let save = out_dir.join("m.safetensors");
    let args = [
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "20",
        "--save",
        save.to_str().unwrap(),
    ];
    // The directory disappears once training has started: the save after epoch 1 fails.
    let (code, stdout, stderr) = run_and_interfere(&args, |_| {
        std::fs::remove_dir(&out_dir).unwrap();
    });
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert_contains(
        &stderr,
        &[
            "saving the checkpoint failed after epoch 1",
            "m.safetensors",
            "training stopped",
        ],
    );
    assert!(!stdout.contains("epoch   2"), "training went on: {stdout}");
}

#[cfg(unix)]
#[test]
fn sigterm_and_ctrl_c_stop_save_and_exit_130() {
    for signal in ["-TERM", "-INT"] {
        let tmp = tempdir();
        let data = tmp.path().join("data");
        write_data(&data, 6000, 64, 28, 28);
        let save = tmp.path().join("m.safetensors");
        let args = [
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "1000",
            "--save",
            save.to_str().unwrap(),
        ];
        let (code, stdout, stderr) = run_and_interfere(&args, |pid| {
            std::thread::sleep(Duration::from_millis(200));
            let ok = Command::new("kill")
                .args([signal, &pid.to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok);
        });
        assert_eq!(code, Some(130), "{signal}: {stdout}{stderr}");
        assert_contains(&stdout, &["interrupted after", "saved"]);
        assert!(save.is_file(), "{signal}: the model was saved");
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn a_file_as_data_is_a_clear_error_without_download() {
    let tmp = tempdir();
    let file = tmp.path().join("mnist.tar");
    std::fs::write(&file, b"not a directory").unwrap();
    let out = run(
        "mnist",
        &["--data", file.to_str().unwrap(), "--epochs", "0"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_contains(&stderr, &["mnist.tar", "not a directory"]);
    assert!(!stderr.contains("downloading"), "{stderr}");
}

#[test]
fn images_of_another_size_are_a_clear_error() {
    for (train, test) in [((28, 27), (28, 27)), ((1, 1), (1, 1)), ((28, 28), (28, 27))] {
        let tmp = tempdir();
        let data = tmp.path().join("data");
        write_data(&data, 32, 8, train.0, train.1);
        if test != train {
            std::fs::write(
                data.join("t10k-images-idx3-ubyte"),
                idx_images(8, test.0, test.1),
            )
            .unwrap();
        }
        let out = run(
            "mnist",
            &["--data", data.to_str().unwrap(), "--epochs", "1"],
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{train:?}/{test:?}: {stderr}");
        let file = if test != train {
            "t10k-images"
        } else {
            "train-images"
        };
        let (r, c) = if test != train { test } else { train };
        assert_contains(&stderr, &[file, &format!("{r}x{c}"), "28x28"]);
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn an_empty_test_set_is_an_error_not_nan() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    write_data(&data, 32, 0, 28, 28);
    let out = run(
        "mnist",
        &["--data", data.to_str().unwrap(), "--epochs", "1"],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_contains(&stderr, &["t10k-images-idx3-ubyte", "no image"]);
    assert!(!stdout.contains("NaN"), "{stdout}");
}

#[derive(Params)]
struct Mlp {
    layer1: Linear,
    layer2: Linear,
    layer3: Linear,
}

#[test]
fn a_checkpoint_with_nan_is_rejected_naming_the_tensor() {
    use rand::SeedableRng;
    let (tmp, data) = small_data();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut model = Mlp {
        layer1: Linear::new(784, 128, &mut rng),
        layer2: Linear::new(128, 64, &mut rng),
        layer3: Linear::new(64, 10, &mut rng),
    };
    model.layer2.bias[3] = f32::NAN;
    let ckpt = tmp.path().join("nan.safetensors");
    symgrad::checkpoint::save(&model, &ckpt).unwrap();
    let ckpt = ckpt.to_str().unwrap();
    let out = run(
        "mnist",
        &[
            "--data",
            data.to_str().unwrap(),
            "--load",
            ckpt,
            "--eval-only",
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_contains(&stderr, &["nan.safetensors", "layer2.bias", "NaN"]);
    assert!(!stdout.contains("accuracy"), "{stdout}");
    // Fine-tuning from it fails the same way, before training.
    let out = run(
        "finetune",
        &["--data", data.to_str().unwrap(), "--load", ckpt],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_contains(&stderr, &["layer2.bias", "NaN"]);
}

#[test]
fn zero_epochs_print_no_training_summary_and_no_benchmark() {
    let (_tmp, data) = small_data();
    let out = run(
        "mnist",
        &["--data", data.to_str().unwrap(), "--epochs", "0"],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(!stdout.contains("trained in"), "{stdout}");
    assert!(!stdout.contains("-0.0s"), "{stdout}");
    assert!(!stdout.contains("training step"), "{stdout}");
}

#[test]
fn one_throughput_figure_labelled_with_threads_and_the_benchmark_behind_profile() {
    let (_tmp, data) = small_data();
    let data = data.to_str().unwrap();
    let out = run(
        "mnist",
        &["--data", data, "--epochs", "1", "--threads", "1"],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    // Epoch lines aside, the summary gives one figure, with its thread count.
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("epoch") && l.contains("samples/s"))
        .collect();
    assert_eq!(summary.len(), 1, "{stdout}");
    assert!(summary[0].contains("on 1 thread"), "{stdout}");
    assert!(!stdout.contains("training step"), "{stdout}");
    let out = run(
        "mnist",
        &[
            "--data",
            data,
            "--epochs",
            "1",
            "--threads",
            "1",
            "--profile",
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_contains(
        &stdout,
        &["one training step", "forward+backward", "Adam step"],
    );
}

#[test]
fn threads_above_the_cores_are_clamped_unless_forced() {
    let (_tmp, data) = small_data();
    let data = data.to_str().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    let many = (cores + 7).to_string();
    let out = run(
        "mnist",
        &["--data", data, "--epochs", "0", "--threads", &many],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_contains(&stderr, &["warning", &many, "--force-threads"]);
    assert_contains(&stdout, &[&format!(" {cores} thread(s)")]);
    let out = run(
        "mnist",
        &[
            "--data",
            data,
            "--epochs",
            "0",
            "--threads",
            &many,
            "--force-threads",
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    assert_contains(&stdout, &[&format!(" {many} thread(s)")]);
}
