//! The floor of `make bench`: the least any pipeline must do with these exports. One minimal
//! Polars scan per file (Polars' own multi-threaded CSV reader, streaming engine) of exactly the
//! columns clv's loaders read, amounts parsed as numbers and order dates as datetimes, a null
//! count per column and one sum. Nothing is checked, joined or written. Usage: `bench_floor
//! DATA_DIR` (a `clv sample` directory; `FLOOR_EXPLAIN=1` prints the optimized plans, whose
//! `PROJECT k/n COLUMNS` lines show how many columns each scan parses).

use polars::prelude::*;
use std::path::Path;

struct Format {
    dir: &'static str,
    /// Files in `dir` whose names start so.
    prefix: &'static str,
    separator: u8,
    quoting: bool,
    /// Columns parsed as numbers.
    numbers: &'static [&'static str],
    /// Columns kept as text.
    texts: &'static [&'static str],
    /// The order date and its format.
    date: (&'static str, &'static str),
    sum: &'static str,
}

const FORMATS: [Format; 4] = [
    Format {
        dir: "amazon",
        prefix: "orders",
        separator: b'\t',
        quoting: false,
        numbers: &[
            "quantity",
            "item-price",
            "item-tax",
            "shipping-price",
            "item-promotion-discount",
            "ship-promotion-discount",
        ],
        texts: &[
            "amazon-order-id",
            "last-updated-date",
            "order-status",
            "item-status",
            "sales-channel",
            "currency",
            "ship-country",
        ],
        date: ("purchase-date", "%Y-%m-%dT%H:%M:%S%:z"),
        sum: "item-price",
    },
    Format {
        dir: "shopify",
        prefix: "",
        separator: b',',
        quoting: true,
        numbers: &[
            "Subtotal",
            "Shipping",
            "Taxes",
            "Total",
            "Discount Amount",
            "Lineitem quantity",
            "Lineitem price",
            "Refunded Amount",
        ],
        texts: &[
            "Name",
            "Email",
            "Financial Status",
            "Currency",
            "Cancelled at",
            "Billing Country",
            "Shipping Country",
            "Tags",
            "Source",
        ],
        date: ("Created at", "%Y-%m-%d %H:%M:%S %z"),
        sum: "Lineitem price",
    },
    Format {
        dir: "shop",
        prefix: "",
        separator: b',',
        quoting: true,
        numbers: &["order_total", "shipping_total"],
        texts: &[
            "order_id",
            "status",
            "order_currency",
            "customer_id",
            "billing_email",
            "billing_country",
            "shipping_country",
            "refund_items",
        ],
        date: ("order_date", "%Y-%m-%d %H:%M:%S"),
        sum: "order_total",
    },
    // Amazon's shipments report: where its loader finds the buyers.
    Format {
        dir: "amazon",
        prefix: "shipments",
        separator: b'\t',
        quoting: false,
        numbers: &["quantity-shipped"],
        texts: &["amazon-order-id", "buyer-email", "bill-country"],
        date: ("purchase-date", "%Y-%m-%dT%H:%M:%S%:z"),
        sum: "quantity-shipped",
    },
];

/// The scan of one file and the names of the columns it parses.
fn scan(path: &Path, f: &Format) -> PolarsResult<(LazyFrame, Vec<PlSmallStr>)> {
    let mut schema = Schema::default();
    for c in f.numbers {
        schema.with_column((*c).into(), DataType::Float64);
    }
    let reader = LazyCsvReader::new(PlRefPath::new(path.to_str().expect("UTF-8 path")))
        .with_separator(f.separator)
        .with_quote_char(f.quoting.then_some(b'"'))
        .with_infer_schema_length(Some(0)) // every column text unless overridden
        .with_dtype_overwrite(Some(Arc::new(schema)))
        .with_truncate_ragged_lines(true);
    let mut lf = reader.finish()?;
    let names = lf.collect_schema()?;
    let (date, format) = f.date;
    let mut parsed: Vec<PlSmallStr> =
        f.numbers.iter().chain(f.texts).chain([&date]).filter(|c| names.contains(c)).map(|c| (*c).into()).collect();
    // WooCommerce's line items: one column per item slot, as many as the widest order.
    parsed.extend(names.iter_names().filter(|n| n.starts_with("line_item_")).cloned());
    let opts = StrptimeOptions { format: Some(format.into()), strict: false, exact: true, cache: true };
    let cols = parsed.iter().map(|c| match c.as_str() == date {
        true => col(date).str().to_datetime(Some(TimeUnit::Microseconds), None, opts.clone(), lit("raise")),
        false => col(c.clone()),
    });
    Ok((lf.select(cols.collect::<Vec<_>>()), parsed))
}

fn main() -> PolarsResult<()> {
    let data = std::env::args().nth(1).expect("usage: bench_floor DATA_DIR");
    let mut total = 0.0;
    let (mut rows, mut order_rows) = (0, 0);
    for f in &FORMATS {
        let mut files: Vec<_> =
            std::fs::read_dir(Path::new(&data).join(f.dir))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.retain(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(f.prefix)));
        files.sort();
        // Each file reduces to (sum, rows, nulls): files of one format may differ in columns
        // (WooCommerce's `line_item_*` slots). The null count over every parsed column keeps
        // Polars' projection pushdown from pruning all but the summed column from the scans.
        let reduced = files
            .iter()
            .map(|p| {
                let (lf, parsed) = scan(p, f)?;
                let nulls = parsed.iter().map(|c| col(c.clone()).null_count().cast(DataType::Float64));
                let nulls = nulls.reduce(|a, b| a + b).unwrap_or_else(|| lit(0.0));
                Ok(lf.select([
                    col(f.sum).sum().alias(f.sum),
                    len().cast(DataType::Float64).alias("rows"),
                    nulls.alias("nulls"),
                ]))
            })
            .collect::<PolarsResult<Vec<_>>>()?;
        let all = concat(reduced, UnionArgs { parallel: true, rechunk: false, ..Default::default() })?;
        let query = all.select([col(f.sum).sum(), col("rows").sum(), col("nulls").sum()]);
        if std::env::var_os("FLOOR_EXPLAIN").is_some() {
            eprintln!("{}", query.clone().explain(true)?);
        }
        // The streaming engine: faster here than the in-memory one and half of its memory.
        let out = query.collect_with_engine(Engine::Streaming)?.unwrap_single();
        total += out.column(f.sum)?.f64()?.get(0).unwrap_or(0.0);
        let n = out.column("rows")?.f64()?.get(0).unwrap_or(0.0) as u64;
        rows += n;
        if f.prefix != "shipments" {
            order_rows += n;
        }
    }
    println!("{{\"rows\": {rows}, \"order_rows\": {order_rows}, \"sum\": {total:.2}}}");
    Ok(())
}
