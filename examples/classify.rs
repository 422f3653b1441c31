//! Classifies handwritten digits with a checkpoint of the `mnist` example: PNG files, or images
//! of the MNIST test set by index. Prints the most likely classes with their probabilities
//! (softmax of the model's logits).
//!
//! ```text
//! cargo run --release --example mnist -- --save mnist.safetensors
//! cargo run --release --example classify -- --checkpoint mnist.safetensors digit.png
//! cargo run --release --example classify -- --checkpoint mnist.safetensors --index 0 --index 17
//! ```
//!
//! Preprocessing, as in training: an image must be 28x28 pixels, 8-bit grayscale, a white
//! (bright) digit on a black background like MNIST's; each byte `b` becomes `b / 255`, row
//! after row. Other sizes, colour types (RGB, palette, with alpha) or bit depths are rejected
//! with an error naming the file and what was found; convert such images first, e.g. with
//! ImageMagick: `convert in.png -resize 28x28! -colorspace Gray -depth 8 -negate out.png`
//! (`-negate` for a dark digit on white paper).

#[allow(dead_code)] // this example uses only part of it
mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use common::{Mlp, logits};
use symgrad::checkpoint;
use symgrad::data::{self, DatasetKind};
use symgrad::nalgebra::DMatrix;

/// The model's input: 28x28 pixels.
const SIDE: u32 = 28;

#[derive(Parser)]
#[command(about = "Classify 28x28 grayscale digit images with an MNIST checkpoint")]
struct Args {
    /// The weights (a checkpoint written by the mnist example's --save or --save-best).
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// PNG images: 28x28, 8-bit grayscale, white digit on black.
    #[arg(value_name = "PNG")]
    images: Vec<PathBuf>,
    /// Classify image N of the MNIST test set (repeatable).
    #[arg(long = "index", value_name = "N")]
    indices: Vec<usize>,
    /// Directory with the MNIST IDX files, for --index (default: $MNIST_DIR, else ./data/mnist).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=10))]
    top: u8,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    if args.images.is_empty() && args.indices.is_empty() {
        return Err("nothing to classify: give PNG files and/or --index N".into());
    }
    let mut model = Mlp::new(0);
    checkpoint::load(&mut model, &args.checkpoint).map_err(|e| e.to_string())?;

    // One row per image, `byte / 255`.
    let mut names = Vec::new();
    let mut pixels: Vec<u8> = Vec::new();
    for path in &args.images {
        pixels.extend(read_digit_png(path)?);
        names.push(path.display().to_string());
    }
    if !args.indices.is_empty() {
        let dir = data::find_data_dir(args.data.as_deref(), DatasetKind::Mnist);
        let mnist = data::load_dir(&dir).map_err(|e| e.to_string())?;
        let test = &mnist.test;
        let size = test.rows * test.cols;
        for &i in &args.indices {
            if i >= test.labels.len() {
                return Err(format!(
                    "--index {i}: the test set has {} images (0 to {})",
                    test.labels.len(),
                    test.labels.len() - 1
                ));
            }
            pixels.extend_from_slice(&test.images[i * size..(i + 1) * size]);
            names.push(format!("test image {i} (label {})", test.labels[i]));
        }
    }
    let n = names.len();
    let side = SIDE as usize;
    let x = DMatrix::from_fn(n, side * side, |r, c| {
        f32::from(pixels[r * side * side + c]) / 255.0
    });
    let scores = logits(&model, &x);
    for (r, name) in names.iter().enumerate() {
        let probs = softmax(scores.row(r).iter().copied());
        let mut ranked: Vec<(usize, f64)> = probs.into_iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let top: Vec<String> = ranked
            .iter()
            .take(usize::from(args.top))
            .map(|(c, p)| format!("{c} {:.1}%", 100.0 * p))
            .collect();
        println!("{name}: predicted {}  ({})", ranked[0].0, top.join(", "));
    }
    Ok(())
}

/// Probabilities from logits, computed in `f64` around the maximum.
fn softmax(logits: impl Iterator<Item = f32>) -> Vec<f64> {
    let z: Vec<f64> = logits.map(f64::from).collect();
    let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// The 784 bytes of a 28x28 8-bit grayscale PNG, row after row.
fn read_digit_png(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("{}: not a readable PNG: {e}", path.display()))?;
    let info = reader.info();
    let (w, h, color, depth) = (info.width, info.height, info.color_type, info.bit_depth);
    if (w, h) != (SIDE, SIDE) {
        return Err(format!(
            "{}: the image is {w}x{h} pixels but the model takes {SIDE}x{SIDE} (resize it first)",
            path.display()
        ));
    }
    if color != png::ColorType::Grayscale || depth != png::BitDepth::Eight {
        return Err(format!(
            "{}: the image is {color:?} with {} bits per sample but the model takes 8-bit \
             grayscale (a white digit on black); convert it first",
            path.display(),
            depth as u8
        ));
    }
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("{}: corrupt PNG: {e}", path.display()))?;
    buf.truncate(frame.buffer_size());
    // Rows may carry no padding for 8-bit grayscale: line size == width.
    if buf.len() != (SIDE * SIDE) as usize {
        return Err(format!(
            "{}: decoded {} bytes, expected {}",
            path.display(),
            buf.len(),
            SIDE * SIDE
        ));
    }
    Ok(buf)
}
