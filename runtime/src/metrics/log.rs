//! [`MetricsLog`]: one record per epoch of training as JSON lines, JSON or CSV.

use std::io;
use std::path::{Path, PathBuf};

use crate::train::EpochStats;

/// The file formats of [`MetricsLog`], chosen by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsFormat {
    /// `.jsonl`: one JSON object per line and epoch.
    JsonLines,
    /// `.json`: a JSON array of one object per epoch.
    Json,
    /// `.csv`: a header line, then one row per epoch; empty cells for values not measured.
    Csv,
}

/// Why a metrics file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The file's extension is not one of `.jsonl`, `.json`, `.csv`.
    #[error("{path}: unsupported metrics file extension {ext:?}; use .jsonl, .json or .csv", path = path.display())]
    Extension {
        /// The file.
        path: PathBuf,
        /// The extension found (empty if none).
        ext: String,
    },
    /// Writing the file failed.
    #[error("{path}: {action}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl MetricsFormat {
    /// The format for `path`'s extension (case-insensitive).
    ///
    /// # Errors
    /// [`MetricsError::Extension`] for any other extension.
    pub fn from_path(path: &Path) -> Result<Self, MetricsError> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "jsonl" => Ok(Self::JsonLines),
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            _ => Err(MetricsError::Extension {
                path: path.to_path_buf(),
                ext,
            }),
        }
    }
}

/// The fields of a metrics record, in file order.
const FIELDS: [&str; 12] = [
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
    "eval_seconds",
    "samples_per_sec",
];

/// The values of [`FIELDS`] for one epoch (`NaN` = not measured).
fn field_values(s: &EpochStats) -> [f64; 12] {
    [
        s.epoch as f64,
        s.total_steps as f64,
        f64::from(s.lr),
        f64::from(s.train_loss),
        f64::from(s.train_accuracy),
        f64::from(s.test_loss),
        f64::from(s.test_accuracy),
        s.val_loss.map_or(f64::NAN, f64::from),
        s.val_accuracy.map_or(f64::NAN, f64::from),
        s.seconds,
        s.eval_seconds,
        s.samples_per_sec,
    ]
}

/// One epoch as a JSON object on one line: `{"epoch":1,"step":938,"lr":0.001,...}`, with
/// `null` for values not measured (`NaN`). The `f32` metrics are written as the shortest
/// decimal that reads back to the same `f32`.
pub fn epoch_json(s: &EpochStats) -> String {
    let values = field_values(s);
    let mut out = String::from("{");
    for (i, (name, v)) in FIELDS.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("\"{name}\":{}", json_number(i, v)));
    }
    out.push('}');
    out
}

/// Field `i`'s value as JSON: integers for epoch and step, `f32` round-trip precision for the
/// `f32` fields, `null` for non-finite values.
fn json_number(i: usize, v: f64) -> String {
    if !v.is_finite() {
        "null".to_string()
    } else if i < 2 {
        format!("{}", v as u64)
    } else if i < 9 {
        format!("{}", v as f32)
    } else {
        format!("{v}")
    }
}

/// Reads back a JSON array (or JSON lines) of [`epoch_json`] records into [`EpochStats`]
/// (`null` becomes `NaN`; unknown fields are ignored).
///
/// # Errors
/// A message naming the record and field that could not be read.
pub fn history_from_json(text: &str) -> Result<Vec<EpochStats>, String> {
    let text = text.trim();
    let records: Vec<serde_json::Value> = if text.starts_with('[') {
        serde_json::from_str(text).map_err(|e| format!("history: {e}"))?
    } else {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("history: {e}"))?
    };
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let get = |name: &str| -> Result<f64, String> {
                match r.get(name) {
                    None | Some(serde_json::Value::Null) => Ok(f64::NAN),
                    Some(v) => v
                        .as_f64()
                        .ok_or_else(|| format!("history record {i}: `{name}` is not a number")),
                }
            };
            let epoch = get("epoch")?;
            if !(epoch.is_finite() && epoch >= 1.0) {
                return Err(format!("history record {i}: no valid `epoch`"));
            }
            Ok(EpochStats {
                epoch: epoch as usize,
                total_steps: get("step")?.max(0.0) as u64,
                lr: get("lr")? as f32,
                train_loss: get("train_loss")? as f32,
                train_accuracy: get("train_accuracy")? as f32,
                test_loss: get("test_loss")? as f32,
                test_accuracy: get("test_accuracy")? as f32,
                val_loss: Some(get("val_loss")? as f32).filter(|v| !v.is_nan()),
                val_accuracy: Some(get("val_accuracy")? as f32).filter(|v| !v.is_nan()),
                seconds: get("seconds")?,
                eval_seconds: get("eval_seconds")?,
                samples_per_sec: get("samples_per_sec")?,
                steps: 0,
            })
        })
        .collect()
}

/// A history as a JSON array, one [`epoch_json`] object per line.
pub fn history_json(history: &[EpochStats]) -> String {
    let items: Vec<String> = history.iter().map(epoch_json).collect();
    format!("[{}]", items.join(",\n"))
}

/// One epoch as a CSV row of [`MetricsLog`]'s columns (empty cells for `NaN`).
fn epoch_csv(s: &EpochStats) -> String {
    field_values(s)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            if v.is_finite() {
                json_number(i, v)
            } else {
                String::new()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes one record per epoch to a `.jsonl`, `.json` or `.csv` file. The columns are `epoch,
/// step, lr, train_loss, train_accuracy, test_loss, test_accuracy, val_loss, val_accuracy,
/// seconds, eval_seconds, samples_per_sec` (accuracies in `[0, 1]`). The whole file is
/// rewritten atomically after each epoch (a temporary file renamed over it), so it is never
/// half-written.
#[derive(Debug, Clone)]
pub struct MetricsLog {
    path: PathBuf,
    format: MetricsFormat,
    records: Vec<EpochStats>,
}

impl MetricsLog {
    /// A log at `path` starting with `history` (e.g. the epochs of a resumed run), written at
    /// once, so that a bad path fails before training.
    ///
    /// # Errors
    /// [`MetricsError::Extension`] for an unsupported extension, [`MetricsError::Io`] if the
    /// file cannot be written.
    pub fn create(path: impl AsRef<Path>, history: &[EpochStats]) -> Result<Self, MetricsError> {
        let path = path.as_ref();
        let log = Self {
            path: path.to_path_buf(),
            format: MetricsFormat::from_path(path)?,
            records: history.to_vec(),
        };
        log.write()?;
        Ok(log)
    }

    /// Adds an epoch and rewrites the file.
    ///
    /// # Errors
    /// [`MetricsError::Io`] naming the file.
    pub fn push(&mut self, stats: &EpochStats) -> Result<(), MetricsError> {
        self.records.push(*stats);
        self.write()
    }

    /// The file's contents for the records so far.
    pub fn render(&self) -> String {
        match self.format {
            MetricsFormat::JsonLines => self.records.iter().map(|s| epoch_json(s) + "\n").collect(),
            MetricsFormat::Json => history_json(&self.records) + "\n",
            MetricsFormat::Csv => {
                let mut out = FIELDS.join(",") + "\n";
                for s in &self.records {
                    out += &epoch_csv(s);
                    out.push('\n');
                }
                out
            }
        }
    }

    fn write(&self) -> Result<(), MetricsError> {
        crate::tempfiles::write_atomic(&self.path, self.render().as_bytes()).map_err(
            |(action, source)| MetricsError::Io {
                path: self.path.clone(),
                action,
                source,
            },
        )
    }
}
