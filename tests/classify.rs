//! The `classify` example on PNG files made from MNIST test images: its predicted class must be
//! the model's prediction on the same IDX image, and bad images are clear errors. Needs the
//! MNIST files (`$MNIST_DIR`, as `.ci/run` sets it); skipped with a message without them.

#[allow(dead_code)]
#[path = "../examples/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Mlp, logits, loss_grad};
use symgrad::data;
use symgrad::nalgebra::DMatrix;
use symgrad::optim::{Adam, AdamConfig};
use symgrad::train::{self, DataRef, TrainConfig};

/// `target/release/examples/classify` beside this test's `target/release/deps/classify-*`
/// (cargo builds the examples before running the tests).
fn classify_exe() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    dir.join("examples")
        .join(format!("classify{}", std::env::consts::EXE_SUFFIX))
}

fn write_png(path: &Path, w: u32, h: u32, color: png::ColorType, bytes: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(bytes).unwrap();
}

fn predicted(line: &str) -> usize {
    let rest = line.split("predicted ").nth(1).expect("a prediction");
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn classify_pngs_made_from_the_test_set() {
    let Some(dir) = std::env::var_os("MNIST_DIR").map(PathBuf::from) else {
        println!("skipped: MNIST_DIR is not set");
        return;
    };
    let exe = classify_exe();
    assert!(
        exe.exists(),
        "{} was not built (`cargo test` builds it; alone: cargo build --release --example classify)",
        exe.display()
    );
    let mnist = data::load_dir(&dir).unwrap();
    let pixels = mnist.train.rows * mnist.train.cols;

    // A quickly trained model (one epoch on 3,000 images), saved as a checkpoint.
    let train_set = DataRef::new(&mnist.train.images, &mnist.train.labels, pixels).head(3000);
    let mut model = Mlp::new(1);
    let mut opt = Adam::new(AdamConfig::default());
    let cfg = TrainConfig {
        epochs: 1,
        ..TrainConfig::default()
    };
    let empty = DataRef::new(&[], &[], pixels);
    train::fit(
        &mut model,
        &mut opt,
        train_set,
        empty,
        &cfg,
        loss_grad,
        logits,
        &mut (),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("model.safetensors");
    symgrad::checkpoint::save(&model, &ckpt).unwrap();

    // 40 test images as PNGs, and the model's own predictions on the IDX bytes.
    let test = &mnist.test;
    let n = 40;
    let mut files = Vec::new();
    for i in 0..n {
        let path = tmp.path().join(format!("test{i}.png"));
        write_png(
            &path,
            28,
            28,
            png::ColorType::Grayscale,
            &test.images[i * pixels..(i + 1) * pixels],
        );
        files.push(path);
    }
    let x = DMatrix::from_fn(n, pixels, |r, c| {
        f32::from(test.images[r * pixels + c]) / 255.0
    });
    let expected = symgrad::metrics::argmax_rows(&logits(&model, &x));
    assert!(
        expected
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
            >= 5,
        "the model predicts several classes: {expected:?}"
    );

    let out = Command::new(&exe)
        .arg("--checkpoint")
        .arg(&ckpt)
        .args(&files)
        .args(["--index", "3", "--index", "17", "--top", "2"])
        .env("MNIST_DIR", &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), n + 2, "{stdout}");
    for i in 0..n {
        assert!(
            lines[i].starts_with(&files[i].display().to_string()),
            "{}",
            lines[i]
        );
        assert_eq!(predicted(lines[i]), expected[i], "{}", lines[i]);
        // Two classes shown, with probabilities.
        assert_eq!(lines[i].matches('%').count(), 2, "{}", lines[i]);
    }
    assert!(lines[n].starts_with(&format!("test image 3 (label {})", test.labels[3])));
    assert_eq!(predicted(lines[n]), expected[3]);
    assert_eq!(predicted(lines[n + 1]), expected[17]);

    // Wrong size, wrong colour type, out-of-range index: errors naming the problem.
    let small = tmp.path().join("small.png");
    write_png(&small, 27, 28, png::ColorType::Grayscale, &[0; 27 * 28]);
    let rgb = tmp.path().join("rgb.png");
    write_png(&rgb, 28, 28, png::ColorType::Rgb, &[0; 28 * 28 * 3]);
    for (args, needle) in [
        (
            vec![small.clone()],
            "27x28 pixels but the model takes 28x28",
        ),
        (vec![rgb.clone()], "Rgb with 8 bits per sample"),
    ] {
        let out = Command::new(&exe)
            .arg("--checkpoint")
            .arg(&ckpt)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(needle), "{stderr}");
        assert!(stderr.contains(&args[0].display().to_string()), "{stderr}");
    }
    let out = Command::new(&exe)
        .arg("--checkpoint")
        .arg(&ckpt)
        .args(["--index", "10000"])
        .env("MNIST_DIR", &dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("10000 images"));
}
