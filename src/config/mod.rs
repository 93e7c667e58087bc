//! Pipeline configuration: YAML text -> [`raw`] serde mirror -> [`validate`]d typed [`Pipeline`].
//! Every problem is reported at once, each with file, YAML path, line, column and a caret.

mod locate;
pub mod raw;
mod validate;

pub use raw::{CohortBy, ConstantField, ModelChoice, Period, RawColumns, SourceKind, SpendModel, TimeUnit};
pub use validate::{
    AsOf, ClvSpec, CohortsSpec, Delimiter, LoadSpec, Pipeline, SegmentSpec, SpendSpec, Stage, SummarizeSpec,
    TestOrders, TextFormat, UnifySpec, days_per_unit,
};

use crate::error::{Error, Result};
use locate::Seg;
use std::path::Path;

/// Largest pipeline file accepted: a pipeline is a page of YAML, not a data file.
const MAX_PIPELINE_BYTES: u64 = 1 << 20;

/// Reads and validates a pipeline file. Relative paths inside it resolve against the working
/// directory, as `make` and cron entries run from the project root.
pub fn load(path: &Path) -> Result<Pipeline> {
    let meta = std::fs::metadata(path).map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
    if meta.len() > MAX_PIPELINE_BYTES {
        return Err(Error::input(path, format!("is {} bytes; a pipeline file is at most 1 MiB", meta.len())));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
    parse(path, &text)
}

/// A problem found in the YAML: where, and what.
#[derive(Debug, Clone)]
pub struct Problem {
    pub path: Vec<Seg>,
    pub message: String,
}

pub fn parse(file: &Path, text: &str) -> Result<Pipeline> {
    let fmt = Formatter { file, text };
    // Syntax first: nothing else can be said about a file that is not YAML.
    if let Err(e) = yaml_serde::from_str::<yaml_serde::Value>(text) {
        return Err(Error::Config(vec![fmt.serde(&e)]));
    }
    let mut errors = Vec::new();
    let header = yaml_serde::from_str::<raw::RawHeader>(text).map_err(|e| errors.push(fmt.serde(&e))).ok();
    let mut stages = Vec::new();
    let count = header.as_ref().map_or(0, |h| h.stages.len());
    for i in 0..count {
        let at = [Seg::Key("stages".into()), Seg::Index(i)];
        match locate::deserialize_at::<raw::RawStage>(text, &at) {
            Ok(Some(stage)) => stages.push(stage),
            Ok(None) => {}
            Err(e) => errors.push(fmt.serde(&e)),
        }
    }
    let Some(header) = header.filter(|_| errors.is_empty()) else {
        return Err(Error::Config(errors));
    };
    validate::validate(file, header, stages)
        .map_err(|problems| Error::Config(problems.iter().map(|p| fmt.problem(p)).collect()))
}

struct Formatter<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Formatter<'_> {
    fn serde(&self, e: &yaml_serde::Error) -> String {
        let mut msg = e.to_string();
        // libyaml's guards against hostile input, in words a person can act on.
        if msg.contains("repetition limit exceeded") {
            msg = msg.replace("repetition limit exceeded", "refused: aliases expand to too much data (an alias bomb?)");
        } else if msg.contains("recursion limit exceeded") {
            msg = msg.replace("recursion limit exceeded", "refused: nested too deeply");
        }
        // yaml_serde appends " at line L column C"; the caret display says it better.
        let msg = match msg.rfind(" at line ") {
            Some(i) if e.location().is_some() => msg[..i].to_string(),
            _ => msg,
        };
        self.at(e.location().map(|l| (l.line(), l.column())), &msg)
    }

    fn problem(&self, p: &Problem) -> String {
        let mut path = p.path.as_slice();
        // Point at the nearest enclosing node that exists (a missing key points at its mapping).
        let loc = loop {
            if let Some(loc) = locate::locate(self.text, path) {
                break Some(loc);
            }
            match path.split_last() {
                Some((_, rest)) if !rest.is_empty() => path = rest,
                _ => break None,
            }
        };
        self.at(loc, &format!("{}: {}", locate::render(&p.path), p.message))
    }

    fn at(&self, loc: Option<(usize, usize)>, msg: &str) -> String {
        let file = self.file.display();
        match loc {
            Some((line, col)) => {
                let src: Vec<char> = self.text.lines().nth(line - 1).unwrap_or("").chars().collect();
                // Lines up to 160 characters are shown whole; longer ones as a window at the column.
                let (from, to) = if src.len() <= 160 {
                    (0, src.len())
                } else {
                    let from = col.saturating_sub(60).min(src.len());
                    (from, (from + 120).min(src.len()))
                };
                let shown: String = src[from..to].iter().collect();
                let (lead, tail) = (if from > 0 { "…" } else { "" }, if to < src.len() { "…" } else { "" });
                let gutter = line.to_string().len();
                let caret = col.saturating_sub(1) - from + lead.chars().count();
                format!(
                    "{file}:{line}:{col}: {msg}\n{:gutter$} |\n{line} | {lead}{shown}{tail}\n{:gutter$} | {}^",
                    "",
                    "",
                    " ".repeat(caret)
                )
            }
            None => format!("{file}: {msg}"),
        }
    }
}
