//! Training curves as a PNG or SVG chart (chosen by the file's extension): the loss on the
//! left (the per-step training loss, smoothed, beside the per-epoch training, test and
//! validation losses, on a log scale), accuracies per epoch on the right, the run's settings in
//! the title. Axes are fitted to the data with a margin so that no marker is clipped, and each
//! legend goes to the corner of its chart with the fewest points.
//!
//! Text is drawn with a TrueType font found on the system: `$SYMGRAD_PLOT_FONT` if set, else
//! DejaVu Sans, Liberation Sans, Noto Sans, FreeSans, Arial or Helvetica in the usual
//! places (Debian/Ubuntu: `apt-get install fonts-dejavu-core`). Without one, plotting fails with
//! an error that says so; training is not affected.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::train::EpochStats;

/// Why a chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// There are no epochs to plot.
    #[error("nothing to plot: the training history is empty")]
    Empty,
    /// The path's extension is neither `.png` nor `.svg`.
    #[error("{path}: unsupported plot file extension {ext:?}; use .png or .svg", path = path.display())]
    Extension {
        /// The file.
        path: PathBuf,
        /// The extension found (empty if none).
        ext: String,
    },
    /// No font for the chart's text.
    #[error("{0}")]
    Font(String),
    /// plotters failed to draw.
    #[error("drawing the chart failed: {0}")]
    Draw(String),
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

/// The image formats, by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotFormat {
    /// `.png`: an RGB bitmap.
    Png,
    /// `.svg`: a vector drawing.
    Svg,
}

impl PlotFormat {
    /// The format for `path`'s extension (case-insensitive).
    ///
    /// # Errors
    /// [`PlotError::Extension`] for anything but `.png` and `.svg`.
    pub fn from_path(path: &Path) -> Result<Self, PlotError> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "png" => Ok(Self::Png),
            "svg" => Ok(Self::Svg),
            _ => Err(PlotError::Extension {
                path: path.to_path_buf(),
                ext,
            }),
        }
    }
}

/// What to draw.
#[derive(Debug, Clone, Copy)]
pub struct TrainingCurves<'a> {
    /// One entry per epoch.
    pub history: &'a [EpochStats],
    /// The training loss of each step as `(x, loss)`, `x` in epochs (`epoch - 1 +
    /// step_in_epoch / steps_per_epoch`, so step losses of epoch 1 lie in `(0, 1]`); drawn
    /// smoothed ([`smooth`]). May be empty.
    pub step_losses: &'a [(f64, f32)],
    /// The chart's title (e.g. the run's settings).
    pub title: &'a str,
}

/// Chart size in pixels.
const SIZE: (u32, u32) = (1200, 520);

fn draw_err(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Exponential moving average of the values with weight `keep` on the past, bias-corrected
/// like TensorBoard's smoothing (the first points are not pulled towards 0). Non-finite
/// values are skipped.
pub fn smooth(points: &[(f64, f32)], keep: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len());
    let (mut avg, mut weight) = (0.0f64, 0.0f64);
    for &(x, y) in points {
        if !y.is_finite() {
            continue;
        }
        avg = keep * avg + (1.0 - keep) * f64::from(y);
        weight = keep * weight + (1.0 - keep);
        out.push((x, avg / weight));
    }
    out
}

/// `(min, max)` of the finite values, if any.
fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// The legend corner whose quarter of the chart (in `[0, 1]²` coordinates, y up) holds the
/// fewest points; ties go to the first of upper right, lower right, upper left, lower left.
fn quiet_corner(points: &[(f64, f64)]) -> SeriesLabelPosition {
    let corners = [
        (SeriesLabelPosition::UpperRight, 0.55..=1.0, 0.6..=1.0),
        (SeriesLabelPosition::LowerRight, 0.55..=1.0, 0.0..=0.4),
        (SeriesLabelPosition::UpperLeft, 0.0..=0.45, 0.6..=1.0),
        (SeriesLabelPosition::LowerLeft, 0.0..=0.45, 0.0..=0.4),
    ];
    let mut best = (usize::MAX, SeriesLabelPosition::UpperRight);
    for (pos, xs, ys) in corners {
        let n = points
            .iter()
            .filter(|(x, y)| xs.contains(x) && ys.contains(y))
            .count();
        if n < best.0 {
            best = (n, pos);
        }
    }
    best.1
}

/// Tick values for a log axis over `lo..hi`: 1, 2, 3, 5 times the powers of ten inside it
/// (only 1 and 3 when that gives more than 12).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    for mantissas in [&[1.0, 2.0, 3.0, 5.0][..], &[1.0, 3.0][..], &[1.0][..]] {
        ticks.clear();
        let mut decade = 10f64.powf(lo.log10().floor());
        while decade <= hi {
            for m in mantissas {
                let v = m * decade;
                if v >= lo && v <= hi {
                    ticks.push(v);
                }
            }
            decade *= 10.0;
        }
        if ticks.len() <= 12 {
            break;
        }
    }
    ticks
}

/// Per-epoch points `(epoch, value)` of the finite values of `get`.
fn epoch_points(history: &[EpochStats], get: impl Fn(&EpochStats) -> f64) -> Vec<(f64, f64)> {
    history
        .iter()
        .map(|s| (s.epoch as f64, get(s)))
        .filter(|(_, v)| v.is_finite())
        .collect()
}

/// A named, coloured series of points.
type Series = (&'static str, RGBColor, Vec<(f64, f64)>);

const TRAIN: RGBColor = RGBColor(31, 119, 180);
const STEP: RGBColor = RGBColor(150, 190, 230);
const TEST: RGBColor = RGBColor(214, 39, 40);
const VAL: RGBColor = RGBColor(255, 127, 14);
const ACC_TRAIN: RGBColor = RGBColor(44, 160, 44);

/// Draws the chart on `root`.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &TrainingCurves<'_>,
    width: u32,
) -> Result<(), PlotError> {
    let history = c.history;
    if history.is_empty() {
        return Err(PlotError::Empty);
    }
    root.fill(&WHITE).map_err(draw_err)?;
    let body = root
        .titled(c.title, ("sans-serif", 17).into_font().color(&BLACK))
        .map_err(draw_err)?;
    let (left, right) = body.split_horizontally(width / 2);

    // x: from the first step (or epoch) to the last epoch, with room for the markers.
    let steps = smooth(c.step_losses, 0.95);
    let first = history[0].epoch as f64;
    let last = history[history.len() - 1].epoch as f64;
    let x_lo = steps.first().map_or(first, |p| p.0.min(first));
    let x_hi = last.max(x_lo + 1.0);
    let pad = ((x_hi - x_lo) * 0.04).max(0.15);
    let x_range = (x_lo - pad)..(x_hi + pad);
    let (x0, x1) = (x_range.start, x_range.end);
    let to_unit_x = |x: f64| (x - x0) / (x1 - x0);
    let x_labels = (history.len() + 1).clamp(2, 12);

    // Loss, log scale: the smoothed steps and the per-epoch losses.
    let losses: [Series; 3] = [
        (
            "train loss (epoch mean)",
            TRAIN,
            epoch_points(history, |s| f64::from(s.train_loss)),
        ),
        (
            "test loss",
            TEST,
            epoch_points(history, |s| f64::from(s.test_loss)),
        ),
        (
            "val loss",
            VAL,
            epoch_points(history, |s| s.val_loss.map_or(f64::NAN, f64::from)),
        ),
    ];
    let all_losses = steps
        .iter()
        .chain(losses.iter().flat_map(|l| l.2.iter()))
        .map(|p| p.1)
        .filter(|&v| v > 0.0);
    let (lo, hi) = finite_range(all_losses).unwrap_or((0.1, 1.0));
    let (lo, hi) = (lo / 1.3, hi * 1.3);
    let unit_loss = |y: f64| (y.max(lo).ln() - lo.ln()) / (hi.ln() - lo.ln());
    let mut chart = ChartBuilder::on(&left)
        .caption("loss (log scale)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(38)
        .y_label_area_size(62)
        .build_cartesian_2d(
            x_range.clone(),
            (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
        )
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("cross-entropy")
        .light_line_style(RGBColor(245, 245, 245))
        .x_labels(x_labels)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.3}"))
        .draw()
        .map_err(draw_err)?;
    let mut occupied: Vec<(f64, f64)> = Vec::new();
    if !steps.is_empty() {
        chart
            .draw_series(LineSeries::new(steps.iter().copied(), STEP.stroke_width(1)))
            .map_err(draw_err)?
            .label("train loss (per step, smoothed)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], STEP.stroke_width(2)));
        occupied.extend(steps.iter().map(|&(x, y)| (to_unit_x(x), unit_loss(y))));
    }
    for (name, color, points) in &losses {
        if points.is_empty() {
            continue;
        }
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.filled()));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(draw_err)?;
        occupied.extend(points.iter().map(|&(x, y)| (to_unit_x(x), unit_loss(y))));
    }
    chart
        .configure_series_labels()
        .position(quiet_corner(&occupied))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)?;

    // Accuracy in %, fitted to the data.
    let accs: [Series; 3] = [
        (
            "train",
            ACC_TRAIN,
            epoch_points(history, |s| 100.0 * f64::from(s.train_accuracy)),
        ),
        (
            "test",
            TEST,
            epoch_points(history, |s| 100.0 * f64::from(s.test_accuracy)),
        ),
        (
            "val",
            VAL,
            epoch_points(history, |s| {
                100.0 * s.val_accuracy.map_or(f64::NAN, f64::from)
            }),
        ),
    ];
    let (lo, hi) =
        finite_range(accs.iter().flat_map(|a| a.2.iter().map(|p| p.1))).unwrap_or((0.0, 100.0));
    let pad = ((hi - lo) * 0.08).max(0.25);
    let (lo, hi) = ((lo - pad).max(0.0), hi + pad);
    let unit_acc = |y: f64| (y - lo) / (hi - lo);
    // Accuracies exist per epoch only: their x axis spans the epochs.
    let span = (last - first).max(1.0);
    let acc_x = (first - (span * 0.04).max(0.15))..(first + span + (span * 0.04).max(0.15));
    let (a0, a1) = (acc_x.start, acc_x.end);
    let to_unit_acc_x = |x: f64| (x - a0) / (a1 - a0);
    let mut chart = ChartBuilder::on(&right)
        .caption("accuracy (%)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(38)
        .y_label_area_size(62)
        .build_cartesian_2d(acc_x.clone(), lo..hi)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("accuracy %")
        .light_line_style(RGBColor(245, 245, 245))
        .x_labels(x_labels)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()
        .map_err(draw_err)?;
    let mut occupied: Vec<(f64, f64)> = Vec::new();
    for (name, color, points) in &accs {
        if points.is_empty() {
            continue;
        }
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.filled()));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(draw_err)?;
        occupied.extend(points.iter().map(|&(x, y)| (to_unit_acc_x(x), unit_acc(y))));
    }
    chart
        .configure_series_labels()
        .position(quiet_corner(&occupied))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)?;
    root.present().map_err(draw_err)?;
    Ok(())
}

/// Where fonts are looked for, in order (after `$SYMGRAD_PLOT_FONT`).
const FONT_CANDIDATES: [&str; 10] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a system font as plotters' `sans-serif` (once per process).
fn ensure_font() -> Result<(), PlotError> {
    static FONT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = FONT.get_or_init(|| {
        let explicit = std::env::var_os("SYMGRAD_PLOT_FONT").map(PathBuf::from);
        let candidates: Vec<PathBuf> = match &explicit {
            Some(p) => vec![p.clone()],
            None => FONT_CANDIDATES.iter().map(PathBuf::from).collect(),
        };
        for path in &candidates {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            // The font must live as long as plotters' font table: one leak per process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Ok(path.clone());
            }
            if explicit.is_some() {
                return Err(format!(
                    "SYMGRAD_PLOT_FONT={} is not a TrueType/OpenType font",
                    path.display()
                ));
            }
        }
        Err(match &explicit {
            Some(p) => format!("SYMGRAD_PLOT_FONT={} cannot be read", p.display()),
            None => format!(
                "no font found for the chart's text (looked for {}); install one \
                 (Debian/Ubuntu: `apt-get install fonts-dejavu-core`) or set \
                 SYMGRAD_PLOT_FONT to a .ttf file",
                FONT_CANDIDATES.join(", ")
            ),
        })
    });
    result
        .as_ref()
        .map(|_| ())
        .map_err(|e| PlotError::Font(e.clone()))
}

/// Renders `curves` as an SVG document of 1200 x 520 pixels.
///
/// # Errors
/// [`PlotError::Empty`] for an empty history, [`PlotError::Font`] without a font,
/// [`PlotError::Draw`] if plotters fails.
pub fn render_svg(curves: &TrainingCurves<'_>) -> Result<String, PlotError> {
    render_svg_sized(curves, SIZE)
}

fn render_svg_sized(curves: &TrainingCurves<'_>, size: (u32, u32)) -> Result<String, PlotError> {
    ensure_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root, curves, size.0)?;
    }
    Ok(svg)
}

/// Renders `curves` as a PNG file's bytes (1200 x 520, RGB, 8 bits per channel).
///
/// # Errors
/// As [`render_svg`].
pub fn render_png(curves: &TrainingCurves<'_>) -> Result<Vec<u8>, PlotError> {
    ensure_font()?;
    let (w, h) = SIZE;
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        draw(&root, curves, w)?;
    }
    let mut png_bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut png_bytes, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(draw_err)?;
    writer.write_image_data(&rgb).map_err(draw_err)?;
    writer.finish().map_err(draw_err)?;
    Ok(png_bytes)
}

/// Draws `curves` to `path`, PNG or SVG by its extension, atomically (temporary file in the
/// same directory, `fsync`, rename). Returns the path written.
///
/// # Errors
/// [`PlotError::Extension`] (checked first, before any drawing), then as [`render_svg`], or
/// [`PlotError::Io`] naming the file.
pub fn write_plot(
    curves: &TrainingCurves<'_>,
    path: impl AsRef<Path>,
) -> Result<PathBuf, PlotError> {
    let path = path.as_ref();
    let bytes = match PlotFormat::from_path(path)? {
        PlotFormat::Png => render_png(curves)?,
        PlotFormat::Svg => render_svg(curves)?.into_bytes(),
    };
    crate::tempfiles::write_atomic(path, &bytes).map_err(|(action, source)| PlotError::Io {
        path: path.to_path_buf(),
        action,
        source,
    })?;
    Ok(path.to_path_buf())
}

/// Renders the per-epoch `history` alone as an SVG document of `width x height` pixels (see
/// [`render_svg`]).
///
/// # Errors
/// As [`render_svg`].
pub fn history_svg(history: &[EpochStats], width: u32, height: u32) -> Result<String, PlotError> {
    let curves = TrainingCurves {
        history,
        step_losses: &[],
        title: "training curves",
    };
    render_svg_sized(&curves, (width, height))
}

/// Draws the per-epoch `history` alone to `path` ([`write_plot`]: PNG or SVG by extension).
///
/// # Errors
/// As [`write_plot`].
pub fn plot_history(history: &[EpochStats], path: impl AsRef<Path>) -> Result<PathBuf, PlotError> {
    write_plot(
        &TrainingCurves {
            history,
            step_losses: &[],
            title: "training curves",
        },
        path,
    )
}
