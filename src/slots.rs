//! Numbering text keys (order ids, customer keys): each value's slot among the distinct values in
//! order of first appearance. A source at 10M lines has ~2M distinct keys; a hash table of them
//! spent most of its time in cache misses (probe, entry, then the earlier key's text). Sorting
//! the keys' hashes instead reads memory in order: only keys whose hashes are equal are compared
//! as text, so the numbering is exact whatever the hash.

use std::hash::BuildHasher;

/// Each value's slot among the distinct values in order of first appearance, from 1 (nulls 0),
/// and the distinct values. Runs of equal values (a source's or a file's rows come in runs) are
/// numbered once.
pub fn slots<'a>(values: impl Iterator<Item = Option<&'a str>>) -> (Vec<u32>, Vec<&'a str>) {
    let hasher = foldhash::quality::FixedState::with_seed(0x5106_c1e5);
    slots_by(values, |v| hasher.hash_one(v))
}

fn slots_by<'a>(values: impl Iterator<Item = Option<&'a str>>, hash: impl Fn(&str) -> u64) -> (Vec<u32>, Vec<&'a str>) {
    // Each row's run (from 1; 0 for null) and each run's value.
    let mut runs: Vec<&str> = Vec::new();
    let mut previous: Option<&str> = None;
    let rows: Vec<u32> = values
        .map(|v| {
            let Some(v) = v else {
                previous = None;
                return 0;
            };
            if !previous.is_some_and(|p| crate::frame::same_str(p, v)) {
                runs.push(v);
                previous = Some(v);
            }
            runs.len() as u32
        })
        .collect();
    // Runs by (hash, run): the runs of one value are together, earliest first.
    let mut by_hash: Vec<(u64, u32)> = runs.iter().zip(0..).map(|(v, r)| (hash(v), r)).collect();
    by_hash.sort_unstable();
    // Each run's earliest run of the same value.
    let mut earliest: Vec<u32> = (0..runs.len() as u32).collect();
    for same_hash in by_hash.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
        let lead = same_hash[0].1;
        if same_hash.iter().all(|&(_, r)| crate::frame::same_str(runs[r as usize], runs[lead as usize])) {
            same_hash[1..].iter().for_each(|&(_, r)| earliest[r as usize] = lead);
        } else {
            // Different values with one hash: the earliest run of each value.
            let mut lead_of = foldhash::HashMap::default();
            for &(_, r) in same_hash {
                earliest[r as usize] = *lead_of.entry(runs[r as usize]).or_insert(r);
            }
        }
    }
    std::mem::drop(by_hash);
    let mut distinct: Vec<&str> = Vec::new();
    let mut slot_of_run = vec![0u32; runs.len()];
    for r in 0..runs.len() {
        let e = earliest[r] as usize;
        slot_of_run[r] = if e == r {
            distinct.push(runs[r]);
            distinct.len() as u32
        } else {
            slot_of_run[e]
        };
    }
    let slots = rows.into_iter().map(|run| run.checked_sub(1).map_or(0, |r| slot_of_run[r as usize])).collect();
    (slots, distinct)
}

/// The [`slots`] of the rows `keep` selects, from the slots of all rows: numbered as `slots` would
/// number those rows' values (first appearance among them), without reading any text again.
pub fn restricted<'a>(
    slots: &[u32],
    distinct: &[&'a str],
    keep: impl Iterator<Item = bool>,
) -> (Vec<u32>, Vec<&'a str>) {
    let mut renumbered = vec![0u32; distinct.len() + 1];
    let mut values = Vec::new();
    let kept = slots
        .iter()
        .zip(keep)
        .filter(|&(_, keep)| keep)
        .map(|(&slot, _)| {
            let new = &mut renumbered[slot as usize];
            if slot != 0 && *new == 0 {
                values.push(distinct[slot as usize - 1]);
                *new = values.len() as u32;
            }
            *new
        })
        .collect();
    (kept, values)
}

/// Each value's rank among the distinct values in byte order, from 1; nulls rank 0 (they sort
/// first). Sorting on these compares integers instead of strings.
pub fn dense_ranks<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Vec<u32> {
    let (slots, distinct) = slots(values);
    let mut order: Vec<u32> = (0..distinct.len() as u32).collect();
    order.sort_unstable_by_key(|&i| distinct[i as usize]);
    let mut rank = vec![0u32; distinct.len() + 1];
    for (r, &i) in order.iter().enumerate() {
        rank[i as usize + 1] = r as u32 + 1;
    }
    slots.iter().map(|&s| rank[s as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbering of a plain hash table: first appearance, runs or not, nulls 0.
    fn by_table<'a>(values: &[Option<&'a str>]) -> (Vec<u32>, Vec<&'a str>) {
        let mut slot_of = std::collections::HashMap::new();
        let mut distinct = Vec::new();
        let slots = values
            .iter()
            .map(|v| {
                v.map_or(0, |v| {
                    *slot_of.entry(v).or_insert_with(|| {
                        distinct.push(v);
                        distinct.len() as u32
                    })
                })
            })
            .collect();
        (slots, distinct)
    }

    #[test]
    fn slots_follow_first_appearance_runs_or_not() {
        let values =
            [Some("b"), Some("b"), None, Some("a"), Some("c"), Some("b"), Some("a"), Some("a"), None, Some("c")];
        let (slots, distinct) = slots(values.into_iter());
        assert_eq!(slots, [1, 1, 0, 2, 3, 1, 2, 2, 0, 3]);
        assert_eq!(distinct, ["b", "a", "c"]);
        let many: Vec<String> = (0..20_000).map(|i| format!("k{}", (i * 7919) % 4321 / (1 + i % 3))).collect();
        let many: Vec<Option<&str>> =
            many.iter().enumerate().map(|(i, v)| (i % 97 != 0).then_some(v.as_str())).collect();
        assert_eq!(super::slots(many.iter().copied()), by_table(&many));
    }

    /// Values that share a hash are still told apart by their text: with a hash of four values,
    /// and with one hash for all.
    #[test]
    fn colliding_hashes_do_not_merge_values() {
        let many: Vec<String> = (0..5_000).map(|i| format!("{}", (i * 31) % 997)).collect();
        let many: Vec<Option<&str>> = many.iter().map(|v| Some(v.as_str())).collect();
        let expected = by_table(&many);
        assert_eq!(slots_by(many.iter().copied(), |v| v.len() as u64 % 4), expected);
        assert_eq!(slots_by(many.iter().copied(), |_| 7), expected);
    }

    /// Restricting the slots of all rows to some rows numbers them as slots of those rows alone.
    #[test]
    fn restricted_slots_are_the_slots_of_the_rows_kept() {
        let many: Vec<String> = (0..20_000).map(|i| format!("k{}", (i * 7919) % 4321 / (1 + i % 3))).collect();
        let many: Vec<Option<&str>> =
            many.iter().enumerate().map(|(i, v)| (i % 97 != 0).then_some(v.as_str())).collect();
        let (all, distinct) = slots(many.iter().copied());
        for keep in
            [|i: usize| !i.is_multiple_of(5), |i: usize| i > 7_000 && i % 3 == 1, |_: usize| true, |_: usize| false]
        {
            let kept: Vec<Option<&str>> = many.iter().enumerate().filter(|&(i, _)| keep(i)).map(|(_, v)| *v).collect();
            assert_eq!(restricted(&all, &distinct, (0..many.len()).map(keep)), slots(kept.into_iter()));
        }
    }

    #[test]
    fn ranks_follow_byte_order_with_nulls_first() {
        let values = [Some("b"), Some("b"), None, Some("a"), Some("c"), Some("b"), Some("a"), Some("a")];
        assert_eq!(dense_ranks(values.into_iter()), [2, 2, 0, 1, 3, 2, 1, 1]);
        let many: Vec<String> = (0..5000).map(|i| format!("k{}", (i * 7919) % 1234)).collect();
        let ranks = dense_ranks(many.iter().map(|v| Some(v.as_str())));
        let mut by_rank: Vec<usize> = (0..many.len()).collect();
        by_rank.sort_by_key(|&i| (ranks[i], i));
        let mut by_text: Vec<usize> = (0..many.len()).collect();
        by_text.sort_by_key(|&i| (&many[i], i));
        assert_eq!(by_rank, by_text);
    }
}
