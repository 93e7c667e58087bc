//! Text -> values, the same way for every source: amounts (decimal points, decimal commas, thousands
//! separators, leading apostrophes), timestamps (with or without offset, in a configured zone) and
//! statuses (each platform's words -> the canonical five). Plain functions, used inside Polars UDFs.

use crate::schema::status;
use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{DateTime, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// Parses an amount. With `decimal_comma`, `57,10` and `1.234,56` are read European style while a
/// plain `3.5` still reads as 3.5 (files mix both). Without it, a comma is only accepted as a
/// thousands separator (`1,234.50`), so `57,10` is an error rather than 5710.
pub fn amount(raw: &str, decimal_comma: bool) -> Option<f64> {
    if let Some(v) = plain_decimal(raw) {
        return Some(v);
    }
    let s = raw.trim().trim_start_matches('\'').trim();
    let (negative, s) = match s.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        Some(inner) => (true, inner.trim()),
        None => (false, s),
    };
    let s = s.trim_matches(|c: char| matches!(c, '$' | '€' | '£' | '¥' | '\u{a0}' | ' '));
    if s.is_empty() {
        return None;
    }
    let cleaned: std::borrow::Cow<str> = if s.contains(',') {
        if decimal_comma {
            s.chars()
                .filter(|c| !matches!(c, '.' | ' ' | '\u{a0}' | '\''))
                .map(|c| if c == ',' { '.' } else { c })
                .collect::<String>()
                .into()
        } else if is_thousands_grouped(s) {
            s.replace(',', "").into()
        } else {
            return None;
        }
    } else {
        s.into()
    };
    let v: f64 = cleaned.parse().ok()?;
    v.is_finite().then_some(if negative { -v } else { v })
}

/// `[-]digits[.digits]`, the form nearly every export writes, read without the general parser: a
/// whole-number mantissa of at most 2^53 divided by an exact power of ten is rounded once, so it
/// is the same number `str::parse` returns. Anything else is `None` (left to the general path).
fn plain_decimal(raw: &str) -> Option<f64> {
    const POWERS: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
    let bytes = raw.as_bytes();
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    if digits.len() > POWERS.len() {
        return None;
    }
    let (mut mantissa, mut decimals, mut seen_digit) = (0u64, None, false);
    for (i, &c) in digits.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                seen_digit = true;
            }
            b'.' if decimals.is_none() => decimals = Some(digits.len() - i - 1),
            _ => return None,
        }
    }
    if !seen_digit || mantissa > 1 << 53 {
        return None;
    }
    let v = mantissa as f64 / POWERS[decimals.unwrap_or(0)];
    Some(if negative { -v } else { v })
}

/// `1,234` / `-12,345,678.90`: groups of three after the first comma, before any decimal point.
fn is_thousands_grouped(s: &str) -> bool {
    let int = s.split('.').next().unwrap_or("");
    let int = int.trim_start_matches(['-', '+']);
    let mut groups = int.split(',');
    let first = groups.next().unwrap_or("");
    !first.is_empty()
        && first.len() <= 3
        && first.bytes().all(|b| b.is_ascii_digit())
        && groups.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))
}

/// Timestamp formats tried in order; RFC 3339 is always tried first. Each format is compiled to
/// chrono's items once: `parse_from_str` re-reads the format string for every value.
#[derive(Debug, Clone)]
pub struct Timestamps {
    formats: Vec<Format>,
    zone: Tz,
    /// The first format's shape when it is one [`Timestamps::quick`] reads by hand.
    quick: Option<Quick>,
}

/// `%Y-%m-%d %H:%M:%S`, with ` %z` (Shopify) or without (WooCommerce): the shapes of most
/// timestamps read. chrono's general parser took ~100 ns for one.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Quick {
    Local,
    WithOffset,
}

#[derive(Debug, Clone)]
struct Format {
    /// `None` for a format chrono cannot read: it matches nothing (as `parse_from_str` would).
    items: Option<Vec<Item<'static>>>,
    /// The format carries a UTC offset (`%z`), so the zone is not needed.
    offset: bool,
}

/// ISO 8601 shapes accepted when a generic source gives no `date_format`.
pub const ISO_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f %z",
    "%Y-%m-%d %H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
];

impl Timestamps {
    /// `explicit` (the stage's `date_format`) wins over the source's defaults.
    pub fn new(explicit: Option<&str>, defaults: &[&str], zone: Tz) -> Self {
        let formats: Vec<&str> = match explicit {
            Some(f) => vec![f],
            None => defaults.to_vec(),
        };
        let compile = |f: &str| Format {
            items: StrftimeItems::new(f).parse_to_owned().ok(),
            offset: f.contains("%z") || f.contains("%:z") || f.contains("%#z"),
        };
        let quick = match formats.first() {
            Some(&"%Y-%m-%d %H:%M:%S") => Some(Quick::Local),
            Some(&"%Y-%m-%d %H:%M:%S %z") => Some(Quick::WithOffset),
            _ => None,
        };
        Timestamps { formats: formats.into_iter().map(compile).collect(), zone, quick }
    }

    /// Microseconds since the epoch, UTC.
    pub fn parse(&self, raw: &str) -> Option<i64> {
        let s = raw.trim();
        self.quick.and_then(|q| self.quick(s, q)).or_else(|| self.parse_general(s))
    }

    /// RFC 3339, then the formats in order.
    fn parse_general(&self, s: &str) -> Option<i64> {
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Some(t.timestamp_micros());
        }
        self.formats.iter().find_map(|f| self.parse_with(s, f))
    }

    /// `s` in the first format's shape, read by hand: exactly `YYYY-MM-DD HH:MM:SS`, then a
    /// space and `±HHMM` for [`Quick::WithOffset`]. RFC 3339 cannot read such a text (no `T`
    /// with a zone, no colon in the offset), so the first format is what would read it; `None`
    /// for anything else, a valid value chrono reads differently included (a leap second, an
    /// offset of a day or more), which then goes the general way.
    fn quick(&self, s: &str, shape: Quick) -> Option<i64> {
        let b = s.as_bytes();
        let len = if shape == Quick::WithOffset { 25 } else { 19 };
        let separators = [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')];
        if b.len() != len || separators.iter().any(|&(i, c)| b[i] != c) {
            return None;
        }
        let number = |from: usize, to: usize| -> Option<u32> {
            b[from..to].iter().try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
        };
        let date = chrono::NaiveDate::from_ymd_opt(number(0, 4)? as i32, number(5, 7)?, number(8, 10)?)?;
        let naive = date.and_hms_opt(number(11, 13)?, number(14, 16)?, number(17, 19)?)?;
        if shape == Quick::Local {
            return Some(localize(self.zone, naive).timestamp_micros());
        }
        let sign = match (b[19], b[20]) {
            (b' ', b'+') => 1,
            (b' ', b'-') => -1,
            _ => return None,
        };
        let (hours, minutes) = (number(21, 23)?, number(23, 25)?);
        if hours > 23 || minutes > 59 {
            return None;
        }
        let east = sign * i64::from(hours * 3600 + minutes * 60);
        Some(naive.and_utc().timestamp_micros() - east * 1_000_000)
    }

    /// As chrono's `DateTime::parse_from_str` (with an offset) or `NaiveDateTime::parse_from_str`
    /// then `NaiveDate::parse_from_str` at midnight (without), from the compiled items.
    fn parse_with(&self, s: &str, f: &Format) -> Option<i64> {
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, s, f.items.as_ref()?.iter()).ok()?;
        if f.offset {
            return parsed.to_datetime().ok().map(|t| t.timestamp_micros());
        }
        let naive = parsed
            .to_naive_datetime_with_offset(0)
            .ok()
            .or_else(|| parsed.to_naive_date().ok().and_then(|d| d.and_hms_opt(0, 0, 0)))?;
        Some(localize(self.zone, naive).timestamp_micros())
    }
}

/// Local wall time -> instant. Ambiguous times (DST fall-back) take the earlier instant; times in
/// a DST gap (spring-forward) are read one hour later, as clocks showed them.
pub fn localize(zone: Tz, naive: NaiveDateTime) -> DateTime<Tz> {
    zone.from_local_datetime(&naive)
        .earliest()
        .or_else(|| zone.from_local_datetime(&(naive + chrono::Duration::hours(1))).earliest())
        .unwrap_or_else(|| zone.from_utc_datetime(&naive))
}

/// Platform status words -> canonical status; `None` for words this tool does not know.
pub fn status(raw: &str) -> Option<&'static str> {
    let s = raw.trim().to_lowercase().replace(['-', ' '], "_");
    Some(match s.as_str() {
        "completed"
        | "complete"
        | "paid"
        | "shipped"
        | "delivered"
        | "fulfilled"
        | "processing"
        | "closed"
        | "success"
        | "succeeded"
        | "shipped___delivered_to_buyer"
        | "unshipped"
        | "partiallyshipped"
        | "partially_shipped"
        | "invoiceunconfirmed"
        | "shipping" => status::COMPLETED,
        "pending"
        | "on_hold"
        | "onhold"
        | "authorized"
        | "unpaid"
        | "partially_paid"
        | "open"
        | "pendingavailability"
        | "pending_payment"
        | "awaiting_payment" => status::PENDING,
        "cancelled" | "canceled" | "voided" | "void" | "failed" | "expired" | "declined" | "trash" => status::CANCELLED,
        "refunded" | "returned" | "shipped___returned_to_seller" | "shipped___rejected_by_buyer" => status::REFUNDED,
        "partially_refunded" | "partiallyrefunded" => status::PARTIALLY_REFUNDED,
        _ => return None,
    })
}

/// A country as written -> its code as the loaders keep it: trimmed, upper case (names and
/// codes are told apart later, by `countries`).
pub fn country(raw: &str) -> String {
    raw.trim().to_uppercase()
}

/// `e-mail` -> the identity key: trimmed, lower-cased; `None` if it is not an address.
pub fn email(raw: &str) -> Option<String> {
    normalised_email(String::new(), raw)
}

/// The customer key of an e-mail address: `email:<normalised address>`, or `None` if unusable.
/// Built in one string: keys are made once per order.
pub fn email_key(raw: &str) -> Option<String> {
    normalised_email("email:".to_string(), raw)
}

/// `prefix` followed by `raw` trimmed and lower-cased, if that is an address.
fn normalised_email(mut prefix: String, raw: &str) -> Option<String> {
    let (start, t) = (prefix.len(), raw.trim());
    if t.is_ascii() {
        prefix.push_str(t);
        prefix[start..].make_ascii_lowercase();
    } else {
        prefix.push_str(&t.to_lowercase());
    }
    let e = &prefix[start..];
    (e.len() >= 3 && e.contains('@') && !e.starts_with('@') && !e.ends_with('@')).then_some(prefix)
}

/// A `*`-wildcard pattern (whole string), for test-order patterns. Compiled once: it is tried on
/// every order, and searching for a middle part built a substring searcher on every call.
pub struct Wildcard {
    /// No `*`: the text must equal the pattern.
    exact: Option<String>,
    first: String,
    middles: Vec<memchr::memmem::Finder<'static>>,
    last: String,
}

impl Wildcard {
    pub fn new(pattern: &str) -> Wildcard {
        let Some((first, after)) = pattern.split_once('*') else {
            return Wildcard {
                exact: Some(pattern.to_string()),
                first: String::new(),
                middles: vec![],
                last: String::new(),
            };
        };
        let (middle, last) = after.rsplit_once('*').unwrap_or(("", after));
        let middles =
            middle.split('*').filter(|m| !m.is_empty()).map(|m| memchr::memmem::Finder::new(m).into_owned()).collect();
        Wildcard { exact: None, first: first.to_string(), middles, last: last.to_string() }
    }

    pub fn matches(&self, text: &str) -> bool {
        let (text, first, last) = (text.as_bytes(), self.first.as_bytes(), self.last.as_bytes());
        if let Some(exact) = &self.exact {
            return text.len() == exact.len() && starts_with(text, exact.as_bytes());
        }
        if text.len() < first.len() + last.len() || !starts_with(text, first) || !ends_with(text, last) {
            return false;
        }
        let mut rest = &text[first.len()..text.len() - last.len()];
        for mid in &self.middles {
            match mid.find(rest) {
                Some(i) => rest = &rest[i + mid.needle().len()..],
                None => return false,
            }
        }
        true
    }
}

/// `text` starts with `part`, compared in a byte loop: the parts are a few bytes and most texts
/// differ at the first one, where a `memcmp` call per pattern and line was 4% of a full run.
fn starts_with(text: &[u8], part: &[u8]) -> bool {
    text.len() >= part.len() && text.iter().zip(part).all(|(a, b)| a == b)
}

/// [`starts_with`] from the end.
fn ends_with(text: &[u8], part: &[u8]) -> bool {
    text.len() >= part.len() && text.iter().rev().zip(part.iter().rev()).all(|(a, b)| a == b)
}

/// The pipeline's test-order patterns, compiled: an order is a test when its e-mail (trimmed,
/// lower-cased) or one of its comma-separated tags matches one.
pub struct TestPatterns {
    emails: Vec<Wildcard>,
    tags: Vec<Wildcard>,
}

impl TestPatterns {
    pub fn new(tests: &crate::config::TestOrders) -> TestPatterns {
        let compile = |patterns: &[String]| patterns.iter().map(|p| Wildcard::new(p)).collect();
        TestPatterns { emails: compile(&tests.emails), tags: compile(&tests.tags) }
    }

    pub fn is_test(&self, email: Option<&str>, tags: Option<&str>) -> bool {
        let email = email.unwrap_or_default().trim();
        // Addresses are nearly always lower case already: no copy for those.
        let email = match email.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
            true => std::borrow::Cow::Owned(email.to_lowercase()),
            false => std::borrow::Cow::Borrowed(email),
        };
        let by_email = !email.is_empty() && self.emails.iter().any(|p| p.matches(&email));
        by_email || tags.unwrap_or_default().split(',').any(|t| self.tags.iter().any(|p| p.matches(t.trim())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path returns exactly what the general parser does, or leaves the text to it.
    #[test]
    fn plain_decimals_read_as_str_parse_does() {
        let mut texts: Vec<String> = [
            "0",
            "-0",
            "5.",
            ".5",
            "-.5",
            ".",
            "-",
            "",
            "1.2.3",
            "+5",
            "1e3",
            "12.345678901234",
            "9007199254740993",
            "900719925474099.3",
            "0.1",
            "-0.30",
        ]
        .map(String::from)
        .to_vec();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = (x % 10u64.pow(1 + (x >> 60) as u32 % 16)).to_string();
            let point = (x >> 8) as usize % (digits.len() + 2);
            let mut t =
                if point <= digits.len() { format!("{}.{}", &digits[..point], &digits[point..]) } else { digits };
            if x & 1 == 1 {
                t.insert(0, '-');
            }
            texts.push(t);
        }
        let mut fast = 0;
        for t in &texts {
            if let Some(v) = plain_decimal(t) {
                fast += 1;
                let general: f64 = t.parse().expect("a plain decimal parses");
                assert_eq!(v.to_bits(), general.to_bits(), "{t}");
            }
        }
        assert!(fast > texts.len() / 2, "the fast path took only {fast} texts");
        for t in [".", "-", "", "1.2.3", "+5", "1e3", "9007199254740993"] {
            assert_eq!(plain_decimal(t), None, "{t}");
        }
    }

    #[test]
    fn amounts() {
        assert_eq!(amount("103.96", false), Some(103.96));
        assert_eq!(amount("-6.5", false), Some(-6.5));
        assert_eq!(amount("'75.00", false), Some(75.0));
        assert_eq!(amount("1,234.50", false), Some(1234.5));
        assert_eq!(amount("57,10", false), None, "a decimal comma needs decimal_comma: true");
        assert_eq!(amount("57,10", true), Some(57.1));
        assert_eq!(amount("3.5", true), Some(3.5), "dots still read as decimals in a decimal-comma file");
        assert_eq!(amount("1.234,56", true), Some(1234.56));
        assert_eq!(amount("(12.00)", false), Some(-12.0));
        assert_eq!(amount("$ 9.99", false), Some(9.99));
        assert_eq!(amount("", false), None);
        assert_eq!(amount("abc", false), None);
        assert_eq!(amount("NaN", false), None);
    }

    #[test]
    fn timestamps_with_offsets() {
        let t = Timestamps::new(None, &["%Y-%m-%d %H:%M:%S %z"], Tz::UTC);
        // 2020-02-18T05:05:21Z
        assert_eq!(t.parse("2020-02-18T05:05:21+00:00"), Some(1_582_002_321_000_000));
        // Shopify: shop-local with offset; 04:32:31 -0500 is 09:32:31 UTC.
        assert_eq!(t.parse("2022-01-11 04:32:31 -0500"), Some(1_641_893_551_000_000));
        assert_eq!(t.parse("yesterday"), None);
    }

    #[test]
    fn naive_timestamps_take_the_configured_zone() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let t = Timestamps::new(None, &["%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M:%S"], berlin);
        // 10:22:31 in Berlin in winter (UTC+1) is 09:22:31 UTC.
        assert_eq!(t.parse("2024-01-05 10:22:31"), Some(1_704_446_551_000_000));
        // Unpadded US date: 6 September 2016 06:29 CEST (UTC+2) = 04:29 UTC.
        assert_eq!(t.parse("9/6/2016 6:29:00"), Some(1_473_136_140_000_000));
        let d = Timestamps::new(Some("%Y/%m/%d"), &[], Tz::UTC);
        assert_eq!(d.parse("2020/05/24"), Some(1_590_278_400_000_000));
        let cdnow = Timestamps::new(Some("%Y%m%d"), &[], Tz::UTC);
        assert_eq!(cdnow.parse("19970101"), Some(852_076_800_000_000));
    }

    /// The compiled formats read every value as chrono's `parse_from_str` does.
    #[test]
    fn compiled_formats_agree_with_parse_from_str() {
        let zone: Tz = "America/New_York".parse().unwrap();
        let formats =
            ["%Y-%m-%d %H:%M:%S %z", "%d/%m/%Y %H:%M", "%Y%m%d", "%m/%d/%Y", "%Y-%m-%d %H:%M:%S%.f", "%Q bad"];
        let values = [
            "2022-01-11 04:32:31 -0500",
            "11/01/2022 04:32",
            "19970101",
            "1/6/2016",
            "2024-03-10 02:30:00.250",
            "2024-02-30 10:00:00",
            "20240101 extra",
            "",
        ];
        for f in formats {
            let ts = Timestamps::new(Some(f), &[], zone);
            for v in values {
                let old = if f.contains("%z") {
                    DateTime::parse_from_str(v, f).ok().map(|t| t.timestamp_micros())
                } else {
                    NaiveDateTime::parse_from_str(v, f)
                        .ok()
                        .or_else(|| chrono::NaiveDate::parse_from_str(v, f).ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
                        .map(|n| localize(zone, n).timestamp_micros())
                };
                let old = DateTime::parse_from_rfc3339(v).ok().map(|t| t.timestamp_micros()).or(old);
                assert_eq!(ts.parse(v), old, "{v:?} as {f:?}");
            }
        }
    }

    proptest::proptest! {
        /// Texts of the quick shapes (any digits, so impossible dates and times too, and now and
        /// then a wrong separator or sign) read as the general path reads them.
        #[test]
        fn quick_shapes_read_as_the_general_path_does(
            digits in proptest::collection::vec(0u8..10, 18),
            plausible in proptest::bool::ANY,
            separator in proptest::sample::select(vec![' ', 'T', '-', ':', '+', 'x']),
            at in 0usize..8,
            sign in proptest::sample::select(vec!['+', '-', ' ', 'Z']),
            offset in proptest::bool::ANY,
            zone in proptest::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York"]),
        ) {
            let d: Vec<char> = digits.iter().map(|&v| char::from(b'0' + v)).collect();
            // Plausible: a month, day, hour, minute and second in range, as exports have.
            let two = |i: usize, max: u8| -> String {
                let v = if plausible { (digits[i] * 10 + digits[i + 1]) % max } else { digits[i] * 10 + digits[i + 1] };
                format!("{v:02}")
            };
            let mut text: Vec<char> = format!(
                "2{}{}{}-{}-{} {}:{}:{}",
                d[0], d[1], d[2], two(4, 12).replace("00", "01"), two(6, 28).replace("00", "01"),
                two(8, 24), two(10, 60), two(12, 60)
            )
            .chars()
            .collect();
            if offset {
                text.extend(format!(" {sign}{}{}{}{}", d[14], d[15], d[16], d[17]).chars());
            }
            if !plausible {
                let positions = [4, 7, 10, 13, 16, 19, 2, 0];
                if let Some(c) = text.get_mut(positions[at]) {
                    *c = separator;
                }
            }
            let text: String = text.into_iter().collect();
            let zone: Tz = zone.parse().unwrap();
            for first in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S %z"] {
                let t = Timestamps::new(None, &[first, "%Y-%m-%d %H:%M:%S%.f %z", "%m/%d/%Y %H:%M"], zone);
                proptest::prop_assert!(t.quick.is_some());
                proptest::prop_assert_eq!(t.parse(&text), t.parse_general(text.trim()), "{:?} as {}", text, first);
            }
        }
    }

    /// Only a first format of a quick shape turns the quick path on.
    #[test]
    fn quick_shapes_only_as_the_first_format() {
        let us = Timestamps::new(None, &["%Y-%d-%m %H:%M:%S", "%Y-%m-%d %H:%M:%S"], Tz::UTC);
        assert_eq!(us.quick, None);
        // Read day first: 5 January, not 1 May.
        assert_eq!(us.parse("2024-05-01 00:00:00"), Some(1_704_412_800_000_000));
        let shop = Timestamps::new(None, &["%Y-%m-%d %H:%M:%S %z"], Tz::UTC);
        assert_eq!(shop.quick, Some(Quick::WithOffset));
        assert_eq!(shop.parse(" 2022-01-11 04:32:31 -0500 "), Some(1_641_893_551_000_000));
        assert_eq!(shop.quick("2022-01-11 04:32:31 +2400", Quick::WithOffset), None, "a day's offset: chrono's call");
        assert_eq!(shop.quick("2016-12-31 23:59:60 +0000", Quick::WithOffset), None, "a leap second: chrono's call");
    }

    #[test]
    fn dst_gap_and_overlap() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let t = Timestamps::new(None, &["%Y-%m-%d %H:%M:%S"], berlin);
        // 02:30 does not exist on 2024-03-31 in Berlin: read as 03:30 CEST = 01:30 UTC.
        assert_eq!(t.parse("2024-03-31 02:30:00"), Some(1_711_848_600_000_000));
        // 02:30 happens twice on 2024-10-27: the first (CEST, 00:30 UTC).
        assert_eq!(t.parse("2024-10-27 02:30:00"), Some(1_729_989_000_000_000));
    }

    #[test]
    fn statuses() {
        assert_eq!(status("Shipped - Delivered to Buyer"), Some(status::COMPLETED));
        assert_eq!(status("Canceled"), Some(status::CANCELLED));
        assert_eq!(status("Shipped - Returned to Seller"), Some(status::REFUNDED));
        assert_eq!(status("partially_refunded"), Some(status::PARTIALLY_REFUNDED));
        assert_eq!(status("on-hold"), Some(status::PENDING));
        assert_eq!(status("frobnicated"), None);
    }

    fn wildcard(pattern: &str, text: &str) -> bool {
        Wildcard::new(pattern).matches(text)
    }

    #[test]
    fn emails_and_wildcards() {
        assert_eq!(email("  Jane.Doe@Example.COM "), Some("jane.doe@example.com".into()));
        assert_eq!(email("n/a"), None);
        assert!(wildcard("test@*", "test@shop.com"));
        assert!(wildcard("*@example.com", "a@example.com"));
        assert!(wildcard("*+test@*", "ann+test@x.io"));
        assert!(!wildcard("test@*", "contest@shop.com"));
        assert!(!wildcard("*@example.com", "a@example.com.au"));
        assert!(wildcard("a*b*c", "axxbyyc") && !wildcard("a*b*c", "acb") && wildcard("a**c", "ac"));
        assert!(!wildcard("ab*ba", "aba"), "the ends may not overlap");
        assert!(wildcard("*", "") && wildcard("", "") && !wildcard("", "x") && !wildcard("x", "xy"));
        assert!(wildcard("test", "test") && !wildcard("test", "tesx") && !wildcard("test", "xest"));
        assert!(!wildcard("ab*", "ax") && !wildcard("*ab", "xb") && wildcard("ab*yz", "abyz"));
    }

    proptest::proptest! {
        /// E-mails and their keys as `trim().to_lowercase()` and a `format!` made them, on any
        /// text: ASCII, letters with special lower cases (a final sigma, a dotted capital I),
        /// line breaks and spaces of other scripts at either end, and the `@` rules.
        #[test]
        fn emails_and_keys_equal_the_plain_definitions(
            raw in "[ \u{3000}\t\r\n\u{85}\u{a0}]{0,2}[a-zA-Z@.ΣΑİß\u{0130}é]{0,8}[ \u{3000}\u{85}\u{a0}\n]{0,2}"
        ) {
            let plain = raw.trim().to_lowercase();
            let plain = (plain.len() >= 3 && plain.contains('@') && !plain.starts_with('@') && !plain.ends_with('@'))
                .then_some(plain);
            proptest::prop_assert_eq!(email(&raw), plain.clone());
            proptest::prop_assert_eq!(email_key(&raw), plain.map(|e| format!("email:{e}")));
        }
    }

    #[test]
    fn test_orders_by_email_or_any_tag() {
        let tests = TestPatterns::new(&crate::config::TestOrders::default());
        assert!(tests.is_test(Some(" Test@Shop.com "), None), "trimmed and lower-cased");
        assert!(tests.is_test(Some("ann+test@x.io"), Some("vip")));
        assert!(tests.is_test(None, Some("vip, test ,b2b")), "any tag, trimmed");
        assert!(!tests.is_test(Some("ann@x.io"), Some("vip,testing")));
        assert!(!tests.is_test(None, None) && !tests.is_test(Some(""), Some("")));
    }
}
