//! The bench's plots as SVG files: send time against size (with the fit
//! line and the paper's points), throughput against size per path (with
//! the paper's), success rate against the interval per size.
//!
//! Hand-written, not `plotters`: this workspace builds offline from the
//! crates already in `~/.cargo/registry`, and no plotting (or SVG or XML)
//! crate is among them. What a bench plot needs is small: axes with
//! ticks and labels, a legend, polylines and markers, a log axis for the
//! intervals, escaped text. A point that cannot be drawn (not finite, or
//! not positive on a log axis) is left off and counted in a note on the
//! plot, never drawn at a made-up place; a plot without any point says
//! so in its middle.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 70.0;
const COLORS: [&str; 12] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#000000", "#aec7e8",
];

/// How a series' points are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    None,
    Circle,
    Square,
    Triangle,
}

/// One series: points joined by a line (or not), with markers (or not).
#[derive(Clone, Debug)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub joined: bool,
    pub dashed: bool,
    pub marker: Marker,
}

impl Line {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Line {
        Line {
            name: name.into(),
            points,
            joined: true,
            dashed: false,
            marker: Marker::Circle,
        }
    }

    pub fn dashed(mut self) -> Line {
        self.dashed = true;
        self
    }

    pub fn markers_only(mut self, marker: Marker) -> Line {
        self.joined = false;
        self.marker = marker;
        self
    }

    pub fn no_markers(mut self) -> Line {
        self.marker = Marker::None;
        self
    }
}

/// One plot.
#[derive(Clone, Debug, Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// A log10 x axis (only positive x can be drawn).
    pub x_log: bool,
    /// A log10 y axis (only positive y can be drawn).
    pub y_log: bool,
    /// A fixed y range instead of one from the data.
    pub y_range: Option<(f64, f64)>,
    pub lines: Vec<Line>,
    /// Lines of text under the plot.
    pub notes: Vec<String>,
}

/// Text for XML: `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A round step near `span / 5`: 1, 2 or 5 times a power of ten.
fn nice_step(span: f64) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / 5.0;
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    p * if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// A tick label: integers as such (with k/M for big round ones), others
/// with at most three decimals.
fn label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 && (v / 1e6).fract() == 0.0 {
        format!("{}M", v / 1e6)
    } else if a >= 1e3 && (v / 1e3).fract() == 0.0 {
        format!("{}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    /// Where `v` goes between `a` and `b` (pixels).
    fn map(&self, v: f64, a: f64, b: f64) -> f64 {
        let (v, lo, hi) = if self.log {
            (v.log10(), self.lo.log10(), self.hi.log10())
        } else {
            (v, self.lo, self.hi)
        };
        a + (v - lo) / (hi - lo) * (b - a)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (
                self.lo.log10().round() as i32,
                self.hi.log10().round() as i32,
            );
            return (a..=b).map(|e| 10f64.powi(e)).collect();
        }
        let step = nice_step(self.hi - self.lo);
        let mut t = (self.lo / step).ceil() * step;
        let mut out = Vec::new();
        while t <= self.hi + step * 1e-9 && out.len() < 50 {
            out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
            t += step;
        }
        out
    }
}

/// The smallest and the largest of `values`, none if there are none.
fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    lo.is_finite().then_some((lo, hi))
}

/// A linear range over `values` from 0 (or below, if any is negative),
/// rounded out to a tick.
fn linear(values: impl Iterator<Item = f64>) -> Option<Axis> {
    let (lo, hi) = extent(values)?;
    let lo = lo.min(0.0);
    let hi = if hi <= lo { lo + 1.0 } else { hi };
    let step = nice_step(hi - lo);
    Some(Axis {
        lo: (lo / step).floor() * step,
        hi: (hi / step).ceil() * step,
        log: false,
    })
}

/// A log range over positive `values`, out to whole decades.
fn logarithmic(values: impl Iterator<Item = f64>) -> Option<Axis> {
    let (lo, hi) = extent(values)?;
    let lo = 10f64.powf(lo.log10().floor());
    let mut hi = 10f64.powf(hi.log10().ceil());
    if hi <= lo {
        hi = lo * 10.0;
    }
    Some(Axis { lo, hi, log: true })
}

impl Chart {
    /// Whether a point can be drawn on this chart's axes.
    fn drawable(&self, &(x, y): &(f64, f64)) -> bool {
        x.is_finite() && y.is_finite() && (!self.x_log || x > 0.0) && (!self.y_log || y > 0.0)
    }

    /// The SVG document.
    pub fn render(&self) -> String {
        let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP);
        let points = || {
            self.lines
                .iter()
                .flat_map(|l| l.points.iter())
                .filter(|p| self.drawable(p))
        };
        let left_off = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter())
            .filter(|p| !self.drawable(p))
            .count();
        let empty = points().next().is_none();
        let fallback = || Axis {
            lo: if self.x_log { 1.0 } else { 0.0 },
            hi: if self.x_log { 10.0 } else { 1.0 },
            log: self.x_log,
        };
        let xa = if self.x_log {
            logarithmic(points().map(|p| p.0))
        } else {
            linear(points().map(|p| p.0))
        }
        .unwrap_or_else(fallback);
        let ya = match self.y_range {
            Some((lo, hi)) => Axis {
                lo,
                hi,
                log: self.y_log,
            },
            None if self.y_log => logarithmic(points().map(|p| p.1)).unwrap_or(Axis {
                lo: 1.0,
                hi: 10.0,
                log: true,
            }),
            None => linear(points().map(|p| p.1)).unwrap_or(Axis {
                lo: 0.0,
                hi: 1.0,
                log: false,
            }),
        };
        let mut notes = self.notes.clone();
        if left_off > 0 {
            notes.push(format!(
                "{left_off} point(s) left off: not finite{}",
                if self.x_log || self.y_log {
                    ", or not positive on a log axis"
                } else {
                    ""
                }
            ));
        }
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{h}" viewBox="0 0 {WIDTH} {h}" font-family="sans-serif" font-size="12">"#,
            h = HEIGHT + 16.0 * notes.len() as f64
        );
        let _ = writeln!(
            s,
            r#"<rect x="0" y="0" width="100%" height="100%" fill="white"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>"#,
            (x0 + x1) / 2.0,
            escape(&self.title)
        );
        // Grid, ticks and their labels.
        for t in xa.ticks() {
            let x = xa.map(t, x0, x1);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{y1}" stroke="#e0e0e0"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                y0 + 16.0,
                escape(&label(t))
            );
        }
        for t in ya.ticks() {
            let y = ya.map(t, y0, y1);
            let _ = writeln!(
                s,
                r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0 - 6.0,
                y + 4.0,
                escape(&label(t))
            );
        }
        let _ = writeln!(
            s,
            r#"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="black"/>"#,
            x1 - x0,
            y0 - y1
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (x0 + x1) / 2.0,
            y0 + 40.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text x="20" y="{:.1}" text-anchor="middle" transform="rotate(-90 20 {:.1})">{}</text>"#,
            (y0 + y1) / 2.0,
            (y0 + y1) / 2.0,
            escape(&self.y_label)
        );
        if empty {
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" text-anchor="middle" fill="#a00000">no measured points to draw</text>"##,
                (x0 + x1) / 2.0,
                (y0 + y1) / 2.0
            );
        }
        // The series, clipped to the plot area.
        let _ = writeln!(
            s,
            r#"<clipPath id="area"><rect x="{x0}" y="{y1}" width="{}" height="{}"/></clipPath><g clip-path="url(#area)">"#,
            x1 - x0,
            y0 - y1
        );
        for (i, line) in self.lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let xy: Vec<(f64, f64)> = line
                .points
                .iter()
                .filter(|p| self.drawable(p))
                .map(|&(x, y)| (xa.map(x, x0, x1), ya.map(y, y0, y1)))
                .collect();
            if line.joined && xy.len() > 1 {
                let pts: Vec<String> = xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{}/>"#,
                    pts.join(" "),
                    if line.dashed {
                        r#" stroke-dasharray="6 4""#
                    } else {
                        ""
                    }
                );
            }
            for &(x, y) in &xy {
                marker(&mut s, line.marker, x, y, color);
            }
        }
        s.push_str("</g>\n");
        // The legend, right of the plot.
        for (i, line) in self.lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let y = y1 + 10.0 + 20.0 * i as f64;
            let lx = x1 + 14.0;
            if line.joined {
                let _ = writeln!(
                    s,
                    r#"<line x1="{lx}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2"{}/>"#,
                    lx + 24.0,
                    if line.dashed {
                        r#" stroke-dasharray="6 4""#
                    } else {
                        ""
                    }
                );
            }
            marker(&mut s, line.marker, lx + 12.0, y, color);
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{:.1}">{}</text>"#,
                lx + 30.0,
                y + 4.0,
                escape(&line.name)
            );
        }
        for (i, n) in notes.iter().enumerate() {
            let _ = writeln!(
                s,
                r##"<text x="10" y="{:.1}" font-size="11" fill="#404040">{}</text>"##,
                HEIGHT + 8.0 + 16.0 * i as f64,
                escape(n)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn marker(s: &mut String, m: Marker, x: f64, y: f64, color: &str) {
    let _ = match m {
        Marker::None => Ok(()),
        Marker::Circle => writeln!(
            s,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{color}"/>"#
        ),
        Marker::Square => writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="7" height="7" fill="none" stroke="{color}" stroke-width="1.5"/>"#,
            x - 3.5,
            y - 3.5
        ),
        Marker::Triangle => writeln!(
            s,
            r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="{color}"/>"#,
            x,
            y - 4.5,
            x - 4.0,
            y + 3.0,
            x + 4.0,
            y + 3.0
        ),
    };
}

/// Whether the positive y values of `lines` spread over more than a factor
/// of 20 (then a log y axis shows them all: an emulator's figures beside
/// the paper's silicon ones).
fn wide(lines: &[Line]) -> bool {
    let ys = || {
        lines
            .iter()
            .flat_map(|l| l.points.iter())
            .map(|p| p.1)
            .filter(|y| y.is_finite() && *y > 0.0)
    };
    match (ys().reduce(f64::min), ys().reduce(f64::max)) {
        (Some(lo), Some(hi)) => hi / lo > 20.0,
        _ => false,
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// `(x, y)` of each row of `rows` with `x_key` and `y_key` (missing or
/// `null`: NaN, which the chart leaves off and counts).
fn points(rows: &[Value], x_key: &str, y_key: &str) -> Vec<(f64, f64)> {
    rows.iter()
        .map(|r| (num(&r[x_key]), num(&r[y_key])))
        .collect()
}

fn rows<'a>(r: &'a Value, key: &str) -> &'a [Value] {
    r[key].as_array().map_or(&[], Vec::as_slice)
}

/// Send time against size: the measured means, the fit, the floors when
/// measured, the paper's.
pub fn send_time_chart(r: &Value) -> Chart {
    let sends = rows(r, "send_time");
    let mut lines = vec![Line::new(
        "measured (mean 1000-2000)",
        points(sends, "size", "mean_ns"),
    )];
    let fit = &r["send_time_fit"];
    let mut notes = Vec::new();
    if let (Some(k), Some(b)) = (fit["ns_per_kb"].as_f64(), fit["intercept_ns"].as_f64()) {
        let f = |x: f64| k * x / 1024.0 + b;
        lines.push(
            Line::new(
                format!("fit: {k:.0} ns/KB + {b:.0} ns"),
                vec![(1024.0, f(1024.0)), (16384.0, f(16384.0))],
            )
            .dashed()
            .no_markers(),
        );
    } else {
        notes.push("no fit (fewer than two measured sizes)".to_string());
    }
    for (key, name) in [
        ("send_excl_signal_ns", "send without its IPI request"),
        ("copy_ns", "one-core copy"),
        ("xcore_copy_ns", "cross-core copy"),
    ] {
        let p = points(sends, "size", key);
        if p.iter().any(|q| q.1.is_finite()) {
            lines.push(Line::new(name, p));
        }
    }
    lines.push(
        Line::new(
            "paper (Table 1)",
            points(rows(r, "paper"), "size", "send_time_ns"),
        )
        .markers_only(Marker::Square),
    );
    notes.push(format!(
        "mint bench, mode {}, accel {}, {}",
        r["mode"].as_str().unwrap_or("?"),
        r["accel"].as_str().unwrap_or("?"),
        r["cpu"].as_str().unwrap_or("?")
    ));
    let y_log = wide(&lines);
    Chart {
        title: "Send processing time per frame".into(),
        x_label: "frame size (bytes)".into(),
        y_label: format!("send time (ns{})", if y_log { ", log scale" } else { "" }),
        y_log,
        lines,
        notes,
        ..Chart::default()
    }
}

/// Throughput against size, one line per path, the floor when measured,
/// the paper's.
pub fn throughput_chart(r: &Value) -> Chart {
    let t = rows(r, "throughput");
    let mut paths: Vec<String> = Vec::new();
    for row in t {
        if let Some(p) = row["path"].as_str()
            && !paths.iter().any(|q| q == p)
        {
            paths.push(p.to_string());
        }
    }
    let mut lines: Vec<Line> = paths
        .iter()
        .map(|p| {
            let pts: Vec<Value> = t
                .iter()
                .filter(|x| x["path"] == p.as_str())
                .cloned()
                .collect();
            let line = Line::new(p.clone(), points(&pts, "size", "gbps"));
            if pts.len() == 1 {
                line.markers_only(Marker::Triangle)
            } else {
                line
            }
        })
        .collect();
    // A Linux target's rows (full-system runs of a plan with a Linux
    // node), dashed beside the mint target's.
    let linux = rows(&r["linux_target"], "throughput");
    for p in &paths {
        let pts: Vec<Value> = linux
            .iter()
            .filter(|x| x["path"] == p.as_str())
            .cloned()
            .collect();
        if !pts.is_empty() {
            lines.push(
                Line::new(format!("Linux target, {p}"), points(&pts, "size", "gbps")).dashed(),
            );
        }
    }
    // One floor per size (a native result repeats it on every path's row).
    let mut floor: Vec<(f64, f64)> = Vec::new();
    for p in points(t, "size", "floor_gbps") {
        if !floor.iter().any(|q| q.0 == p.0) {
            floor.push(p);
        }
    }
    if floor.iter().any(|q| q.1.is_finite()) {
        lines.push(Line::new("SPSC floor", floor).dashed());
    }
    lines.push(
        Line::new("paper (Table 2)", points(rows(r, "paper"), "size", "gbps"))
            .markers_only(Marker::Square),
    );
    if paths.iter().any(|p| p == "e1000") {
        lines.push(
            Line::new("paper: real NIC", vec![(1514.0, 0.92)]).markers_only(Marker::Triangle),
        );
    }
    let y_log = wide(&lines);
    Chart {
        title: "Delivered throughput".into(),
        x_label: "frame size (bytes)".into(),
        y_label: format!("Gbps{}", if y_log { " (log scale)" } else { "" }),
        y_log,
        lines,
        notes: vec![format!(
            "mint bench, mode {}, accel {}: delivered payload bytes over first injection to last delivery",
            r["mode"].as_str().unwrap_or("?"),
            r["accel"].as_str().unwrap_or("?")
        )],
        ..Chart::default()
    }
}

/// Success rate against the interval (log axis), one line per size, and
/// the target's handling time per size where measured.
pub fn success_rate_chart(r: &Value) -> Chart {
    let s = rows(r, "success_rate");
    // One line per size, and per moderation where a run has several
    // (a native run cycles each size under each).
    let mut groups: Vec<(u64, Option<String>)> = Vec::new();
    for x in s {
        if let Some(size) = x["size"].as_u64() {
            let key = (size, x["moderation"].as_str().map(str::to_string));
            if !groups.contains(&key) {
                groups.push(key);
            }
        }
    }
    let several = groups
        .iter()
        .filter_map(|g| g.1.as_ref())
        .any(|m| groups.iter().any(|g| g.1.as_ref().is_some_and(|n| n != m)));
    let mut sizes: Vec<u64> = groups.iter().map(|g| g.0).collect();
    sizes.dedup();
    let mut lines = Vec::new();
    let mut b2b = Vec::new();
    for (size, moderation) in &groups {
        let pts: Vec<Value> = s
            .iter()
            .filter(|x| x["size"] == *size && x["moderation"].as_str() == moderation.as_deref())
            .cloned()
            .collect();
        let name = match (several, moderation) {
            (true, Some(m)) => format!("{size} B, {m}"),
            _ => format!("{size} B"),
        };
        lines.push(Line::new(
            name.clone(),
            points(&pts, "interval_ns", "success_rate"),
        ));
        if let Some(rate) = pts
            .iter()
            .find(|x| x["interval_ns"] == 0)
            .and_then(|x| x["success_rate"].as_f64())
        {
            b2b.push(format!("{name} {:.1} %", rate * 100.0));
        }
    }
    let linux = rows(&r["linux_target"], "success_rate");
    for &size in &sizes {
        let pts: Vec<Value> = linux
            .iter()
            .filter(|x| x["size"] == size)
            .cloned()
            .collect();
        if !pts.is_empty() {
            lines.push(
                Line::new(
                    format!("Linux target, {size} B"),
                    points(&pts, "interval_ns", "success_rate"),
                )
                .dashed(),
            );
        }
    }
    for &size in &sizes {
        if let Some(h) = r["handling_ns"][size.to_string()].as_f64() {
            lines.push(
                Line::new(format!("handling time, {size} B"), vec![(h, 1.0)])
                    .markers_only(Marker::Triangle),
            );
        }
    }
    let mut notes = Vec::new();
    if !b2b.is_empty() {
        // Long lists wrap: one note line per three.
        for (i, chunk) in b2b.chunks(3).enumerate() {
            notes.push(format!(
                "{}{}",
                if i == 0 {
                    "back to back (interval 0, not on the log axis): "
                } else {
                    "    "
                },
                chunk.join(", ")
            ));
        }
    }
    notes.push(format!(
        "mint bench, mode {}, accel {}{}",
        r["mode"].as_str().unwrap_or("?"),
        r["accel"].as_str().unwrap_or("?"),
        r["counts"]["success_rate_cycle_frames"]
            .as_u64()
            .map_or(String::new(), |n| format!("; cycles of {n} frames"))
    ));
    Chart {
        title: "Success rate against the interval between frames".into(),
        x_label: "interval (ns, log scale)".into(),
        y_label: "delivered / sent".into(),
        x_log: true,
        y_range: Some((0.0, 1.05)),
        lines,
        notes,
        ..Chart::default()
    }
}

/// Writes `send_time.svg`, `throughput.svg` and `success_rate.svg` under
/// `dir` from a result object (native or system); returns their paths.
pub fn write_all(result: &Value, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (name, chart) in [
        ("send_time.svg", send_time_chart(result)),
        ("throughput.svg", throughput_chart(result)),
        ("success_rate.svg", success_rate_chart(result)),
    ] {
        let path = dir.join(name);
        let svg = chart.render();
        // Our own writer's output: a malformed file is a bug here.
        check_xml(&svg)
            .map_err(|e| anyhow::anyhow!("{name}: the SVG writer made malformed XML: {e}"))?;
        std::fs::write(&path, svg).with_context(|| format!("cannot write {}", path.display()))?;
        out.push(path);
    }
    Ok(out)
}

/// Checks that `text` is well-formed XML as far as these plots go: one
/// root, every tag closed in order, attributes quoted, entities known.
/// (No XML crate is at hand; every plot is checked before it is written.)
pub fn check_xml(text: &str) -> Result<(), String> {
    let body = text
        .strip_prefix("<?xml")
        .and_then(|r| r.split_once("?>"))
        .map_or(text, |(_, rest)| rest);
    let mut stack: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        check_text(&rest[..open])?;
        let after = &rest[open + 1..];
        let close = after.find('>').ok_or("a tag without '>'")?;
        let tag = &after[..close];
        rest = &after[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, attrs) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':')
        {
            return Err(format!("bad tag name '{name}'"));
        }
        check_attrs(attrs)?;
        if stack.is_empty() {
            roots += 1;
        }
        if !self_closing {
            stack.push(name.to_string());
        }
    }
    check_text(rest)?;
    match (stack.is_empty(), roots) {
        (true, 1) => Ok(()),
        (false, _) => Err(format!("unclosed {stack:?}")),
        (_, n) => Err(format!("{n} root elements")),
    }
}

fn check_text(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        let after = &rest[i + 1..];
        let end = after.find(';').ok_or("'&' without ';'")?;
        if !["amp", "lt", "gt", "quot", "apos"].contains(&&after[..end]) {
            return Err(format!("unknown entity &{};", &after[..end]));
        }
        rest = &after[end + 1..];
    }
    if text.contains('>') {
        return Err("a bare '>' in text".into());
    }
    Ok(())
}

fn check_attrs(attrs: &str) -> Result<(), String> {
    let mut rest = attrs.trim();
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .ok_or(format!("attribute without '=': {rest}"))?;
        if name.trim().is_empty() || name.trim().contains(char::is_whitespace) {
            return Err(format!("bad attribute name '{name}'"));
        }
        let after = after
            .strip_prefix('"')
            .ok_or(format!("unquoted attribute {name}"))?;
        let end = after
            .find('"')
            .ok_or(format!("unterminated attribute {name}"))?;
        check_text(&after[..end])?;
        if after[..end].contains('<') {
            return Err(format!("'<' in attribute {name}"));
        }
        rest = after[end + 1..].trim_start();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every drawn coordinate of circles and polylines, in pixels.
    fn drawn(svg: &str) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        for part in svg.split("<circle ").skip(1) {
            let get = |k: &str| -> f64 {
                let a = part.split(&format!("{k}=\"")).nth(1).unwrap();
                a[..a.find('"').unwrap()].parse().unwrap()
            };
            out.push((get("cx"), get("cy")));
        }
        for part in svg.split("<polyline points=\"").skip(1) {
            for p in part[..part.find('"').unwrap()].split(' ') {
                let (x, y) = p.split_once(',').unwrap();
                out.push((x.parse().unwrap(), y.parse().unwrap()));
            }
        }
        out
    }

    fn in_area(svg: &str) -> bool {
        // The legend's markers sit right of the plot area; the plot's own
        // points are the ones left of it.
        drawn(svg)
            .into_iter()
            .filter(|&(x, _)| x <= WIDTH - RIGHT + 0.5)
            .all(|(x, y)| {
                (LEFT - 0.5..=WIDTH - RIGHT + 0.5).contains(&x)
                    && (TOP - 0.5..=HEIGHT - BOTTOM + 0.5).contains(&y)
            })
    }

    #[test]
    fn a_chart_is_well_formed_and_its_points_inside() {
        let c = Chart {
            title: "a <title> & \"quotes\"".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            lines: vec![
                Line::new("one", vec![(1024.0, 100.0), (16384.0, 2000.0)]),
                Line::new("two & more", vec![(1514.0, 5.0)]).markers_only(Marker::Square),
            ],
            ..Chart::default()
        };
        let svg = c.render();
        check_xml(&svg).unwrap();
        assert!(svg.contains("a &lt;title&gt; &amp; &quot;quotes&quot;"));
        assert!(svg.contains("two &amp; more"));
        assert!(in_area(&svg), "{svg}");
        assert!(!drawn(&svg).is_empty());
    }

    #[test]
    fn nan_and_empty_series_give_a_note_not_a_crash() {
        let c = Chart {
            title: "t".into(),
            lines: vec![
                Line::new("nan", vec![(f64::NAN, 1.0), (2.0, f64::INFINITY)]),
                Line::new("empty", vec![]),
            ],
            ..Chart::default()
        };
        let svg = c.render();
        check_xml(&svg).unwrap();
        assert!(svg.contains("no measured points to draw"));
        assert!(svg.contains("2 point(s) left off"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn a_log_axis_leaves_off_zero_and_keeps_the_rest_inside() {
        let c = Chart {
            x_log: true,
            y_range: Some((0.0, 1.05)),
            lines: vec![Line::new(
                "1514 B",
                vec![(0.0, 0.2), (1000.0, 0.5), (200_000.0, 1.0)],
            )],
            ..Chart::default()
        };
        let svg = c.render();
        check_xml(&svg).unwrap();
        assert!(svg.contains("1 point(s) left off"));
        assert!(in_area(&svg));
        assert!(svg.contains(">1k<") && svg.contains(">1M<"), "{svg}");
    }

    #[test]
    fn the_checker_refuses_broken_xml() {
        assert!(check_xml("<svg><g></svg>").is_err());
        assert!(check_xml("<svg a=b></svg>").is_err());
        assert!(check_xml("<svg>&nope;</svg>").is_err());
        assert!(check_xml("<svg/><svg/>").is_err());
        assert!(check_xml("<svg x=\"1\"><g/></svg>").is_ok());
    }

    #[test]
    fn charts_from_a_result_object() {
        let r = json!({
            "mode": "system", "accel": "tcg", "cpu": "x",
            "send_time": [{"size": 1024, "mean_ns": 900.0}, {"size": 16384, "mean_ns": null}],
            "send_time_fit": {"ns_per_kb": 10.0, "intercept_ns": 5.0, "r2": 1.0},
            "throughput": [{"size": 1024, "path": "raw-checked", "gbps": 1.0},
                           {"size": 1514, "path": "e1000", "gbps": 0.4}],
            "success_rate": [{"size": 1514, "interval_ns": 0, "success_rate": 0.1},
                             {"size": 1514, "interval_ns": 1000, "success_rate": 1.0}],
            "handling_ns": {"1514": 800.0},
            "paper": [{"size": 1024, "send_time_ns": 175.0, "gbps": 4.6}],
        });
        for c in [
            send_time_chart(&r),
            throughput_chart(&r),
            success_rate_chart(&r),
        ] {
            let svg = c.render();
            check_xml(&svg).unwrap();
            assert!(in_area(&svg), "{svg}");
        }
        // Several moderations: one line per size and moderation.
        let m = json!({"success_rate": [
            {"size": 1514, "interval_ns": 250, "success_rate": 0.5, "moderation": "none"},
            {"size": 1514, "interval_ns": 250, "success_rate": 0.7, "moderation": "napi"},
        ]});
        let c = success_rate_chart(&m);
        assert_eq!(c.lines.len(), 2);
        assert_eq!(c.lines[1].name, "1514 B, napi");
        // A Linux target's rows: dashed lines of their own, named so.
        let l = json!({
            "throughput": [{"size": 1024, "path": "driver", "gbps": 2.0}],
            "success_rate": [{"size": 1514, "interval_ns": 1000, "success_rate": 1.0}],
            "linux_target": {
                "throughput": [{"size": 1024, "path": "driver", "gbps": 0.5}],
                "success_rate": [{"size": 1514, "interval_ns": 1000, "success_rate": 0.25}],
            },
        });
        let t = throughput_chart(&l);
        let linux = t.lines.iter().find(|x| x.name == "Linux target, driver");
        assert!(linux.is_some_and(|x| x.dashed && x.points == vec![(1024.0, 0.5)]));
        let c = success_rate_chart(&l);
        let linux = c.lines.iter().find(|x| x.name == "Linux target, 1514 B");
        assert!(linux.is_some_and(|x| x.dashed && x.points == vec![(1000.0, 0.25)]));
        // A native result without success rates still gives a plot.
        let svg = success_rate_chart(&json!({"success_rate": null})).render();
        check_xml(&svg).unwrap();
        assert!(svg.contains("no measured points"));
    }

    #[test]
    fn nice_ticks() {
        assert_eq!(nice_step(10.0), 2.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(label(10000.0), "10k");
        assert_eq!(label(5000.0), "5k");
        assert_eq!(label(0.01), "0.01");
        assert_eq!(label(0.25), "0.25");
        assert_eq!(label(2_000_000.0), "2M");
    }
}
