//! Which clean-v2 rules change each text: reads JSON Lines with a `text` field on standard
//! input and writes, for one rule, the lines whose cleaned text differs when that rule is left
//! out. The model report evaluates each rule's models on just those lines, where the rule can
//! make a difference.
//!
//!     cargo run -p tweets --example rule_hits -- emoticons < data/sentiment/valid.jsonl

use std::io::{BufRead, Write};

use tweets::{CleanConfig, CleaningRule, clean_text};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rule: CleaningRule = std::env::args()
        .nth(1)
        .ok_or("usage: rule_hits RULE < lines.jsonl")?
        .parse()?;
    let full = CleanConfig::default();
    let without = CleanConfig {
        left_out: Some(rule),
        ..full
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let value: serde_json::Value = serde_json::from_str(&line)?;
        let text = value["text"]
            .as_str()
            .ok_or("a line without a string `text`")?;
        if clean_text(text, &full) != clean_text(text, &without) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}
