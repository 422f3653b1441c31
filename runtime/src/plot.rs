//! Training curves as an SVG chart: loss per epoch on the left, train and test accuracy per
//! epoch on the right. Pure Rust (plotters' SVG backend), no system libraries or fonts needed.

use std::io;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::train::EpochStats;

/// Why a chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// There are no epochs to plot.
    #[error("nothing to plot: the training history is empty")]
    Empty,
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

/// Reads one accuracy out of an epoch's stats.
type Metric = fn(&EpochStats) -> f32;

fn draw_err(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// The `(min, max)` of the finite values, if any.
fn finite_range(values: impl Iterator<Item = f32>) -> Option<(f32, f32)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Renders the chart of `history` (one point per epoch) as an SVG document of `width x height`
/// pixels. Non-finite values (e.g. the `NaN` test accuracy of an empty test set) are left out.
///
/// # Errors
/// [`PlotError::Empty`] for an empty history, [`PlotError::Draw`] if plotters fails.
pub fn history_svg(history: &[EpochStats], width: u32, height: u32) -> Result<String, PlotError> {
    if history.is_empty() {
        return Err(PlotError::Empty);
    }
    let first = history.first().map_or(1, |s| s.epoch) as f32;
    let last = history.last().map_or(1, |s| s.epoch) as f32;
    let x_range = if last > first {
        first..last
    } else {
        first - 0.5..last + 0.5
    };
    let (loss_lo, loss_hi) =
        finite_range(history.iter().map(|s| s.train_loss)).unwrap_or((0.0, 1.0));
    let loss_range = 0.0f32.min(loss_lo)..(loss_hi * 1.1).max(loss_lo + 1e-3);
    let (acc_lo, _) = finite_range(
        history
            .iter()
            .flat_map(|s| [s.train_accuracy, s.test_accuracy])
            .map(|a| 100.0 * a),
    )
    .unwrap_or((0.0, 100.0));
    let acc_range = ((acc_lo - 2.0).floor().clamp(0.0, 99.0))..100.0f32;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let (left, right) = root.split_horizontally(width / 2);

        let mut loss_chart = ChartBuilder::on(&left)
            .caption("training loss", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x_range.clone(), loss_range)
            .map_err(draw_err)?;
        loss_chart
            .configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("loss")
            .x_labels(history.len().clamp(2, 10))
            .draw()
            .map_err(draw_err)?;
        let loss_points: Vec<(f32, f32)> = history
            .iter()
            .filter(|s| s.train_loss.is_finite())
            .map(|s| (s.epoch as f32, s.train_loss))
            .collect();
        loss_chart
            .draw_series(LineSeries::new(loss_points.iter().copied(), &BLUE))
            .map_err(draw_err)?
            .label("train loss")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        loss_chart
            .draw_series(
                loss_points
                    .iter()
                    .map(|&p| Circle::new(p, 3, BLUE.filled())),
            )
            .map_err(draw_err)?;
        loss_chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;

        let mut acc_chart = ChartBuilder::on(&right)
            .caption("accuracy (%)", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x_range, acc_range)
            .map_err(draw_err)?;
        acc_chart
            .configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("accuracy %")
            .x_labels(history.len().clamp(2, 10))
            .draw()
            .map_err(draw_err)?;
        let series: [(&str, RGBColor, Metric); 2] = [
            ("train", RGBColor(0, 150, 0), |s| s.train_accuracy),
            ("test", RED, |s| s.test_accuracy),
        ];
        for (name, color, get) in series {
            let points: Vec<(f32, f32)> = history
                .iter()
                .filter(|s| get(s).is_finite())
                .map(|s| (s.epoch as f32, 100.0 * get(s)))
                .collect();
            acc_chart
                .draw_series(LineSeries::new(points.iter().copied(), &color))
                .map_err(draw_err)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            acc_chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(draw_err)?;
        }
        acc_chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Draws loss and accuracy per epoch ([`history_svg`], 1000 x 420 pixels) and writes the SVG
/// to `path` atomically (temporary file in the same directory, `fsync`, rename). Returns the
/// path written. Give the path an `.svg` extension.
///
/// # Errors
/// [`PlotError::Empty`], [`PlotError::Draw`], or [`PlotError::Io`] naming the file.
pub fn plot_history(history: &[EpochStats], path: impl AsRef<Path>) -> Result<PathBuf, PlotError> {
    let path = path.as_ref();
    let svg = history_svg(history, 1000, 420)?;
    crate::checkpoint::write_atomic(path, svg.as_bytes()).map_err(|(action, source)| {
        PlotError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    })?;
    Ok(path.to_path_buf())
}
