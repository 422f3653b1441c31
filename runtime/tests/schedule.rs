//! Learning-rate schedules against their closed forms, written out here.

use symgrad_runtime::optim::{LrSchedule, Schedule};

fn close(a: f32, b: f64) {
    assert!(
        (f64::from(a) - b).abs() <= 1e-6 * b.abs().max(1e-3),
        "{a} != {b}"
    );
}

#[test]
fn linear_warmup_then_constant() {
    let s = LrSchedule {
        base_lr: 0.1,
        warmup_steps: 4,
        schedule: Schedule::Constant,
    };
    // Steps 1..=4 rise by 0.1/4 each; from step 5 on the base rate.
    for (step, expected) in [
        (1, 0.025),
        (2, 0.05),
        (3, 0.075),
        (4, 0.1),
        (5, 0.1),
        (1000, 0.1),
    ] {
        close(s.lr_at(step), expected);
    }
    let none = LrSchedule {
        warmup_steps: 0,
        ..s
    };
    close(none.lr_at(1), 0.1);
}

#[test]
fn cosine_matches_the_closed_form() {
    // 10 warm-up steps, then T = 100 - 10 = 90 steps of cosine from 1.0 to 0.1.
    let s = LrSchedule {
        base_lr: 1.0,
        warmup_steps: 10,
        schedule: Schedule::Cosine {
            total_steps: 100,
            min_lr: 0.1,
        },
    };
    close(s.lr_at(10), 1.0); // end of the warm-up
    close(s.lr_at(11), 1.0); // k = 0: cos 0 = 1
    close(s.lr_at(56), 0.55); // k = 45 = T/2: halfway, (1.0 + 0.1) / 2
    let k = 30.0f64;
    let expected = 0.1 + 0.9 * (1.0 + (std::f64::consts::PI * k / 90.0).cos()) / 2.0;
    close(s.lr_at(41), expected); // k = 30: 0.1 + 0.9 * 0.75 = 0.775
    close(s.lr_at(41), 0.775);
    close(s.lr_at(101), 0.1); // k = 90 = T: the minimum, then held
    close(s.lr_at(500), 0.1);
    // Monotone after the warm-up.
    let rates: Vec<f32> = (11..=101).map(|t| s.lr_at(t)).collect();
    assert!(rates.windows(2).all(|w| w[1] <= w[0]), "{rates:?}");
}

#[test]
fn step_decay_matches_pytorch_steplr() {
    // StepLR(step_size=3, gamma=0.5) after 2 warm-up steps: k = step - 3.
    let s = LrSchedule {
        base_lr: 0.8,
        warmup_steps: 2,
        schedule: Schedule::Step {
            every: 3,
            gamma: 0.5,
        },
    };
    let expected = [0.4, 0.8, 0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1];
    for (i, &e) in expected.iter().enumerate() {
        close(s.lr_at(i as u64 + 1), e);
    }
}
