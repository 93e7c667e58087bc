//! Bad input, case by case: what a person sees, and that nothing is silently lost.

use crate::support::*;
use clv::schema;

const MAP: &str =
    "columns: { order_id: order, customer: customer, ordered_at: date, amount: amount }, constants: { currency: USD }";

fn csv_stage(path: &str, extra: &str) -> String {
    format!("{{ id: src, source: csv, path: '{path}', {MAP}{extra} }}")
}

#[test]
fn empty_file_is_an_input_error_naming_the_file() {
    let (_dir, path) = temp_file("empty.csv", b"");
    let msg = load_err(&csv_stage(&path, ""));
    assert!(msg.contains("empty.csv") && msg.contains("is empty: expected a header line"), "{msg}");
}

#[test]
fn header_only_file_loads_no_rows() {
    let (_dir, path) = temp_file("header.csv", b"order,customer,date,amount\n");
    let l = load(&csv_stage(&path, ""));
    assert_eq!((l.rows_read, l.lines.height(), l.rejects.height()), (0, 0, 0));
}

#[test]
fn bom_and_crlf() {
    let (_dir, path) =
        temp_file("bom.csv", b"\xEF\xBB\xBForder,customer,date,amount\r\nA1,a@x.io,2024-01-05,10.00\r\n");
    let l = load(&csv_stage(&path, ""));
    assert_eq!(l.lines.height(), 1, "the BOM is not part of the first column's name");
    assert_close(sum(&l.lines, schema::NET), 10.0, 0.0, "CR is not part of the last field");
}

#[test]
fn truncated_last_line_is_a_reject_with_its_line() {
    let (_dir, path) =
        temp_file("cut.csv", b"order,customer,date,amount\nA1,a@x.io,2024-01-05,10.00\nA2,b@x.io,2024-0");
    let l = load(&csv_stage(&path, ", max_reject_rate: 1.0"));
    assert_eq!(l.lines.height(), 1);
    assert_eq!(clv::frame::floats(&l.rejects, schema::rejects::LINE).unwrap(), [Some(3.0)]);
    assert_eq!(strings(&l.rejects, schema::rejects::REASON), [Some("expected 4 fields, found 3".to_string())]);
}

/// A file that rejects nothing takes a shortcut past the rejects' selection: its empty rejects
/// stack with another file's.
#[test]
fn files_with_and_without_rejects_load_together() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "order,customer,date,amount\nA1,a@x.io,2024-01-05,10.00\n").unwrap();
    std::fs::write(dir.path().join("b.csv"), "order,customer,date,amount\nB1,b@x.io,2024-01-06,5.00\nB2,c@x.io\n")
        .unwrap();
    let l = load(&csv_stage(&format!("{}/*.csv", dir.path().display()), ", max_reject_rate: 1.0"));
    assert_eq!((l.lines.height(), l.rejects.height()), (2, 1));
    assert_eq!(strings(&l.rejects, schema::rejects::REASON), [Some("expected 4 fields, found 2".to_string())]);
}

#[test]
fn wrong_delimiter_lists_what_was_expected_and_found() {
    let (_dir, path) = temp_file("semi.csv", b"order;customer;date;amount\nA1;a@x.io;2024-01-05;10.00\n");
    let msg = load_err(&csv_stage(&path, ""));
    assert!(msg.contains("missing required column(s) 'order', 'customer', 'date', 'amount'"), "{msg}");
    assert!(msg.contains("the file has 1 column(s): order;customer;date;amount"), "{msg}");
}

#[test]
fn unknown_currency_is_rejected_not_guessed() {
    let (_dir, path) = temp_file(
        "cur.csv",
        b"order,customer,date,amount,currency\nA1,a@x.io,2024-01-05,10.00,USD\nA2,b@x.io,2024-01-05,10.00,XYZ\n",
    );
    let stage = format!(
        "{{ id: src, source: csv, path: '{path}', max_reject_rate: 1.0, columns: {{ order_id: order, customer: customer, ordered_at: date, amount: amount, currency: currency }} }}"
    );
    let l = load(&stage);
    assert_eq!(l.lines.height(), 1);
    assert_eq!(
        strings(&l.rejects, schema::rejects::REASON),
        [Some("no FX rate for currency XYZ (add it to fx_rates)".to_string())]
    );
}

#[test]
fn a_file_matched_twice_is_read_once() {
    let (dir, path) = temp_file("once.csv", b"order,customer,date,amount\nA1,a@x.io,2024-01-05,10.00\n");
    let glob = format!("{}/*.csv", dir.path().display());
    let l = load(&format!("{{ id: src, source: csv, path: ['{path}', '{glob}'], {MAP} }}"));
    assert_eq!((l.rows_read, l.lines.height(), l.files.len()), (1, 1, 1));
}

#[test]
fn negative_quantities_are_returns_that_reduce_revenue() {
    let (_dir, path) = temp_file(
        "ret.csv",
        b"order,customer,date,qty,price\nA1,a@x.io,2024-01-05,3,10.00\nR1,a@x.io,2024-01-09,-1,10.00\n",
    );
    let l = load(&format!(
        "{{ id: src, source: csv, path: '{path}', columns: {{ order_id: order, customer: customer, ordered_at: date, quantity: qty, unit_price: price }}, constants: {{ currency: USD }} }}"
    ));
    assert_eq!(l.lines.height(), 2);
    assert_close(sum(&l.lines, schema::NET), 20.0, 1e-9, "30 sold - 10 returned");
}
