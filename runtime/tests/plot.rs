//! Plots: PNG or SVG by extension, the title and series drawn, axes fitted to the data,
//! smoothing by hand.

use symgrad_runtime::plot::{PlotError, TrainingCurves, render_svg, smooth, write_plot};
use symgrad_runtime::train::EpochStats;

/// Fashion-MNIST-like curves: accuracies between 80% and 88%.
fn history(epochs: usize) -> Vec<EpochStats> {
    (1..=epochs)
        .map(|e| EpochStats {
            epoch: e,
            train_loss: 0.6 / e as f32,
            train_accuracy: 0.80 + 0.008 * e as f32,
            test_accuracy: 0.79 + 0.007 * e as f32,
            test_loss: 0.55 / e as f32 + 0.1,
            val_accuracy: Some(0.795 + 0.007 * e as f32),
            val_loss: Some(0.5 / e as f32 + 0.1),
            lr: 1e-3,
            total_steps: 50 * e as u64,
            seconds: 1.0,
            eval_seconds: 0.1,
            samples_per_sec: 1000.0,
            steps: 50,
        })
        .collect()
}

fn steps(epochs: usize) -> Vec<(f64, f32)> {
    (1..=50 * epochs)
        .map(|s| (s as f64 / 50.0, 2.0 / (1.0 + s as f32 / 20.0)))
        .collect()
}

#[test]
fn smoothing_is_a_debiased_moving_average() {
    // keep = 0.5: avg_1 = 0.5*4 = 2, w_1 = 0.5 -> 4; avg_2 = 0.5*2 + 0.5*0 = 1, w_2 = 0.75 -> 4/3.
    let s = smooth(&[(1.0, 4.0), (2.0, 0.0), (3.0, f32::NAN)], 0.5);
    assert_eq!(s.len(), 2, "NaN skipped");
    assert!((s[0].1 - 4.0).abs() < 1e-12);
    assert!((s[1].1 - 4.0 / 3.0).abs() < 1e-12);
    // A constant stays constant (no pull towards 0).
    assert!(
        smooth(&[(0.0, 3.0); 5], 0.9)
            .iter()
            .all(|p| (p.1 - 3.0).abs() < 1e-12)
    );
}

#[test]
fn png_and_svg_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let h = history(6);
    let s = steps(6);
    let curves = TrainingCurves {
        history: &h,
        step_losses: &s,
        title: "Fashion-MNIST, adam lr 0.001, batch 64",
    };

    let png_path = dir.path().join("curves.png");
    write_plot(&curves, &png_path).unwrap();
    let bytes = std::fs::read(&png_path).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 520));
    // Not blank: white background plus the series' colours and text.
    let pixels: std::collections::HashSet<&[u8]> = buf[..info.buffer_size()].chunks(3).collect();
    assert!(pixels.len() > 20, "{} colours", pixels.len());
    assert!(
        pixels.contains(&[214u8, 39, 40][..]),
        "the test series' red is drawn"
    );

    let svg_path = dir.path().join("curves.svg");
    write_plot(&curves, &svg_path).unwrap();
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg"));
    for text in [
        "Fashion-MNIST, adam lr 0.001, batch 64",
        "train loss (per step, smoothed)",
        "test loss",
        "val loss",
        "accuracy (%)",
    ] {
        assert!(svg.contains(text), "missing {text:?}");
    }

    // Other extensions are an error naming the file, and nothing is written.
    for name in ["curves.jpg", "curves"] {
        let p = dir.path().join(name);
        let err = write_plot(&curves, &p).unwrap_err();
        assert!(matches!(err, PlotError::Extension { .. }), "{err}");
        assert!(err.to_string().contains(name), "{err}");
        assert!(!p.exists());
    }
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 2, "no temporary files left");
}

#[test]
fn accuracy_axis_is_fitted_to_the_data() {
    // Accuracies in [79.7%, 84.8%]: the axis must not run from 0 or up to 100.
    let h = history(6);
    let svg = render_svg(&TrainingCurves {
        history: &h,
        step_losses: &[],
        title: "t",
    })
    .unwrap();
    let labels: Vec<f64> = svg
        .split('>')
        .filter_map(|part| part.split('<').next())
        .filter_map(|t| t.trim().parse::<f64>().ok())
        .filter(|v| *v > 50.0)
        .collect();
    assert!(!labels.is_empty(), "accuracy labels found");
    let lo = labels.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = labels.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    assert!(
        lo >= 78.0 && hi <= 86.5,
        "accuracy labels span {lo}..{hi}: {labels:?}"
    );
}
