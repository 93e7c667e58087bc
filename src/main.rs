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
    sooner_purge();
    let cli = Cli::parse();
    init_logging(&cli);
    if let Command::Run { threads: Some(n), .. } = &cli.command {
        set_threads(*n);
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

/// mimalloc v3 keeps freed memory for a second before handing it back (`purge_delay`, 1000 ms):
/// at 10M order lines that slack was a sixth of the peak RSS (2.7-2.8 GiB; 2.55 GiB at 500 ms for
/// no measurable time; 2.4 GiB at 250 ms but ~10% slower in `make bench`, faulting pages back in).
/// A `MIMALLOC_PURGE_DELAY` in the environment wins.
fn sooner_purge() {
    // `mi_option_purge_delay` in mimalloc v3's include/mimalloc.h (libmimalloc-sys has no
    // binding for it).
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
    unsafe extern "C" {
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option of the allocator this binary links; no pointers.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 500) };
    }
}

fn execute(command: Command) -> clv::error::Result<()> {
    match command {
        Command::Run { pipeline, out, as_of, markets, threads: _, cache_dir, no_cache } => {
            let p = clv::config::load(&pipeline)?;
            let cache = if no_cache { None } else { cache_dir.or_else(clv::sources::cache::Cache::default_dir) };
            let summary = clv::pipeline::run(&p, &clv::pipeline::RunOptions { out, as_of, markets, cache })?;
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
        Command::Sample { out, customers, lines, seed, monthly } => {
            let customers = lines.map_or(customers, clv::sample::customers_for_lines);
            let written = clv::sample::write(&out, customers, seed, monthly)?;
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
