//! SVG charts for the report: a line with error bars (best-of-n, score by rank) and bars with
//! error bars (win rates, MT-bench categories). Plain `plotters` SVG: text stays text.

use crate::EvalError;
use plotters::prelude::*;
use std::path::Path;

/// A point with an optional interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub interval: Option<(f64, f64)>,
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::Input {
        path: path.display().to_string(),
        message: format!("plot: {e}"),
    }
}

/// The y range covering every value and interval, with a margin.
fn y_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.1).max(0.05);
    (lo - pad, hi + pad)
}

/// One line of points (x as given, e.g. log2 n) with error bars; `x_label` formats ticks.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[Point],
    x_label: &dyn Fn(&f64) -> String,
) -> Result<(), EvalError> {
    let root = SVGBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let x_max = points.iter().map(|p| p.x).fold(0.0, f64::max) + 0.5;
    let x_min = points
        .iter()
        .map(|p| p.x)
        .fold(f64::INFINITY, f64::min)
        .min(0.0)
        - 0.5;
    let (y0, y1) = y_range(points.iter().flat_map(|p| {
        let (a, b) = p.interval.unwrap_or((p.y, p.y));
        [p.y, a, b]
    }));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(x_min..x_max, y0..y1)
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(x_label)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    chart
        .draw_series(LineSeries::new(points.iter().map(|p| (p.x, p.y)), &BLUE))
        .map_err(|e| plot_err(path, e))?;
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.x, p.y), 3, BLUE.filled())),
        )
        .map_err(|e| plot_err(path, e))?;
    chart
        .draw_series(points.iter().filter_map(|p| {
            p.interval
                .map(|(lo, hi)| ErrorBar::new_vertical(p.x, lo, p.y, hi, BLUE.filled(), 8))
        }))
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))
}

/// Grouped bars: `groups` along x, one bar per series in each, with error bars.
pub fn bar_chart(
    path: &Path,
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[(String, Vec<Point>)],
) -> Result<(), EvalError> {
    let root = SVGBackend::new(path, (760, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let (y0, y1) = y_range(series.iter().flat_map(|(_, pts)| {
        pts.iter().flat_map(|p| {
            let (a, b) = p.interval.unwrap_or((p.y, p.y));
            [p.y, a, b, 0.0]
        })
    }));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5f64..groups.len() as f64 - 0.5, y0..y1)
        .map_err(|e| plot_err(path, e))?;
    let names = groups.to_vec();
    chart
        .configure_mesh()
        .y_desc(y_desc)
        .x_labels(groups.len().max(1))
        .x_label_formatter(&|x: &f64| {
            let x = *x;
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(|e| plot_err(path, e))?;
    let width = 0.8 / series.len().max(1) as f64;
    for (k, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let offset = -0.4 + width * k as f64;
        chart
            .draw_series(points.iter().map(|p| {
                let x0 = p.x + offset;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.9, p.y)], color.filled())
            }))
            .map_err(|e| plot_err(path, e))?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        chart
            .draw_series(points.iter().filter_map(|p| {
                let x = p.x + offset + width * 0.45;
                p.interval
                    .map(|(lo, hi)| ErrorBar::new_vertical(x, lo, p.y, hi, BLACK.filled(), 6))
            }))
            .map_err(|e| plot_err(path, e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))
}
