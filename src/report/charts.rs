//! Inline SVG charts for the HTML report: no scripts, no network, readable when printed. Each
//! function returns one `<figure>`; the caller puts the same numbers in a table beside it.

use std::fmt::Write;

/// Escapes text from the data for HTML (element content and attribute values).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

const W: f64 = 640.0;
const PALETTE: [&str; 6] = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#64748b"];

fn figure(title: &str, height: f64, body: &str) -> String {
    format!(
        "<figure><figcaption>{}</figcaption><svg class=\"chart\" viewBox=\"0 0 {W} {height}\" width=\"{W}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">{body}</svg></figure>\n",
        escape(title),
        escape(title)
    )
}

/// Horizontal bars, one per label.
pub fn bars(title: &str, items: &[(String, f64)], fmt: &dyn Fn(f64) -> String) -> String {
    let max = items.iter().map(|i| i.1.abs()).fold(0.0, f64::max).max(1e-12);
    let (row, left, width) = (26.0, 170.0, W - 170.0 - 90.0);
    let mut body = String::new();
    for (k, (label, v)) in items.iter().enumerate() {
        let y = 8.0 + k as f64 * row;
        let w = (v.abs() / max * width).max(1.0);
        let _ = write!(
            body,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"label\">{}</text><rect x=\"{left}\" y=\"{y}\" width=\"{w:.1}\" height=\"18\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{}\" class=\"value\">{}</text>",
            left - 8.0,
            y + 13.0,
            escape(label),
            PALETTE[0],
            left + w + 6.0,
            y + 13.0,
            escape(&fmt(*v))
        );
    }
    figure(title, 16.0 + items.len() as f64 * row, &body)
}

/// Bars side by side per category, one colour per series, with a legend.
pub fn grouped_bars(
    title: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
    fmt: &dyn Fn(f64) -> String,
) -> String {
    let max = series.iter().flat_map(|s| s.1.iter()).map(|v| v.abs()).fold(0.0, f64::max).max(1e-12);
    let (h, top, bottom) = (260.0, 30.0, 40.0);
    let group = (W - 60.0) / categories.len().max(1) as f64;
    let bar = (group * 0.8) / series.len().max(1) as f64;
    let mut body = String::new();
    for (s, (name, _)) in series.iter().enumerate() {
        let _ = write!(
            body,
            "<rect x=\"{}\" y=\"6\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"16\" class=\"label\">{}</text>",
            60.0 + s as f64 * 160.0,
            PALETTE[s % PALETTE.len()],
            76.0 + s as f64 * 160.0,
            escape(name)
        );
    }
    for (c, cat) in categories.iter().enumerate() {
        let x0 = 40.0 + c as f64 * group + group * 0.1;
        for (s, (_, values)) in series.iter().enumerate() {
            let v = values.get(c).copied().unwrap_or(0.0);
            let bh = v.abs() / max * (h - top - bottom);
            let (x, y) = (x0 + s as f64 * bar, h - bottom - bh);
            let _ = write!(
                body,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"value\">{}</text>",
                bar * 0.9,
                PALETTE[s % PALETTE.len()],
                x + bar * 0.45,
                y - 4.0,
                escape(&fmt(v))
            );
        }
        let _ = write!(
            body,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"label\">{}</text>",
            x0 + group * 0.4,
            h - bottom + 16.0,
            escape(cat)
        );
    }
    figure(title, h, &body)
}

/// A grid of cells shaded by value (0..=1 after dividing by `max`), with the value written in.
pub fn heatmap(
    title: &str,
    rows: &[String],
    cols: &[String],
    values: &[Vec<Option<f64>>],
    fmt: &dyn Fn(f64) -> String,
) -> String {
    let max = values.iter().flatten().flatten().fold(0.0f64, |a, b| a.max(*b)).max(1e-12);
    let (left, top, cell_h) = (90.0, 24.0, 20.0);
    let cell_w = ((W - left - 10.0) / cols.len().max(1) as f64).min(60.0);
    let mut body = String::new();
    for (j, c) in cols.iter().enumerate() {
        let _ = write!(
            body,
            "<text x=\"{:.1}\" y=\"16\" text-anchor=\"middle\" class=\"label\">{}</text>",
            left + (j as f64 + 0.5) * cell_w,
            escape(c)
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + i as f64 * cell_h;
        let _ = write!(
            body,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" class=\"label\">{}</text>",
            left - 6.0,
            y + 14.0,
            escape(r)
        );
        for (j, v) in values[i].iter().enumerate() {
            let Some(v) = v else { continue };
            let t = (v / max).clamp(0.0, 1.0);
            let fill = format!("rgb({:.0},{:.0},{:.0})", 239.0 - t * 202.0, 246.0 - t * 147.0, 255.0 - t * 20.0);
            let ink = if t > 0.55 { "#fff" } else { "#111" };
            let x = left + j as f64 * cell_w;
            let _ = write!(
                body,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{}\" fill=\"{fill}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"cell\" fill=\"{ink}\">{}</text>",
                cell_w - 1.0,
                cell_h - 1.0,
                x + cell_w / 2.0,
                y + 14.0,
                escape(&fmt(*v))
            );
        }
    }
    figure(title, top + rows.len() as f64 * cell_h + 8.0, &body)
}

/// Lines over a shared x axis (e.g. months since acquisition), one per series, with a legend.
pub fn lines(title: &str, series: &[(String, Vec<(f64, f64)>)], x_label: &str, fmt: &dyn Fn(f64) -> String) -> String {
    let pts = series.iter().flat_map(|s| s.1.iter());
    let (xmax, ymax) = pts.fold((1e-12f64, 1e-12f64), |(a, b), (x, y)| (a.max(*x), b.max(*y)));
    let (h, left, top, bottom) = (280.0, 70.0, 40.0, 36.0);
    let (pw, ph) = (W - left - 20.0, h - top - bottom);
    let mut body = format!(
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"axis\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" class=\"axis\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"label\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"label\">{}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"label\">0</text>",
        top + ph,
        left + pw,
        top + ph,
        top + ph,
        left + pw / 2.0,
        h - 6.0,
        escape(x_label),
        left - 6.0,
        top + 4.0,
        escape(&fmt(ymax)),
        left - 6.0,
        top + ph
    );
    for (s, (name, points)) in series.iter().enumerate() {
        let color = PALETTE[s % PALETTE.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", left + x / xmax * pw, top + ph - y / ymax * ph))
            .collect();
        let _ = write!(
            body,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/><rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\" class=\"label\">{}</text>",
            path.join(" "),
            left + (s % 4) as f64 * 140.0,
            6.0 + (s / 4) as f64 * 14.0,
            left + 14.0 + (s % 4) as f64 * 140.0,
            15.0 + (s / 4) as f64 * 14.0,
            escape(name)
        );
    }
    figure(title, h, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_text_is_escaped() {
        let svg = bars("t", &[("<script>alert(1)</script>".into(), 1.0)], &|v| format!("{v}"));
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"));
        assert_eq!(escape("a&b\"'"), "a&amp;b&quot;&#39;");
    }
}
