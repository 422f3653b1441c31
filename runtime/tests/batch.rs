//! Batch assembly against the definition: row `r` of the batch is image `indices[r]`, each
//! byte `b` as `b / 255`, for batch sizes around the 16-image blocks the assembler uses.

use nalgebra::DMatrix;
use symgrad_runtime::train::{Batch, DataRef, fill_batch};

#[test]
fn every_element_is_its_pixel_over_255() {
    // 37 pixels: four 8-pixel tiles and a tail of 5; 784 is MNIST's.
    for pixels in [37, 784] {
        check(pixels);
    }
}

fn check(pixels: usize) {
    let n = 300;
    // Every byte value occurs, at positions that differ per image and pixel.
    let images: Vec<u8> = (0..n * pixels).map(|i| (i * 7 + i / 13) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let data = DataRef::new(&images, &labels, pixels);
    let mut x = DMatrix::zeros(0, 0);
    let mut y = Vec::new();
    for size in [1, 2, 15, 16, 17, 31, 32, 33, 64, 100, 300] {
        // A scattered, repeated-free selection: every 7th image from an offset.
        let indices: Vec<usize> = (0..size).map(|r| (r * 7 + size) % n).collect();
        fill_batch(data, &indices, &mut x, &mut y);
        assert_eq!(x.shape(), (size, pixels), "batch of {size}");
        for (r, &i) in indices.iter().enumerate() {
            assert_eq!(y[r], labels[i]);
            for c in 0..pixels {
                let want = images[i * pixels + c] as f32 / 255.0;
                assert_eq!(
                    x[(r, c)],
                    want,
                    "batch of {size}: row {r} (image {i}), pixel {c}"
                );
            }
        }
        // The contiguous-range form agrees with the definition too.
        let mut b = Batch::new();
        let start = size / 3;
        let end = (start + size).min(n);
        b.fill_range(data, start, end);
        for r in 0..end - start {
            for c in 0..pixels {
                assert_eq!(b.x[(r, c)], images[(start + r) * pixels + c] as f32 / 255.0);
            }
        }
    }
}

#[test]
fn all_byte_values_convert_exactly() {
    // 16 images of 16 pixels holding the bytes 0..=255, in a full 16-row block.
    let images: Vec<u8> = (0..=255u8).collect();
    let labels = vec![0u8; 16];
    let data = DataRef::new(&images, &labels, 16);
    let order: Vec<usize> = (0..16).rev().collect();
    let (mut x, mut y) = (DMatrix::zeros(0, 0), Vec::new());
    fill_batch(data, &order, &mut x, &mut y);
    for (r, &i) in order.iter().enumerate() {
        for c in 0..16 {
            let b = (i * 16 + c) as u8;
            assert_eq!(x[(r, c)], f32::from(b) / 255.0, "byte {b}");
        }
    }
}
