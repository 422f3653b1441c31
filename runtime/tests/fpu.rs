//! Flush-to-zero: subnormal results become 0 inside a `FlushDenormals` scope (also on the
//! pool's worker threads and in the GEMM) and not outside it.

use std::hint::black_box;
use std::sync::Mutex;

use nalgebra::DMatrix;
use symgrad_runtime::fpu::{self, FlushDenormals};
use symgrad_runtime::gemm::{GemmOptions, KernelChoice, Trans, gemm_with};
use symgrad_runtime::parallel;

/// `f32::MIN_POSITIVE / 2`, computed at run time: subnormal unless flushed.
fn half_min() -> f32 {
    black_box(f32::MIN_POSITIVE) * black_box(0.5)
}

fn skip() -> bool {
    if fpu::flush_denormal_supported() {
        false
    } else {
        println!("skipped: no flush-to-zero mode on this platform");
        true
    }
}

#[test]
fn scope_flushes_and_restores() {
    if skip() {
        return;
    }
    assert!(!fpu::flush_denormal_enabled());
    let before = half_min();
    assert!(
        before > 0.0 && before < f32::MIN_POSITIVE,
        "{before:e} is subnormal"
    );
    {
        let _ftz = FlushDenormals::new();
        assert!(fpu::flush_denormal_enabled());
        assert_eq!(half_min(), 0.0, "a subnormal product is flushed to 0");
        // DAZ: a subnormal input reads as 0.
        let sub = black_box(f32::from_bits(1));
        assert_eq!(sub * black_box(2.0f32), 0.0);
    }
    assert!(!fpu::flush_denormal_enabled());
    assert_eq!(
        half_min(),
        before,
        "gradual underflow is back after the scope"
    );
}

#[test]
fn workers_and_gemm_follow_the_caller() {
    if skip() {
        return;
    }
    // A product whose every element is subnormal: MIN_POSITIVE * 0.25, 64 times, summed.
    let (m, k, n) = (64, 64, 128);
    let a = DMatrix::from_element(m, k, f32::MIN_POSITIVE);
    let b = DMatrix::from_element(k, n, 0.25f32 / 64.0);
    let product = |threads: usize| {
        let mut c = DMatrix::from_element(m, n, f32::NAN);
        let opts = GemmOptions {
            kernel: KernelChoice::Auto,
            threads: Some(threads),
        };
        gemm_with(
            &opts,
            1.0,
            a.as_view(),
            Trans::No,
            b.as_view(),
            Trans::No,
            0.0,
            c.as_view_mut(),
        );
        c
    };
    // Outside: 64 products of MIN_POSITIVE / 256, summed exactly: MIN_POSITIVE / 4.
    for threads in [1, 2] {
        let c = product(threads);
        assert!(
            c.iter().all(|&x| x == f32::MIN_POSITIVE / 4.0),
            "{threads} thread(s), no flushing: every element is MIN_POSITIVE / 4"
        );
    }
    {
        let _ftz = FlushDenormals::new();
        for threads in [1, 2] {
            let c = product(threads);
            assert!(
                c.iter().all(|&x| x == 0.0),
                "{threads} thread(s) under FlushDenormals: every element is flushed to 0"
            );
        }
        // Pieces of `parallel::run`: each reports its thread's mode; a slow piece 0 makes
        // sure the others are taken by workers where there are any.
        let seen = Mutex::new(Vec::new());
        parallel::run(4, &|i| {
            if i == 0 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            seen.lock()
                .unwrap()
                .push((fpu::flush_denormal_enabled(), half_min()));
        });
        for (on, x) in seen.into_inner().unwrap() {
            assert!(on && x == 0.0, "a piece ran without flush-to-zero");
        }
    }
    // And the workers follow the caller back.
    let seen = Mutex::new(Vec::new());
    parallel::run(4, &|i| {
        if i == 0 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        seen.lock().unwrap().push(half_min());
    });
    for x in seen.into_inner().unwrap() {
        assert!(x > 0.0, "a piece flushed after the scope ended");
    }
}
