//! Held-out evaluation: how a model's decisions compare with the true labels — accuracy,
//! per-label precision / recall / F1, macro and micro F1, the confusion matrix — and how one
//! label's precision and recall move with its decision threshold (what Amazon ML's threshold
//! slider shows), with a suggested threshold for a target precision or recall.

use serde::Serialize;
use tweets::Prediction;

use crate::engine::decide_probabilities;
use crate::labels::{LabelsFile, ProblemType};

/// Texts classified at once while judging: the progress display moves after each chunk.
const JUDGE_CHUNK: usize = 256;

/// Classifies `examples` (each seen through `parts` as its text and true labels) in chunks
/// and pairs every decision with its true labels; `progress` hears how many are done.
pub fn judge<T>(
    classifier: &crate::Classifier,
    examples: &[T],
    parts: impl Fn(&T) -> (&str, &[String]),
    mut progress: impl FnMut(usize),
) -> Result<Vec<Judged>, crate::PredictError> {
    let mut judged = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(JUDGE_CHUNK) {
        let texts: Vec<&str> = chunk.iter().map(|example| parts(example).0).collect();
        let (predictions, _) = classifier.predict(&texts)?;
        judged.extend(
            chunk
                .iter()
                .zip(predictions)
                .map(|(example, predicted)| Judged {
                    actual: parts(example).1.to_vec(),
                    predicted,
                }),
        );
        progress(judged.len());
    }
    Ok(judged)
}

/// One evaluated example: its true labels and what the model decided.
#[derive(Debug, Clone)]
pub struct Judged {
    pub actual: Vec<String>,
    pub predicted: Prediction,
}

/// Counts and scores of one label, treated as one-vs-rest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelMetrics {
    pub label: String,
    /// Examples that truly carry the label.
    pub support: usize,
    /// Examples the model gave the label.
    pub predicted: usize,
    pub true_positives: usize,
    /// 0 when the label was never predicted (scikit-learn's `zero_division=0`).
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// The figures of one evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub examples: usize,
    pub problem_type: ProblemType,
    pub labels: Vec<String>,
    /// Examples given exactly their true label(s).
    pub correct: usize,
    /// Single-label: share of examples given their true label. Multi-label: share whose
    /// predicted label set is exactly the true set.
    pub accuracy: f64,
    /// Mean of the per-label F1 scores.
    pub macro_f1: f64,
    /// F1 over all labels' pooled counts (equal to accuracy for single-label).
    pub micro_f1: f64,
    pub per_label: Vec<LabelMetrics>,
    /// Single-label only: `confusion[actual][predicted]`, rows and columns in `labels` order.
    pub confusion: Option<Vec<Vec<usize>>>,
}

/// Why an evaluation cannot be computed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EvaluationError {
    #[error("no examples to evaluate")]
    Empty,
    /// Example `index` (from 0, in the order given) cannot be judged.
    #[error("example {index}: {problem}")]
    Example {
        index: usize,
        problem: ExampleProblem,
    },
}

/// What is wrong with one example; callers that know where it came from say so.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExampleProblem {
    #[error("label `{label}` is not one of the model's labels {labels:?}")]
    UnknownLabel { label: String, labels: Vec<String> },
    #[error("a single-label model needs exactly one true label, got {count}")]
    NotSingleLabel { count: usize },
    #[error("the prediction has no score for label `{label}`")]
    MissingScore { label: String },
}

impl ExampleProblem {
    fn at(self, index: usize) -> EvaluationError {
        EvaluationError::Example {
            index,
            problem: self,
        }
    }
}

fn f1(precision: f64, recall: f64) -> f64 {
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Compares every decision with the truth.
pub fn evaluate(
    labels: &[String],
    problem_type: ProblemType,
    judged: &[Judged],
) -> Result<Evaluation, EvaluationError> {
    if judged.is_empty() {
        return Err(EvaluationError::Empty);
    }
    // One flag per label, set for each name in `names`.
    let flags = |names: &[String], index: usize| -> Result<Vec<bool>, EvaluationError> {
        let mut flags = vec![false; labels.len()];
        for name in names {
            let position = labels
                .iter()
                .position(|known| known == name)
                .ok_or_else(|| {
                    ExampleProblem::UnknownLabel {
                        label: name.clone(),
                        labels: labels.to_vec(),
                    }
                    .at(index)
                })?;
            flags[position] = true;
        }
        Ok(flags)
    };
    let mut support = vec![0usize; labels.len()];
    let mut predicted = vec![0usize; labels.len()];
    let mut true_positives = vec![0usize; labels.len()];
    let mut confusion = vec![vec![0usize; labels.len()]; labels.len()];
    let mut exact = 0usize;
    for (index, example) in judged.iter().enumerate() {
        if problem_type == ProblemType::SingleLabel && example.actual.len() != 1 {
            let count = example.actual.len();
            return Err(ExampleProblem::NotSingleLabel { count }.at(index));
        }
        let actual = flags(&example.actual, index)?;
        let decided = flags(&example.predicted.labels, index)?;
        if actual == decided {
            exact += 1;
        }
        for position in 0..labels.len() {
            support[position] += usize::from(actual[position]);
            predicted[position] += usize::from(decided[position]);
            true_positives[position] += usize::from(actual[position] && decided[position]);
        }
        if problem_type == ProblemType::SingleLabel
            && let (Some(truth), Some(guess)) = (
                actual.iter().position(|is| *is),
                decided.iter().position(|is| *is),
            )
        {
            confusion[truth][guess] += 1;
        }
    }
    let per_label: Vec<LabelMetrics> = labels
        .iter()
        .enumerate()
        .map(|(position, label)| {
            let precision = ratio(true_positives[position], predicted[position]);
            let recall = ratio(true_positives[position], support[position]);
            LabelMetrics {
                label: label.clone(),
                support: support[position],
                predicted: predicted[position],
                true_positives: true_positives[position],
                precision,
                recall,
                f1: f1(precision, recall),
            }
        })
        .collect();
    let pooled_precision = ratio(true_positives.iter().sum(), predicted.iter().sum());
    let pooled_recall = ratio(true_positives.iter().sum(), support.iter().sum());
    Ok(Evaluation {
        examples: judged.len(),
        problem_type,
        labels: labels.to_vec(),
        correct: exact,
        accuracy: ratio(exact, judged.len()),
        macro_f1: per_label.iter().map(|metrics| metrics.f1).sum::<f64>() / labels.len() as f64,
        micro_f1: f1(pooled_precision, pooled_recall),
        per_label,
        confusion: (problem_type == ProblemType::SingleLabel).then_some(confusion),
    })
}

/// The figures of the examples that share one value of a group column: a capability of a
/// test suite (CheckList's failure rate per capability), a data source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupEvaluation {
    pub group: String,
    pub examples: usize,
    /// Examples whose decision is wrong (multi-label: whose label set is not exactly right).
    pub failures: usize,
    pub failure_rate: f64,
    /// Mean F1 over the labels the group holds or was given (scikit-learn's default): a group
    /// of one label is not marked down for labels it cannot have.
    pub macro_f1: f64,
}

/// [`evaluate`] within each group, groups in order of first appearance. `groups[i]` is the
/// group of `judged[i]`.
pub fn evaluate_groups(
    labels: &[String],
    problem_type: ProblemType,
    judged: &[Judged],
    groups: &[String],
) -> Result<Vec<GroupEvaluation>, EvaluationError> {
    let mut members: Vec<(&str, Vec<Judged>)> = Vec::new();
    for (example, group) in judged.iter().zip(groups) {
        match members.iter_mut().find(|(name, _)| name == group) {
            Some((_, examples)) => examples.push(example.clone()),
            None => members.push((group, vec![example.clone()])),
        }
    }
    members
        .into_iter()
        .map(|(group, examples)| {
            let evaluation = evaluate(labels, problem_type, &examples)?;
            let present: Vec<f64> = evaluation
                .per_label
                .iter()
                .filter(|metrics| metrics.support > 0 || metrics.predicted > 0)
                .map(|metrics| metrics.f1)
                .collect();
            let failures = examples.len() - evaluation.correct;
            Ok(GroupEvaluation {
                group: group.to_owned(),
                examples: examples.len(),
                failures,
                failure_rate: ratio(failures, examples.len()),
                macro_f1: present.iter().sum::<f64>() / present.len().max(1) as f64,
            })
        })
        .collect()
}

/// Accuracy on the examples whose true label is one of two (e.g. negative vs positive in a
/// three-class sentiment set), deciding between those two by score alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BinaryAccuracy {
    pub labels: [String; 2],
    pub examples: usize,
    pub accuracy: f64,
}

pub fn binary_accuracy(
    judged: &[Judged],
    labels: [&str; 2],
) -> Result<BinaryAccuracy, EvaluationError> {
    let mut examples = 0;
    let mut right = 0;
    for (index, example) in judged.iter().enumerate() {
        let [truth] = example.actual.as_slice() else {
            continue;
        };
        if !labels.contains(&truth.as_str()) {
            continue;
        }
        let score = |label: &str| {
            example.predicted.scores.get(label).copied().ok_or_else(|| {
                ExampleProblem::MissingScore {
                    label: label.to_owned(),
                }
                .at(index)
            })
        };
        let guess = if score(labels[0])? >= score(labels[1])? {
            labels[0]
        } else {
            labels[1]
        };
        examples += 1;
        right += usize::from(guess == truth);
    }
    if examples == 0 {
        return Err(EvaluationError::Empty);
    }
    Ok(BinaryAccuracy {
        labels: labels.map(str::to_owned),
        examples,
        accuracy: ratio(right, examples),
    })
}

/// Precision and recall of "the label's probability is at least `threshold`".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdPoint {
    pub threshold: f64,
    pub predicted: usize,
    /// `None` when nothing reaches the threshold.
    pub precision: Option<f64>,
    pub recall: f64,
    pub f1: f64,
}

/// One label's precision and recall at thresholds 0.00, 0.01, …, 1.00, one-vs-rest on its
/// probability. For a single-label model this is the rule a threshold in `labels.json` adds
/// on top of "most probable label".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdSweep {
    pub label: String,
    pub positives: usize,
    pub points: Vec<ThresholdPoint>,
}

/// What a suggested threshold should guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// At least this precision, with as much recall as possible: the lowest threshold that
    /// reaches it.
    Precision(f64),
    /// At least this recall, with as much precision as possible: the highest threshold that
    /// keeps it.
    Recall(f64),
}

pub const SWEEP_STEPS: usize = 100;

pub fn sweep(judged: &[Judged], label: &str) -> Result<ThresholdSweep, EvaluationError> {
    if judged.is_empty() {
        return Err(EvaluationError::Empty);
    }
    let mut scored = Vec::with_capacity(judged.len());
    for (index, example) in judged.iter().enumerate() {
        let score = example
            .predicted
            .scores
            .get(label)
            .copied()
            .ok_or_else(|| {
                ExampleProblem::MissingScore {
                    label: label.to_owned(),
                }
                .at(index)
            })?;
        scored.push((score, example.actual.iter().any(|l| l == label)));
    }
    let positives = scored.iter().filter(|(_, positive)| *positive).count();
    let points = (0..=SWEEP_STEPS)
        .map(|step| {
            let threshold = step as f64 / SWEEP_STEPS as f64;
            let (mut predicted, mut hits) = (0, 0);
            for (score, positive) in &scored {
                // In f32, as `labels.json` stores a threshold and inference compares it.
                if *score >= threshold as f32 {
                    predicted += 1;
                    hits += usize::from(*positive);
                }
            }
            let precision = (predicted > 0).then(|| ratio(hits, predicted));
            let recall = ratio(hits, positives);
            ThresholdPoint {
                threshold,
                predicted,
                precision,
                recall,
                f1: f1(precision.unwrap_or(0.0), recall),
            }
        })
        .collect();
    Ok(ThresholdSweep {
        label: label.to_owned(),
        positives,
        points,
    })
}

impl ThresholdSweep {
    /// The threshold that meets `target`, if any does.
    pub fn suggest(&self, target: Target) -> Option<&ThresholdPoint> {
        match target {
            Target::Precision(wanted) => self
                .points
                .iter()
                .find(|point| point.precision.is_some_and(|precision| precision >= wanted)),
            Target::Recall(wanted) => self
                .points
                .iter()
                .rev()
                .find(|point| point.recall >= wanted),
        }
    }
}

/// A label with fewer validation positives than this keeps its default threshold: a handful
/// of positives would pick a threshold by chance.
pub const MIN_POSITIVES_TO_TUNE: usize = 10;
/// Tuned thresholds stay within this range, so no label is predicted for (almost) every text
/// or for (almost) none.
pub const TUNED_RANGE: std::ops::RangeInclusive<f32> = 0.05..=0.95;

/// One label's decision threshold as chosen on validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TunedThreshold {
    pub label: String,
    pub positives: usize,
    /// `None`: too few positives to choose by, the default stays.
    pub threshold: Option<f32>,
    pub f1_at_default: f64,
    /// The label's F1 at the chosen threshold (at the default when none was chosen).
    pub f1_tuned: f64,
}

/// Each multi-label label's threshold that maximises its F1 on `judged` (a validation set's
/// decisions with their scores), on the 0.01 grid within [`TUNED_RANGE`]; ties go to the
/// threshold nearest `default`. Labels with fewer than `min_positives` positives keep
/// `default`.
pub fn tune_thresholds(
    labels: &[String],
    judged: &[Judged],
    default: f32,
    min_positives: usize,
) -> Result<Vec<TunedThreshold>, EvaluationError> {
    labels
        .iter()
        .map(|label| {
            let sweep = sweep(judged, label)?;
            let distance = |point: &ThresholdPoint| (point.threshold - f64::from(default)).abs();
            let f1_at_default = sweep
                .points
                .iter()
                .min_by(|a, b| distance(a).total_cmp(&distance(b)))
                .map_or(0.0, |point| point.f1);
            let best = (sweep.positives >= min_positives)
                .then(|| {
                    sweep
                        .points
                        .iter()
                        .filter(|point| TUNED_RANGE.contains(&(point.threshold as f32)))
                        .min_by(|a, b| {
                            b.f1.total_cmp(&a.f1)
                                .then(distance(a).total_cmp(&distance(b)))
                        })
                })
                .flatten();
            Ok(TunedThreshold {
                label: label.clone(),
                positives: sweep.positives,
                threshold: best.map(|point| point.threshold as f32),
                f1_at_default,
                f1_tuned: best.map_or(f1_at_default, |point| point.f1),
            })
        })
        .collect()
}

/// `judged` decided again from the scores each prediction carries, under `labels`'
/// thresholds: figures at the default thresholds beside the tuned ones.
pub fn decided_with(labels: &LabelsFile, judged: &[Judged]) -> Vec<Judged> {
    judged
        .iter()
        .map(|example| {
            let probabilities = labels
                .labels
                .iter()
                .map(|label| example.predicted.scores.get(label).copied().unwrap_or(0.0))
                .collect();
            Judged {
                actual: example.actual.clone(),
                predicted: decide_probabilities(labels, probabilities),
            }
        })
        .collect()
}

/// Examples worth a second look before relabelling, as indices into the judged examples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewPicks {
    /// Wrong decisions, the most confident first: likely label errors in the data, or the
    /// model's blind spots.
    pub mistakes: Vec<usize>,
    /// Every decision, the least confident first: where one more label teaches the most.
    pub uncertain: Vec<usize>,
}

/// How sure the model was of its decision, from 0 to 1. Single-label: the decided label's
/// probability. Multi-label: the least sure of its per-label yes/no decisions (`p` for a
/// label it gave, `1 - p` for one it did not).
pub fn confidence(problem_type: ProblemType, predicted: &Prediction) -> f32 {
    let probability = |label: &str| predicted.scores.get(label).copied().unwrap_or(0.0);
    match problem_type {
        ProblemType::SingleLabel => predicted.label.as_deref().map_or(0.0, probability),
        ProblemType::MultiLabel => decisions(predicted)
            .map(|(_, sure)| sure)
            .fold(1.0, f32::min),
    }
}

/// Each label's yes/no decision and how sure it is (`p` for yes, `1 - p` for no).
fn decisions(predicted: &Prediction) -> impl Iterator<Item = (&str, f32)> {
    predicted.scores.iter().map(|(label, &p)| {
        let given = predicted.labels.contains(label);
        (label.as_str(), if given { p } else { 1.0 - p })
    })
}

/// How sure the model was of a wrong decision; `None` when the decision is right.
fn mistake_confidence(problem_type: ProblemType, example: &Judged) -> Option<f32> {
    let mut actual: Vec<&String> = example.actual.iter().collect();
    let mut predicted: Vec<&String> = example.predicted.labels.iter().collect();
    actual.sort();
    predicted.sort();
    if actual == predicted {
        return None;
    }
    Some(match problem_type {
        ProblemType::SingleLabel => confidence(problem_type, &example.predicted),
        ProblemType::MultiLabel => decisions(&example.predicted)
            .filter(|(label, _)| {
                example.actual.iter().any(|name| name == label)
                    != example.predicted.labels.iter().any(|name| name == label)
            })
            .map(|(_, sure)| sure)
            .fold(0.0, f32::max),
    })
}

/// The `count` most confident mistakes and the `count` least confident decisions; ties keep
/// the data's order.
pub fn pick_for_review(problem_type: ProblemType, judged: &[Judged], count: usize) -> ReviewPicks {
    let mut mistakes: Vec<(usize, f32)> = judged
        .iter()
        .enumerate()
        .filter_map(|(index, example)| Some((index, mistake_confidence(problem_type, example)?)))
        .collect();
    mistakes.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut uncertain: Vec<(usize, f32)> = judged
        .iter()
        .enumerate()
        .map(|(index, example)| (index, confidence(problem_type, &example.predicted)))
        .collect();
    uncertain.sort_by(|a, b| a.1.total_cmp(&b.1));
    let first = |picked: Vec<(usize, f32)>| {
        picked
            .into_iter()
            .take(count)
            .map(|(index, _)| index)
            .collect()
    };
    ReviewPicks {
        mistakes: first(mistakes),
        uncertain: first(uncertain),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn labels() -> Vec<String> {
        ["negative", "neutral", "positive"]
            .map(str::to_owned)
            .to_vec()
    }

    /// A single-label judgement: truth, decided label, and the scores.
    fn judged(truth: &str, decided: &str, scores: [f32; 3]) -> Judged {
        Judged {
            actual: vec![truth.to_owned()],
            predicted: Prediction {
                label: Some(decided.to_owned()),
                score: 0.0,
                labels: vec![decided.to_owned()],
                scores: labels().into_iter().zip(scores).collect::<BTreeMap<_, _>>(),
            },
        }
    }

    fn sample() -> Vec<Judged> {
        vec![
            judged("negative", "negative", [0.9, 0.05, 0.05]),
            judged("negative", "negative", [0.6, 0.3, 0.1]),
            judged("negative", "neutral", [0.3, 0.5, 0.2]),
            judged("neutral", "neutral", [0.2, 0.7, 0.1]),
            judged("neutral", "negative", [0.5, 0.4, 0.1]),
            judged("positive", "positive", [0.1, 0.1, 0.8]),
            judged("positive", "neutral", [0.1, 0.5, 0.4]),
        ]
    }

    #[test]
    fn groups_are_evaluated_apart_in_order_of_first_appearance() {
        let groups = ["b", "a", "a", "b", "b", "a", "a"].map(str::to_owned);
        let evaluations =
            evaluate_groups(&labels(), ProblemType::SingleLabel, &sample(), &groups).expect("ok");
        let names: Vec<&str> = evaluations.iter().map(|e| e.group.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        // b: right, wrong (neutral→negative), right. a: right, wrong, right, wrong.
        assert_eq!((evaluations[0].examples, evaluations[0].failures), (3, 1));
        assert_eq!((evaluations[1].examples, evaluations[1].failures), (4, 2));
        assert!((evaluations[1].failure_rate - 0.5).abs() < 1e-12);
        // b holds negative and neutral only, and was never told positive: negative F1 2/3
        // (P 1/2, R 1), neutral F1 2/3 (P 1, R 1/2); positive does not count.
        assert!(
            (evaluations[0].macro_f1 - 2.0 / 3.0).abs() < 1e-12,
            "{:?}",
            evaluations[0]
        );
    }

    #[test]
    fn single_label_figures_match_a_hand_computation() {
        let evaluation = evaluate(&labels(), ProblemType::SingleLabel, &sample()).expect("ok");
        assert_eq!(evaluation.examples, 7);
        assert!((evaluation.accuracy - 4.0 / 7.0).abs() < 1e-12);
        assert_eq!(
            evaluation.confusion,
            Some(vec![vec![2, 1, 0], vec![1, 1, 0], vec![0, 1, 1]])
        );
        // negative: P 2/3 R 2/3; neutral: P 1/3 R 1/2; positive: P 1 R 1/2.
        let expected_f1 = [2.0 / 3.0, 0.4, 2.0 / 3.0];
        for (metrics, f1) in evaluation.per_label.iter().zip(expected_f1) {
            assert!((metrics.f1 - f1).abs() < 1e-12, "{metrics:?}");
        }
        assert_eq!(evaluation.per_label[1].support, 2);
        assert_eq!(evaluation.per_label[1].predicted, 3);
        assert!((evaluation.macro_f1 - (2.0 / 3.0 + 0.4 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((evaluation.micro_f1 - evaluation.accuracy).abs() < 1e-12);
    }

    #[test]
    fn multi_label_counts_each_label_and_exact_sets() {
        let names: Vec<String> = ["fire", "flood", "help"].map(str::to_owned).to_vec();
        let example = |actual: &[&str], decided: &[&str]| Judged {
            actual: actual.iter().map(|l| (*l).to_owned()).collect(),
            predicted: Prediction {
                label: decided.first().map(|l| (*l).to_owned()),
                score: 0.0,
                labels: decided.iter().map(|l| (*l).to_owned()).collect(),
                scores: BTreeMap::new(),
            },
        };
        let judged = vec![
            example(&["fire", "help"], &["fire", "help"]),
            example(&["flood"], &["flood", "help"]),
            example(&[], &[]),
            example(&["help"], &[]),
        ];
        let evaluation = evaluate(&names, ProblemType::MultiLabel, &judged).expect("ok");
        assert_eq!(evaluation.confusion, None);
        assert!((evaluation.accuracy - 0.5).abs() < 1e-12);
        // Pooled: TP 3, predicted 4, support 4 → P = R = F1 = 0.75.
        assert!((evaluation.micro_f1 - 0.75).abs() < 1e-12);
        let help = &evaluation.per_label[2];
        assert_eq!(
            (help.true_positives, help.predicted, help.support),
            (1, 2, 2)
        );
    }

    /// Six multi-label validation examples: `help` on the first three, `fire` on the first only.
    fn validation() -> Vec<Judged> {
        let help = [0.3, 0.4, 0.8, 0.1, 0.35, 0.6];
        let fire = [0.9, 0.2, 0.1, 0.1, 0.1, 0.7];
        (0..6)
            .map(|row| {
                let mut actual = Vec::new();
                if row == 0 {
                    actual.push("fire".to_owned());
                }
                if row < 3 {
                    actual.push("help".to_owned());
                }
                Judged {
                    actual,
                    predicted: Prediction {
                        label: None,
                        score: 0.0,
                        labels: Vec::new(),
                        scores: BTreeMap::from([
                            ("fire".to_owned(), fire[row]),
                            ("help".to_owned(), help[row]),
                        ]),
                    },
                }
            })
            .collect()
    }

    #[test]
    fn thresholds_are_tuned_to_each_labels_best_f1_nearest_the_default() {
        let names = ["fire", "help"].map(str::to_owned);
        let tuned = tune_thresholds(&names, &validation(), 0.5, 3).expect("ok");
        // help: positives 0.3, 0.4, 0.8; negatives 0.1, 0.35, 0.6.
        //   at 0.50: TP 1 (0.8), FP 1 (0.6), FN 2 → F1 2/(2+1+2) = 0.4
        //   at 0.11…0.30: TP 3, FP 2 (0.35, 0.6) → F1 6/8 = 0.75, the best; 0.30 is nearest 0.5
        //   at 0.31…0.35: TP 2, FP 2 → 0.571; at 0.36…0.40: TP 2, FP 1 → 0.667
        let help = &tuned[1];
        assert_eq!((help.label.as_str(), help.positives), ("help", 3));
        assert_eq!(help.threshold, Some(0.3));
        assert!((help.f1_at_default - 0.4).abs() < 1e-12, "{help:?}");
        assert!((help.f1_tuned - 0.75).abs() < 1e-12, "{help:?}");
        // fire has one positive, under the floor of 3: it keeps the default.
        let fire = &tuned[0];
        assert_eq!((fire.positives, fire.threshold), (1, None));
        // at 0.5: TP 1 (0.9), FP 1 (0.7) → F1 2/3
        assert!((fire.f1_at_default - 2.0 / 3.0).abs() < 1e-12, "{fire:?}");
        assert_eq!(fire.f1_tuned, fire.f1_at_default);
    }

    #[test]
    fn tuned_thresholds_stay_inside_the_allowed_range() {
        let with_help = |scores: [f32; 6]| {
            let mut judged = validation();
            for (example, score) in judged.iter_mut().zip(scores) {
                example.predicted.scores.insert("help".to_owned(), score);
            }
            tune_thresholds(&["help".to_owned()], &judged, 0.5, 1).expect("ok")
        };
        // Positives 0.06–0.08, negatives ≤ 0.02: F1 is 1 from 0.03 to 0.06; of those only
        // 0.05 and 0.06 are allowed, and 0.06 is nearer the default.
        let tuned = with_help([0.06, 0.07, 0.08, 0.01, 0.02, 0.01]);
        assert_eq!(tuned[0].threshold, Some(0.06));
        assert_eq!(tuned[0].f1_tuned, 1.0);
        // Every positive under 0.05: no allowed threshold finds one, so all tie at F1 0 and
        // the default stays.
        let tuned = with_help([0.03, 0.04, 0.045, 0.01, 0.02, 0.01]);
        assert_eq!(tuned[0].threshold, Some(0.5));
        assert_eq!(tuned[0].f1_tuned, 0.0);
    }

    #[test]
    fn decisions_are_redone_from_the_scores_under_other_thresholds() {
        let mut model = crate::labels::tests::sample();
        model.labels = ["fire", "help"].map(str::to_owned).to_vec();
        model.problem_type = ProblemType::MultiLabel;
        let redone = decided_with(&model, &validation());
        assert_eq!(redone[0].predicted.labels, ["fire"]);
        assert_eq!(redone[2].predicted.labels, ["help"]);
        // Both pass on the last row: the more probable first.
        assert_eq!(redone[5].predicted.labels, ["fire", "help"]);
        assert_eq!(redone[5].predicted.label.as_deref(), Some("fire"));
        assert_eq!(redone[1].predicted.label, None);
        assert_eq!(redone[1].predicted.score, 0.4);
        // help at its tuned 0.3 (see above): rows 0, 1, 2, 4 and 5, F1 0.75.
        let tuned = model.with_threshold("help", 0.3).expect("valid");
        let evaluation = evaluate(
            &tuned.labels,
            ProblemType::MultiLabel,
            &decided_with(&tuned, &validation()),
        )
        .expect("ok");
        assert_eq!(evaluation.per_label[1].predicted, 5);
        assert!((evaluation.per_label[1].f1 - 0.75).abs() < 1e-12);
    }

    #[test]
    fn bad_examples_are_refused_with_their_index() {
        let mut bad = sample();
        bad[3].actual = vec!["angry".to_owned()];
        assert!(matches!(
            evaluate(&labels(), ProblemType::SingleLabel, &bad),
            Err(EvaluationError::Example {
                index: 3,
                problem: ExampleProblem::UnknownLabel { .. }
            })
        ));
        bad[3].actual = vec![];
        assert_eq!(
            evaluate(&labels(), ProblemType::SingleLabel, &bad),
            Err(EvaluationError::Example {
                index: 3,
                problem: ExampleProblem::NotSingleLabel { count: 0 }
            })
        );
        assert_eq!(
            evaluate(&labels(), ProblemType::SingleLabel, &[]),
            Err(EvaluationError::Empty)
        );
    }

    #[test]
    fn binary_accuracy_uses_only_the_two_labels() {
        let binary = binary_accuracy(&sample(), ["negative", "positive"]).expect("ok");
        // Five rows are negative or positive. By those two scores alone every one is right,
        // including the negative row the model decided was neutral (0.3 against 0.2).
        assert_eq!(binary.examples, 5);
        assert!((binary.accuracy - 1.0).abs() < 1e-12);
    }

    #[test]
    fn sweep_and_suggestions_follow_the_threshold() {
        let sweep = sweep(&sample(), "negative").expect("ok");
        assert_eq!(sweep.positives, 3);
        assert_eq!(sweep.points.len(), SWEEP_STEPS + 1);
        let at = |threshold: f64| {
            sweep
                .points
                .iter()
                .find(|point| (point.threshold - threshold).abs() < 1e-9)
                .expect("point")
        };
        // ≥ 0.5: scores 0.9, 0.6, 0.5 (a neutral row) → precision 2/3, recall 2/3.
        assert_eq!(at(0.5).predicted, 3);
        assert!((at(0.5).precision.expect("some") - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(at(1.0).precision, None);
        assert!((at(0.0).recall - 1.0).abs() < 1e-12);
        // Precision 1 first holds above the neutral row's 0.5.
        let strict = sweep.suggest(Target::Precision(1.0)).expect("reachable");
        assert!((strict.threshold - 0.51).abs() < 1e-9, "{strict:?}");
        // Recall 1 needs every negative row, down to 0.3.
        let full = sweep.suggest(Target::Recall(1.0)).expect("reachable");
        assert!((full.threshold - 0.3).abs() < 1e-9, "{full:?}");
        assert!(sweep.suggest(Target::Precision(1.5)).is_none());
    }

    #[test]
    fn review_picks_the_surest_mistakes_and_the_least_sure_decisions() {
        let judged = vec![
            judged("negative", "negative", [0.9, 0.05, 0.05]), // right, sure
            judged("negative", "neutral", [0.3, 0.5, 0.2]),    // wrong at 0.5
            judged("positive", "negative", [0.8, 0.1, 0.1]),   // wrong at 0.8
            judged("neutral", "neutral", [0.3, 0.4, 0.3]),     // right at 0.4
            judged("neutral", "positive", [0.1, 0.45, 0.45]),  // wrong at 0.45
        ];
        let picks = pick_for_review(ProblemType::SingleLabel, &judged, 2);
        assert_eq!(picks.mistakes, [2, 1]);
        assert_eq!(picks.uncertain, [3, 4]);
        let all = pick_for_review(ProblemType::SingleLabel, &judged, 10);
        assert_eq!(all.mistakes, [2, 1, 4]);
        assert_eq!(all.uncertain, [3, 4, 1, 2, 0]);
    }

    #[test]
    fn multi_label_review_weighs_each_yes_no_decision() {
        let example = |actual: &[&str], given: &[&str], scores: [f32; 3]| Judged {
            actual: actual.iter().map(|label| (*label).to_owned()).collect(),
            predicted: Prediction {
                label: given.first().map(|label| (*label).to_owned()),
                score: 0.0,
                labels: given.iter().map(|label| (*label).to_owned()).collect(),
                scores: labels().into_iter().zip(scores).collect::<BTreeMap<_, _>>(),
            },
        };
        let judged = vec![
            // Right; its least sure decision: `neutral` not given at 0.4 (sure 0.6).
            example(&["negative"], &["negative"], [0.9, 0.4, 0.1]),
            // Missed `positive` at 0.2: a wrong "no" held with 0.8.
            example(&["negative", "positive"], &["negative"], [0.7, 0.1, 0.2]),
            // Gave `neutral` at 0.55 wrongly; sure of that at 0.55, and least sure overall.
            example(&[], &["neutral"], [0.1, 0.55, 0.1]),
        ];
        assert!((confidence(ProblemType::MultiLabel, &judged[0].predicted) - 0.6).abs() < 1e-6);
        let picks = pick_for_review(ProblemType::MultiLabel, &judged, 3);
        assert_eq!(picks.mistakes, [1, 2]);
        assert_eq!(picks.uncertain, [2, 0, 1]);
    }
}
