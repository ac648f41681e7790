//! JSON Lines of texts (`{"text": …}` objects or ingest's clean records) classified with one
//! answer per line, in order: a prediction, an `error` line, or for a blank line a `skipped`
//! marker — so answer N always belongs to line N (`tweetclf classify`).

use serde_json::{Value, json};

use crate::batch::classify_batch;
use crate::ports::{Classify, ClassifyError};

/// The answer to a text that is empty or only whitespace, wherever a text comes in (`tweetclf
/// classify`, the classify function's clean records, predict): the model would still pick a
/// label for nothing, so such a text is refused instead.
pub const EMPTY_TEXT: &str = "`text` is empty";

/// Whether a text has nothing to classify (see [`EMPTY_TEXT`]).
pub fn is_empty_text(text: &str) -> bool {
    text.trim().is_empty()
}

/// One input line (numbered from 1, blank lines included): its id and what to do with it.
#[derive(Debug)]
pub struct Parsed {
    line: usize,
    id: Option<Value>,
    outcome: Outcome,
}

#[derive(Debug)]
enum Outcome {
    Text(String),
    /// Nothing but whitespace: answered with a `skipped` marker, not counted as a failure.
    Blank,
    Failed(String),
}

/// Reads line number `line` (from 1) of the input.
pub fn parse_line(line: usize, raw: &[u8]) -> Parsed {
    let failed = |message: String| Parsed {
        line,
        id: None,
        outcome: Outcome::Failed(message),
    };
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Parsed {
            line,
            id: None,
            outcome: Outcome::Blank,
        };
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return failed("the line is not valid UTF-8".to_owned());
    };
    let value: Value = match serde_json::from_str(text.trim_end_matches(['\n', '\r'])) {
        Ok(value) => value,
        Err(error) => return failed(json_error(&error)),
    };
    let id = value.get("id").cloned();
    let outcome = match value.get("text") {
        Some(Value::String(text)) if !is_empty_text(text) => Outcome::Text(text.clone()),
        Some(Value::String(_)) => Outcome::Failed(EMPTY_TEXT.to_owned()),
        Some(_) => Outcome::Failed("`text` is not a string".to_owned()),
        None => Outcome::Failed("no `text` field".to_owned()),
    };
    Parsed { line, id, outcome }
}

/// What is wrong with a line's JSON, located by column (the line is already named).
fn json_error(error: &serde_json::Error) -> String {
    let column = error.column();
    if error.is_eof() {
        return format!("truncated JSON: the line ends inside a value (column {column})");
    }
    let message = error.to_string();
    let message = message
        .strip_suffix(&format!(" at line {} column {column}", error.line()))
        .unwrap_or(&message);
    format!("invalid JSON at column {column}: {message}")
}

impl Parsed {
    pub fn is_blank(&self) -> bool {
        matches!(self.outcome, Outcome::Blank)
    }
}

/// One answer per line of a chunk, in order, and how many are errors. A text the model
/// cannot read fails alone, as in the classify function.
pub async fn answer_lines(
    classifier: &impl Classify,
    chunk: &[Parsed],
) -> Result<(Vec<Value>, usize), ClassifyError> {
    let texts: Vec<String> = chunk
        .iter()
        .filter_map(|parsed| match &parsed.outcome {
            Outcome::Text(text) => Some(text.clone()),
            Outcome::Blank | Outcome::Failed(_) => None,
        })
        .collect();
    let predictions = match texts.is_empty() {
        true => Vec::new(),
        false => classify_batch(classifier, texts).await?.results,
    };
    // `classify_batch` answers every text, in order; a missing answer is that line's error.
    let mut predictions = predictions.into_iter();
    let mut failed = 0;
    let mut answers = Vec::with_capacity(chunk.len());
    for parsed in chunk {
        let mut line = match &parsed.outcome {
            Outcome::Text(_) => match predictions
                .next()
                .unwrap_or_else(|| Err("the classifier gave no answer for this text".to_owned()))
            {
                Ok(prediction) => json!(prediction),
                Err(error) => {
                    failed += 1;
                    json!({"line": parsed.line, "error": error})
                }
            },
            Outcome::Blank => json!({"line": parsed.line, "skipped": "blank line"}),
            Outcome::Failed(error) => {
                failed += 1;
                json!({"line": parsed.line, "error": error})
            }
        };
        if let Some(id) = &parsed.id {
            line["id"] = id.clone();
        }
        answers.push(line);
    }
    Ok((answers, failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::KeywordClassifier;

    fn parsed(lines: &[&str]) -> Vec<Parsed> {
        lines
            .iter()
            .enumerate()
            .map(|(index, line)| parse_line(index + 1, line.as_bytes()))
            .collect()
    }

    #[tokio::test]
    async fn every_line_gets_one_answer_in_order() {
        let chunk = parsed(&[
            r#"{"id": 7, "text": "I love it"}"#,
            "  \n",
            r#"{"text": "POISON"}"#,
            r#"{"text": "I hate it"#,
            r#"{"text": ""}"#,
            r#"{"text": 3}"#,
            r#"{"body": "no text"}"#,
            r#"{"text": "fine"}"#,
        ]);
        assert!(chunk[1].is_blank());
        let (answers, failed) = answer_lines(&KeywordClassifier::default(), &chunk)
            .await
            .expect("answers");
        assert_eq!(answers.len(), chunk.len());
        assert_eq!(failed, 5);
        assert_eq!(answers[0]["label"], "positive");
        assert_eq!(answers[0]["id"], 7);
        assert_eq!(answers[1], json!({"line": 2, "skipped": "blank line"}));
        assert_eq!(answers[2]["line"], 3);
        assert!(answers[2]["error"].is_string());
        let truncated = answers[3]["error"].as_str().expect("error");
        assert!(truncated.starts_with("truncated JSON"), "{truncated}");
        assert_eq!(answers[4]["error"], "`text` is empty");
        assert_eq!(answers[5]["error"], "`text` is not a string");
        assert_eq!(answers[6]["error"], "no `text` field");
        assert_eq!(answers[7]["label"], "neutral");
    }

    #[test]
    fn invalid_utf8_and_invalid_json_are_named() {
        let bad = parse_line(4, b"{\"text\": \"\xff\"}");
        assert!(matches!(&bad.outcome, Outcome::Failed(message) if message.contains("UTF-8")));
        let broken = parse_line(5, b"{\"text\" \"x\"}");
        assert!(
            matches!(&broken.outcome, Outcome::Failed(message) if message.starts_with("invalid JSON at column"))
        );
    }
}
