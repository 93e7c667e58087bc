//! A soft memory target for a run. The allocator (mimalloc, `main.rs`) keeps freed memory for
//! reuse instead of handing it back to the kernel on a timer: every page handed back and taken
//! again costs a page fault (~4-5 µs on the bench machine), and at 10M order lines a fifth of a run
//! was the kernel faulting pages back in. A watcher thread reads the process's resident memory
//! every [`EVERY`] and, while it is above the target, has the allocator give its freed memory back,
//! at most once per [`SPACING`] (the allocator's old timer). Below the target a run is as fast as
//! it can be; above it, as thrifty as before. The target bounds the allocator's slack, not the
//! run's live data.

use std::time::{Duration, Instant};

/// The target when none is given: [`DEFAULT_CAP`], or half of the memory this process may use
/// (its cgroup's limit or the machine's memory) where that is less.
pub const DEFAULT_CAP: u64 = 2816 << 20;

const EVERY: Duration = Duration::from_millis(20);
const SPACING: Duration = Duration::from_millis(500);

/// A size such as `2.75GiB`, `2816MiB`, `3G` (powers of 1024 either way) or plain bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("`{s}`: expected a size such as 2.75GiB, 2816MiB or a number of bytes")),
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok((n * (1u64 << shift) as f64) as u64),
        _ => Err(format!("`{s}`: expected a positive size such as 2.75GiB, 2816MiB or a number of bytes")),
    }
}

/// The default target on this machine (see [`DEFAULT_CAP`]).
pub fn default_target() -> u64 {
    let limit = [cgroup_limit(), machine_memory()].into_iter().flatten().min();
    limit.map_or(DEFAULT_CAP, |l| DEFAULT_CAP.min(l / 2))
}

/// Starts the watcher; `give_back` returns the allocator's freed memory to the kernel. False when
/// this system does not report resident memory (then nothing is started).
pub fn watch(target: u64, give_back: impl Fn() + Send + 'static) -> bool {
    if resident().is_none() {
        return false;
    }
    std::thread::spawn(move || {
        let mut last: Option<Instant> = None;
        while let Some(rss) = resident() {
            if due(rss, target, last.map(|l| l.elapsed())) {
                give_back();
                last = Some(Instant::now());
            }
            std::thread::sleep(EVERY);
        }
    });
    true
}

/// Whether to give memory back now: above the target, and not within [`SPACING`] of the last
/// time (when live data alone is above the target, giving back as often as the watcher looks
/// would fault pages in without end).
fn due(resident: u64, target: u64, since_last: Option<Duration>) -> bool {
    resident > target && since_last.is_none_or(|d| d >= SPACING)
}

/// This process's resident memory in bytes (Linux: /proc/self/statm).
fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the system; it takes no pointers.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

/// This process's cgroup memory limit, when one is set: v2's `memory.max` (`max` when unlimited),
/// else v1's `memory.limit_in_bytes` (older Docker and Kubernetes nodes; unlimited is a number
/// near 2^63, which the machine's memory undercuts).
fn cgroup_limit() -> Option<u64> {
    ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        .into_iter()
        .find_map(|path| std::fs::read_to_string(path).ok()?.trim().parse().ok())
}

fn machine_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 =
        info.lines().find_map(|l| l.strip_prefix("MemTotal:"))?.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb << 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_powers_of_1024() {
        assert_eq!(parse_size("2.75GiB"), Ok(2816 << 20));
        assert_eq!(parse_size("2816MiB"), Ok(2816 << 20));
        assert_eq!(parse_size("3G"), Ok(3 << 30));
        assert_eq!(parse_size(" 512 mb "), Ok(512 << 20));
        assert_eq!(parse_size("1000000"), Ok(1_000_000));
        for bad in ["", "GiB", "-1G", "0", "2.75 parsecs", "1e3G"] {
            assert!(parse_size(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn memory_goes_back_only_above_the_target_and_not_more_often_than_the_spacing() {
        let target = 1000;
        assert!(!due(999, target, None));
        assert!(!due(1000, target, None));
        assert!(due(1001, target, None));
        assert!(!due(5000, target, Some(SPACING / 2)));
        assert!(due(5000, target, Some(SPACING)));
    }

    #[test]
    fn the_default_target_is_at_most_the_cap_and_half_of_the_machine_and_the_cgroup_limit() {
        let t = default_target();
        assert!(t > 0 && t <= DEFAULT_CAP);
        for limit in [machine_memory(), cgroup_limit()].into_iter().flatten() {
            assert!(t <= limit / 2, "{t} > half of {limit}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_watcher_gives_memory_back_above_the_target_and_not_below() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (above, below) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (a, b) = (above.clone(), below.clone());
        assert!(watch(1, move || _ = a.fetch_add(1, Ordering::Relaxed)));
        assert!(watch(u64::MAX, move || _ = b.fetch_add(1, Ordering::Relaxed)));
        std::thread::sleep(SPACING + EVERY * 10);
        // Once at once, then at most once per spacing.
        assert!((1..=3).contains(&above.load(Ordering::Relaxed)), "{}", above.load(Ordering::Relaxed));
        assert_eq!(below.load(Ordering::Relaxed), 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn resident_memory_is_read_and_grows_with_touched_memory() {
        let before = resident().expect("Linux reports resident memory");
        let touched = std::hint::black_box(vec![1u8; 128 << 20]);
        let after = resident().expect("Linux reports resident memory");
        // Other tests allocate and free beside this one: a margin.
        assert!(after >= before + (64 << 20), "{before} -> {after}");
        drop(touched);
    }
}
