//! Saving and loading [`Params`] models as [safetensors] files in PyTorch `state_dict` layout.
//!
//! Each tensor is stored under its visitor name (`layer1.weight`, ...), with the shape of
//! [`Tensor::shape`] and its `f32` elements in row-major (C) order, little endian. A model
//! whose `Linear` layers keep `weight: [out, in]` and `bias: [out]` therefore saves exactly
//! PyTorch's `nn.Linear` state dict, and
//! `model.load_state_dict(safetensors.torch.load_file(path))` loads it in Python.
//!
//! [`save`] writes atomically (a temporary file in the same directory, `fsync`, rename), so a
//! crash never leaves a half-written checkpoint under the final name. [`load`] checks every
//! tensor (names, shapes, dtypes) before changing the model: on error the model is untouched.
//!
//! [safetensors]: https://huggingface.co/docs/safetensors

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::params::{Params, Tensor};

/// Why a checkpoint could not be saved or loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading, writing or renaming the file failed.
    #[error("{path}: {action}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done (`"reading"`, `"writing temporary file"`, ...).
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file is not a valid safetensors file (truncated, bad header, bad offsets, ...).
    #[error("{path}: corrupt or not a safetensors file: {reason}", path = path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the safetensors parser reported.
        reason: String,
    },
    /// The model has tensors that the file lacks.
    #[error("{path}: missing tensor(s) {names:?} (the file has {available:?})", path = path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// The model's tensors that are not in the file, in visit order.
        names: Vec<String>,
        /// The tensors the file does have, sorted.
        available: Vec<String>,
    },
    /// The file has tensors that the model lacks.
    #[error("{path}: unexpected tensor(s) {names:?} not in the model (skip them with `LoadOptions::skip_prefixes` or allow them with `LoadOptions::allow_unexpected`)", path = path.display())]
    Unexpected {
        /// The file's tensors that the model has no place for, sorted.
        names: Vec<String>,
        /// The file.
        path: PathBuf,
    },
    /// A tensor's shape in the file differs from the model's.
    #[error("{path}: tensor `{name}` has shape {found:?} in the file but {expected:?} in the model", path = path.display())]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The file's shape.
        found: Vec<usize>,
    },
    /// A tensor in the file is not `F32`.
    #[error("{path}: tensor `{name}` has dtype {found} but only F32 is supported", path = path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The file's dtype, e.g. `"F16"`.
        found: String,
    },
    /// The model could not be serialized (e.g. two tensors with the same name).
    #[error("{path}: cannot serialize the model: {reason}", path = path.display())]
    Serialize {
        /// The file.
        path: PathBuf,
        /// The reason.
        reason: String,
    },
}

/// Options of [`load_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Name prefixes to leave alone: a model tensor whose name is a prefix or starts with
    /// `prefix.` is neither loaded nor required, and file tensors under it are ignored
    /// (whatever their shape). Fine-tuning that replaces the output layer passes e.g.
    /// `["layer3"]`.
    pub skip_prefixes: Vec<String>,
    /// Leave model tensors that the file lacks unchanged instead of failing.
    pub allow_missing: bool,
    /// Ignore file tensors that the model lacks instead of failing.
    pub allow_unexpected: bool,
}

/// What [`load_with`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Model tensors overwritten from the file, in visit order.
    pub loaded: Vec<String>,
    /// Model tensors left unchanged because of [`LoadOptions::skip_prefixes`].
    pub skipped: Vec<String>,
    /// Model tensors left unchanged because the file lacks them ([`LoadOptions::allow_missing`]).
    pub missing: Vec<String>,
    /// File tensors that were not used (skipped prefixes or [`LoadOptions::allow_unexpected`]), sorted.
    pub unused: Vec<String>,
}

/// Whether `name` is `prefix` or lies under it (`prefix.` ...). An empty prefix matches all.
fn under_prefix(name: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('.');
    prefix.is_empty()
        || name == prefix
        || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'.'))
}

/// Serializes `model` to safetensors bytes (PyTorch `state_dict` layout, see the module docs).
///
/// # Errors
/// [`CheckpointError::Serialize`] (with an empty path) if two tensors have the same name.
pub fn to_bytes<P: Params + ?Sized>(model: &P) -> Result<Vec<u8>, CheckpointError> {
    serialize(model, Path::new(""))
}

fn serialize<P: Params + ?Sized>(model: &P, path: &Path) -> Result<Vec<u8>, CheckpointError> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    model.visit("", &mut |name, t: &dyn Tensor| {
        let bytes: Vec<u8> = t
            .to_row_major()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        tensors.push((name.to_string(), t.shape(), bytes));
    });
    let mut seen = std::collections::HashSet::new();
    for (name, _, _) in &tensors {
        if !seen.insert(name.as_str()) {
            return Err(CheckpointError::Serialize {
                path: path.to_path_buf(),
                reason: format!("two tensors are named `{name}`"),
            });
        }
    }
    let serialize_err = |e: &dyn std::fmt::Display| CheckpointError::Serialize {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut views = Vec::with_capacity(tensors.len());
    for (name, shape, bytes) in &tensors {
        let view =
            TensorView::new(Dtype::F32, shape.clone(), bytes).map_err(|e| serialize_err(&e))?;
        views.push((name.as_str(), view));
    }
    safetensors::tensor::serialize(views, None).map_err(|e| serialize_err(&e))
}

/// Saves `model` to `path` as safetensors in PyTorch `state_dict` layout, atomically.
///
/// # Errors
/// [`CheckpointError::Io`] if the file cannot be written, [`CheckpointError::Serialize`] if
/// two tensors share a name.
pub fn save<P: Params + ?Sized>(model: &P, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let bytes = serialize(model, path)?;
    write_atomic(path, &bytes).map_err(|(action, source)| CheckpointError::Io {
        path: path.to_path_buf(),
        action,
        source,
    })
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory
/// (`.NAME.tmp-PID-N`), `fsync`, rename over `path`, then (on Unix) `fsync` of the directory.
/// The temporary file is removed if anything fails. Returns what failed and why.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), (&'static str, io::Error)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path.file_name().ok_or_else(|| {
        (
            "choosing a file name",
            io::Error::other("path has no file name"),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);
    let write = || -> Result<(), (&'static str, io::Error)> {
        let mut f = File::create_new(&tmp).map_err(|e| ("creating temporary file", e))?;
        f.write_all(bytes)
            .map_err(|e| ("writing temporary file", e))?;
        f.sync_all().map_err(|e| ("syncing temporary file", e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| ("renaming temporary file into place", e))?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    #[cfg(unix)]
    if let Ok(d) = File::open(&dir) {
        // Makes the rename durable; failure here does not undo a completed write.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Loads every tensor of `model` from the safetensors file at `path`, requiring the file to
/// have exactly the model's tensors with the model's shapes and dtype `F32`.
///
/// # Errors
/// See [`CheckpointError`]; on any error the model is unchanged.
pub fn load<P: Params + ?Sized>(
    model: &mut P,
    path: impl AsRef<Path>,
) -> Result<(), CheckpointError> {
    load_with(model, path, &LoadOptions::default()).map(|_| ())
}

/// Loads all tensors except those under `skip_prefixes` (see [`LoadOptions::skip_prefixes`]),
/// e.g. for fine-tuning with a new output layer. Tensors under a skipped prefix keep their
/// current values; everything else must match exactly as in [`load`].
///
/// # Errors
/// See [`CheckpointError`]; on any error the model is unchanged.
pub fn load_partial<P: Params + ?Sized>(
    model: &mut P,
    path: impl AsRef<Path>,
    skip_prefixes: &[&str],
) -> Result<LoadReport, CheckpointError> {
    let options = LoadOptions {
        skip_prefixes: skip_prefixes.iter().map(|s| s.to_string()).collect(),
        ..LoadOptions::default()
    };
    load_with(model, path, &options)
}

/// Loads `model` from the file at `path` with [`LoadOptions`].
///
/// # Errors
/// See [`CheckpointError`]; on any error the model is unchanged.
pub fn load_with<P: Params + ?Sized>(
    model: &mut P,
    path: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<LoadReport, CheckpointError> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        action: "reading",
        source,
    })?;
    load_from_bytes(model, &bytes, path, options)
}

/// Like [`load_with`] but from bytes in memory; `path` is only used in error messages.
///
/// # Errors
/// See [`CheckpointError`]; on any error the model is unchanged.
pub fn load_from_bytes<P: Params + ?Sized>(
    model: &mut P,
    bytes: &[u8],
    path: &Path,
    options: &LoadOptions,
) -> Result<LoadReport, CheckpointError> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let in_file: HashMap<&str, TensorView<'_>> = file.iter().collect();
    let skipped = |name: &str| options.skip_prefixes.iter().any(|p| under_prefix(name, p));

    // Pass 1: check everything, decide what to load; the model is not touched.
    let mut report = LoadReport::default();
    let mut first_error: Option<CheckpointError> = None;
    let mut used: BTreeMap<&str, ()> = BTreeMap::new();
    model.visit("", &mut |name, t: &dyn Tensor| {
        if first_error.is_some() {
            return;
        }
        if skipped(name) {
            report.skipped.push(name.to_string());
            return;
        }
        let Some((&key, view)) = in_file.get_key_value(name) else {
            report.missing.push(name.to_string());
            return;
        };
        used.insert(key, ());
        if view.dtype() != Dtype::F32 {
            first_error = Some(CheckpointError::Dtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                found: format!("{:?}", view.dtype()),
            });
            return;
        }
        let expected = t.shape();
        if view.shape() != expected.as_slice() {
            first_error = Some(CheckpointError::ShapeMismatch {
                path: path.to_path_buf(),
                name: name.to_string(),
                expected,
                found: view.shape().to_vec(),
            });
            return;
        }
        report.loaded.push(name.to_string());
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    if !report.missing.is_empty() && !options.allow_missing {
        let mut available: Vec<String> = in_file.keys().map(|s| s.to_string()).collect();
        available.sort();
        return Err(CheckpointError::Missing {
            path: path.to_path_buf(),
            names: report.missing,
            available,
        });
    }
    let mut unexpected = Vec::new();
    for &name in in_file.keys() {
        if used.contains_key(name) {
            continue;
        }
        if skipped(name) {
            report.unused.push(name.to_string());
        } else {
            unexpected.push(name.to_string());
        }
    }
    unexpected.sort();
    if !unexpected.is_empty() && !options.allow_unexpected {
        return Err(CheckpointError::Unexpected {
            path: path.to_path_buf(),
            names: unexpected,
        });
    }
    report.unused.extend(unexpected);
    report.unused.sort();

    // Pass 2: copy. Everything was validated, so nothing below can fail.
    let mut values: Vec<f32> = Vec::new();
    model.visit_mut("", &mut |name, t: &mut dyn Tensor| {
        if skipped(name) {
            return;
        }
        let Some(view) = in_file.get(name) else {
            return;
        };
        values.clear();
        values.extend(
            view.data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        t.copy_from_row_major(&values);
    });
    Ok(report)
}
