//! Splits delimited text into records and fields, keeping what Polars' CSV reader cannot tell us:
//! the physical line where each record starts (records span lines inside quotes), its byte range
//! (for the raw text of a reject), and its field count (ragged rows become rejects, not errors).
//! Only the wanted columns are materialised, straight into Arrow string builders.

use crate::config::{Delimiter, TextFormat};
use crate::frame::StrBuilder;
use memchr::{memchr, memchr2};

/// Fields of the wanted columns plus the bookkeeping needed to report on any record.
pub struct Records {
    /// One builder per wanted column, in the order asked for; empty fields are null.
    pub columns: Vec<StrBuilder>,
    /// 1-based line of each record's first byte.
    pub lines: Vec<u32>,
    /// Byte offset of each record's start (its end is the next start).
    pub starts: Vec<usize>,
    /// Records whose field count differs from the header's: (record index, fields found).
    pub ragged: Vec<(usize, usize)>,
    /// Records that end inside an unterminated quote.
    pub unterminated: Vec<usize>,
    pub end: usize,
}

impl Records {
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The record's text as it stands in the file, without its line end.
    pub fn raw<'t>(&self, text: &'t str, i: usize) -> &'t str {
        let end = self.starts.get(i + 1).copied().unwrap_or(self.end);
        text[self.starts[i]..end].trim_end_matches(['\n', '\r'])
    }
}

/// The header: the first record's fields, or `column_1..N` when the file has none.
/// Returns the names and the byte offset and line where data records begin.
pub fn header(text: &str, format: &TextFormat) -> (Vec<String>, usize, u32) {
    let mut scanner = Scanner::new(text, format);
    while scanner.skip_blank_line() {}
    let mut names = Vec::new();
    if !scanner.at_end() {
        scanner.record(|_, f| names.push(f.trim().to_string()));
    }
    let (start, line) = (scanner.pos, scanner.line);
    if format.has_header {
        (names, start, line)
    } else {
        let n = names.len();
        ((1..=n).map(|i| format!("column_{i}")).collect(), 0, 1)
    }
}

/// The fields of the first record of `text`, as written (not trimmed).
pub fn fields(text: &str, format: &TextFormat) -> Vec<String> {
    let mut scanner = Scanner::new(text, format);
    let mut out = Vec::new();
    scanner.record(|_, f| out.push(f.to_string()));
    out
}

/// Reads every record after the header; `wanted[k]` is the field position of output column `k`.
pub fn records(text: &str, format: &TextFormat, width: usize, start: (usize, u32), wanted: &[usize]) -> Records {
    let mut slot = vec![usize::MAX; width.max(wanted.iter().map(|w| w + 1).max().unwrap_or(0))];
    for (k, &w) in wanted.iter().enumerate() {
        slot[w] = k;
    }
    let estimate = text.len() / 64 + 1;
    let mut out = Records {
        columns: wanted.iter().map(|_| StrBuilder::with_capacity(estimate)).collect(),
        lines: Vec::with_capacity(estimate),
        starts: Vec::with_capacity(estimate),
        ragged: Vec::new(),
        unterminated: Vec::new(),
        end: text.len(),
    };
    let mut seen = vec![false; wanted.len()];
    let mut scanner = Scanner::new(text, format);
    scanner.pos = start.0;
    scanner.line = start.1;
    while !scanner.at_end() {
        if scanner.skip_blank_line() {
            continue;
        }
        let (rec_start, rec_line) = (scanner.pos, scanner.line);
        seen.iter_mut().for_each(|s| *s = false);
        let columns = &mut out.columns;
        let n = scanner.record(|i, f| {
            if let Some(&k) = slot.get(i)
                && k != usize::MAX
            {
                seen[k] = true;
                columns[k].push(f);
            }
        });
        for (k, s) in seen.iter().enumerate() {
            if !s {
                out.columns[k].push("");
            }
        }
        let idx = out.lines.len();
        if scanner.unterminated {
            out.unterminated.push(idx);
            scanner.unterminated = false;
        }
        if n != width {
            out.ragged.push((idx, n));
        }
        out.lines.push(rec_line);
        out.starts.push(rec_start);
    }
    out
}

struct Scanner<'t> {
    bytes: &'t [u8],
    text: &'t str,
    pos: usize,
    line: u32,
    delim: Delimiter,
    quoting: bool,
    unterminated: bool,
    unquoted: String,
}

impl<'t> Scanner<'t> {
    fn new(text: &'t str, format: &TextFormat) -> Self {
        Scanner {
            bytes: text.as_bytes(),
            text,
            pos: 0,
            line: 1,
            delim: format.delimiter,
            quoting: format.quoting && format.delimiter != Delimiter::Whitespace,
            unterminated: false,
            unquoted: String::new(),
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Skips a line holding nothing but blanks: it is not a record. True if one was skipped.
    fn skip_blank_line(&mut self) -> bool {
        let rest = &self.bytes[self.pos..];
        let end = memchr(b'\n', rest).unwrap_or(rest.len());
        if rest.is_empty() || !rest[..end].iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            return false;
        }
        self.pos += (end + 1).min(rest.len());
        if end < rest.len() {
            self.line += 1;
        }
        true
    }

    /// Consumes one record (through its line end), calling `field(index, text)` for each field.
    /// Returns the number of fields.
    fn record(&mut self, mut field: impl FnMut(usize, &str)) -> usize {
        let mut i = 0;
        if self.delim == Delimiter::Whitespace {
            return self.whitespace_record(field);
        }
        let Delimiter::Byte(d) = self.delim else { unreachable!() };
        loop {
            let ended = if self.quoting && self.bytes.get(self.pos) == Some(&b'"') {
                self.quoted_field(d, |f| field(i, f))
            } else {
                let rest = &self.bytes[self.pos..];
                let stop = memchr2(d, b'\n', rest).unwrap_or(rest.len());
                let f = &self.text[self.pos..self.pos + stop];
                field(i, f.strip_suffix('\r').unwrap_or(f));
                self.pos += stop;
                self.finish_field(d)
            };
            i += 1;
            if ended {
                return i;
            }
        }
    }

    /// After a field: consume the delimiter (false: more fields) or the line end (true).
    fn finish_field(&mut self, d: u8) -> bool {
        match self.bytes.get(self.pos) {
            None => true,
            Some(&b) if b == d => {
                self.pos += 1;
                false
            }
            Some(_) => {
                // '\n' (a '\r' before it was stripped with the field)
                self.pos += 1;
                self.line += 1;
                true
            }
        }
    }

    fn quoted_field(&mut self, d: u8, mut field: impl FnMut(&str)) -> bool {
        let open = self.pos + 1;
        let mut p = open;
        let mut escaped = false;
        let close = loop {
            match memchr2(b'"', b'\n', &self.bytes[p..]) {
                None => {
                    self.unterminated = true;
                    break self.bytes.len();
                }
                Some(k) if self.bytes[p + k] == b'"' => {
                    if self.bytes.get(p + k + 1) == Some(&b'"') {
                        escaped = true;
                        p += k + 2;
                    } else {
                        break p + k;
                    }
                }
                Some(k) => {
                    if self.bytes[p + k] == b'\n' {
                        self.line += 1;
                    }
                    p += k + 1;
                }
            }
        };
        let inner = &self.text[open..close];
        self.pos = (close + 1).min(self.bytes.len());
        // Text after the closing quote and before the delimiter is kept, as spreadsheets do.
        let rest = &self.bytes[self.pos..];
        let stop = memchr2(d, b'\n', rest).unwrap_or(rest.len());
        let trailing = self.text[self.pos..self.pos + stop].trim_end_matches('\r');
        if escaped || !trailing.is_empty() {
            self.unquoted.clear();
            self.unquoted.push_str(&inner.replace("\"\"", "\""));
            self.unquoted.push_str(trailing);
            field(&self.unquoted);
        } else {
            field(inner);
        }
        self.pos += stop;
        self.finish_field(d)
    }

    fn whitespace_record(&mut self, mut field: impl FnMut(usize, &str)) -> usize {
        let rest = &self.bytes[self.pos..];
        let stop = memchr(b'\n', rest).unwrap_or(rest.len());
        let line = self.text[self.pos..self.pos + stop].trim_end_matches('\r');
        let mut n = 0;
        for f in line.split([' ', '\t']).filter(|f| !f.is_empty()) {
            field(n, f);
            n += 1;
        }
        if n == 0 {
            field(0, "");
            n = 1;
        }
        self.pos += stop;
        if self.pos < self.bytes.len() {
            self.pos += 1;
            self.line += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(delimiter: Delimiter, quoting: bool) -> TextFormat {
        TextFormat { delimiter, has_header: true, quoting, encoding: encoding_rs::UTF_8, decimal_comma: false }
    }

    type Values = Vec<Vec<Option<String>>>;

    fn read(text: &str, f: &TextFormat, cols: &[usize]) -> (Vec<String>, Records, Values) {
        let (names, start, line) = header(text, f);
        let mut r = records(text, f, names.len(), (start, line), cols);
        let values = std::mem::take(&mut r.columns)
            .into_iter()
            .map(|b| {
                let c = b.finish("v");
                c.str().unwrap().iter().map(|v| v.map(str::to_string)).collect()
            })
            .collect();
        (names, r, values)
    }

    fn some(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|s| Some(s.to_string())).collect()
    }

    #[test]
    fn quoted_fields_span_lines_and_unescape() {
        let t = "a,b,c\r\n1,\"x\r\nsaid \"\"hi\"\"\",3\r\n2,y,4\r\n";
        let (names, r, v) = read(t, &fmt(Delimiter::Byte(b','), true), &[1, 2]);
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(v[0], some(&["x\r\nsaid \"hi\"", "y"]));
        assert_eq!(v[1], some(&["3", "4"]));
        assert_eq!(r.lines, [2, 4]);
        assert_eq!(r.raw(t, 1), "2,y,4");
        assert!(r.ragged.is_empty());
    }

    #[test]
    fn quotes_are_data_when_quoting_is_off() {
        let t = "name\tqty\nPillow 12\" x 18\"\t4\n";
        let (_, _, v) = read(t, &fmt(Delimiter::Byte(b'\t'), false), &[0, 1]);
        assert_eq!(v[0], some(&["Pillow 12\" x 18\""]));
        assert_eq!(v[1], some(&["4"]));
    }

    #[test]
    fn ragged_blank_and_truncated_lines() {
        let t = "a,b\n1,2\n\n3\n4,5,6\n7,8";
        let (_, r, v) = read(t, &fmt(Delimiter::Byte(b','), true), &[0, 1]);
        assert_eq!(r.len(), 4);
        assert_eq!(r.lines, [2, 4, 5, 6]);
        assert_eq!(r.ragged, [(1, 1), (2, 3)]);
        assert_eq!(v[1], [Some("2".into()), None, Some("5".into()), Some("8".into())]);
    }

    #[test]
    fn whitespace_runs_and_leading_blanks() {
        let t = "   1   1 19970101  1   11.77\n   2 2 19970112 1 12.00\n";
        let mut f = fmt(Delimiter::Whitespace, false);
        f.has_header = false;
        let (names, r, v) = read(t, &f, &[0, 2, 4]);
        assert_eq!(names.len(), 5);
        assert_eq!(v[1], some(&["19970101", "19970112"]));
        assert_eq!(v[2], some(&["11.77", "12.00"]));
        assert_eq!(r.lines, [1, 2]);
    }

    #[test]
    fn unterminated_quote_is_flagged() {
        let t = "a,b\n1,\"open\n";
        let (_, r, _) = read(t, &fmt(Delimiter::Byte(b','), true), &[0, 1]);
        assert_eq!(r.unterminated, [0]);
    }
}
