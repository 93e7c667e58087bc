//! Canonical column names, in one place, so that every stage and every output agrees on them.
//!
//! `ORDER_LINE_COLUMNS` is the public contract of the `orders` table (docs/outputs.md); the
//! `aux` names are working columns that loaders hand to `unify` and that never reach an output.

pub const SOURCE: &str = "source";
pub const ORDER_ID: &str = "order_id";
pub const LINE_NO: &str = "line_no";
pub const CUSTOMER_ID: &str = "customer_id";
pub const ORDERED_AT: &str = "ordered_at";
pub const ORDER_DATE: &str = "order_date";
pub const COUNTRY: &str = "country";
pub const MARKET: &str = "market";
pub const CURRENCY: &str = "currency";
pub const QUANTITY: &str = "quantity";
pub const GROSS: &str = "gross";
pub const DISCOUNT: &str = "discount";
pub const TAX: &str = "tax";
pub const SHIPPING: &str = "shipping";
pub const REFUNDED: &str = "refunded";
pub const NET: &str = "net";
pub const NET_BASE: &str = "net_base";
pub const STATUS: &str = "status";

/// The canonical order-line table, in output order.
pub const ORDER_LINE_COLUMNS: [&str; 18] = [
    SOURCE,
    ORDER_ID,
    LINE_NO,
    CUSTOMER_ID,
    ORDERED_AT,
    ORDER_DATE,
    COUNTRY,
    MARKET,
    CURRENCY,
    QUANTITY,
    GROSS,
    DISCOUNT,
    TAX,
    SHIPPING,
    REFUNDED,
    NET,
    NET_BASE,
    STATUS,
];

/// The columns of the orders table that the analyses and reports read. The rest are needed only
/// in the orders partitions, which are staged first; then the table keeps just these.
pub const ANALYSED_COLUMNS: [&str; 8] =
    [MARKET, CUSTOMER_ID, aux::CUSTOMER, SOURCE, aux::ORDER_KEY, STATUS, NET_BASE, ORDER_DATE];

/// Money columns of the orders table (written as DECIMAL(18,2)).
pub const MONEY_COLUMNS: [&str; 7] = [GROSS, DISCOUNT, TAX, SHIPPING, REFUNDED, NET, NET_BASE];

/// Working columns that loaders produce for `unify` and that are dropped before publishing.
pub mod aux {
    /// Input file the row came from (path as configured).
    pub const FILE: &str = "file";
    /// 1-based physical line of the record's first byte in that file.
    pub const LINE: &str = "line";
    /// Normalised customer key before hashing: `email:<address>` or `<source>:<platform id>`.
    pub const CUSTOMER_KEY: &str = "customer_key";
    /// Whether the line's e-mail or tags match the pipeline's test-order patterns. Decided while
    /// loading, where they are read: matching the cached e-mails in unify read each one's text
    /// at random (8% of a rerun's CPU).
    pub const TEST_ORDER: &str = "test_order";
    pub const SHIP_COUNTRY: &str = "ship_country";
    pub const BILL_COUNTRY: &str = "bill_country";
    /// Amazon `last-updated-date`, used to pick the newest copy of an order across report pulls.
    pub const UPDATED_AT: &str = "updated_at";
    /// Shopify `Source` (web, pos, tiktok, amazon, ...), lowercased.
    pub const CHANNEL: &str = "channel";
    /// The line's order as an integer, unique per (source, order id) within a run (from unify
    /// on): orders are counted in a bit set, not by hashing their ids.
    pub const ORDER_KEY: &str = "order_key";
    /// The line's customer as an integer, the rank of its id among the run's ids (from unify
    /// on): passes over the sorted table tell customers apart without reading id text.
    pub const CUSTOMER: &str = "customer";
}

/// Order statuses of the canonical table.
pub mod status {
    pub const COMPLETED: &str = "completed";
    pub const PENDING: &str = "pending";
    pub const CANCELLED: &str = "cancelled";
    pub const REFUNDED: &str = "refunded";
    pub const PARTIALLY_REFUNDED: &str = "partially_refunded";
}

/// Columns of the `rejects` table.
pub mod rejects {
    pub const FILE: &str = "file";
    pub const LINE: &str = "line";
    pub const REASON: &str = "reason";
    pub const RAW: &str = "raw";
}

/// The market of countries no market lists, and of rows with no usable country.
pub const OTHER_MARKET: &str = "other";
