//! The local runs store: every `train` and `eval` leaves one JSON record (parameters, data
//! hashes, metrics, per-epoch history, wall time, model path) in a directory, and the runs can
//! be listed side by side and their validation curves drawn — what W&B or MLflow give, with
//! no account and no server. One file per run, written whole then renamed, so two runs at once
//! never interleave and a crash leaves no half record.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::LabelsFile;
use crate::eval_report::EvalReport;
use crate::recipe::TrainedModel;
use crate::train::EpochReport;

/// The directory name of a runs store beside a model directory.
pub const RUNS_DIR: &str = "runs";

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Train,
    Eval,
}

/// A data file a run read, by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// `train`, `valid` or `test`.
    pub role: String,
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

impl DataFile {
    /// Reads `path` once to hash it.
    pub fn hashed(role: &str, path: &Path) -> std::io::Result<Self> {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        let mut bytes = 0u64;
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            bytes += read as u64;
        }
        Ok(Self {
            role: role.to_owned(),
            path: path.display().to_string(),
            sha256: format!("{:x}", hasher.finalize()),
            bytes,
        })
    }
}

/// One run's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The record's file name without `.json`; set by [`RunsStore::record`].
    #[serde(default)]
    pub id: String,
    pub kind: RunKind,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub wall_seconds: f64,
    pub command: String,
    pub model_name: String,
    pub model_version: String,
    pub model_dir: String,
    /// The run's settings as the library recorded them (training settings, eval options).
    pub parameters: serde_json::Value,
    pub data: Vec<DataFile>,
    /// Headline figures by name (`valid_micro_f1`, `test_macro_f1`, …).
    pub metrics: BTreeMap<String, f64>,
    /// Training only: every epoch's figures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub epochs: Vec<EpochReport>,
}

impl RunRecord {
    /// The record of a training run whose model was written to `model_dir`: parameters and
    /// history from what training recorded in `labels.json`.
    pub fn of_training(trained: &TrainedModel, model_dir: &Path, run: RunContext) -> Self {
        let labels = &trained.labels;
        let mut parameters = labels.provenance.clone();
        if let Some(object) = parameters.as_object_mut() {
            object.remove("details");
            object.remove("command");
        }
        let metric = labels.problem_type.validation_metric();
        let mut metrics = BTreeMap::from([
            (
                format!("valid_{metric}"),
                f64::from(trained.best.valid_metric),
            ),
            (
                "valid_accuracy".to_owned(),
                f64::from(trained.best.valid_accuracy),
            ),
        ]);
        let tuned = &labels.metrics["validation_thresholds"]["tuned"];
        for figure in ["micro_f1", "macro_f1"] {
            if let Some(value) = tuned[figure].as_f64() {
                metrics.insert(format!("valid_{figure}_tuned"), value);
            }
        }
        run.into_record(RunKind::Train, labels, model_dir, parameters, metrics)
            .with_epochs(trained.history.clone())
    }

    /// The record of an evaluation of `model` (in `model_dir`).
    pub fn of_evaluation(
        report: &EvalReport,
        model: &LabelsFile,
        model_dir: &Path,
        parameters: serde_json::Value,
        run: RunContext,
    ) -> Self {
        let evaluation = &report.evaluation;
        let mut metrics = BTreeMap::from([
            ("test_accuracy".to_owned(), evaluation.accuracy),
            ("test_macro_f1".to_owned(), evaluation.macro_f1),
            ("test_micro_f1".to_owned(), evaluation.micro_f1),
        ]);
        if let Some(default) = &report.at_default_thresholds {
            metrics.insert("test_macro_f1_at_0.5".to_owned(), default.macro_f1);
            metrics.insert("test_micro_f1_at_0.5".to_owned(), default.micro_f1);
        }
        if let Some(binary) = &report.binary {
            metrics.insert("test_binary_accuracy".to_owned(), binary.accuracy);
        }
        run.into_record(RunKind::Eval, model, model_dir, parameters, metrics)
    }

    fn with_epochs(self, epochs: Vec<EpochReport>) -> Self {
        Self { epochs, ..self }
    }
}

/// What the caller knows of a run: when it started, how long it took, the command, the data.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub started_at: String,
    pub wall_seconds: f64,
    pub command: String,
    pub data: Vec<DataFile>,
}

impl RunContext {
    fn into_record(
        self,
        kind: RunKind,
        model: &LabelsFile,
        model_dir: &Path,
        parameters: serde_json::Value,
        metrics: BTreeMap<String, f64>,
    ) -> RunRecord {
        RunRecord {
            id: String::new(),
            kind,
            started_at: self.started_at,
            wall_seconds: self.wall_seconds,
            command: self.command,
            model_name: model.name.clone(),
            model_version: model.version.clone(),
            model_dir: model_dir.display().to_string(),
            parameters,
            data: self.data,
            metrics,
            epochs: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error("writing {}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading {}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("drawing the validation curves: {0}")]
    Plot(String),
}

/// A directory of run records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunsStore {
    dir: PathBuf,
}

/// What a store holds: the readable records, oldest first, and the files that are not records.
#[derive(Debug, Default)]
pub struct StoredRuns {
    pub runs: Vec<RunRecord>,
    pub unreadable: Vec<(PathBuf, String)>,
}

impl RunsStore {
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `runs/` in the directory that holds `model_dir`.
    pub fn beside(model_dir: &Path) -> Self {
        let parent = model_dir.parent().unwrap_or(Path::new(""));
        Self::at(parent.join(RUNS_DIR))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `run` under a new id (its start time, kind and model name) and returns the file.
    pub fn record(&self, run: &RunRecord) -> Result<PathBuf, RunsError> {
        let write_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RunsError::Write { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(write_error(&self.dir))?;
        let stamp: String = run
            .started_at
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let name: String = run
            .model_name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let kind = serde_json::to_value(run.kind).unwrap_or_default();
        let stem = format!("{stamp}-{}-{name}", kind.as_str().unwrap_or("run"));
        let (id, path) = (1..)
            .map(|n| match n {
                1 => stem.clone(),
                n => format!("{stem}-{n}"),
            })
            .map(|id| {
                let path = self.dir.join(format!("{id}.json"));
                (id, path)
            })
            .find(|(_, path)| !path.exists())
            .expect("some suffix is free");
        let record = RunRecord { id, ..run.clone() };
        let json = serde_json::to_vec_pretty(&record).expect("a run record serializes");
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, json).map_err(write_error(&partial))?;
        std::fs::rename(&partial, &path).map_err(write_error(&path))?;
        Ok(path)
    }

    /// Every record, oldest first; files that do not parse are listed apart, not fatal.
    pub fn read(&self) -> Result<StoredRuns, RunsError> {
        let read_error = |source| RunsError::Read {
            path: self.dir.clone(),
            source,
        };
        let mut stored = StoredRuns::default();
        for entry in std::fs::read_dir(&self.dir).map_err(read_error)? {
            let path = entry.map_err(read_error)?.path();
            if path.extension().is_none_or(|extension| extension != "json") {
                continue;
            }
            let parsed = std::fs::read(&path)
                .map_err(|error| error.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<RunRecord>(&bytes).map_err(|error| error.to_string())
                });
            match parsed {
                Ok(run) => stored.runs.push(run),
                Err(problem) => stored.unreadable.push((path, problem)),
            }
        }
        stored.runs.sort_by(|a, b| {
            (a.started_at.as_str(), a.id.as_str()).cmp(&(b.started_at.as_str(), b.id.as_str()))
        });
        Ok(stored)
    }
}

/// The runs as a text table, one line each: when, kind, model, data hashes, figures, time.
pub fn table(runs: &[RunRecord]) -> String {
    let header = ["run", "kind", "model", "data (sha256)", "figures", "wall"].map(str::to_owned);
    let rows: Vec<[String; 6]> = runs.iter().map(row).collect();
    let widths: Vec<usize> = (0..6)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain([header[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    std::iter::once(&header)
        .chain(&rows)
        .map(|cells| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            padded.join("  ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn row(run: &RunRecord) -> [String; 6] {
    let data = run
        .data
        .iter()
        .map(|file| format!("{} {}", file.role, &file.sha256[..file.sha256.len().min(8)]))
        .collect::<Vec<_>>()
        .join(", ");
    let figures = run
        .metrics
        .iter()
        .map(|(name, value)| format!("{name} {value:.4}"))
        .collect::<Vec<_>>()
        .join(", ");
    let kind = serde_json::to_value(run.kind).unwrap_or_default();
    [
        run.id.clone(),
        kind.as_str().unwrap_or_default().to_owned(),
        format!("{} {}", run.model_name, run.model_version),
        data,
        figures,
        format!("{:.0} s", run.wall_seconds),
    ]
}

/// An SVG of every training run's validation metric per epoch, one line per run.
pub fn plot_validation_curves(
    path: &Path,
    runs: &[RunRecord],
    metric: &str,
) -> Result<(), RunsError> {
    let plot_error = |error: &dyn std::fmt::Display| RunsError::Plot(error.to_string());
    let trained: Vec<&RunRecord> = runs.iter().filter(|run| !run.epochs.is_empty()).collect();
    let last_epoch = trained
        .iter()
        .flat_map(|run| run.epochs.iter().map(|epoch| epoch.epoch))
        .max()
        .unwrap_or(1)
        .max(2);
    let root = SVGBackend::new(path, (860, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Validation {metric} per epoch"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(1usize..last_epoch, 0.0f64..1.0)
        .map_err(|e| plot_error(&e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(metric)
        .draw()
        .map_err(|e| plot_error(&e))?;
    for (index, run) in trained.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        let points = run
            .epochs
            .iter()
            .map(|epoch| (epoch.epoch, f64::from(epoch.valid_metric)));
        chart
            .draw_series(
                points
                    .clone()
                    .map(|point| Circle::new(point, 3, color.filled())),
            )
            .map_err(|e| plot_error(&e))?;
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| plot_error(&e))?
            .label(run.id.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| plot_error(&e))?;
    root.present().map_err(|e| plot_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(started_at: &str, name: &str, epochs: &[f32]) -> RunRecord {
        RunRecord {
            id: String::new(),
            kind: RunKind::Train,
            started_at: started_at.to_owned(),
            wall_seconds: 61.4,
            command: "tweetclf train …".to_owned(),
            model_name: name.to_owned(),
            model_version: "0.1.0".to_owned(),
            model_dir: format!("models/{name}"),
            parameters: serde_json::json!({"mode": "head"}),
            data: vec![DataFile {
                role: "valid".to_owned(),
                path: "valid.jsonl".to_owned(),
                sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
                    .to_owned(),
                bytes: 3,
            }],
            metrics: BTreeMap::from([("valid_micro_f1".to_owned(), 0.71234)]),
            epochs: epochs
                .iter()
                .enumerate()
                .map(|(index, metric)| EpochReport {
                    epoch: index + 1,
                    train_loss: 0.5,
                    valid_metric: *metric,
                    valid_accuracy: 0.5,
                })
                .collect(),
        }
    }

    #[test]
    fn data_files_are_hashed_by_content() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("valid.jsonl");
        std::fs::write(&path, "abc").expect("write");
        let file = DataFile::hashed("valid", &path).expect("hashed");
        // SHA-256("abc"), FIPS 180-2's first example.
        assert_eq!(file.sha256, run("", "", &[]).data[0].sha256);
        assert_eq!((file.role.as_str(), file.bytes), ("valid", 3));
    }

    #[test]
    fn records_round_trip_oldest_first_with_unique_ids_and_bad_files_apart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RunsStore::beside(&dir.path().join("my-model"));
        assert_eq!(store.dir(), dir.path().join("runs"));
        let later = run("2026-11-30T10:00:05Z", "aid/v2", &[0.5, 0.6]);
        let first = store.record(&later).expect("recorded");
        let second = store.record(&later).expect("recorded");
        store
            .record(&run("2026-11-30T09:00:00Z", "aid", &[0.4]))
            .expect("recorded");
        assert_eq!(
            first.file_name().and_then(|name| name.to_str()),
            Some("20261130T100005Z-train-aid_v2.json")
        );
        assert!(
            second.to_string_lossy().ends_with("-aid_v2-2.json"),
            "{second:?}"
        );
        std::fs::write(store.dir().join("broken.json"), "{").expect("write");
        std::fs::write(store.dir().join("notes.txt"), "not a record").expect("write");

        let stored = store.read().expect("read");
        let ids: Vec<&str> = stored.runs.iter().map(|run| run.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "20261130T090000Z-train-aid",
                "20261130T100005Z-train-aid_v2",
                "20261130T100005Z-train-aid_v2-2"
            ]
        );
        assert_eq!(
            stored.runs[1],
            RunRecord {
                id: ids[1].to_owned(),
                ..later
            }
        );
        assert_eq!(stored.unreadable.len(), 1);
        assert!(stored.unreadable[0].0.ends_with("broken.json"));
    }

    #[test]
    fn the_table_lines_runs_up_with_their_hashes_and_figures() {
        let mut evaluated = run("2026-11-30T11:00:00Z", "aid", &[]);
        evaluated.id = "20261130T110000Z-eval-aid".to_owned();
        evaluated.kind = RunKind::Eval;
        let text = table(&[evaluated]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("run "), "{text}");
        assert!(lines[1].contains("eval"), "{text}");
        assert!(lines[1].contains("aid 0.1.0"), "{text}");
        assert!(lines[1].contains("valid ba7816bf"), "{text}");
        assert!(lines[1].contains("valid_micro_f1 0.7123"), "{text}");
        assert!(lines[1].ends_with("61 s"), "{text}");
        // Columns line up: every cell of a column starts at the same place.
        let kind_column = lines[0].find("kind").expect("a kind column");
        assert!(lines[1][kind_column..].starts_with("eval "), "{text}");
    }

    #[test]
    fn validation_curves_draw_one_labelled_line_per_training_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("curves.svg");
        let mut first = run("2026-11-30T09:00:00Z", "aid", &[0.4, 0.55, 0.6]);
        first.id = "first-run".to_owned();
        let mut second = run("2026-11-30T10:00:00Z", "aid", &[0.5]);
        second.id = "second-run".to_owned();
        let mut evaluated = run("2026-11-30T11:00:00Z", "aid", &[]);
        evaluated.id = "an-eval".to_owned();
        plot_validation_curves(&path, &[first, second, evaluated], "micro_f1").expect("drawn");
        let svg = std::fs::read_to_string(&path).expect("written");
        assert!(svg.contains("first-run") && svg.contains("second-run"));
        assert!(!svg.contains("an-eval"), "an evaluation has no curve");
        assert!(svg.contains("Validation micro_f1 per epoch"));
    }
}
