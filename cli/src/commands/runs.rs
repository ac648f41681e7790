//! `tweetclf runs`: the training and evaluation runs recorded in runs stores, side by side,
//! and an SVG of the training runs' validation curves.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use classifier::runs::{
    DataFile, RUNS_DIR, RunContext, RunRecord, RunsStore, plot_validation_curves, table,
};

/// Where `train` and `eval` record their run.
#[derive(Debug, Clone, clap::Args)]
pub struct RunsStoreArg {
    /// The runs store this run is recorded in (default: `runs/` beside the model directory).
    #[arg(long = "runs", env = "TWEETCLF_RUNS", value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl RunsStoreArg {
    /// Records `run` in the store named, or the one beside `model_dir`, and says where on
    /// stderr. A record that cannot be written is a warning: the model or report it describes
    /// is already safe.
    pub fn record(&self, model_dir: &Path, run: &RunRecord) {
        let store = self
            .dir
            .as_ref()
            .map_or_else(|| RunsStore::beside(model_dir), RunsStore::at);
        match store.record(run) {
            Ok(path) => eprintln!("run recorded in {}", path.display()),
            Err(error) => eprintln!("warning: the run was not recorded: {error:#}"),
        }
    }
}

/// When and how a run started, and the data it reads (hashed now, before the work).
pub fn context(data: &[(&str, &Path)]) -> anyhow::Result<(RunContext, Instant)> {
    let data = data
        .iter()
        .map(|(role, path)| {
            DataFile::hashed(role, path).with_context(|| format!("reading {}", path.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    let context = RunContext {
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        wall_seconds: 0.0,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        data,
    };
    Ok((context, Instant::now()))
}

#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// Runs stores to read (default: `models/runs` and `runs`, those that exist).
    #[arg(value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Only the runs of models with this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Where to draw the training runs' validation curves (default:
    /// `validation-curves.svg` in the first store).
    #[arg(long, value_name = "SVG")]
    pub plot: Option<PathBuf>,
}

pub fn runs(args: &RunsArgs) -> anyhow::Result<()> {
    let dirs = stores(args)?;
    let mut all = Vec::new();
    for dir in &dirs {
        let stored = RunsStore::at(dir).read()?;
        for (path, problem) in &stored.unreadable {
            eprintln!("warning: {} is not a run record: {problem}", path.display());
        }
        all.extend(stored.runs);
    }
    all.retain(|run| {
        args.name
            .as_ref()
            .is_none_or(|name| &run.model_name == name)
    });
    all.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    let mut stdout = std::io::stdout().lock();
    if all.is_empty() {
        writeln!(stdout, "no runs recorded in {}", shown(&dirs))?;
        return Ok(());
    }
    writeln!(stdout, "{}", table(&all))?;
    let plot = args
        .plot
        .clone()
        .unwrap_or_else(|| dirs[0].join("validation-curves.svg"));
    plot_validation_curves(&plot, &all, "validation metric (macro-F1 or micro-F1)")?;
    writeln!(
        stdout,
        "\n{} run(s) from {}; validation curves of the training runs in {}",
        all.len(),
        shown(&dirs),
        plot.display()
    )?;
    Ok(())
}

/// The stores named, or the default ones that exist.
fn stores(args: &RunsArgs) -> anyhow::Result<Vec<PathBuf>> {
    if !args.dirs.is_empty() {
        return Ok(args.dirs.clone());
    }
    let defaults = [Path::new("models").join(RUNS_DIR), PathBuf::from(RUNS_DIR)];
    let existing: Vec<PathBuf> = defaults
        .iter()
        .filter(|dir| dir.is_dir())
        .cloned()
        .collect();
    if existing.is_empty() {
        bail!(
            "no runs store in {}: `train` and `eval` record runs in runs/ beside the model (or \
             in --runs DIR); name the store to read",
            shown(&defaults)
        );
    }
    Ok(existing)
}

fn shown(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|dir| dir.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}
