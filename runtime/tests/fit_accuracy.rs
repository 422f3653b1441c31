//! `fit` with a `loss_grad` that reports correct counts: the training accuracy comes from the
//! training batches (no pass of `predict` over the training set), and the test accuracy is the
//! same on any number of threads.

use std::sync::atomic::{AtomicUsize, Ordering};

use nalgebra::{DMatrix, DVector};
use symgrad_runtime::nn::Linear;
use symgrad_runtime::optim::{Sgd, SgdConfig};
use symgrad_runtime::train::{DataRef, TrainConfig, fit};

/// 2,500 training and 1,500 test samples of 4 pixels; label `i % 10`.
fn data(n: usize) -> (Vec<u8>, Vec<u8>) {
    let images = (0..n * 4).map(|i| (i * 37 % 256) as u8).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    (images, labels)
}

fn zero_model() -> Linear {
    Linear::from_parts(DMatrix::zeros(10, 4), DVector::zeros(10))
}

#[test]
fn train_accuracy_from_the_batches() {
    let (tr_x, tr_y) = data(2_500);
    let (te_x, te_y) = data(1_500);
    let train = DataRef::new(&tr_x, &tr_y, 4);
    let test = DataRef::new(&te_x, &te_y, 4);
    for threads in [1, 2, 3] {
        let predicted_rows = AtomicUsize::new(0);
        let mut model = zero_model();
        let mut opt = Sgd::new(SgdConfig::default());
        let cfg = TrainConfig {
            epochs: 2,
            batch_size: 64,
            eval_batch_size: 100,
            threads,
            ..TrainConfig::default()
        };
        // "Correct" = the samples labelled 3: 250 of the 2,500, so 10% by hand.
        let loss_grad = |_: &Linear, x: &DMatrix<f32>, labels: &[u8]| {
            assert_eq!(x.nrows(), labels.len());
            let correct = labels.iter().filter(|&&l| l == 3).count();
            (1.0f32, zero_model(), correct)
        };
        // The zero model's logits tie everywhere: argmax is class 0, right on 10% of the
        // test set (labels 0, 10, 20, ... are 0).
        let predict = |m: &Linear, x: &DMatrix<f32>| {
            predicted_rows.fetch_add(x.nrows(), Ordering::Relaxed);
            m.forward(x)
        };
        let report = fit(
            &mut model,
            &mut opt,
            train,
            test,
            &cfg,
            loss_grad,
            predict,
            &mut (),
        )
        .unwrap();
        for e in &report.history {
            assert_eq!(
                e.train_accuracy, 0.1,
                "{threads} thread(s), epoch {}",
                e.epoch
            );
            assert_eq!(
                e.test_accuracy, 0.1,
                "{threads} thread(s), epoch {}",
                e.epoch
            );
        }
        assert_eq!(
            predicted_rows.load(Ordering::Relaxed),
            2 * 1_500,
            "{threads} thread(s): predict saw only the test set, once per epoch"
        );
    }
}

#[test]
fn without_counts_the_training_set_is_evaluated() {
    let (tr_x, tr_y) = data(2_500);
    let (te_x, te_y) = data(1_500);
    let train = DataRef::new(&tr_x, &tr_y, 4);
    let test = DataRef::new(&te_x, &te_y, 4);
    for threads in [1, 2] {
        let predicted_rows = AtomicUsize::new(0);
        let mut model = zero_model();
        let mut opt = Sgd::new(SgdConfig::default());
        let cfg = TrainConfig {
            epochs: 1,
            eval_batch_size: 100,
            threads,
            ..TrainConfig::default()
        };
        let predict = |m: &Linear, x: &DMatrix<f32>| {
            predicted_rows.fetch_add(x.nrows(), Ordering::Relaxed);
            m.forward(x)
        };
        let report = fit(
            &mut model,
            &mut opt,
            train,
            test,
            &cfg,
            |_: &Linear, _: &DMatrix<f32>, _: &[u8]| (1.0f32, zero_model()),
            predict,
            &mut (),
        )
        .unwrap();
        assert_eq!(report.history[0].train_accuracy, 0.1);
        assert_eq!(predicted_rows.load(Ordering::Relaxed), 2_500 + 1_500);
    }
}
