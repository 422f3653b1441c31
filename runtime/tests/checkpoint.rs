//! Safetensors checkpoints: round trip, PyTorch names/shapes/layout, errors, atomicity.

use std::fs;
use std::path::Path;

use nalgebra::{DMatrix, DVector};
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use symgrad_runtime::checkpoint::{self, CheckpointError, LoadOptions};
use symgrad_runtime::params::{Params, Tensor, join_name};

/// A PyTorch-like `nn.Linear`: weight `[out, in]`, bias `[out]`.
#[derive(Clone, Debug, PartialEq)]
struct Lin {
    weight: DMatrix<f32>,
    bias: DVector<f32>,
}

impl Lin {
    fn new(inp: usize, out: usize, seed: f32) -> Self {
        Self {
            weight: DMatrix::from_fn(out, inp, |r, c| seed + (r * 1000 + c) as f32 * 1e-3),
            bias: DVector::from_fn(out, |r, _| -seed - r as f32),
        }
    }
}

impl Params for Lin {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &dyn Tensor)) {
        self.weight.visit(&join_name(prefix, "weight"), f);
        self.bias.visit(&join_name(prefix, "bias"), f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Tensor)) {
        self.weight.visit_mut(&join_name(prefix, "weight"), f);
        self.bias.visit_mut(&join_name(prefix, "bias"), f);
    }
    fn visit_with(
        &mut self,
        other: &Self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn Tensor, &dyn Tensor),
    ) {
        self.weight
            .visit_with(&other.weight, &join_name(prefix, "weight"), f);
        self.bias
            .visit_with(&other.bias, &join_name(prefix, "bias"), f);
    }
}

/// `nn.Sequential`-free PyTorch MLP: `layer1 = nn.Linear(784, 128)`, ... `layer3 = nn.Linear(64, 10)`.
#[derive(Clone, Debug, PartialEq)]
struct Mlp {
    layer1: Lin,
    layer2: Lin,
    layer3: Lin,
}

impl Mlp {
    fn new(seed: f32, classes: usize) -> Self {
        Self {
            layer1: Lin::new(784, 128, seed),
            layer2: Lin::new(128, 64, seed + 1.0),
            layer3: Lin::new(64, classes, seed + 2.0),
        }
    }
}

impl Params for Mlp {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &dyn Tensor)) {
        self.layer1.visit(&join_name(prefix, "layer1"), f);
        self.layer2.visit(&join_name(prefix, "layer2"), f);
        self.layer3.visit(&join_name(prefix, "layer3"), f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Tensor)) {
        self.layer1.visit_mut(&join_name(prefix, "layer1"), f);
        self.layer2.visit_mut(&join_name(prefix, "layer2"), f);
        self.layer3.visit_mut(&join_name(prefix, "layer3"), f);
    }
    fn visit_with(
        &mut self,
        other: &Self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn Tensor, &dyn Tensor),
    ) {
        self.layer1
            .visit_with(&other.layer1, &join_name(prefix, "layer1"), f);
        self.layer2
            .visit_with(&other.layer2, &join_name(prefix, "layer2"), f);
        self.layer3
            .visit_with(&other.layer3, &join_name(prefix, "layer3"), f);
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn round_trip_keeps_names_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.safetensors");
    let model = Mlp::new(0.5, 10);
    checkpoint::save(&model, &path).unwrap();
    let mut loaded = Mlp::new(-3.0, 10);
    assert_ne!(loaded, model);
    checkpoint::load(&mut loaded, &path).unwrap();
    assert_eq!(loaded, model);
    assert_eq!(loaded.names(), model.names());
}

#[test]
fn names_and_shapes_are_pytorch_state_dict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.safetensors");
    checkpoint::save(&Mlp::new(0.0, 10), &path).unwrap();
    let bytes = fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    // What `{k: list(v.shape) for k, v in model.state_dict().items()}` prints in PyTorch.
    let expected: &[(&str, &[usize])] = &[
        ("layer1.weight", &[128, 784]),
        ("layer1.bias", &[128]),
        ("layer2.weight", &[64, 128]),
        ("layer2.bias", &[64]),
        ("layer3.weight", &[10, 64]),
        ("layer3.bias", &[10]),
    ];
    let mut names = st.names();
    names.sort();
    let mut want: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
    want.sort();
    assert_eq!(names, want);
    for (name, shape) in expected {
        let t = st.tensor(name).unwrap();
        assert_eq!(t.shape(), *shape, "{name}");
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
    }
}

#[test]
fn matrices_are_stored_row_major() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.safetensors");
    // [[1, 2, 3], [4, 5, 6]]: PyTorch stores 1 2 3 4 5 6.
    let m = DMatrix::from_row_slice(2, 3, &[1.0_f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let model = Lin {
        weight: m,
        bias: DVector::from_vec(vec![7.0, 8.0]),
    };
    checkpoint::save(&model, &path).unwrap();
    let bytes = fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let w = st.tensor("weight").unwrap();
    assert_eq!(w.shape(), &[2, 3]);
    let expected: Vec<u8> = [1.0_f32, 2.0, 3.0, 4.0, 5.0, 6.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    assert_eq!(w.data(), expected.as_slice());
    assert_eq!(&w.data()[..4], &[0x00, 0x00, 0x80, 0x3f]); // 1.0f32 little endian
    let b = st.tensor("bias").unwrap();
    assert_eq!(b.shape(), &[2]);
    assert_eq!(
        b.data(),
        [7.0_f32.to_le_bytes(), 8.0_f32.to_le_bytes()].concat()
    );
}

#[test]
fn missing_tensor_names_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lin.safetensors");
    // Save only a bare matrix under the name "weight": "bias" is missing.
    struct OnlyWeight(DMatrix<f32>);
    impl Params for OnlyWeight {
        fn visit(&self, p: &str, f: &mut dyn FnMut(&str, &dyn Tensor)) {
            self.0.visit(&join_name(p, "weight"), f)
        }
        fn visit_mut(&mut self, p: &str, f: &mut dyn FnMut(&str, &mut dyn Tensor)) {
            self.0.visit_mut(&join_name(p, "weight"), f)
        }
        fn visit_with(
            &mut self,
            o: &Self,
            p: &str,
            f: &mut dyn FnMut(&str, &mut dyn Tensor, &dyn Tensor),
        ) {
            self.0.visit_with(&o.0, &join_name(p, "weight"), f)
        }
    }
    checkpoint::save(&OnlyWeight(DMatrix::zeros(2, 3)), &path).unwrap();
    let mut model = Lin::new(3, 2, 1.0);
    let before = model.clone();
    let err = checkpoint::load(&mut model, &path).unwrap_err();
    assert!(matches!(&err, CheckpointError::Missing { names, .. } if names == &["bias"]));
    let msg = err.to_string();
    assert!(msg.contains("lin.safetensors"), "{msg}");
    assert!(msg.contains("missing") && msg.contains("bias"), "{msg}");
    assert_eq!(model, before, "a failed load must not change the model");

    // And the other way round: the file has a tensor the model lacks.
    checkpoint::save(&Lin::new(3, 2, 1.0), &path).unwrap();
    let err = checkpoint::load(&mut OnlyWeight(DMatrix::zeros(2, 3)), &path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CheckpointError::Unexpected { .. }), "{msg}");
    assert!(
        msg.contains("lin.safetensors") && msg.contains("bias"),
        "{msg}"
    );
    let report = checkpoint::load_with(
        &mut OnlyWeight(DMatrix::zeros(2, 3)),
        &path,
        &LoadOptions {
            allow_unexpected: true,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(report.unused, ["bias"]);
}

#[test]
fn wrong_shape_prints_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.safetensors");
    checkpoint::save(&Mlp::new(0.0, 10), &path).unwrap();
    let mut model = Mlp::new(1.0, 5);
    let before = model.clone();
    let err = checkpoint::load(&mut model, &path).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, CheckpointError::ShapeMismatch { name, expected, found, .. }
            if name == "layer3.weight" && expected == &[5, 64] && found == &[10, 64]),
        "{msg}"
    );
    assert!(msg.contains("mlp.safetensors"), "{msg}");
    assert!(msg.contains("[10, 64]") && msg.contains("[5, 64]"), "{msg}");
    assert_eq!(model, before);
}

#[test]
fn load_partial_skips_the_output_layer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pretrained.safetensors");
    let pretrained = Mlp::new(0.25, 10);
    checkpoint::save(&pretrained, &path).unwrap();
    // Fine-tuning: a new 5-class head.
    let mut model = Mlp::new(9.0, 5);
    let head = model.layer3.clone();
    let report = checkpoint::load_partial(&mut model, &path, &["layer3"]).unwrap();
    assert_eq!(model.layer1, pretrained.layer1);
    assert_eq!(model.layer2, pretrained.layer2);
    assert_eq!(model.layer3, head);
    assert_eq!(report.skipped, ["layer3.weight", "layer3.bias"]);
    assert_eq!(report.unused, ["layer3.bias", "layer3.weight"]);
    assert_eq!(report.loaded.len(), 4);
    // "layer" is not a dotted prefix of "layer3.weight": nothing is skipped, shape error.
    let err = checkpoint::load_partial(&mut model, &path, &["layer"]).unwrap_err();
    assert!(
        matches!(err, CheckpointError::ShapeMismatch { .. }),
        "{err}"
    );
}

#[test]
fn wrong_dtype_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f16.safetensors");
    let data = vec![0u8; 2 * 2];
    let view = safetensors::tensor::TensorView::new(Dtype::F16, vec![2], &data).unwrap();
    let bytes = safetensors::tensor::serialize([("", view)], None).unwrap();
    fs::write(&path, bytes).unwrap();
    let mut v = DVector::from_element(2, 1.0_f32);
    let err = checkpoint::load(&mut v, &path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CheckpointError::Dtype { .. }), "{msg}");
    assert!(
        msg.contains("f16.safetensors") && msg.contains("F16"),
        "{msg}"
    );
}

#[test]
fn corrupt_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.safetensors");
    checkpoint::save(&Mlp::new(0.0, 10), &path).unwrap();
    let bytes = fs::read(&path).unwrap();
    for cut in [bytes.len() - 1, bytes.len() / 2, 20, 3, 0] {
        fs::write(&path, &bytes[..cut]).unwrap();
        let mut model = Mlp::new(1.0, 10);
        let err = checkpoint::load(&mut model, &path).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, CheckpointError::Corrupt { .. }),
            "cut {cut}: {msg}"
        );
        assert!(
            msg.contains("cut.safetensors") && msg.contains("corrupt"),
            "{msg}"
        );
        assert_eq!(model, Mlp::new(1.0, 10));
    }
    let err = checkpoint::load(
        &mut Mlp::new(1.0, 10),
        dir.path().join("absent.safetensors"),
    )
    .unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }));
    assert!(err.to_string().contains("absent.safetensors"), "{err}");
}

#[test]
fn atomic_write_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let model = Mlp::new(0.0, 10);
    checkpoint::save(&model, &path).unwrap();
    checkpoint::save(&Mlp::new(2.0, 10), &path).unwrap(); // overwrite
    assert_eq!(files_in(dir.path()), ["model.safetensors"]);
    let mut loaded = model.clone();
    checkpoint::load(&mut loaded, &path).unwrap();
    assert_eq!(loaded, Mlp::new(2.0, 10));

    // A failing write (the target is a directory) cleans up its temporary file.
    let target = dir.path().join("occupied");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("x"), b"x").unwrap();
    let err = checkpoint::save(&model, &target).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }), "{err}");
    assert!(err.to_string().contains("occupied"), "{err}");
    assert_eq!(files_in(dir.path()), ["model.safetensors", "occupied"]);

    // A missing directory is an error naming the file, not a panic.
    let err = checkpoint::save(&model, dir.path().join("no/such/dir/m.safetensors")).unwrap_err();
    assert!(err.to_string().contains("m.safetensors"), "{err}");
}

#[test]
fn to_bytes_matches_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let model = Lin::new(4, 3, 0.1);
    checkpoint::save(&model, &path).unwrap();
    assert_eq!(
        checkpoint::to_bytes(&model).unwrap(),
        fs::read(&path).unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 12 regressions: header-first loading, non-finite values, save-path checks, stale
// temporaries.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_file_larger_than_its_header_describes_is_rejected_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.safetensors");
    checkpoint::save(&Lin::new(4, 3, 0.1), &path).unwrap();
    let len = fs::metadata(&path).unwrap().len();
    // A sparse 4 GiB tail: reading it would take seconds and gigabytes.
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let mut model = Lin::new(4, 3, 0.5);
    let err = checkpoint::load(&mut model, &path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{msg}");
    assert!(
        msg.contains("big.safetensors")
            && msg.contains(&(4u64 << 30).to_string())
            && msg.contains(&format!("header describes {len}")),
        "{msg}"
    );
    assert_eq!(model, Lin::new(4, 3, 0.5));
}

#[test]
fn an_absurd_header_length_is_rejected_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absurd.safetensors");
    for n in [u64::MAX, 50_000_000, 1000] {
        let mut bytes = n.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        fs::write(&path, &bytes).unwrap();
        let msg = checkpoint::load(&mut Lin::new(4, 3, 0.5), &path)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("absurd.safetensors") && msg.contains(&n.to_string()),
            "{msg}"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn dev_zero_is_rejected_at_once() {
    let err = checkpoint::load(&mut Lin::new(4, 3, 0.5), "/dev/zero").unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("/dev/zero"), "{err}");
}

#[test]
fn non_finite_values_are_rejected_with_the_tensor_name() {
    let dir = tempfile::tempdir().unwrap();
    for (bad, shown) in [
        (f32::NAN, "NaN"),
        (f32::INFINITY, "inf"),
        (f32::NEG_INFINITY, "-inf"),
    ] {
        let path = dir.path().join("diverged.safetensors");
        let mut diverged = Mlp::new(0.0, 10);
        diverged.layer2.bias[5] = bad;
        checkpoint::save(&diverged, &path).unwrap();
        let mut model = Mlp::new(1.0, 10);
        let err = checkpoint::load(&mut model, &path).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, CheckpointError::NonFinite { name, index: 5, .. } if name == "layer2.bias"),
            "{msg}"
        );
        assert!(
            msg.contains("diverged.safetensors")
                && msg.contains("layer2.bias")
                && msg.contains(shown),
            "{msg}"
        );
        assert_eq!(model, Mlp::new(1.0, 10), "the model is untouched");
        // In memory too.
        let bytes = fs::read(&path).unwrap();
        let err = checkpoint::load_from_bytes(&mut model, &bytes, &path, &LoadOptions::default())
            .unwrap_err();
        assert!(matches!(err, CheckpointError::NonFinite { .. }), "{err}");
    }
    // A non-finite value in a skipped layer does not matter.
    let path = dir.path().join("skipped.safetensors");
    let mut diverged = Mlp::new(0.0, 10);
    diverged.layer3.weight[(0, 0)] = f32::NAN;
    checkpoint::save(&diverged, &path).unwrap();
    let mut model = Mlp::new(1.0, 10);
    checkpoint::load_partial(&mut model, &path, &["layer3"]).unwrap();
    assert_eq!(model.layer1, Mlp::new(0.0, 10).layer1);
}

#[test]
fn extra_tensors_error_speaks_to_command_line_users() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.safetensors");
    checkpoint::save(&Mlp::new(0.0, 10), &path).unwrap();
    let msg = checkpoint::load(&mut Lin::new(784, 128, 0.0), &path)
        .unwrap_err()
        .to_string();
    // Lin sees `weight`/`bias`, the file has `layer1.weight`...: missing first.
    assert!(msg.contains("missing"), "{msg}");
    let mut opts = LoadOptions {
        allow_missing: true,
        ..LoadOptions::default()
    };
    let msg = checkpoint::load_with(&mut Lin::new(784, 128, 0.0), &path, &opts)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("another model") && msg.contains("checkpoint of this model"),
        "{msg}"
    );
    opts.allow_unexpected = true;
    checkpoint::load_with(&mut Lin::new(784, 128, 0.0), &path, &opts).unwrap();
}

#[test]
fn check_writable_finds_bad_save_paths_before_training() {
    let dir = tempfile::tempdir().unwrap();
    // Fine: nothing is left behind, the target is not created.
    let good = dir.path().join("model.safetensors");
    checkpoint::check_writable(&good).unwrap();
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
    // A missing directory.
    let err = checkpoint::check_writable(dir.path().join("no/such/m.safetensors")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("m.safetensors") && msg.contains("does not exist"),
        "{msg}"
    );
    // A directory as the path.
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let msg = checkpoint::check_writable(&sub).unwrap_err().to_string();
    assert!(
        msg.contains("sub") && msg.contains("is a directory"),
        "{msg}"
    );
    // A file as the directory.
    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    let msg = checkpoint::check_writable(file.join("m.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("m.safetensors"), "{msg}");
}

#[cfg(unix)]
#[test]
fn check_writable_finds_a_read_only_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    fs::create_dir(&ro).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permissions: then there is nothing to detect.
    let root_can_write = fs::write(ro.join("probe"), b"x").is_ok();
    if root_can_write {
        fs::remove_file(ro.join("probe")).unwrap();
        eprintln!("running as root: a read-only directory is writable, nothing to check");
    } else {
        let msg = checkpoint::check_writable(ro.join("m.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("m.safetensors") && msg.contains("creating"),
            "{msg}"
        );
    }
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn stale_temporaries_of_dead_processes_are_removed_on_the_next_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    // PID 4194305 is above Linux's largest pid_max: never running. PID 1 always is.
    let stale = dir.path().join(".model.safetensors.tmp-4194305-3");
    let live = dir.path().join(".model.safetensors.tmp-1-0");
    let other = dir.path().join(".other.safetensors.tmp-4194305-0");
    for p in [&stale, &live, &other] {
        fs::write(p, vec![0u8; 100]).unwrap();
    }
    checkpoint::save(&Lin::new(4, 3, 0.1), &path).unwrap();
    assert!(!stale.exists());
    if cfg!(target_os = "linux") {
        assert!(live.exists(), "a running process's temporary is left alone");
    }
    assert!(other.exists(), "another target's temporary is left alone");
    // check_writable cleans them too.
    fs::write(&stale, b"x").unwrap();
    checkpoint::check_writable(&path).unwrap();
    assert!(!stale.exists());
}

#[cfg(unix)]
#[test]
fn a_planted_symlink_at_the_temporary_name_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let pid = std::process::id();
    for n in 0..300 {
        std::os::unix::fs::symlink(
            &victim,
            dir.path().join(format!(".m.safetensors.tmp-{pid}-{n}")),
        )
        .unwrap();
    }
    checkpoint::save(&Lin::new(4, 3, 0.1), &path).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    let mut model = Lin::new(4, 3, 0.7);
    checkpoint::load(&mut model, &path).unwrap();
    assert_eq!(model, Lin::new(4, 3, 0.1));
}
