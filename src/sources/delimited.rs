//! Splits delimited text into records and fields, keeping what Polars' CSV reader cannot tell us:
//! the physical line where each record starts (records span lines inside quotes), its byte range
//! (for the raw text of a reject), and its field count (ragged rows become rejects, not errors).
//! Only the wanted columns are materialised, straight into Arrow string builders.

use crate::config::{Delimiter, TextFormat};
use crate::frame;
use memchr::memchr;
use polars::prelude::*;

/// Fields of the wanted columns plus the bookkeeping needed to report on any record.
pub struct Records {
    /// One column per wanted column, in the order asked for; empty fields are null.
    pub columns: Vec<StringChunked>,
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
        scanner.record(|_| true, |_, f| names.push(f.trim().to_string()));
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
    scanner.record(|_| true, |_, f| out.push(f.to_string()));
    out
}

/// A file is split into pieces of at least this many bytes, scanned side by side.
const PIECE: usize = 16 << 20;

/// Reads every record after the header; `wanted[k]` is the field position of output column `k`.
/// A large file is cut at line ends into pieces scanned on separate threads: one big export (a
/// year of Amazon shipments, a shop's whole history) is otherwise read by one core. A cut can fall
/// inside a quoted field that spans lines; the piece before it then ends past the cut, and the
/// piece after it is scanned again from where that one ended.
pub fn records(text: &str, format: &TextFormat, width: usize, start: (usize, u32), wanted: &[usize]) -> Records {
    let pieces = ((text.len() - start.0.min(text.len())) / PIECE).clamp(1, frame::threads());
    records_in(pieces, text, format, width, start, wanted)
}

/// [`records`], the file cut into at most `pieces` pieces.
fn records_in(
    pieces: usize,
    text: &str,
    format: &TextFormat,
    width: usize,
    start: (usize, u32),
    wanted: &[usize],
) -> Records {
    let mut slot = vec![usize::MAX; width.max(wanted.iter().map(|w| w + 1).max().unwrap_or(0))];
    for (k, &w) in wanted.iter().enumerate() {
        slot[w] = k;
    }
    let cuts = cuts(text, start.0, pieces);
    let spans: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
    let scan = |&(from, to): &(usize, usize)| Piece::scan(text, format, width, &slot, (from, 0), to);
    let mut pieces = if spans.len() > 1 { frame::on_threads(&spans, scan) } else { Vec::new() };
    let mut out = Records {
        columns: Vec::new(),
        lines: Vec::new(),
        starts: Vec::new(),
        ragged: Vec::new(),
        unterminated: Vec::new(),
        end: text.len(),
    };
    let mut columns: Vec<Vec<StringChunked>> = wanted.iter().map(|_| Vec::new()).collect();
    let (mut pos, mut line) = start;
    for (k, &(from, to)) in spans.iter().enumerate() {
        let piece = match pieces.get_mut(k) {
            Some(p) if from == pos => std::mem::take(p),
            _ => Piece::scan(text, format, width, &slot, (pos, 0), to),
        };
        let base = out.lines.len();
        out.lines.extend(piece.lines.iter().map(|l| l + line));
        out.starts.extend(&piece.starts);
        out.ragged.extend(piece.ragged.iter().map(|&(i, n)| (base + i, n)));
        out.unterminated.extend(piece.unterminated.iter().map(|i| base + i));
        for (c, b) in columns.iter_mut().zip(piece.columns) {
            c.push(b.finish());
        }
        (pos, line) = (piece.end, line + piece.line_end);
    }
    out.columns = columns.into_iter().map(frame::concat_strings).collect();
    out
}

/// Builds a string column from borrowed fields; an empty field is null ("absent", not "").
struct StrBuilder(StringChunkedBuilder);

impl StrBuilder {
    fn with_capacity(n: usize) -> Self {
        StrBuilder(StringChunkedBuilder::new(PlSmallStr::EMPTY, n))
    }

    #[inline]
    fn push(&mut self, field: &str) {
        if field.is_empty() { self.0.append_null() } else { self.0.append_value(field) }
    }

    fn finish(self) -> StringChunked {
        self.0.finish()
    }
}

/// Byte offsets `start = c0 < c1 < ... < cn = text.len()`: at most `n` pieces, each cut just
/// after a line end.
fn cuts(text: &str, start: usize, n: usize) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut cuts = vec![start.min(bytes.len())];
    let step = (bytes.len() - cuts[0]) / n.max(1);
    for k in 1..n {
        let at = cuts[0] + k * step;
        match memchr(b'\n', &bytes[at..]) {
            Some(i) if at + i + 1 < bytes.len() && at + i + 1 > *cuts.last().expect("non-empty") => {
                cuts.push(at + i + 1)
            }
            _ => {}
        }
    }
    cuts.push(bytes.len());
    cuts
}

/// One piece's records; lines are counted from 0 at the piece's start.
#[derive(Default)]
struct Piece {
    columns: Vec<StrBuilder>,
    lines: Vec<u32>,
    starts: Vec<usize>,
    ragged: Vec<(usize, usize)>,
    unterminated: Vec<usize>,
    /// Where the last record ended (the cut, unless a record ran past it).
    end: usize,
    /// Line ends consumed.
    line_end: u32,
}

impl Piece {
    /// Scans the records starting in `from.0..to`, the first on line `from.1`.
    fn scan(text: &str, format: &TextFormat, width: usize, slot: &[usize], from: (usize, u32), to: usize) -> Piece {
        let n_wanted = slot.iter().filter(|&&k| k != usize::MAX).count();
        let estimate = (to - from.0.min(to)) / 64 + 1;
        let mut out = Piece {
            columns: (0..n_wanted).map(|_| StrBuilder::with_capacity(estimate)).collect(),
            lines: Vec::with_capacity(estimate),
            starts: Vec::with_capacity(estimate),
            ..Piece::default()
        };
        let mut seen = vec![false; n_wanted];
        let mut scanner = Scanner::new(text, format);
        (scanner.pos, scanner.line) = from;
        while scanner.pos < to {
            if scanner.skip_blank_line() {
                continue;
            }
            let (rec_start, rec_line) = (scanner.pos, scanner.line);
            seen.iter_mut().for_each(|s| *s = false);
            let columns = &mut out.columns;
            let n = scanner.record(
                |i| slot.get(i).is_some_and(|&k| k != usize::MAX),
                |i, f| {
                    seen[slot[i]] = true;
                    columns[slot[i]].push(f);
                },
            );
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
        (out.end, out.line_end) = (scanner.pos, scanner.line - from.1);
        out
    }
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
    marks: Marks,
}

/// Where the delimiters, line ends and quotes are in one 64-byte block of the text, one bit per
/// byte. Exports have dozens of mostly short or empty fields per line (Shopify's 79 columns): a
/// search call per field cost more than the bytes it looked at, while one block's masks serve
/// every field that ends in it.
struct Marks {
    /// The block is `base..end` (`end - base` is 64 except at the end of the text).
    base: usize,
    end: usize,
    /// Bytes that end an unquoted field: the delimiter and `\n`.
    sep: u64,
    /// Bytes that matter inside a quoted field: `"` and `\n`.
    quote: u64,
}

impl Marks {
    const WIDTH: usize = 64;

    fn load(bytes: &[u8], base: usize, delim: u8) -> Marks {
        let end = (base + Self::WIDTH).min(bytes.len());
        let block = &bytes[base..end];
        let (newline, sep, quote) = match block.try_into() {
            Ok(full) => masks(full, delim),
            Err(_) => masks_bytewise(block, delim),
        };
        Marks { base, end, sep: sep | newline, quote: quote | newline }
    }
}

/// The block's line ends, delimiters and quotes as bit masks, 16 bytes per SSE2 compare (part of
/// every x86-64 CPU; LLVM did not vectorise the plain loop well).
#[cfg(target_arch = "x86_64")]
fn masks(block: &[u8; Marks::WIDTH], delim: u8) -> (u64, u64, u64) {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    // SAFETY: SSE2 is in every x86-64 CPU (the target's baseline), and each load reads 16 bytes
    // of `block` with no alignment requirement.
    unsafe {
        let (nl, d, q) = (_mm_set1_epi8(b'\n' as i8), _mm_set1_epi8(delim as i8), _mm_set1_epi8(b'"' as i8));
        let (mut newline, mut sep, mut quote) = (0u64, 0u64, 0u64);
        for (k, chunk) in block.chunks_exact(16).enumerate() {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let bits = |c| u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, c)) as u16) << (16 * k);
            newline |= bits(nl);
            sep |= bits(d);
            quote |= bits(q);
        }
        (newline, sep, quote)
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn masks(block: &[u8; Marks::WIDTH], delim: u8) -> (u64, u64, u64) {
    masks_bytewise(block, delim)
}

/// [`masks`] a byte at a time, for the text's last, short block.
fn masks_bytewise(block: &[u8], delim: u8) -> (u64, u64, u64) {
    let (mut newline, mut sep, mut quote) = (0u64, 0u64, 0u64);
    for (i, &b) in block.iter().enumerate() {
        newline |= u64::from(b == b'\n') << i;
        sep |= u64::from(b == delim) << i;
        quote |= u64::from(b == b'"') << i;
    }
    (newline, sep, quote)
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
            marks: Marks { base: 0, end: 0, sep: 0, quote: 0 },
        }
    }

    /// The first delimiter or line end at or after `from` (the text's length if none).
    fn next_sep(&mut self, from: usize) -> usize {
        self.next_mark(from, |m| m.sep)
    }

    /// The first quote or line end at or after `from` (the text's length if none).
    fn next_quote(&mut self, from: usize) -> usize {
        self.next_mark(from, |m| m.quote)
    }

    #[inline]
    fn next_mark(&mut self, mut from: usize, bits: fn(&Marks) -> u64) -> usize {
        let Delimiter::Byte(d) = self.delim else { unreachable!("whitespace records are split by lines") };
        loop {
            if from >= self.marks.base && from < self.marks.end {
                let ahead = bits(&self.marks) >> (from - self.marks.base);
                if ahead != 0 {
                    return from + ahead.trailing_zeros() as usize;
                }
                from = self.marks.end;
            }
            if from >= self.bytes.len() {
                return self.bytes.len();
            }
            self.marks = Marks::load(self.bytes, from, d);
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Skips a line holding nothing but blanks: it is not a record. True if one was skipped.
    fn skip_blank_line(&mut self) -> bool {
        if !matches!(self.bytes.get(self.pos), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            return false;
        }
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

    /// Consumes one record (through its line end), calling `field(index, text)` for each field
    /// `wanted(index)` asks for (the others are only skipped). Returns the number of fields.
    fn record(&mut self, wanted: impl Fn(usize) -> bool, mut field: impl FnMut(usize, &str)) -> usize {
        let mut i = 0;
        if self.delim == Delimiter::Whitespace {
            return self.whitespace_record(wanted, field);
        }
        let Delimiter::Byte(d) = self.delim else { unreachable!() };
        loop {
            let want = wanted(i);
            let ended = if self.quoting && self.bytes.get(self.pos) == Some(&b'"') {
                self.quoted_field(d, want.then_some(|f: &str| field(i, f)))
            } else {
                let stop = self.next_sep(self.pos);
                if want {
                    let f = &self.text[self.pos..stop];
                    field(i, f.strip_suffix('\r').unwrap_or(f));
                }
                self.pos = stop;
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

    /// Consumes a field that opens with a quote, handing its unescaped text to `field` (if any).
    fn quoted_field(&mut self, d: u8, field: Option<impl FnMut(&str)>) -> bool {
        let open = self.pos + 1;
        let mut p = open;
        let mut escaped = false;
        let close = loop {
            let k = self.next_quote(p);
            match self.bytes.get(k) {
                None => {
                    self.unterminated = true;
                    break self.bytes.len();
                }
                Some(b'"') => {
                    if self.bytes.get(k + 1) == Some(&b'"') {
                        escaped = true;
                        p = k + 2;
                    } else {
                        break k;
                    }
                }
                Some(_) => {
                    self.line += 1;
                    p = k + 1;
                }
            }
        };
        let inner = &self.text[open..close];
        self.pos = (close + 1).min(self.bytes.len());
        // Text after the closing quote and before the delimiter is kept, as spreadsheets do.
        let stop = self.next_sep(self.pos);
        let trailing = self.text[self.pos..stop].trim_end_matches('\r');
        if let Some(mut field) = field {
            if escaped || !trailing.is_empty() {
                self.unquoted.clear();
                // Every quote inside is the first of an escaped pair (any other would have closed).
                let mut rest = inner;
                while let Some(q) = memchr(b'"', rest.as_bytes()) {
                    self.unquoted.push_str(&rest[..=q]);
                    rest = &rest[q + 2..];
                }
                self.unquoted.push_str(rest);
                self.unquoted.push_str(trailing);
                field(&self.unquoted);
            } else {
                field(inner);
            }
        }
        self.pos = stop;
        self.finish_field(d)
    }

    fn whitespace_record(&mut self, wanted: impl Fn(usize) -> bool, mut field: impl FnMut(usize, &str)) -> usize {
        let rest = &self.bytes[self.pos..];
        let stop = memchr(b'\n', rest).unwrap_or(rest.len());
        let line = self.text[self.pos..self.pos + stop].trim_end_matches('\r');
        let mut n = 0;
        for f in line.split([' ', '\t']).filter(|f| !f.is_empty()) {
            if wanted(n) {
                field(n, f);
            }
            n += 1;
        }
        if n == 0 {
            if wanted(0) {
                field(0, "");
            }
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
            .map(|c| c.iter().map(|v| v.map(str::to_string)).collect())
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

    /// Cut anywhere (inside quoted fields spanning lines, at blank lines, before ragged rows), a
    /// file reads exactly as in one piece.
    #[test]
    fn pieces_read_as_one() {
        let t = "a,b,c\n1,\"x\ny\nz\",3\n\n2,,4\n5,6\n\"q\"\"\n\",7,8\n9,\"\n\n\",10\n11,12,13,14\n15,16,\"open\n";
        let f = fmt(Delimiter::Byte(b','), true);
        let (_, start, line) = header(t, &f);
        let values = |r: &Records| -> Values {
            r.columns.iter().map(|c| c.iter().map(|v| v.map(str::to_string)).collect()).collect()
        };
        let one = records_in(1, t, &f, 3, (start, line), &[0, 2]);
        assert_eq!(one.lines, [2, 6, 7, 8, 10, 13, 14]);
        for n in 2..t.len() {
            let r = records_in(n, t, &f, 3, (start, line), &[0, 2]);
            assert_eq!(values(&r), values(&one), "{n} pieces");
            assert_eq!(
                (&r.lines, &r.starts, &r.ragged, &r.unterminated),
                (&one.lines, &one.starts, &one.ragged, &one.unterminated),
                "{n} pieces"
            );
        }
    }

    /// Delimiters, quotes and line ends at every offset of a 64-byte block, and a quoted field
    /// spanning blocks (with an escaped quote and a line end in it), read as the format says.
    #[test]
    fn every_block_offset_reads_alike() {
        let long = format!("\"{}\"\"{}\n{}\"", "a".repeat(70), "b".repeat(64), "c".repeat(5));
        let body = format!("1,\"x\ny\nz\",3\n\n2,,4\n5,6\n\"q\"\"\n\",7,8\n{long},9,10\n11,12,13,14\n");
        let unescaped = format!("{}\"{}\n{}", "a".repeat(70), "b".repeat(64), "c".repeat(5));
        let f = fmt(Delimiter::Byte(b','), true);
        for pad in 0..130 {
            let t = format!("a,b,c\n{},p,q\n{body}", "w".repeat(pad));
            let (_, r, v) = read(&t, &f, &[0, 2]);
            let first = (pad > 0).then(|| "w".repeat(pad));
            let want0 = [first, Some("1".into()), Some("2".into()), Some("5".into()), Some("q\"\n".into())];
            assert_eq!(v[0][..5], want0, "pad {pad}");
            assert_eq!(v[0][5..], [Some(unescaped.clone()), Some("11".into())], "pad {pad}");
            assert_eq!(
                v[1],
                [
                    Some("q".into()),
                    Some("3".into()),
                    Some("4".into()),
                    None,
                    Some("8".into()),
                    Some("10".into()),
                    Some("13".into())
                ]
            );
            assert_eq!(r.lines, [2, 3, 7, 8, 9, 11, 13], "pad {pad}");
            assert_eq!(r.ragged, [(3, 2), (6, 4)], "pad {pad}");
            assert!(r.unterminated.is_empty());
        }
        let tabs = fmt(Delimiter::Byte(b'\t'), false);
        for pad in 0..70 {
            let t = format!("a\tb\n{}\"\t\"\r\n\tx\r\n", "w".repeat(pad));
            let (_, r, v) = read(&t, &tabs, &[0, 1]);
            assert_eq!(v[0], [Some(format!("{}\"", "w".repeat(pad))), None], "pad {pad}");
            assert_eq!(v[1], [Some("\"".into()), Some("x".into())], "pad {pad}");
            assert_eq!(r.lines, [2, 3]);
        }
    }

    #[test]
    fn unterminated_quote_is_flagged() {
        let t = "a,b\n1,\"open\n";
        let (_, r, _) = read(t, &fmt(Delimiter::Byte(b','), true), &[0, 1]);
        assert_eq!(r.unterminated, [0]);
    }
}
