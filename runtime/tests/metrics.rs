//! Metrics: cross-entropy from logits, the confusion matrix, and the metrics log formats.

use nalgebra::DMatrix;
use symgrad_runtime::metrics::{
    ConfusionMatrix, MetricsError, MetricsLog, cross_entropy_sum, epoch_json, history_from_json,
};
use symgrad_runtime::train::EpochStats;

#[test]
fn cross_entropy_of_logits_by_hand() {
    // Row 0: logits (0, ln 3): softmax (1/4, 3/4); label 1 costs -ln(3/4).
    // Row 1: logits (1000, 1000): softmax (1/2, 1/2) (stable despite the large values); label 0
    // costs ln 2.
    let logits = DMatrix::from_row_slice(2, 2, &[0.0, 3f32.ln(), 1000.0, 1000.0]);
    let got = cross_entropy_sum(&logits, &[1, 0]);
    let expected = -(0.75f64).ln() + 2f64.ln();
    assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
}

#[test]
fn confusion_matrix_counts_precision_recall() {
    // Predictions (argmax): 0, 1, 1, 2, 2; labels 0, 1, 0, 2, 1.
    let logits = DMatrix::from_row_slice(
        5,
        3,
        &[
            5.0, 0.0, 0.0, //
            0.0, 5.0, 0.0, //
            0.0, 5.0, 0.0, //
            0.0, 0.0, 5.0, //
            0.0, 0.0, 5.0,
        ],
    );
    let mut m = ConfusionMatrix::new(3);
    m.add(&logits, &[0, 1, 0, 2, 1]);
    assert_eq!(m.total(), 5);
    assert_eq!(m.count(0, 0), 1);
    assert_eq!(m.count(0, 1), 1);
    assert_eq!(m.count(1, 2), 1);
    assert!((m.accuracy() - 0.6).abs() < 1e-12);
    let s = m.per_class();
    // class 0: 2 samples, 1 right; predicted once, right: recall 1/2, precision 1.
    assert_eq!(s[0].support, 2);
    assert!((s[0].recall - 0.5).abs() < 1e-12 && (s[0].precision - 1.0).abs() < 1e-12);
    // class 1: 2 samples, 1 right; predicted twice, once right.
    assert!((s[1].recall - 0.5).abs() < 1e-12 && (s[1].precision - 0.5).abs() < 1e-12);
    // class 2: 1 sample, right; predicted twice.
    assert!((s[2].recall - 1.0).abs() < 1e-12 && (s[2].precision - 0.5).abs() < 1e-12);
    let text = m.to_string();
    assert!(text.contains("accuracy 60.00% of 5 samples"), "{text}");
}

fn stats(epoch: usize, val: bool) -> EpochStats {
    EpochStats {
        epoch,
        train_loss: 0.5 / epoch as f32,
        train_accuracy: 0.9,
        test_accuracy: 0.875,
        test_loss: 0.25,
        val_accuracy: val.then_some(0.8),
        val_loss: val.then_some(0.3),
        lr: 1e-3,
        total_steps: 100 * epoch as u64,
        seconds: 1.5,
        eval_seconds: 0.25,
        samples_per_sec: 4000.0,
        steps: 100,
    }
}

#[test]
fn metrics_files_by_extension() {
    let dir = tempfile::tempdir().unwrap();

    let path = dir.path().join("m.jsonl");
    let mut log = MetricsLog::create(&path, &[stats(1, false)]).unwrap();
    log.push(&stats(2, true)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        "{\"epoch\":1,\"step\":100,\"lr\":0.001,\"train_loss\":0.5,\"train_accuracy\":0.9,\
         \"test_loss\":0.25,\"test_accuracy\":0.875,\"val_loss\":null,\"val_accuracy\":null,\
         \"seconds\":1.5,\"eval_seconds\":0.25,\"samples_per_sec\":4000}"
    );
    assert!(lines[1].contains("\"val_accuracy\":0.8,"), "{}", lines[1]);
    // Read back: the same values.
    let back = history_from_json(&text).unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[1].val_accuracy, Some(0.8));
    assert_eq!(back[0].val_accuracy, None);
    assert_eq!(back[1].train_loss, 0.25);
    assert_eq!(back[1].total_steps, 200);

    let path = dir.path().join("m.json");
    MetricsLog::create(&path, &[stats(1, false), stats(2, false)]).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with('[') && text.trim_end().ends_with(']'),
        "{text}"
    );
    assert_eq!(history_from_json(&text).unwrap().len(), 2);

    let path = dir.path().join("m.CSV");
    let mut log = MetricsLog::create(&path, &[]).unwrap();
    log.push(&stats(3, false)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        "epoch,step,lr,train_loss,train_accuracy,test_loss,test_accuracy,val_loss,val_accuracy,\
         seconds,eval_seconds,samples_per_sec\n\
         3,300,0.001,0.16666667,0.9,0.25,0.875,,,1.5,0.25,4000\n"
    );

    // Other extensions: an error naming the file, and nothing written.
    let bad = dir.path().join("m.txt");
    let err = MetricsLog::create(&bad, &[]).unwrap_err();
    assert!(matches!(err, MetricsError::Extension { .. }));
    assert!(err.to_string().contains("m.txt") && err.to_string().contains(".csv"));
    assert!(!bad.exists());
    // A missing directory names the file.
    let err = MetricsLog::create(dir.path().join("no/such/m.csv"), &[]).unwrap_err();
    assert!(err.to_string().contains("no/such/m.csv"), "{err}");
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn epoch_json_nan_is_null() {
    let mut s = stats(1, false);
    s.test_loss = f32::NAN;
    assert!(epoch_json(&s).contains("\"test_loss\":null"));
}
