//! `clv sample`: synthetic exports in the three real formats, from a seeded simulation of customers
//! (Poisson purchasing with a per-purchase dropout chance, the BG/NBD story), carrying the quirks
//! of real files: overlapping Amazon pulls with changed statuses and two header variants, duplicate
//! identical Amazon rows, pending lines without prices, multi-row Shopify orders with first-row-only
//! fields, refunds, cancellations, test orders, tax-inclusive EU orders, cross-channel copies,
//! CRLF, quoted multi-line notes, mixed-case e-mails, customers on two platforms, several currencies.

use crate::error::{Context, Result};
use chrono::{Duration, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The simulated period: fixed, so a seed always writes the same bytes.
pub const START: (i32, u32, u32) = (2024, 1, 1);
pub const END: (i32, u32, u32) = (2025, 12, 31);

fn day(d: (i32, u32, u32)) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.0, d.1, d.2).expect("valid date")
}

/// SplitMix64: small, fast, and stable across platforms and crate versions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.f64() * n as f64) as usize
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    pub fn exp(&mut self, rate: f64) -> f64 {
        -(1.0 - self.f64()).ln() / rate
    }
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (1.0 - self.f64(), self.f64());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    /// Gamma(shape, scale) by Marsaglia and Tsang.
    pub fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        if shape < 1.0 {
            let u = self.f64().max(1e-300);
            return self.gamma(shape + 1.0, scale) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.f64();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v * scale;
            }
        }
    }
    pub fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a, 1.0);
        x / (x + self.gamma(b, 1.0))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Platform {
    Amazon,
    Shopify,
    Shop,
}

struct Country {
    code: &'static str,
    currency: &'static str,
    marketplace: &'static str,
    /// VAT/GST included in shelf prices (EU, UK, JP, AU) or sales tax added (US, CA).
    vat: f64,
    inclusive: bool,
    weight: f64,
}

const COUNTRIES: &[Country] = &[
    Country { code: "US", currency: "USD", marketplace: "Amazon.com", vat: 0.08, inclusive: false, weight: 34.0 },
    Country { code: "GB", currency: "GBP", marketplace: "Amazon.co.uk", vat: 0.20, inclusive: true, weight: 15.0 },
    Country { code: "DE", currency: "EUR", marketplace: "Amazon.de", vat: 0.19, inclusive: true, weight: 13.0 },
    Country { code: "FR", currency: "EUR", marketplace: "Amazon.fr", vat: 0.20, inclusive: true, weight: 9.0 },
    Country { code: "IT", currency: "EUR", marketplace: "Amazon.it", vat: 0.22, inclusive: true, weight: 6.0 },
    Country { code: "ES", currency: "EUR", marketplace: "Amazon.es", vat: 0.21, inclusive: true, weight: 5.0 },
    Country { code: "NL", currency: "EUR", marketplace: "Amazon.nl", vat: 0.21, inclusive: true, weight: 4.0 },
    Country { code: "CA", currency: "CAD", marketplace: "Amazon.ca", vat: 0.05, inclusive: false, weight: 6.0 },
    Country { code: "AU", currency: "AUD", marketplace: "Amazon.com.au", vat: 0.10, inclusive: true, weight: 5.0 },
    Country { code: "JP", currency: "JPY", marketplace: "Amazon.co.jp", vat: 0.10, inclusive: true, weight: 3.0 },
];

/// Base-currency (USD) value of one unit of each currency, around which weekly rates wobble.
const USD_PER: &[(&str, f64)] = &[("EUR", 1.08), ("GBP", 1.27), ("CAD", 0.74), ("AUD", 0.66), ("JPY", 0.0068)];

const PRODUCTS: &[(&str, &str, f64)] = &[
    ("Trendy Home 12\" x 18\" Pillow Insert", "th1218", 7.49),
    ("Trendy Home 20\" x 20\" Pillow Insert (4 pack)", "th20p4", 25.99),
    ("Linen Throw, Oatmeal", "lt-oat", 39.00),
    ("Ceramic Mug \"Morning\" 350 ml", "mug-350", 14.50),
    ("Wool Blanket, Forest Green", "wb-green", 89.00),
    ("Scented Candle, Fig & Cedar", "cn-fig", 19.90),
    ("Cotton Napkins, set of 4", "nap-4", 16.00),
];

const FIRST: &[&str] = &[
    "anna", "ben", "carla", "david", "emma", "felix", "giulia", "hans", "ines", "jack", "kenji", "lea", "marco",
    "nora", "oscar", "paula",
];
const LAST: &[&str] =
    &["smith", "muller", "rossi", "martin", "garcia", "jansen", "brown", "tanaka", "dubois", "weber", "lopez", "clark"];
const DOMAINS: &[&str] = &["gmail.com", "outlook.com", "web.de", "orange.fr", "libero.it", "yahoo.co.uk", "icloud.com"];

struct Customer {
    id: usize,
    email: String,
    country: &'static Country,
    relay: String,
}

struct Item {
    product: usize,
    qty: u32,
    /// Unit price in the order currency (tax-inclusive where the country's prices are).
    unit: f64,
}

struct Purchase {
    customer: usize,
    at: NaiveDateTime,
    platform: Platform,
    items: Vec<Item>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn simulate(n: usize, rng: &mut Rng) -> (Vec<Customer>, Vec<Purchase>) {
    let (start, end) = (day(START), day(END));
    let span = (end - start).num_days() as f64;
    let total_weight: f64 = COUNTRIES.iter().map(|c| c.weight).sum();
    let mut customers = Vec::with_capacity(n);
    let mut purchases = Vec::new();
    for id in 0..n {
        let mut w = rng.f64() * total_weight;
        let country = COUNTRIES
            .iter()
            .find(|c| {
                w -= c.weight;
                w < 0.0
            })
            .unwrap_or(&COUNTRIES[0]);
        let platforms = match rng.f64() {
            x if x < 0.35 => vec![Platform::Amazon],
            x if x < 0.65 => vec![Platform::Shopify],
            x if x < 0.83 => vec![Platform::Shop],
            x if x < 0.95 => vec![Platform::Shopify, Platform::Shop],
            _ => vec![Platform::Amazon, Platform::Shopify],
        };
        let email = format!(
            "{}.{}{}@{}",
            FIRST[rng.below(FIRST.len())],
            LAST[rng.below(LAST.len())],
            id,
            DOMAINS[rng.below(DOMAINS.len())]
        );
        let relay = format!("{:016x}@marketplace.amazon.com", rng.next_u64());
        // BG/NBD story: purchase rate ~ Gamma, dropout after each purchase ~ Beta.
        let rate = rng.gamma(0.9, 1.0 / 70.0);
        let dropout = rng.beta(1.0, 3.0);
        let spend = rng.gamma(4.0, 12.0) + 10.0;
        let mut t = rng.f64() * span;
        loop {
            let at = start.and_hms_opt(0, 0, 0).expect("midnight")
                + Duration::seconds((t * 86_400.0) as i64 + rng.below(86_400) as i64 / 4);
            let platform = platforms[rng.below(platforms.len())];
            let mut items = Vec::new();
            let mut budget = spend * (0.6 + 0.8 * rng.f64());
            while items.is_empty() || (budget > 0.0 && items.len() < 4) {
                let product = rng.below(PRODUCTS.len());
                let qty = 1 + (rng.chance(0.2) as u32) + (rng.chance(0.05) as u32) * 2;
                let usd = PRODUCTS[product].2;
                let local = usd / USD_PER.iter().find(|(c, _)| *c == country.currency).map_or(1.0, |(_, r)| *r);
                let unit = if country.currency == "JPY" { (local).round() } else { round2(local) };
                budget -= usd * qty as f64;
                items.push(Item { product, qty, unit });
            }
            purchases.push(Purchase { customer: id, at, platform, items });
            if rng.chance(dropout) {
                break;
            }
            t += rng.exp(rate.max(1e-4));
            if t >= span {
                break;
            }
        }
        customers.push(Customer { id, email, country, relay });
    }
    purchases.sort_by_key(|p| (p.at, p.customer));
    (customers, purchases)
}

/// Order-export data lines (all platforms, both pulls) per simulated customer, measured on
/// seeds 1 and 2 at 100,000 customers (records, so a quoted multi-line note counts once);
/// `clv sample --lines` sizes by it.
pub const LINES_PER_CUSTOMER: f64 = 6.55;

pub fn customers_for_lines(lines: usize) -> usize {
    ((lines as f64 / LINES_PER_CUSTOMER).round() as usize).max(1)
}

/// How the order exports are cut into files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    /// One file per pull, as a seller who downloads everything now and then has.
    Pull,
    /// One file per platform and month of the orders (`<stem>_<YYYY-MM>.<ext>`).
    Monthly,
    /// One file per platform and day of the orders (`<stem>_<YYYY-MM-DD>.<ext>`), as a scheduled
    /// daily report makes.
    Daily,
}

/// Writes the sample files under `out`, the order exports cut as `files_by` says; returns their
/// paths.
pub fn write(out: &Path, customers: usize, seed: u64, files_by: Files) -> Result<Vec<PathBuf>> {
    let mut rng = Rng::new(seed);
    let (people, purchases) = simulate(customers, &mut rng);
    let mut files = Vec::new();
    let mut put = |rel: &str, text: String| -> Result<()> {
        let path = out.join(rel);
        std::fs::create_dir_all(path.parent().expect("has parent")).ctx(|| format!("creating {}", path.display()))?;
        std::fs::write(&path, text).ctx(|| format!("writing {}", path.display()))?;
        files.push(path);
        Ok(())
    };
    let amazon: Vec<&Purchase> = purchases.iter().filter(|p| p.platform == Platform::Amazon).collect();
    let (a1, a2, ship) = amazon_files(&amazon, &people, files_by, &mut rng);
    for (name, text) in a1.files("orders", "txt") {
        // The full pull's name is the day it was taken; monthly and daily reports are named by theirs.
        let name = if files_by == Files::Pull { "orders_2025-12-01.txt".into() } else { name };
        put(&format!("amazon/{name}"), text)?;
    }
    // The second, overlapping pull: beside daily reports its name says what it is (the last
    // daily report has its date).
    let repull = if files_by == Files::Daily { "orders_2025-12-31_pull.txt" } else { "orders_2025-12-31.txt" };
    put(&format!("amazon/{repull}"), a2)?;
    put("amazon/shipments_2025.txt", ship)?;
    let shopify: Vec<&Purchase> = purchases.iter().filter(|p| p.platform == Platform::Shopify).collect();
    let (s1, s2) = shopify_files(&shopify, &amazon, &people, files_by, &mut rng);
    for (name, text) in s1.files("orders_export", "csv") {
        let name = if files_by == Files::Pull { "orders_export_1.csv".into() } else { name };
        put(&format!("shopify/{name}"), text)?;
    }
    put("shopify/orders_export_2.csv", s2)?;
    let shop: Vec<&Purchase> = purchases.iter().filter(|p| p.platform == Platform::Shop).collect();
    for (name, text) in webtoffee_file(&shop, &people, files_by, &mut rng).files("webtoffee_orders", "csv") {
        let name = if files_by == Files::Pull { "webtoffee_orders_2025.csv".into() } else { name };
        put(&format!("shop/{name}"), text)?;
    }
    put("fx_rates.csv", fx_file(&mut rng))?;
    put("marketing_spend.csv", spend_file(&mut rng))?;
    Ok(files)
}

/// An export's data rows: all in one file, or one file per month or day of the orders they
/// hold, as a seller who downloads a report every month or day has (what incremental nightly
/// runs see).
struct Parts {
    header: String,
    files_by: Files,
    parts: std::collections::BTreeMap<String, String>,
}

impl Parts {
    fn new(header: String, files_by: Files) -> Self {
        Parts { header, files_by, parts: Default::default() }
    }

    fn push(&mut self, date: NaiveDate, row: &str) {
        let key = match self.files_by {
            Files::Pull => String::new(),
            Files::Monthly => date.format("%Y-%m").to_string(),
            Files::Daily => date.format("%Y-%m-%d").to_string(),
        };
        self.parts.entry(key).or_insert_with(|| self.header.clone()).push_str(row);
    }

    /// `(name, text)` per file: `<stem>.<ext>`, or `<stem>_<month or day>.<ext>`.
    fn files(self, stem: &str, ext: &str) -> Vec<(String, String)> {
        if self.parts.is_empty() {
            return vec![(format!("{stem}.{ext}"), self.header)];
        }
        let name = |k: &str| if k.is_empty() { format!("{stem}.{ext}") } else { format!("{stem}_{k}.{ext}") };
        self.parts.into_iter().map(|(k, text)| (name(&k), text)).collect()
    }
}

/// Monthly spend per market and channel in the market's currency; `shop` is the web shop's own
/// promotions (a channel named like a load stage, so its customers are attributed to it).
fn spend_file(rng: &mut Rng) -> String {
    let mut s = String::from("month,market,channel,spend,currency\n");
    let mut month = day(START);
    while month <= day(END) {
        for (market, currency, scale) in [("us", "USD", 1.0), ("uk", "GBP", 0.4), ("eu", "EUR", 0.8)] {
            for (channel, base) in [("google", 900.0), ("meta", 600.0), ("shop", 250.0)] {
                let amount = base * scale * (0.7 + 0.6 * rng.f64());
                let _ = writeln!(s, "{},{market},{channel},{amount:.2},{currency}", month.format("%Y-%m"));
            }
        }
        month = month.checked_add_months(chrono::Months::new(1)).expect("in range");
    }
    s
}

fn fx_file(rng: &mut Rng) -> String {
    let mut s = String::from("date,currency,rate\n");
    let mut d = day(START) - Duration::days(7);
    while d <= day(END) {
        for (c, r) in USD_PER {
            let rate = r * (1.0 + 0.02 * rng.normal());
            let _ = writeln!(s, "{d},{c},{}", if *c == "JPY" { format!("{rate:.6}") } else { format!("{rate:.4}") });
        }
        d += Duration::days(7);
    }
    s
}

const AMAZON_A: &str = "amazon-order-id\tmerchant-order-id\tpurchase-date\tlast-updated-date\torder-status\tfulfillment-channel\tsales-channel\torder-channel\turl\tship-service-level\tproduct-name\tsku\tasin\titem-status\tquantity\tcurrency\titem-price\titem-tax\tshipping-price\tshipping-tax\tgift-wrap-price\tgift-wrap-tax\titem-promotion-discount\tship-promotion-discount\tship-city\tship-state\tship-postal-code\tship-country\tpromotion-ids\tis-business-order\tpurchase-order-number\tprice-designation";
const AMAZON_SHIPMENTS: &str = "amazon-order-id\tmerchant-order-id\tshipment-id\tshipment-item-id\tamazon-order-item-id\tmerchant-order-item-id\tpurchase-date\tpayments-date\tshipment-date\treporting-date\tbuyer-email\tbuyer-name\tbuyer-phone-number\tsku\tproduct-name\tquantity-shipped\tcurrency\titem-price\titem-tax\tshipping-price\tshipping-tax\tgift-wrap-price\tgift-wrap-tax\tship-service-level\trecipient-name\tship-address-1\tship-address-2\tship-address-3\tship-city\tship-state\tship-postal-code\tship-country\tship-phone-number\tbill-address-1\tbill-address-2\tbill-address-3\tbill-city\tbill-state\tbill-postal-code\tbill-country\titem-promotion-discount\tship-promotion-discount\tcarrier\ttracking-number\testimated-arrival-date\tfulfillment-center-id\tfulfillment-channel\tsales-channel";

fn iso(t: NaiveDateTime) -> String {
    format!("{}+00:00", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// Two overlapping All Orders pulls (header variants A and C) and one Fulfilled Shipments report.
fn amazon_files(orders: &[&Purchase], people: &[Customer], files_by: Files, rng: &mut Rng) -> (Parts, String, String) {
    let end = day(END).and_hms_opt(23, 59, 59).expect("valid");
    let cut1 = day(END) - Duration::days(30);
    let from2 = day(END) - Duration::days(60);
    let mut f1 = Parts::new(format!("{AMAZON_A}\r\n"), files_by);
    let mut f2 = format!("{AMAZON_A}\tis-iba\r\n");
    let mut ship = format!("{AMAZON_SHIPMENTS}\n");
    for (n, p) in orders.iter().enumerate() {
        let c = &people[p.customer];
        let id = format!("{:03}-{:07}-{:07}", 111 + n % 3, 1_000_000 + n * 7 % 9_000_000, 5_000_000 + n);
        let age = (end - p.at).num_days();
        let cancelled = rng.chance(0.04);
        let returned = !cancelled && rng.chance(0.03);
        // The later pull sees recent orders again, some still pending in the earlier one.
        let pending_in_1 = age < 45 && rng.chance(0.5);
        let pending_in_2 = age < 2;
        let fba = !rng.chance(0.1);
        for pull in [1, 2] {
            let date = p.at.date();
            if (pull == 1 && date > cut1) || (pull == 2 && date < from2) {
                continue;
            }
            let pending = if pull == 1 { pending_in_1 } else { pending_in_2 };
            let updated = p.at + Duration::hours(if pull == 1 && pending { 2 } else { 30 });
            let status = if cancelled {
                "Cancelled"
            } else if pending {
                "Pending"
            } else if returned {
                "Shipped - Returned to Seller"
            } else {
                "Shipped"
            };
            for item in &p.items {
                let (name, sku, _) = PRODUCTS[item.product];
                // Two units are sometimes two identical rows: legitimate, not a duplicate.
                let rows = if item.qty == 2 && rng.chance(0.3) { vec![1, 1] } else { vec![item.qty] };
                for q in rows {
                    let total = round2(item.unit * q as f64);
                    let tax = if c.country.inclusive {
                        total * c.country.vat / (1.0 + c.country.vat)
                    } else {
                        total * c.country.vat
                    };
                    let promo = if rng.chance(0.1) { format!("-{:.2}", round2(total * 0.1)) } else { String::new() };
                    let (currency, price, tax) = if pending || (cancelled && rng.chance(0.5)) {
                        (if pending { c.country.currency } else { "" }, String::new(), String::new())
                    } else {
                        (c.country.currency, format!("{total:.2}"), format!("{:.2}", round2(tax)))
                    };
                    let item_status = if cancelled {
                        "Cancelled"
                    } else if pending {
                        "Unshipped"
                    } else {
                        "Shipped"
                    };
                    let mut row = String::new();
                    let _ = write!(
                        row,
                        "{id}\t{id}\t{}\t{}\t{status}\t{}\t{}\t\t\tStandard\t{name}\t{sku}\tB0{:08}\t{item_status}\t{q}\t{currency}\t{price}\t{tax}\t\t\t\t\t{promo}\t\tCITY\t\t{:05}\t{}\t\tfalse\t\t",
                        iso(p.at),
                        iso(updated),
                        if fba { "Amazon" } else { "Merchant" },
                        c.country.marketplace,
                        item.product * 7919,
                        c.id * 31 % 100_000,
                        c.country.code,
                    );
                    if pull == 1 {
                        row.push_str("\r\n");
                        f1.push(date, &row);
                    } else {
                        f2.push_str(&row);
                        f2.push_str("\tfalse\r\n");
                    }
                }
            }
        }
        if fba && !cancelled && p.at.date() <= day(END) - Duration::days(2) {
            for item in &p.items {
                let (name, sku, _) = PRODUCTS[item.product];
                let mut cells = vec![String::new(); 48];
                cells[0] = id.clone();
                cells[6] = iso(p.at);
                cells[10] = c.relay.clone();
                cells[11] = "Buyer".into();
                cells[13] = sku.into();
                cells[14] = name.into();
                cells[15] = item.qty.to_string();
                cells[16] = c.country.currency.into();
                cells[31] = c.country.code.into();
                cells[39] = c.country.code.into();
                cells[47] = c.country.marketplace.into();
                let _ = writeln!(ship, "{}", cells.join("\t"));
            }
        }
    }
    (f1, f2, ship)
}

const SHOPIFY_HEADER: &str = "Name,Email,Financial Status,Paid at,Fulfillment Status,Fulfilled at,Accepts Marketing,Currency,Subtotal,Shipping,Taxes,Total,Discount Code,Discount Amount,Shipping Method,Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem compare at price,Lineitem sku,Lineitem requires shipping,Lineitem taxable,Lineitem fulfillment status,Billing Name,Billing Street,Billing Address1,Billing Address2,Billing Company,Billing City,Billing Zip,Billing Province,Billing Country,Billing Phone,Shipping Name,Shipping Street,Shipping Address1,Shipping Address2,Shipping Company,Shipping City,Shipping Zip,Shipping Province,Shipping Country,Shipping Phone,Notes,Note Attributes,Cancelled at,Payment Method,Payment Reference,Refunded Amount,Vendor,Outstanding Balance,Employee,Location,Device ID,Id,Tags,Risk Level,Source,Lineitem discount,Tax 1 Name,Tax 1 Value,Tax 2 Name,Tax 2 Value,Tax 3 Name,Tax 3 Value,Tax 4 Name,Tax 4 Value,Tax 5 Name,Tax 5 Value,Phone,Receipt Number,Duties,Billing Province Name,Shipping Province Name,Payment ID,Payment Terms Name,Next Payment Due At,Payment References";

use crate::publish::csv_cell;

fn mixed_case(email: &str, rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => email.to_uppercase(),
        1 => {
            let mut c = email.chars();
            c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
        }
        _ => email.to_string(),
    }
}

/// A shop in New York time: offsets change with DST inside one file.
fn shop_local(t: NaiveDateTime, zone: Tz) -> String {
    zone.from_utc_datetime(&t).format("%Y-%m-%d %H:%M:%S %z").to_string()
}

fn shopify_files(
    orders: &[&Purchase],
    amazon: &[&Purchase],
    people: &[Customer],
    files_by: Files,
    rng: &mut Rng,
) -> (Parts, String) {
    let zone: Tz = chrono_tz::America::New_York;
    let cut1 = day(END) - Duration::days(20);
    let from2 = day(END) - Duration::days(45);
    let mut rows: Vec<(NaiveDate, String)> = Vec::new();
    let mut number = 1000;
    let mut emit = |p: &Purchase, email: &str, source: &str, tags: &str, rng: &mut Rng| {
        number += 1;
        let c = &people[p.customer];
        let sub: f64 = p.items.iter().map(|i| round2(i.unit * i.qty as f64)).sum();
        let discount = if rng.chance(0.15) { round2(sub * 0.1) } else { 0.0 };
        let sub = round2(sub - discount);
        let shipping = if sub > 60.0 { 0.0 } else { 4.90 };
        let (taxes, total) = if c.country.inclusive {
            (round2((sub + shipping) * c.country.vat / (1.0 + c.country.vat)), round2(sub + shipping))
        } else {
            let t = round2((sub + shipping) * c.country.vat);
            (t, round2(sub + shipping + t))
        };
        let roll = rng.f64();
        let (financial, refunded, cancelled) = match roll {
            x if x < 0.04 => ("refunded", total, ""),
            x if x < 0.08 => ("partially_refunded", round2(total * 0.3), ""),
            x if x < 0.11 => ("voided", 0.0, "yes"),
            x if x < 0.14 => ("pending", 0.0, ""),
            _ => ("paid", 0.0, ""),
        };
        let created = shop_local(p.at, zone);
        let cancelled_at =
            if cancelled.is_empty() { String::new() } else { shop_local(p.at + Duration::hours(3), zone) };
        let note = if rng.chance(0.1) { "Please leave at the door,\n\"back\" entrance" } else { "" };
        for (k, item) in p.items.iter().enumerate() {
            let (name, sku, _) = PRODUCTS[item.product];
            let mut cells = vec![String::new(); 79];
            cells[0] = format!("#{number}");
            cells[1] = email.to_string();
            cells[15] = created.clone();
            cells[16] = item.qty.to_string();
            cells[17] = name.into();
            cells[18] = format!("{:.2}", item.unit);
            cells[20] = sku.into();
            if k == 0 {
                cells[2] = financial.into();
                cells[7] = c.country.currency.into();
                cells[8] = format!("{sub:.2}");
                cells[9] = format!("{shipping:.2}");
                cells[10] = format!("{taxes:.2}");
                cells[11] = format!("{total:.2}");
                cells[13] = format!("{discount:.2}");
                cells[30] = format!("'{:05}", c.id * 37 % 100_000);
                cells[32] = c.country.code.into();
                cells[42] = if rng.chance(0.05) { String::new() } else { c.country.code.into() };
                cells[44] = note.into();
                cells[46] = cancelled_at.clone();
                cells[49] = format!("{refunded:.2}");
                cells[55] = (4_000_000_000u64 + number as u64).to_string();
                cells[56] = tags.into();
                cells[58] = source.into();
            }
            let line: Vec<String> = cells.iter().map(|s| csv_cell(s)).collect();
            rows.push((p.at.date(), line.join(",")));
        }
    };
    for p in orders {
        let email = mixed_case(&people[p.customer].email, rng);
        emit(p, &email, "web", "", rng);
        if rng.chance(0.02) {
            emit(p, "test@shop-owner.com", "web", "test", rng);
        }
    }
    // Amazon orders synced into Shopify by an app: copies of the Amazon export.
    let synced: Vec<&&Purchase> = amazon.iter().filter(|_| rng.chance(0.05)).collect();
    for p in synced {
        let email = format!("{}@marketplace.amazon.com", people[p.customer].relay.split('@').next().unwrap_or("x"));
        emit(p, &email, "amazon", "Amazon", rng);
    }
    let mut f1 = Parts::new(format!("{SHOPIFY_HEADER}\n"), files_by);
    let mut f2 = format!("{SHOPIFY_HEADER}\r\n");
    rows.sort_by_key(|r| r.0);
    // Orders of one Name must stay together: rows were pushed order by order; a stable sort by
    // date keeps them adjacent because they share the date.
    for (date, line) in &rows {
        if *date <= cut1 {
            f1.push(*date, &format!("{line}\n"));
        }
        if *date >= from2 {
            f2.push_str(&line.replace('\n', "\r\n"));
            f2.push_str("\r\n");
        }
    }
    (f1, f2)
}

const WEBTOFFEE_BASE: &str = "order_id,order_number,order_date,paid_date,status,shipping_total,shipping_tax_total,fee_total,fee_tax_total,tax_total,cart_discount,order_discount,discount_total,order_total,order_subtotal,order_key,order_currency,payment_method,payment_method_title,transaction_id,customer_ip_address,customer_user_agent,shipping_method,customer_id,customer_user,customer_email,billing_first_name,billing_last_name,billing_company,billing_email,billing_phone,billing_address_1,billing_address_2,billing_postcode,billing_city,billing_state,billing_country,shipping_first_name,shipping_last_name,shipping_company,shipping_phone,shipping_address_1,shipping_address_2,shipping_postcode,shipping_city,shipping_state,shipping_country,customer_note,wt_import_key,tax_items,shipping_items,fee_items,coupon_items,refund_items,order_notes,download_permissions";

fn webtoffee_file(orders: &[&Purchase], people: &[Customer], files_by: Files, rng: &mut Rng) -> Parts {
    let zone: Tz = chrono_tz::Europe::Berlin;
    let base: Vec<&str> = WEBTOFFEE_BASE.split(',').collect();
    let max_items = orders.iter().map(|p| p.items.len()).max().unwrap_or(1);
    let mut header: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    header.extend((1..=max_items).map(|k| format!("line_item_{k}")));
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = Parts::new(header.iter().map(|h| quote(h)).collect::<Vec<_>>().join(",") + "\n", files_by);
    for (n, p) in orders.iter().enumerate() {
        let c = &people[p.customer];
        let local = zone.from_utc_datetime(&p.at).naive_local();
        let mut cells = vec![String::new(); header.len()];
        let col = |name: &str| base.iter().position(|b| *b == name).expect("known column");
        let status = match rng.f64() {
            x if x < 0.05 => "cancelled",
            x if x < 0.08 => "refunded",
            x if x < 0.11 => "processing",
            x if x < 0.13 => "on-hold",
            _ => "completed",
        };
        // The shop sells in EUR everywhere; prices shown without tax.
        let eur_per_local =
            USD_PER.iter().find(|(k, _)| *k == c.country.currency).map_or(1.0 / 1.08, |(_, r)| r / 1.08);
        let mut merch = 0.0;
        for (k, item) in p.items.iter().enumerate() {
            let (name, sku, _) = PRODUCTS[item.product];
            let unit = round2(item.unit * eur_per_local / if c.country.inclusive { 1.0 + c.country.vat } else { 1.0 });
            let sub_total = round2(unit * item.qty as f64);
            let total = if rng.chance(0.1) { round2(sub_total * 0.9) } else { sub_total };
            merch += total;
            cells[base.len() + k] = format!(
                "name:{name}|product_id:{}|sku:{sku}|quantity:{}|total:{total:.2}|sub_total:{sub_total:.2}|tax:{:.2}",
                100 + item.product,
                item.qty,
                round2(total * 0.19)
            );
        }
        let shipping = 5.95;
        let tax = round2((merch + shipping) * 0.19);
        let total = round2(merch + shipping + tax);
        cells[col("order_id")] = (20_000 + n).to_string();
        cells[col("order_number")] = (20_000 + n).to_string();
        cells[col("order_date")] = local.format("%Y-%m-%d %H:%M:%S").to_string();
        cells[col("status")] = status.into();
        cells[col("shipping_total")] = format!("{shipping:.2}");
        cells[col("tax_total")] = format!("{tax:.2}");
        cells[col("order_total")] = format!("{total:.2}");
        cells[col("order_subtotal")] = format!("{merch:.2}");
        cells[col("order_currency")] = "EUR".into();
        let guest = rng.chance(0.4);
        cells[col("customer_id")] = if guest { "0".into() } else { (500 + c.id).to_string() };
        cells[col("billing_email")] = mixed_case(&c.email, rng);
        cells[col("billing_country")] = c.country.code.into();
        cells[col("shipping_country")] = c.country.code.into();
        if status == "refunded" {
            cells[col("refund_items")] = format!(
                "amount:{total:.2}|reason:Damaged|date:{}",
                (local + Duration::days(9)).format("%Y-%m-%d %H:%M:%S")
            );
        } else if rng.chance(0.04) {
            cells[col("refund_items")] = format!(
                "amount:{:.2}|reason:Partial|date:{}",
                round2(total * 0.25),
                (local + Duration::days(5)).format("%Y-%m-%d %H:%M:%S")
            );
        }
        out.push(local.date(), &(cells.iter().map(|s| quote(s)).collect::<Vec<_>>().join(",") + "\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_and_beta_have_the_right_means() {
        let mut rng = Rng::new(42);
        let n = 20_000;
        let g: f64 = (0..n).map(|_| rng.gamma(0.9, 2.0)).sum::<f64>() / n as f64;
        assert!((g - 1.8).abs() < 0.06, "Gamma(0.9, 2) mean {g}");
        let b: f64 = (0..n).map(|_| rng.beta(1.0, 3.0)).sum::<f64>() / n as f64;
        assert!((b - 0.25).abs() < 0.01, "Beta(1, 3) mean {b}");
    }

    #[test]
    fn same_seed_same_files() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let fa = write(a.path(), 30, 9, Files::Pull).unwrap();
        write(b.path(), 30, 9, Files::Pull).unwrap();
        for f in fa {
            let rel = f.strip_prefix(a.path()).unwrap();
            assert_eq!(std::fs::read(&f).unwrap(), std::fs::read(b.path().join(rel)).unwrap(), "{}", rel.display());
        }
    }

    /// Daily files hold the monthly files' rows, each file one day's orders (by the date its
    /// name gives), each with the header.
    #[test]
    fn daily_files_cut_the_same_rows_by_day() {
        let (monthly, daily) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // The overlapping Amazon pull is its own file in both layouts: left out.
        let rows = |files: &[PathBuf], dir: &str, stem: &str, repull: &str| -> (usize, Vec<String>) {
            let mut all = Vec::new();
            let mut count = 0;
            for f in files.iter().filter(|f| f.parent().unwrap().ends_with(dir)) {
                let name = f.file_name().unwrap().to_str().unwrap();
                if !name.starts_with(stem) || name == repull {
                    continue;
                }
                let text = std::fs::read_to_string(f).unwrap();
                let mut lines = text.lines();
                assert!(lines.next().unwrap().starts_with(if dir == "amazon" { "amazon-order-id" } else { "" }));
                count += 1;
                all.extend(lines.map(str::to_string));
            }
            all.sort();
            (count, all)
        };
        let m = write(monthly.path(), 200, 5, Files::Monthly).unwrap();
        let d = write(daily.path(), 200, 5, Files::Daily).unwrap();
        let (months, monthly_rows) = rows(&m, "amazon", "orders_", "orders_2025-12-31.txt");
        let (days, daily_rows) = rows(&d, "amazon", "orders_", "orders_2025-12-31_pull.txt");
        assert!(days > 4 * months && daily_rows == monthly_rows && !daily_rows.is_empty(), "{months} {days}");
        let (_, monthly_rows) = rows(&m, "shopify", "orders_export_", "orders_export_2.csv");
        let (_, daily_rows) = rows(&d, "shopify", "orders_export_", "orders_export_2.csv");
        assert!(daily_rows == monthly_rows);
        for f in d.iter().filter(|f| f.parent().unwrap().ends_with("amazon")) {
            let name = f.file_name().unwrap().to_str().unwrap();
            let Some(day) = name.strip_prefix("orders_").and_then(|n| n.strip_suffix(".txt")).filter(|n| n.len() == 10)
            else {
                continue;
            };
            let text = std::fs::read_to_string(f).unwrap();
            // purchase-date, third column: the file's day (the sample's times are UTC).
            assert!(text.lines().skip(1).all(|l| l.split('\t').nth(2).unwrap().starts_with(day)), "{name}");
        }
    }
}
