//! Progress display: a spinner per stage when stderr is a terminal, nothing under cron or in CI
//! (where the `tracing` log lines are the record).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

pub fn stage(name: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"));
    bar.set_message(format!("stage {name}"));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
