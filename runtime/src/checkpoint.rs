//! Saving and loading [`Params`] models as [safetensors] files in PyTorch `state_dict` layout.
//!
//! Each tensor is stored under its visitor name (`layer1.weight`, ...), with the shape of
//! [`Tensor::shape`] and its `f32` elements in row-major (C) order, little endian. A model
//! whose `Linear` layers keep `weight: [out, in]` and `bias: [out]` therefore saves exactly
//! PyTorch's `nn.Linear` state dict, and
//! `model.load_state_dict(safetensors.torch.load_file(path))` loads it in Python.
//!
//! [`save`] writes atomically (a temporary file in the same directory, `fsync`, rename), so a
//! crash never leaves a half-written checkpoint under the final name; [`check_writable`] tells
//! before a long run whether a save can succeed. [`load`] reads and checks the header first
//! (its length, the file size it implies, every tensor's name, shape and dtype) and only then
//! the data it describes, rejecting NaN and infinite values: on error the model is untouched.
//!
//! [safetensors]: https://huggingface.co/docs/safetensors

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, Metadata, SafeTensors, TensorView};

use crate::params::{Params, Tensor};
use crate::tempfiles::TempFile;

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
    #[error("{path}: unexpected tensor(s) {names:?} not in the model: the file was saved from another model; check that it is a checkpoint of this model (in code, `LoadOptions::skip_prefixes` or `LoadOptions::allow_unexpected` ignore them)", path = path.display())]
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
    /// A tensor in the file holds a NaN or an infinity (e.g. saved after training diverged).
    #[error("{path}: tensor `{name}` holds the non-finite value {value} at index {index} (row-major); the checkpoint was probably saved after training diverged", path = path.display())]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Row-major index of the first non-finite element.
        index: usize,
        /// Its value (NaN or an infinity).
        value: f32,
    },
    /// The model could not be serialized (e.g. two tensors with the same name).
    #[error("{path}: cannot serialize the model: {reason}", path = path.display())]
    Serialize {
        /// The file.
        path: PathBuf,
        /// The reason.
        reason: String,
    },
    /// A training checkpoint cannot be resumed from (missing or inconsistent metadata, or an
    /// optimizer state that does not fit).
    #[error("{path}: cannot resume training: {reason}", path = path.display())]
    Resume {
        /// The file.
        path: PathBuf,
        /// What is wrong.
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
    crate::tempfiles::write_atomic(path, &bytes).map_err(|(action, source)| CheckpointError::Io {
        path: path.to_path_buf(),
        action,
        source,
    })
}

/// Checks, before a long training run, that a checkpoint can later be saved at `path`: it is
/// not a directory, and a file can be created in its directory (which exists and is
/// writable). Creates and removes a temporary file there; does not touch `path` itself. Also
/// removes stale temporaries of `path` left by dead processes.
///
/// # Errors
/// [`CheckpointError::Io`] naming `path` and the problem.
pub fn check_writable(path: impl AsRef<Path>) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let err = |(action, source)| CheckpointError::Io {
        path: path.to_path_buf(),
        action,
        source,
    };
    let (dir, file_name) = crate::tempfiles::split_path(path).map_err(err)?;
    if path.is_dir() {
        return Err(err((
            "checking the path",
            io::Error::other("is a directory, not a file name"),
        )));
    }
    if !dir.is_dir() {
        return Err(err((
            "checking the directory",
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("directory {} does not exist", dir.display()),
            ),
        )));
    }
    let (tmp, _file) = TempFile::create(&dir, file_name, "tmp")
        .map_err(|e| err(("creating a file in its directory", e)))?;
    drop(tmp);
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
    let io_err = |action| {
        move |source| CheckpointError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = File::open(path).map_err(io_err("opening"))?;
    let meta = file.metadata().map_err(io_err("reading metadata"))?;
    if meta.is_dir() {
        return Err(corrupt("is a directory".into()));
    }
    // The size is known for regular files only (a pipe or a device says 0).
    let file_len = meta.is_file().then_some(meta.len());

    // 1. The 8-byte header length, checked against the limit and the file size.
    let mut len_bytes = [0u8; 8];
    let got = read_up_to(&mut file, &mut len_bytes).map_err(io_err("reading"))?;
    if got < 8 {
        return Err(corrupt(format!(
            "{got} bytes, too short for the 8-byte header length"
        )));
    }
    let n = u64::from_le_bytes(len_bytes);
    if n > MAX_HEADER_BYTES {
        return Err(corrupt(format!(
            "header length {n} bytes exceeds the limit of {MAX_HEADER_BYTES}"
        )));
    }
    if let Some(len) = file_len.filter(|&len| 8 + n > len) {
        return Err(corrupt(format!(
            "header of {n} bytes announced, but the file has only {len} bytes"
        )));
    }

    // 2. The header, parsed and validated (offsets contiguous, sizes matching shapes).
    let mut header = Vec::with_capacity(n as usize);
    (&mut file)
        .take(n)
        .read_to_end(&mut header)
        .map_err(io_err("reading"))?;
    if (header.len() as u64) < n {
        return Err(corrupt(format!(
            "truncated header: {} of {n} bytes",
            header.len()
        )));
    }
    let metadata: Metadata =
        serde_json::from_slice(&header).map_err(|e| corrupt(format!("invalid header: {e}")))?;
    let data_len = metadata.data_len() as u64;
    let total = 8 + n + data_len;
    if let Some(len) = file_len.filter(|&len| len != total) {
        return Err(corrupt(format!(
            "the file has {len} bytes, but its header describes {total} (8 + {n} of header + \
             {data_len} of data)"
        )));
    }

    // 3. Names, dtypes and shapes against the model, before reading any tensor data.
    let entries = entries(&metadata);
    let report = plan(model, path, options, &entries)?;

    // 4. The data the header describes, and nothing more.
    let mut data = Vec::with_capacity(data_len as usize);
    (&mut file)
        .take(data_len)
        .read_to_end(&mut data)
        .map_err(io_err("reading"))?;
    if (data.len() as u64) < data_len {
        return Err(corrupt(format!(
            "truncated: {} of the {data_len} bytes of tensor data the header describes",
            data.len()
        )));
    }
    apply(model, path, options, &entries, &data)?;
    Ok(report)
}

/// The largest safetensors header accepted (the safetensors crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Reads until `buf` is full or the input ends; returns the number of bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
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
    let (n, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let entries = entries(&metadata);
    let report = plan(model, path, options, &entries)?;
    apply(model, path, options, &entries, &bytes[8 + n..])?;
    Ok(report)
}

/// One tensor of a file as its header describes it.
struct Entry<'a> {
    dtype: Dtype,
    shape: &'a [usize],
    /// Byte range in the data section.
    range: std::ops::Range<usize>,
}

fn entries(metadata: &Metadata) -> HashMap<String, Entry<'_>> {
    metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| {
            let entry = Entry {
                dtype: info.dtype,
                shape: &info.shape,
                range: info.data_offsets.0..info.data_offsets.1,
            };
            (name, entry)
        })
        .collect()
}

/// Pass 1: checks names, dtypes and shapes and decides what to load; the model is not touched.
fn plan<P: Params + ?Sized>(
    model: &P,
    path: &Path,
    options: &LoadOptions,
    in_file: &HashMap<String, Entry<'_>>,
) -> Result<LoadReport, CheckpointError> {
    let skipped = |name: &str| options.skip_prefixes.iter().any(|p| under_prefix(name, p));
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
        let Some((key, entry)) = in_file.get_key_value(name) else {
            report.missing.push(name.to_string());
            return;
        };
        used.insert(key.as_str(), ());
        if entry.dtype != Dtype::F32 {
            first_error = Some(CheckpointError::Dtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                found: format!("{:?}", entry.dtype),
            });
            return;
        }
        let expected = t.shape();
        if entry.shape != expected.as_slice() {
            first_error = Some(CheckpointError::ShapeMismatch {
                path: path.to_path_buf(),
                name: name.to_string(),
                expected,
                found: entry.shape.to_vec(),
            });
            return;
        }
        report.loaded.push(name.to_string());
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    if !report.missing.is_empty() && !options.allow_missing {
        let mut available: Vec<String> = in_file.keys().cloned().collect();
        available.sort();
        return Err(CheckpointError::Missing {
            path: path.to_path_buf(),
            names: report.missing,
            available,
        });
    }
    let mut unexpected = Vec::new();
    for name in in_file.keys() {
        if used.contains_key(name.as_str()) {
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
    Ok(report)
}

/// Pass 2: rejects non-finite values in the tensors to load, then copies them. `data` is the
/// data section the entries' ranges index (validated by the safetensors header checks).
fn apply<P: Params + ?Sized>(
    model: &mut P,
    path: &Path,
    options: &LoadOptions,
    in_file: &HashMap<String, Entry<'_>>,
    data: &[u8],
) -> Result<(), CheckpointError> {
    let skipped = |name: &str| options.skip_prefixes.iter().any(|p| under_prefix(name, p));
    let values_of = |entry: &Entry<'_>| {
        data[entry.range.clone()]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut first_error = None;
    model.visit("", &mut |name, _: &dyn Tensor| {
        if first_error.is_some() || skipped(name) {
            return;
        }
        let Some(entry) = in_file.get(name) else {
            return;
        };
        if let Some((index, value)) = values_of(entry).enumerate().find(|(_, v)| !v.is_finite()) {
            first_error = Some(CheckpointError::NonFinite {
                path: path.to_path_buf(),
                name: name.to_string(),
                index,
                value,
            });
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    // Everything was validated, so nothing below can fail.
    let mut values: Vec<f32> = Vec::new();
    model.visit_mut("", &mut |name, t: &mut dyn Tensor| {
        if skipped(name) {
            return;
        }
        let Some(entry) = in_file.get(name) else {
            return;
        };
        values.clear();
        values.extend(values_of(entry));
        t.copy_from_row_major(&values);
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Metadata, optimizer state and training checkpoints (resumable training).
// ---------------------------------------------------------------------------------------------

/// safetensors' limit on the JSON header (100 MB); a larger header is rejected unread.
const MAX_HEADER: u64 = 100_000_000;

fn corrupt(path: &Path, reason: impl Into<String>) -> CheckpointError {
    CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn io_err<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(io::Error) -> CheckpointError + 'a {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Serializes named row-major `f32` tensors with a `__metadata__` map.
fn serialize_named(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    metadata: &BTreeMap<String, String>,
    path: &Path,
) -> Result<Vec<u8>, CheckpointError> {
    let serialize_err = |e: &dyn std::fmt::Display| CheckpointError::Serialize {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::with_capacity(tensors.len());
    let mut seen = std::collections::HashSet::new();
    for ((name, shape, _), data) in tensors.iter().zip(&bytes) {
        if !seen.insert(name.as_str()) {
            return Err(serialize_err(&format!("two tensors are named `{name}`")));
        }
        let view =
            TensorView::new(Dtype::F32, shape.clone(), data).map_err(|e| serialize_err(&e))?;
        views.push((name.as_str(), view));
    }
    let meta: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let meta = if meta.is_empty() { None } else { Some(meta) };
    safetensors::tensor::serialize(views, meta).map_err(|e| serialize_err(&e))
}

/// The model's tensors as (name, shape, row-major values).
fn model_tensors<P: Params + ?Sized>(model: &P) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut tensors = Vec::new();
    model.visit("", &mut |name, t: &dyn Tensor| {
        tensors.push((name.to_string(), t.shape(), t.to_row_major()));
    });
    tensors
}

/// Like [`save`], with `metadata` in the file's `__metadata__` header (string keys and values;
/// PyTorch's `safetensors.torch.load_file` ignores it, `safe_open(..).metadata()` reads it).
///
/// # Errors
/// As [`save`].
pub fn save_with_metadata<P: Params + ?Sized>(
    model: &P,
    path: impl AsRef<Path>,
    metadata: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let bytes = serialize_named(&model_tensors(model), metadata, path)?;
    crate::tempfiles::write_atomic(path, &bytes).map_err(|(action, source)| CheckpointError::Io {
        path: path.to_path_buf(),
        action,
        source,
    })
}

/// The `__metadata__` of the safetensors file at `path` (empty if it has none). Reads only the
/// 8-byte length and the JSON header, never the tensor data.
///
/// # Errors
/// [`CheckpointError::Io`] if the file cannot be read, [`CheckpointError::Corrupt`] if the
/// header is not valid safetensors JSON or the metadata is not a map of strings.
pub fn read_metadata(path: impl AsRef<Path>) -> Result<BTreeMap<String, String>, CheckpointError> {
    use std::io::Read;
    let path = path.as_ref();
    let mut file = File::open(path).map_err(io_err(path, "opening"))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| corrupt(path, "shorter than the 8-byte header length"))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER {
        return Err(corrupt(
            path,
            format!("header length {n} exceeds safetensors' limit of {MAX_HEADER} bytes"),
        ));
    }
    let mut header = Vec::new();
    file.take(n)
        .read_to_end(&mut header)
        .map_err(io_err(path, "reading the header"))?;
    if header.len() as u64 != n {
        return Err(corrupt(
            path,
            format!(
                "the header announces {n} bytes but the file ends after {}",
                header.len()
            ),
        ));
    }
    let json: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| corrupt(path, format!("header is not JSON: {e}")))?;
    let mut out = BTreeMap::new();
    match json.get("__metadata__") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(map)) => {
            for (k, v) in map {
                let v = v
                    .as_str()
                    .ok_or_else(|| corrupt(path, format!("metadata `{k}` is not a string")))?;
                out.insert(k.clone(), v.to_string());
            }
        }
        Some(_) => return Err(corrupt(path, "`__metadata__` is not an object")),
    }
    Ok(out)
}

/// The optimizer-state file that goes with the model checkpoint `model_path`:
/// `NAME.safetensors` → `NAME.optim.safetensors` (any other name: `NAME.optim.safetensors`
/// after the full name).
pub fn optimizer_path(model_path: impl AsRef<Path>) -> PathBuf {
    let p = model_path.as_ref();
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.unwrap_or_default();
    let stem = name.strip_suffix(".safetensors").unwrap_or(&name);
    p.with_file_name(format!("{stem}.optim.safetensors"))
}

/// Saves an optimizer state as safetensors: one 1-D `F32` tensor per buffer
/// (`exp_avg.layer1.weight`, ...), the kind and step count in `__metadata__` (`optimizer`,
/// `optimizer_steps`) beside `metadata`. Atomic, as [`save`].
///
/// # Errors
/// As [`save`].
pub fn save_optimizer(
    state: &crate::optim::OptimizerState,
    path: impl AsRef<Path>,
    metadata: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = state
        .tensors
        .iter()
        .map(|(name, v)| (name.clone(), vec![v.len()], v.clone()))
        .collect();
    let mut meta = metadata.clone();
    meta.insert("optimizer".into(), state.kind.clone());
    meta.insert("optimizer_steps".into(), state.steps.to_string());
    let bytes = serialize_named(&tensors, &meta, path)?;
    crate::tempfiles::write_atomic(path, &bytes).map_err(|(action, source)| CheckpointError::Io {
        path: path.to_path_buf(),
        action,
        source,
    })
}

/// Reads an optimizer state written by [`save_optimizer`], with the file's metadata.
///
/// # Errors
/// [`CheckpointError::Io`], [`CheckpointError::Corrupt`] (also for missing `optimizer` /
/// `optimizer_steps` metadata), [`CheckpointError::Dtype`] for a tensor that is not `F32`.
pub fn load_optimizer(
    path: impl AsRef<Path>,
) -> Result<(crate::optim::OptimizerState, BTreeMap<String, String>), CheckpointError> {
    let path = path.as_ref();
    let meta = read_metadata(path)?;
    let bytes = fs::read(path).map_err(io_err(path, "reading"))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(path, e.to_string()))?;
    let kind = meta
        .get("optimizer")
        .ok_or_else(|| corrupt(path, "no `optimizer` in the metadata"))?
        .clone();
    let steps = meta
        .get("optimizer_steps")
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| corrupt(path, "no valid `optimizer_steps` in the metadata"))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.iter() {
        if view.dtype() != Dtype::F32 {
            return Err(CheckpointError::Dtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                found: format!("{:?}", view.dtype()),
            });
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(name.to_string(), values);
    }
    Ok((
        crate::optim::OptimizerState {
            kind,
            steps,
            tensors,
        },
        meta,
    ))
}

#[cfg(feature = "train")]
/// What a training checkpoint records besides the weights, in the model file's
/// `__metadata__`: keys `epoch` (completed epochs), `step` (optimizer steps),
/// `steps_into_epoch`, `seed`, `config` (the run's settings, free text such as JSON),
/// `accuracy` (the last evaluated accuracy, if any), `history` (the epochs so far, see
/// [`crate::metrics::history_json`]) and `symgrad_version`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainState {
    /// Where training stands.
    pub position: crate::train::ResumePoint,
    /// The seed of the shuffles (and of the initial weights).
    pub seed: u64,
    /// The run's settings (e.g. a JSON object of the command-line flags).
    pub config: String,
    /// The last evaluated accuracy in `[0, 1]`, if any.
    pub accuracy: Option<f32>,
    /// The completed epochs' statistics.
    pub history: Vec<crate::train::EpochStats>,
    /// The symgrad version that wrote the checkpoint (set by [`save_training`]).
    pub version: String,
}

#[cfg(feature = "train")]
impl TrainState {
    /// The metadata map written by [`save_training`].
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("format".into(), "symgrad-train-1".into());
        m.insert("epoch".into(), self.position.epochs_done.to_string());
        m.insert("step".into(), self.position.steps_done.to_string());
        m.insert(
            "steps_into_epoch".into(),
            self.position.steps_into_epoch.to_string(),
        );
        m.insert("seed".into(), self.seed.to_string());
        m.insert("config".into(), self.config.clone());
        if let Some(a) = self.accuracy {
            m.insert("accuracy".into(), a.to_string());
        }
        m.insert(
            "history".into(),
            crate::metrics::history_json(&self.history),
        );
        m.insert(
            "symgrad_version".into(),
            env!("CARGO_PKG_VERSION").to_string(),
        );
        m
    }

    /// Reads the state back from a model file's metadata.
    ///
    /// # Errors
    /// A message naming the missing or malformed key.
    pub fn from_metadata(m: &BTreeMap<String, String>) -> Result<Self, String> {
        fn num<T: std::str::FromStr>(m: &BTreeMap<String, String>, key: &str) -> Result<T, String> {
            let v = m.get(key).ok_or_else(|| {
                format!(
                    "no `{key}` in the metadata (not a training checkpoint written with --save;                      use it with --load to start a new run from its weights)"
                )
            })?;
            v.parse()
                .map_err(|_| format!("metadata `{key}` is {v:?}, not a number"))
        }
        let history = match m.get("history") {
            Some(h) => crate::metrics::history_from_json(h)?,
            None => Vec::new(),
        };
        Ok(Self {
            position: crate::train::ResumePoint {
                epochs_done: num(m, "epoch")?,
                steps_done: num(m, "step")?,
                steps_into_epoch: num(m, "steps_into_epoch")?,
            },
            seed: num(m, "seed")?,
            config: m.get("config").cloned().unwrap_or_default(),
            accuracy: m.get("accuracy").and_then(|a| a.parse().ok()),
            history,
            version: m.get("symgrad_version").cloned().unwrap_or_default(),
        })
    }
}

#[cfg(feature = "train")]
/// Saves a resumable training checkpoint: the optimizer state to
/// [`optimizer_path`]`(path)` first, then the model with `state`'s metadata to `path` (a
/// plain PyTorch `state_dict` with metadata: `load_state_dict(strict=True)` loads it). Both
/// files carry the same `step`, so [`load_training`] detects a pair torn by a crash between
/// the two writes.
///
/// # Errors
/// As [`save`], naming the file that failed.
pub fn save_training<P: Params + ?Sized, O: crate::optim::StatefulOptimizer>(
    model: &P,
    opt: &O,
    path: impl AsRef<Path>,
    state: &TrainState,
) -> Result<(), CheckpointError> {
    save_training_state(model, &opt.state(), path, state)
}

#[cfg(feature = "train")]
/// [`save_training`] with the optimizer's state already taken (e.g. from
/// [`crate::train::Callbacks::on_epoch_end`]).
///
/// # Errors
/// As [`save_training`].
pub fn save_training_state<P: Params + ?Sized>(
    model: &P,
    optimizer: &crate::optim::OptimizerState,
    path: impl AsRef<Path>,
    state: &TrainState,
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let meta = state.to_metadata();
    let mut opt_meta = BTreeMap::new();
    for key in ["epoch", "step", "steps_into_epoch", "symgrad_version"] {
        opt_meta.insert(key.to_string(), meta[key].clone());
    }
    save_optimizer(optimizer, optimizer_path(path), &opt_meta)?;
    save_with_metadata(model, path, &meta)
}

#[cfg(feature = "train")]
/// Restores a checkpoint written by [`save_training`]: the model from `path`, the optimizer
/// from [`optimizer_path`]`(path)`, and returns the [`TrainState`] (pass its `position` as
/// [`crate::train::TrainConfig::resume`]).
///
/// # Errors
/// [`CheckpointError::Resume`] if the metadata is missing or the two files are from different
/// steps or the optimizer state does not fit the model or optimizer; the model's and the
/// optimizer's own load errors otherwise. The model is checked completely before it changes,
/// and the optimizer state before the optimizer changes; if the optimizer state is rejected
/// after the model was loaded, the model holds the checkpoint's weights.
pub fn load_training<P: Params + ?Sized, O: crate::optim::StatefulOptimizer>(
    model: &mut P,
    opt: &mut O,
    path: impl AsRef<Path>,
) -> Result<TrainState, CheckpointError> {
    let path = path.as_ref();
    let resume_err = |p: &Path, reason: String| CheckpointError::Resume {
        path: p.to_path_buf(),
        reason,
    };
    let state =
        TrainState::from_metadata(&read_metadata(path)?).map_err(|r| resume_err(path, r))?;
    let opt_path = optimizer_path(path);
    if !opt_path.exists() {
        return Err(resume_err(
            path,
            format!(
                "its optimizer state {} is missing (it is written beside the weights by --save)",
                opt_path.display()
            ),
        ));
    }
    let (opt_state, opt_meta) = load_optimizer(&opt_path)?;
    let step = state.position.steps_done.to_string();
    if opt_meta.get("step") != Some(&step) || opt_state.steps != state.position.steps_done {
        return Err(resume_err(
            path,
            format!(
                "the weights are from step {step} but {} is from step {} (a save was \
                 interrupted between the two files?)",
                opt_path.display(),
                opt_meta.get("step").map_or("?", |s| s.as_str())
            ),
        ));
    }
    load(model, path)?;
    opt.load_state(model, &opt_state)
        .map_err(|e| resume_err(&opt_path, e.to_string()))?;
    Ok(state)
}
