//! The `clv` binary: parse the command line, run, print the error chain, map it to an exit code.

use clap::Parser;
use clv::cli::{Cli, Command, LogFormat};
use std::process::ExitCode;

/// mimalloc reuses freed memory where glibc hands large blocks back to the kernel and gets them
/// back as fresh zeroed pages: at 10M order lines a fifth of all CPU was the kernel clearing pages,
/// and mimalloc took the run from 140 s to 121 s at the same peak RSS (MIMALLOC_PURGE_DELAY=-1
/// in the environment: 102 s, 2 GB more RSS).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    without_huge_pages();
    let cli = Cli::parse();
    init_logging(&cli);
    if let Command::Run { threads: Some(n), .. } = &cli.command {
        set_threads(*n);
    }
    // A `MIMALLOC_PURGE_DELAY` in the environment wins: mimalloc reads it itself.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        match &cli.command {
            Command::Run { memory_target, .. } => {
                purge_above(memory_target.unwrap_or_else(clv::memory::default_target))
            }
            _ => purge_after(TIMED_PURGE_MS),
        }
    }
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("caused by: {s}");
                source = s.source();
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Transparent huge pages off for this process. Each first touch of a 2 MiB huge page has the
/// kernel clear all of it, and a partial purge splits it and faults it in again: at 3M order lines
/// the kernel spent 10 s of CPU in page faults with huge pages and 6 s without (runs 23 -> 21 s).
/// mimalloc asks for huge pages with `madvise` and some kernels give them unasked (`always`).
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process; it takes no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// mimalloc v3 hands freed memory back to the kernel a while after it is freed (`purge_delay`,
/// 1000 ms by default); every page handed back and reused is a page fault. At 10M order lines
/// 500 ms kept the peak at 2.55 GiB and a fifth of the run was the kernel faulting pages in.
const TIMED_PURGE_MS: i64 = 500;

/// A run purges only while it is above its memory target (`clv::memory`): freed memory is kept
/// for reuse below it. At 10M order lines: ~40% fewer page faults and ~7% fewer CPU-seconds, at
/// 2.8 GiB instead of 2.6 GiB (bench/RESULTS.md, nineteenth round). Where resident memory cannot
/// be read, the timer.
fn purge_above(target: u64) {
    unsafe extern "C" {
        fn mi_collect(force: bool);
    }
    // Purges are still scheduled (a forced collect purges what is scheduled), but only after
    // a minute on their own.
    purge_after(60_000);
    // SAFETY: mi_collect(true) returns the allocator's freed memory; safe from any thread.
    if !clv::memory::watch(target, || unsafe { mi_collect(true) }) {
        purge_after(TIMED_PURGE_MS);
    }
}

/// Sets mimalloc's purge delay.
fn purge_after(ms: i64) {
    // `mi_option_purge_delay` in mimalloc v3's include/mimalloc.h (libmimalloc-sys has no
    // binding for it).
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
    unsafe extern "C" {
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    // SAFETY: sets one integer option of the allocator this binary links; no pointers.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, ms as std::ffi::c_long) };
}

fn execute(command: Command) -> clv::error::Result<()> {
    match command {
        Command::Run {
            pipeline,
            out,
            as_of,
            markets,
            threads: _,
            cache_dir,
            no_cache,
            cache_keep_days,
            memory_target: _,
        } => {
            let p = clv::config::load(&pipeline)?;
            let cache = if no_cache { None } else { cache_dir.or_else(clv::sources::cache::Cache::default_dir) };
            let cache_keep = Some(std::time::Duration::from_secs(u64::from(cache_keep_days) * 24 * 3600));
            let summary =
                clv::pipeline::run(&p, &clv::pipeline::RunOptions { out, as_of, markets, cache, cache_keep })?;
            println!(
                "run {} as of {}: published {} file(s) for market(s) {} under {}",
                summary.run_id,
                summary.as_of,
                summary.outputs.len(),
                summary.markets.join(", "),
                summary.out.display()
            );
            Ok(())
        }
        Command::Validate { pipelines } => {
            let mut problems = Vec::new();
            for path in &pipelines {
                match clv::config::load(path) {
                    Ok(_) => println!("{}: ok", path.display()),
                    Err(clv::error::Error::Config(p)) => problems.extend(p),
                    Err(e) => problems.push(e.to_string()),
                }
            }
            if problems.is_empty() { Ok(()) } else { Err(clv::error::Error::Config(problems)) }
        }
        Command::Sample { out, customers, lines, seed, monthly, daily } => {
            let customers = lines.map_or(customers, clv::sample::customers_for_lines);
            use clv::sample::Files;
            let files_by = if daily {
                Files::Daily
            } else if monthly {
                Files::Monthly
            } else {
                Files::Pull
            };
            let written = clv::sample::write(&out, customers, seed, files_by)?;
            for f in written {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
    }
}

/// One setting sizes both pools: Polars' (read once, at its first use) and rayon's global pool.
fn set_threads(n: usize) {
    // SAFETY: called before any other thread exists (first thing after argument parsing).
    unsafe { std::env::set_var("POLARS_MAX_THREADS", n.to_string()) };
    let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cli.log_level));
    // Colour only for people at a terminal; cron mail and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_target(false).init(),
    }
}
