//! `tweetclf eval`: a model against labelled data — metrics.json, report.md, a confusion-matrix
//! heat map and a precision/recall-vs-threshold chart (SVG), and optionally a suggested
//! threshold written back into the model's labels.json.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use classifier::eval_report::{
    Asked, EvalReport, EvalReportError, MISTAKES_FILE, Review, UNCERTAIN_FILE,
};
use classifier::evaluate::{EvaluationError, Target, judge};
use classifier::model_dir::LABELS_FILE;
use classifier::runs::{RunContext, RunRecord};
use classifier::{Classifier, LabelsFile, ProblemType};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::runs::RunsStoreArg;
use crate::labelled;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Labelled data (.jsonl, .csv or .tsv), as for `train`.
    #[command(flatten)]
    pub input: super::InputArg,
    #[command(flatten)]
    pub columns: labelled::ColumnArgs,
    /// A model directory (default: `MODEL_DIR`, else the bundled models/sentiment).
    #[arg(long, env = "MODEL_DIR")]
    pub model: Option<PathBuf>,
    /// Where to write metrics.json, report.md and the plots.
    #[arg(long, default_value = "eval")]
    pub out: PathBuf,
    /// Sweep this label's decision threshold (precision and recall at 0.00 … 1.00).
    #[arg(long)]
    pub sweep_label: Option<String>,
    /// Suggest the lowest threshold that reaches this precision.
    #[arg(long, requires = "sweep_label", conflicts_with = "target_recall")]
    pub target_precision: Option<f64>,
    /// Suggest the highest threshold that keeps this recall.
    #[arg(long, requires = "sweep_label")]
    pub target_recall: Option<f64>,
    /// Write the suggested threshold into the model directory's labels.json.
    #[arg(long)]
    pub write_threshold: bool,
    /// Also report accuracy on the rows of two labels, choosing between them by score
    /// (e.g. `negative,positive` on a three-class sentiment set).
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub binary: Option<Vec<String>>,
    /// Also report failures and macro-F1 per value of this column (a capability suite's
    /// `capability`, a data set's `source`); every example must have one.
    #[arg(long)]
    pub group_column: Option<String>,
    /// Also write the N most confident mistakes (mistakes.jsonl) and the N least confident
    /// decisions (uncertain.jsonl), as labelled lines ready to correct and train on.
    #[arg(long, value_name = "N")]
    pub errors: Option<usize>,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub runs: RunsStoreArg,
}

pub fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    let input = args.input.required("eval")?;
    let asked = Asked {
        binary: binary_labels(args)?,
        sweep_label: args.sweep_label.clone(),
        target: target(args)?,
    };
    let (run, started) = super::runs::context(&[("test", input)])?;
    let (classifier, model_dir) = super::load_model(args.model.as_deref(), args.threads)?;
    let model = classifier.labels();
    check_labels(args, model)?;
    let (mut report, review) = evaluate_file(args, input, &classifier, &model_dir, &asked)?;
    if let Some(suggestion) = &mut report.suggestion {
        suggestion.written_to_labels_json = args.write_threshold;
    }
    report.review = review.as_ref().map(Review::counts);
    let writing = || format!("writing the report to {}", args.out.display());
    report.write(&args.out).with_context(writing)?;
    if let Some(review) = &review {
        review.write(&args.out).with_context(writing)?;
    }
    // Last, so a failed report never leaves a changed model behind.
    if let Some(suggestion) = report.suggestion.as_ref().filter(|_| args.write_threshold) {
        let updated = model
            .with_threshold(&suggestion.label, suggestion.point.threshold as f32)
            .context("the updated labels.json would be invalid")?;
        updated
            .write(&model_dir)
            .with_context(|| format!("writing {}", model_dir.join(LABELS_FILE).display()))?;
    }
    print_summary(args, &report, &model_dir)?;
    let run = RunContext {
        wall_seconds: started.elapsed().as_secs_f64(),
        ..run
    };
    let parameters = json!({
        "binary": asked.binary, "sweep_label": asked.sweep_label, "target": asked.target,
        "errors": args.errors, "group_column": args.group_column, "out": args.out,
    });
    let record = RunRecord::of_evaluation(&report, model, &model_dir, parameters, run);
    args.runs.record(&model_dir, &record);
    Ok(())
}

/// The precision or recall a suggested threshold must reach, if one is asked for.
fn target(args: &EvalArgs) -> anyhow::Result<Option<Target>> {
    let target = match (args.target_precision, args.target_recall) {
        (Some(precision), _) => Some(Target::Precision(check_share(precision, "precision")?)),
        (_, Some(recall)) => Some(Target::Recall(check_share(recall, "recall")?)),
        _ => None,
    };
    if args.write_threshold && target.is_none() {
        bail!("--write-threshold needs --target-precision or --target-recall");
    }
    Ok(target)
}

fn binary_labels(args: &EvalArgs) -> anyhow::Result<Option<[String; 2]>> {
    match args.binary.as_deref() {
        None => Ok(None),
        Some([first, second]) => Ok(Some([first.clone(), second.clone()])),
        Some(other) => bail!("--binary takes two labels, got {other:?}"),
    }
}

/// Labels named on the command line must be the model's.
fn check_labels(args: &EvalArgs, model: &LabelsFile) -> anyhow::Result<()> {
    for label in args.sweep_label.iter().chain(args.binary.iter().flatten()) {
        if !model.labels.contains(label) {
            bail!(
                "label `{label}` is not one of the model's labels {:?}",
                model.labels
            );
        }
    }
    Ok(())
}

/// Classifies every example of `input` and computes the figures asked for, and the examples
/// to relabel with `--errors`; errors about an example name its line in the file.
fn evaluate_file(
    args: &EvalArgs,
    input: &Path,
    classifier: &Classifier,
    model_dir: &Path,
    asked: &Asked,
) -> anyhow::Result<(EvalReport, Option<Review>)> {
    let model = classifier.labels();
    let columns = labelled::Columns {
        group: args.group_column.clone(),
        ..args.columns.columns()
    };
    let set = labelled::read(input, &columns)?;
    if set.multi_label && model.problem_type == ProblemType::SingleLabel {
        bail!(
            "{}: the data has several labels per text, but {} is a single-label model",
            input.display(),
            model.name
        );
    }
    let groups: Option<Vec<String>> = set
        .examples
        .iter()
        .map(|example| example.group.clone())
        .collect();
    let progress = ProgressBar::new(set.examples.len() as u64).with_style(
        ProgressStyle::with_template(
            "classifying [{bar:30}] {pos}/{len} texts, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let judged = judge(
        classifier,
        &set.examples,
        |example| (example.text.as_str(), example.labels.as_slice()),
        |done| progress.set_position(done as u64),
    )?;
    progress.finish_and_clear();
    let report = EvalReport::compute(model, model_dir, input, &judged, groups.as_deref(), asked)
        .map_err(|error| match error {
            EvalReportError::Evaluation(EvaluationError::Example { index, problem }) => {
                anyhow::anyhow!(
                    "{} line {}: {problem}",
                    input.display(),
                    set.examples[index].line
                )
            }
            other => {
                anyhow::Error::new(other).context(format!("evaluating on {}", input.display()))
            }
        })?;
    let review = args
        .errors
        .map(|count| Review::pick(model.problem_type, &set.examples, &judged, count));
    Ok((report, review))
}

fn print_summary(args: &EvalArgs, report: &EvalReport, model_dir: &Path) -> anyhow::Result<()> {
    let (model, evaluation) = (&report.model, &report.evaluation);
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{} {} on {} examples: accuracy {:.4}, macro-F1 {:.4}, micro-F1 {:.4}",
        model.name,
        model.version,
        evaluation.examples,
        evaluation.accuracy,
        evaluation.macro_f1,
        evaluation.micro_f1
    )?;
    if let Some(default) = &report.at_default_thresholds {
        writeln!(
            stdout,
            "with every label at 0.5 instead of the model's tuned thresholds: accuracy {:.4}, \
             macro-F1 {:.4}, micro-F1 {:.4}",
            default.accuracy, default.macro_f1, default.micro_f1
        )?;
    }
    if let Some(binary) = &report.binary {
        writeln!(
            stdout,
            "binary ({} vs {}) on {} examples: accuracy {:.4}",
            binary.labels[0], binary.labels[1], binary.examples, binary.accuracy
        )?;
    }
    for group in report.groups.iter().flatten() {
        writeln!(
            stdout,
            "  {}: {} examples, {} failures ({:.1}%), macro-F1 {:.4}",
            group.group,
            group.examples,
            group.failures,
            group.failure_rate * 100.0,
            group.macro_f1
        )?;
    }
    if let Some(suggestion) = &report.suggestion {
        writeln!(
            stdout,
            "suggested threshold for `{}`: {:.2} (precision {}, recall {:.4}){}",
            suggestion.label,
            suggestion.point.threshold,
            suggestion
                .point
                .precision
                .map_or("n/a".to_owned(), |precision| format!("{precision:.4}")),
            suggestion.point.recall,
            if args.write_threshold {
                format!(" — written to {}", model_dir.join(LABELS_FILE).display())
            } else {
                String::new()
            }
        )?;
    }
    if let Some(review) = &report.review {
        writeln!(
            stdout,
            "for relabelling: {} most confident mistakes in {}, {} least confident decisions in {}",
            review.mistakes,
            args.out.join(MISTAKES_FILE).display(),
            review.uncertain,
            args.out.join(UNCERTAIN_FILE).display()
        )?;
    }
    writeln!(stdout, "report written to {}", args.out.display())?;
    Ok(())
}

fn check_share(value: f64, what: &str) -> anyhow::Result<f64> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        bail!("target {what} {value} is not between 0 and 1")
    }
}
