//! `tweetclf eval`: a model against labelled data — metrics.json, report.md, a confusion-matrix
//! heat map and a precision/recall-vs-threshold chart (SVG), and optionally a suggested
//! threshold written back into the model's labels.json.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use classifier::evaluate::{
    BinaryAccuracy, Evaluation, EvaluationError, GroupEvaluation, Judged, Target, ThresholdPoint,
    ThresholdSweep, binary_accuracy, evaluate, evaluate_groups, sweep,
};
use classifier::model_dir::LABELS_FILE;
use classifier::{Classifier, LabelsFile, ProblemType};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

use crate::labelled;

/// Texts classified per progress step.
const CHUNK: usize = 256;

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
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Everything metrics.json holds.
#[derive(Debug, Serialize)]
struct Report<'a> {
    model: ModelId<'a>,
    input: String,
    evaluation: &'a Evaluation,
    binary: Option<&'a BinaryAccuracy>,
    groups: Option<&'a [GroupEvaluation]>,
    sweep: Option<&'a ThresholdSweep>,
    suggestion: Option<Suggestion<'a>>,
}

#[derive(Debug, Serialize)]
struct ModelId<'a> {
    name: &'a str,
    version: &'a str,
    dir: String,
}

#[derive(Debug, Serialize)]
struct Suggestion<'a> {
    label: &'a str,
    target: Target,
    point: &'a ThresholdPoint,
    written_to_labels_json: bool,
}

/// The figures of one evaluation, before they are written.
struct Results {
    evaluation: Evaluation,
    groups: Option<Vec<GroupEvaluation>>,
    binary: Option<BinaryAccuracy>,
    sweep: Option<ThresholdSweep>,
    target: Option<Target>,
}

impl Results {
    fn suggested(&self) -> anyhow::Result<Option<&ThresholdPoint>> {
        match (&self.sweep, self.target) {
            (Some(sweep), Some(target)) => Ok(Some(sweep.suggest(target).with_context(|| {
                format!("no threshold of `{}` reaches {target:?}", sweep.label)
            })?)),
            _ => Ok(None),
        }
    }
}

pub fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    let input = args.input.required("eval")?;
    let target = target(args)?;
    let (classifier, model_dir) = super::load_model(args.model.as_deref(), args.threads)?;
    let model = classifier.labels();
    check_labels(args, model)?;
    let results = evaluate_file(args, input, &classifier, target)?;
    let suggested = results.suggested()?;
    let report = Report {
        model: ModelId {
            name: &model.name,
            version: &model.version,
            dir: model_dir.display().to_string(),
        },
        input: input.display().to_string(),
        evaluation: &results.evaluation,
        binary: results.binary.as_ref(),
        groups: results.groups.as_deref(),
        sweep: results.sweep.as_ref(),
        suggestion: results.sweep.as_ref().zip(target).zip(suggested).map(
            |((sweep, target), point)| Suggestion {
                label: &sweep.label,
                target,
                point,
                written_to_labels_json: args.write_threshold,
            },
        ),
    };
    write_report(&args.out, &report, suggested)?;
    // Last, so a failed report never leaves a changed model behind.
    if args.write_threshold
        && let (Some(sweep), Some(point)) = (&results.sweep, suggested)
    {
        let updated = model
            .with_threshold(&sweep.label, point.threshold as f32)
            .context("the updated labels.json would be invalid")?;
        updated
            .write(&model_dir)
            .with_context(|| format!("writing {}", model_dir.join(LABELS_FILE).display()))?;
    }
    print_summary(args, &report, &model_dir)
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

/// Labels named on the command line must be the model's.
fn check_labels(args: &EvalArgs, model: &LabelsFile) -> anyhow::Result<()> {
    if args.binary.as_ref().is_some_and(|labels| labels.len() != 2) {
        bail!("--binary takes two labels, got {:?}", args.binary);
    }
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

/// Classifies every example of `input` and computes the figures asked for; errors about an
/// example name its line in the file.
fn evaluate_file(
    args: &EvalArgs,
    input: &Path,
    classifier: &Classifier,
    target: Option<Target>,
) -> anyhow::Result<Results> {
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
    let lines: Vec<u64> = set.examples.iter().map(|example| example.line).collect();
    let at_line = |error: EvaluationError| match error {
        EvaluationError::Example { index, problem } => {
            anyhow::anyhow!("{} line {}: {problem}", input.display(), lines[index])
        }
        other => anyhow::Error::new(other).context(format!("evaluating on {}", input.display())),
    };
    let groups: Option<Vec<String>> = set
        .examples
        .iter()
        .map(|example| example.group.clone())
        .collect();
    let judged = judge(classifier, set)?;
    let (labels, problem_type) = (&model.labels, model.problem_type);
    Ok(Results {
        evaluation: evaluate(labels, problem_type, &judged).map_err(at_line)?,
        groups: groups
            .map(|groups| evaluate_groups(labels, problem_type, &judged, &groups))
            .transpose()
            .map_err(at_line)?,
        binary: match args.binary.as_deref() {
            Some([first, second]) => {
                Some(binary_accuracy(&judged, [first, second]).map_err(at_line)?)
            }
            _ => None,
        },
        sweep: args
            .sweep_label
            .as_deref()
            .map(|label| sweep(&judged, label))
            .transpose()
            .map_err(at_line)?,
        target,
    })
}

/// metrics.json, the plots and report.md under `out`.
fn write_report(
    out: &Path,
    report: &Report<'_>,
    suggested: Option<&ThresholdPoint>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write(
        &out.join("metrics.json"),
        serde_json::to_vec_pretty(report)?,
    )?;
    let mut plots = Vec::new();
    if let Some(confusion) = &report.evaluation.confusion {
        plot_confusion(
            &out.join("confusion.svg"),
            &report.evaluation.labels,
            confusion,
        )?;
        plots.push(("Confusion matrix, row shares", "confusion.svg"));
    }
    if let Some(sweep) = report.sweep {
        plot_sweep(&out.join("threshold.svg"), sweep, suggested)?;
        plots.push((
            "Precision and recall against the threshold",
            "threshold.svg",
        ));
    }
    write(
        &out.join("report.md"),
        markdown(report, &plots).into_bytes(),
    )
}

fn print_summary(args: &EvalArgs, report: &Report<'_>, model_dir: &Path) -> anyhow::Result<()> {
    let (model, evaluation) = (&report.model, report.evaluation);
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
    if let Some(binary) = report.binary {
        writeln!(
            stdout,
            "binary ({} vs {}) on {} examples: accuracy {:.4}",
            binary.labels[0], binary.labels[1], binary.examples, binary.accuracy
        )?;
    }
    for group in report.groups.iter().flat_map(|groups| groups.iter()) {
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

/// Classifies every example, with a progress bar.
fn judge(classifier: &Classifier, set: labelled::LabelledSet) -> anyhow::Result<Vec<Judged>> {
    let progress = ProgressBar::new(set.examples.len() as u64).with_style(
        ProgressStyle::with_template(
            "classifying [{bar:30}] {pos}/{len} texts, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut judged = Vec::with_capacity(set.examples.len());
    for chunk in set.examples.chunks(CHUNK) {
        let texts: Vec<&str> = chunk.iter().map(|example| example.text.as_str()).collect();
        let (predictions, _) = classifier.predict(&texts)?;
        judged.extend(
            chunk
                .iter()
                .zip(predictions)
                .map(|(example, predicted)| Judged {
                    actual: example.labels.clone(),
                    predicted,
                }),
        );
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    Ok(judged)
}

/// Sets one label's threshold in the model directory's labels.json, validated first.
fn write(path: &Path, bytes: Vec<u8>) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}

fn markdown(report: &Report, plots: &[(&str, &str)]) -> String {
    let evaluation = report.evaluation;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Evaluation of {} {}\n\nData: `{}` — {} examples. Model directory: `{}`.\n",
        report.model.name,
        report.model.version,
        report.input,
        evaluation.examples,
        report.model.dir
    );
    let accuracy_meaning = match evaluation.problem_type {
        ProblemType::SingleLabel => "share of texts given their true label",
        ProblemType::MultiLabel => "share of texts whose predicted label set is exactly right",
    };
    let _ = writeln!(
        out,
        "| metric | value |\n|---|---|\n| accuracy ({accuracy_meaning}) | {} |\n| macro-F1 | {} |\n| micro-F1 | {} |",
        percent(evaluation.accuracy),
        percent(evaluation.macro_f1),
        percent(evaluation.micro_f1)
    );
    if let Some(binary) = report.binary {
        let _ = writeln!(
            out,
            "| binary accuracy ({} vs {}, {} texts) | {} |",
            binary.labels[0],
            binary.labels[1],
            binary.examples,
            percent(binary.accuracy)
        );
    }
    let _ = writeln!(
        out,
        "\n## Per label\n\n| label | support | predicted | precision | recall | F1 |\n|---|---|---|---|---|---|"
    );
    for metrics in &evaluation.per_label {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            metrics.label,
            metrics.support,
            metrics.predicted,
            percent(metrics.precision),
            percent(metrics.recall),
            percent(metrics.f1)
        );
    }
    if let Some(groups) = report.groups {
        let _ = writeln!(
            out,
            "\n## Per group\n\n| group | examples | failures | failure rate | macro-F1 |\n|---|---|---|---|---|"
        );
        for group in groups {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                group.group,
                group.examples,
                group.failures,
                percent(group.failure_rate),
                percent(group.macro_f1)
            );
        }
    }
    if let Some(confusion) = &evaluation.confusion {
        let _ = writeln!(
            out,
            "\n## Confusion matrix\n\nRows: true label; columns: predicted label.\n\n| | {} |\n|---|{}",
            evaluation.labels.join(" | "),
            "---|".repeat(evaluation.labels.len())
        );
        for (label, row) in evaluation.labels.iter().zip(confusion) {
            let cells: Vec<String> = row.iter().map(usize::to_string).collect();
            let _ = writeln!(out, "| **{label}** | {} |", cells.join(" | "));
        }
    }
    if let Some(suggestion) = &report.suggestion {
        let _ = writeln!(
            out,
            "\n## Suggested threshold for `{}`\n\nTarget: {:?}. Threshold {:.2}: precision {}, recall {}, {} texts predicted.{}",
            suggestion.label,
            suggestion.target,
            suggestion.point.threshold,
            suggestion.point.precision.map_or("n/a".to_owned(), percent),
            percent(suggestion.point.recall),
            suggestion.point.predicted,
            if suggestion.written_to_labels_json {
                " Written to the model's labels.json."
            } else {
                " Not written (pass `--write-threshold`)."
            }
        );
    }
    for (title, file) in plots {
        let _ = writeln!(out, "\n## {title}\n\n![{title}]({file})");
    }
    out
}

fn plot_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {error}")
}

/// Heat map of `confusion[actual][predicted]`, each row shaded by its own share so that rare
/// labels read as clearly as common ones.
fn plot_confusion(path: &Path, labels: &[String], confusion: &[Vec<usize>]) -> anyhow::Result<()> {
    let count = labels.len();
    let side = u32::try_from(count).unwrap_or(u32::MAX).saturating_mul(110);
    let root = SVGBackend::new(path, (side + 200, side + 120)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Confusion matrix", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(110)
        // A segmented `0..n` has a segment for each of 0..=n: `count` segments need `0..count - 1`.
        .build_cartesian_2d(
            (0..count.saturating_sub(1)).into_segmented(),
            (0..count.saturating_sub(1)).into_segmented(),
        )
        .map_err(plot_error)?;
    // Rows run top to bottom in label order: row `truth` sits at y = count - 1 - truth.
    let name = |value: &SegmentValue<usize>, flip: bool| match value {
        SegmentValue::CenterOf(index) => {
            let index = if flip {
                count.checked_sub(index + 1)
            } else {
                Some(*index)
            };
            index
                .and_then(|index| labels.get(index))
                .cloned()
                .unwrap_or_default()
        }
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(count)
        .y_labels(count)
        .x_label_formatter(&|value| name(value, false))
        .y_label_formatter(&|value| name(value, true))
        .x_desc("predicted label")
        .y_desc("true label")
        .draw()
        .map_err(plot_error)?;
    for (truth, row) in confusion.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f64;
        let y = count - 1 - truth;
        for (guess, cell) in row.iter().enumerate() {
            let share = *cell as f64 / total;
            let shade = RGBColor(
                (255.0 - 200.0 * share) as u8,
                (255.0 - 140.0 * share) as u8,
                255,
            );
            chart
                .draw_series([Rectangle::new(
                    [
                        (SegmentValue::Exact(guess), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(guess + 1), SegmentValue::Exact(y + 1)),
                    ],
                    shade.filled(),
                )])
                .map_err(plot_error)?;
            let text_color = if share > 0.6 { WHITE } else { BLACK };
            chart
                .draw_series([Text::new(
                    format!("{cell} ({:.0}%)", share * 100.0),
                    (SegmentValue::CenterOf(guess), SegmentValue::CenterOf(y)),
                    ("sans-serif", 15)
                        .into_font()
                        .color(&text_color)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )])
                .map_err(plot_error)?;
        }
    }
    root.present().map_err(plot_error)
}

/// Precision, recall and F1 of one label against its threshold, the suggestion marked.
fn plot_sweep(
    path: &Path,
    sweep: &ThresholdSweep,
    suggested: Option<&ThresholdPoint>,
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (760, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "`{}`: precision and recall against the threshold",
                sweep.label
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..1.0, 0.0..1.02)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("threshold on the label's probability")
        .y_desc("share")
        .draw()
        .map_err(plot_error)?;
    let precision: Vec<(f64, f64)> = sweep
        .points
        .iter()
        .filter_map(|point| {
            point
                .precision
                .map(|precision| (point.threshold, precision))
        })
        .collect();
    let series = [
        ("precision", BLUE, precision),
        (
            "recall",
            RED,
            sweep
                .points
                .iter()
                .map(|point| (point.threshold, point.recall))
                .collect(),
        ),
        (
            "F1",
            GREEN,
            sweep
                .points
                .iter()
                .map(|point| (point.threshold, point.f1))
                .collect(),
        ),
    ];
    for (name, color, points) in series {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(plot_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    if let Some(point) = suggested {
        chart
            .draw_series(LineSeries::new(
                [(point.threshold, 0.0), (point.threshold, 1.02)],
                BLACK.stroke_width(1),
            ))
            .map_err(plot_error)?
            .label(format!("suggested {:.2}", point.threshold))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)
}
