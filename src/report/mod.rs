//! Reports people read. This report is Markdown per market: orders, customers and revenue
//! per source, and the data-quality accounting (read = kept + dropped + rejected) per source.

pub mod markdown;
