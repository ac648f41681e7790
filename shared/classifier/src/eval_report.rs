//! An evaluation written for people and programs: metrics.json, report.md, a confusion-matrix
//! heat map and a precision/recall-vs-threshold chart (SVG). Behind the `report` feature, so
//! the Lambda functions never link the plotting library.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

use crate::evaluate::{
    BinaryAccuracy, Evaluation, EvaluationError, GroupEvaluation, Judged, Target, ThresholdPoint,
    ThresholdSweep, binary_accuracy, confidence, decided_with, evaluate, evaluate_groups,
    pick_for_review, sweep,
};
use crate::labelled::Labelled;
use crate::labels::{LabelsFile, ProblemType};

/// The figures asked for beyond the standard ones.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    /// Accuracy on the rows of these two labels, choosing between them by score.
    pub binary: Option<[String; 2]>,
    /// Sweep this label's decision threshold.
    pub sweep_label: Option<String>,
    /// Suggest the threshold of `sweep_label` that reaches this.
    pub target: Option<Target>,
}

/// Everything metrics.json holds.
#[derive(Debug, Serialize)]
pub struct EvalReport {
    pub model: ModelId,
    pub input: String,
    pub evaluation: Evaluation,
    /// A multi-label model with thresholds of its own: the same texts decided with every label
    /// at the default threshold (0.5), to show what its tuned thresholds buy.
    pub at_default_thresholds: Option<Evaluation>,
    pub binary: Option<BinaryAccuracy>,
    pub groups: Option<Vec<GroupEvaluation>>,
    pub sweep: Option<ThresholdSweep>,
    pub suggestion: Option<Suggestion>,
    /// What `--errors N` wrote for relabelling, when asked.
    pub review: Option<ReviewCounts>,
}

/// Which model was evaluated.
#[derive(Debug, Serialize)]
pub struct ModelId {
    pub name: String,
    pub version: String,
    pub dir: String,
}

/// The threshold suggested for a target, and whether it went into labels.json.
#[derive(Debug, Serialize)]
pub struct Suggestion {
    pub label: String,
    pub target: Target,
    pub point: ThresholdPoint,
    pub written_to_labels_json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalReportError {
    #[error(transparent)]
    Evaluation(#[from] EvaluationError),
    #[error("no threshold of `{label}` reaches {target:?}")]
    Unreachable { label: String, target: Target },
    #[error("drawing a plot: {0}")]
    Plot(String),
    #[error("writing {}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl EvalReport {
    /// The figures of `judged` for `model` (stored in `dir`), evaluated on `input`; `groups`
    /// gives each example's group when per-group figures are wanted.
    pub fn compute(
        model: &LabelsFile,
        dir: &Path,
        input: &Path,
        judged: &[Judged],
        groups: Option<&[String]>,
        asked: &Asked,
    ) -> Result<Self, EvalReportError> {
        let (labels, problem_type) = (&model.labels, model.problem_type);
        let sweep = asked
            .sweep_label
            .as_deref()
            .map(|label| sweep(judged, label))
            .transpose()?;
        let suggestion = match (&sweep, asked.target) {
            (Some(sweep), Some(target)) => Some(Suggestion {
                label: sweep.label.clone(),
                target,
                point: sweep.suggest(target).cloned().ok_or_else(|| {
                    EvalReportError::Unreachable {
                        label: sweep.label.clone(),
                        target,
                    }
                })?,
                written_to_labels_json: false,
            }),
            _ => None,
        };
        Ok(Self {
            model: ModelId {
                name: model.name.clone(),
                version: model.version.clone(),
                dir: dir.display().to_string(),
            },
            input: input.display().to_string(),
            evaluation: evaluate(labels, problem_type, judged)?,
            at_default_thresholds: at_default_thresholds(model, judged)?,
            binary: asked
                .binary
                .as_ref()
                .map(|[first, second]| binary_accuracy(judged, [first, second]))
                .transpose()?,
            groups: groups
                .map(|groups| evaluate_groups(labels, problem_type, judged, groups))
                .transpose()?,
            sweep,
            suggestion,
            review: None,
        })
    }

    /// metrics.json, the plots and report.md under `out`.
    pub fn write(&self, out: &Path) -> Result<(), EvalReportError> {
        std::fs::create_dir_all(out).map_err(|source| EvalReportError::Write {
            path: out.to_path_buf(),
            source,
        })?;
        let metrics = serde_json::to_vec_pretty(self).expect("the report serializes");
        write(&out.join("metrics.json"), metrics)?;
        let mut plots = Vec::new();
        if let Some(confusion) = &self.evaluation.confusion {
            plot_confusion(
                &out.join("confusion.svg"),
                &self.evaluation.labels,
                confusion,
            )?;
            plots.push(("Confusion matrix, row shares", "confusion.svg"));
        }
        if let Some(sweep) = &self.sweep {
            let suggested = self.suggestion.as_ref().map(|suggestion| &suggestion.point);
            plot_sweep(&out.join("threshold.svg"), sweep, suggested)?;
            plots.push((
                "Precision and recall against the threshold",
                "threshold.svg",
            ));
        }
        write(&out.join("report.md"), markdown(self, &plots).into_bytes())
    }
}

/// See [`EvalReport::at_default_thresholds`].
fn at_default_thresholds(
    model: &LabelsFile,
    judged: &[Judged],
) -> Result<Option<Evaluation>, EvaluationError> {
    if model.problem_type != ProblemType::MultiLabel || model.thresholds.is_empty() {
        return Ok(None);
    }
    let defaults = LabelsFile {
        thresholds: Default::default(),
        ..model.clone()
    };
    evaluate(
        &model.labels,
        model.problem_type,
        &decided_with(&defaults, judged),
    )
    .map(Some)
}

/// The file of the most confident mistakes, for relabelling.
pub const MISTAKES_FILE: &str = "mistakes.jsonl";
/// The file of the least confident decisions, for labelling next.
pub const UNCERTAIN_FILE: &str = "uncertain.jsonl";

/// How many examples each review file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReviewCounts {
    pub mistakes: usize,
    pub uncertain: usize,
}

/// One example to look at again: a line `train` and `eval` read back (`text`, then `label`,
/// or `labels` for multi-label), with what the model decided and how sure it was.
#[derive(Debug, Serialize)]
pub struct ReviewLine {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    pub predicted: Vec<String>,
    pub confidence: f32,
    pub scores: BTreeMap<String, f32>,
    /// The example's line in the evaluated file.
    pub line: u64,
}

/// The examples `--errors N` picks for relabelling.
#[derive(Debug)]
pub struct Review {
    pub mistakes: Vec<ReviewLine>,
    pub uncertain: Vec<ReviewLine>,
}

impl Review {
    /// The `count` most confident mistakes and the `count` least confident decisions of
    /// `judged` (in the order of `examples`).
    pub fn pick(
        problem_type: ProblemType,
        examples: &[Labelled],
        judged: &[Judged],
        count: usize,
    ) -> Self {
        let picks = pick_for_review(problem_type, judged, count);
        let line = |index: usize| {
            let (example, judged) = (&examples[index], &judged[index]);
            let single = problem_type == ProblemType::SingleLabel;
            ReviewLine {
                text: example.text.clone(),
                label: single.then(|| example.labels.first().cloned()).flatten(),
                labels: (!single).then(|| example.labels.clone()),
                predicted: judged.predicted.labels.clone(),
                confidence: confidence(problem_type, &judged.predicted),
                scores: judged.predicted.scores.clone(),
                line: example.line,
            }
        };
        Self {
            mistakes: picks.mistakes.into_iter().map(line).collect(),
            uncertain: picks.uncertain.into_iter().map(line).collect(),
        }
    }

    pub fn counts(&self) -> ReviewCounts {
        ReviewCounts {
            mistakes: self.mistakes.len(),
            uncertain: self.uncertain.len(),
        }
    }

    /// mistakes.jsonl and uncertain.jsonl under `out`.
    pub fn write(&self, out: &Path) -> Result<(), EvalReportError> {
        for (file, lines) in [
            (MISTAKES_FILE, &self.mistakes),
            (UNCERTAIN_FILE, &self.uncertain),
        ] {
            let mut bytes = Vec::new();
            for line in lines {
                serde_json::to_writer(&mut bytes, line).expect("a review line serializes");
                bytes.push(b'\n');
            }
            write(&out.join(file), bytes)?;
        }
        Ok(())
    }
}

fn write(path: &Path, bytes: Vec<u8>) -> Result<(), EvalReportError> {
    std::fs::write(path, bytes).map_err(|source| EvalReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}

fn markdown(report: &EvalReport, plots: &[(&str, &str)]) -> String {
    let evaluation = &report.evaluation;
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
    if let Some(default) = &report.at_default_thresholds {
        let _ = writeln!(
            out,
            "| macro-F1 with every label at 0.5 instead of its tuned threshold | {} |\n| micro-F1 with every label at 0.5 | {} |\n| accuracy with every label at 0.5 | {} |",
            percent(default.macro_f1),
            percent(default.micro_f1),
            percent(default.accuracy)
        );
    }
    if let Some(binary) = &report.binary {
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
    if let Some(groups) = &report.groups {
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
    follow_up_sections(&mut out, report, plots);
    out
}

/// The suggested threshold, the files for relabelling and the plots.
fn follow_up_sections(out: &mut String, report: &EvalReport, plots: &[(&str, &str)]) {
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
    if let Some(review) = &report.review {
        let _ = writeln!(
            out,
            "\n## For relabelling\n\n`{MISTAKES_FILE}`: the {} most confident mistakes. `{UNCERTAIN_FILE}`: the {} least confident decisions. Each line is a labelled example (`text`, `label` or `labels`) with the model's decision, its confidence and scores: correct the label and add it to the training data.",
            review.mistakes, review.uncertain
        );
    }
    for (title, file) in plots {
        let _ = writeln!(out, "\n## {title}\n\n![{title}]({file})");
    }
}

fn plot_error(error: impl std::fmt::Display) -> EvalReportError {
    EvalReportError::Plot(error.to_string())
}

/// Heat map of `confusion[actual][predicted]`, each row shaded by its own share so that rare
/// labels read as clearly as common ones.
fn plot_confusion(
    path: &Path,
    labels: &[String],
    confusion: &[Vec<usize>],
) -> Result<(), EvalReportError> {
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
) -> Result<(), EvalReportError> {
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
