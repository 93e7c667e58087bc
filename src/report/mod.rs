//! Reports people read: Markdown per market (tables, for e-mail and diffs) and self-contained HTML
//! per market plus an index comparing markets (inline SVG charts, each with its table).

pub mod charts;
pub mod html;
pub mod markdown;
