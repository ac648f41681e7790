//! Model-ready text. Training and inference must call exactly this code, so its behaviour is
//! versioned: a model records the [`CleaningVersion`] it was trained with and is always served
//! text cleaned by that version.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::expressive::{self, CleaningRule};

/// Which rules `clean_text` applies. A new version is added whenever the output would change
/// for any input; old ones stay, because every model keeps the version it was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CleaningVersion {
    /// Unicode NFC, URLs and mentions as placeholders, emoji as configured, whitespace
    /// collapsed.
    #[serde(rename = "clean-v1")]
    V1,
    /// `clean-v1`, then CamelCase hashtags split, emoticons and kaomoji as emoji, stretched
    /// letters shortened (see [`CleaningRule`]).
    #[default]
    #[serde(rename = "clean-v2")]
    V2,
}

impl CleaningVersion {
    pub const LATEST: Self = Self::V2;

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "clean-v1",
            Self::V2 => "clean-v2",
        }
    }
}

impl std::fmt::Display for CleaningVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CleaningVersion {
    type Err = String;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        [Self::V1, Self::V2]
            .into_iter()
            .find(|version| version.as_str().eq_ignore_ascii_case(value.trim()))
            .ok_or_else(|| {
                format!("unknown cleaning version `{value}` (expected clean-v1 or clean-v2)")
            })
    }
}

/// The placeholders `clean_text` leaves for URLs and user mentions.
pub const URL_PLACEHOLDER: &str = "http";
pub const MENTION_PLACEHOLDER: &str = "@user";

/// How emoji reach the model. The bundled tokenizer's vocabulary has no emoji (they become
/// `[UNK]`), so describing them in words keeps the sentiment they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmojiMode {
    /// `😂` → `face with tears of joy` (CLDR short names, skin tones dropped).
    #[default]
    Describe,
    /// Left as they are.
    Keep,
    /// Deleted.
    Remove,
}

impl std::str::FromStr for EmojiMode {
    type Err = String;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "describe" => Ok(Self::Describe),
            "keep" => Ok(Self::Keep),
            "remove" => Ok(Self::Remove),
            other => Err(format!(
                "unknown emoji mode `{other}` (expected describe, keep or remove)"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CleanConfig {
    #[serde(default)]
    pub version: CleaningVersion,
    pub emoji: EmojiMode,
    /// One `clean-v2` rule not applied: only to measure what the rule buys (the model report's
    /// ablations). A model trained this way records it and is served the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_out: Option<CleaningRule>,
}

static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(?:https?://|www\.)[^\s]+").expect("static regex"));
/// A mention is `@` + 1–15 word characters (Twitter's handle limit) not glued to a preceding
/// word (e-mail addresses stay as they are). Group 1 is the preceding character, group 2 the
/// handle. Entity extraction uses the same definition, so cleaning and `mentions` agree.
pub(crate) static MENTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(^|[^\w@])[@＠](\w{1,15})\b").expect("static regex"));

/// The longest emoji sequence (ZWJ families, flags, keycaps) in characters.
const MAX_EMOJI_CHARS: usize = 10;

/// Turns a tweet's (HTML-decoded) text into the text the model sees: Unicode NFC, URLs →
/// `http`, mentions → `@user`, the rules of `clean-v2` when that is the version, emoji as
/// configured, whitespace collapsed.
pub fn clean_text(text: &str, config: &CleanConfig) -> String {
    let normalized: String = text.nfc().collect();
    let without_urls = URL.replace_all(&normalized, URL_PLACEHOLDER);
    let without_mentions =
        MENTION.replace_all(&without_urls, format!("${{1}}{MENTION_PLACEHOLDER}"));
    let expressed = match config.version {
        CleaningVersion::V1 => without_mentions.into_owned(),
        CleaningVersion::V2 => expressive::apply(&without_mentions, config.left_out),
    };
    let with_emoji = map_emoji(&expressed, config.emoji);
    with_emoji.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn map_emoji(text: &str, mode: EmojiMode) -> String {
    if mode == EmojiMode::Keep || text.is_ascii() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(first) = rest.chars().next() {
        if first.is_ascii() || first.is_alphanumeric() {
            out.push(first);
            rest = &rest[first.len_utf8()..];
            continue;
        }
        match longest_emoji(rest) {
            Some((emoji, len)) => {
                if mode == EmojiMode::Describe {
                    out.push(' ');
                    out.push_str(&emoji_words(emoji));
                    out.push(' ');
                }
                rest = &rest[len..];
            }
            None => {
                // Leftover joiners and variation selectors carry no meaning on their own.
                if !matches!(first, '\u{200d}' | '\u{fe0e}' | '\u{fe0f}') {
                    out.push(first);
                }
                rest = &rest[first.len_utf8()..];
            }
        }
    }
    out
}

/// The longest emoji at the start of `text` and its length in bytes.
fn longest_emoji(text: &str) -> Option<(&'static emojis::Emoji, usize)> {
    let ends: Vec<usize> = text
        .char_indices()
        .skip(1)
        .map(|(index, _)| index)
        .chain(std::iter::once(text.len()))
        .take(MAX_EMOJI_CHARS)
        .collect();
    ends.into_iter()
        .rev()
        .find_map(|end| emojis::get(&text[..end]).map(|emoji| (emoji, end)))
}

fn emoji_words(emoji: &emojis::Emoji) -> String {
    let name = emoji.name();
    let name = match emoji.skin_tone() {
        Some(_) => name.split(':').next().unwrap_or(name),
        None => name,
    };
    name.replace([':', ','], "")
}

/// How many characters of real content `clean` holds: placeholders, punctuation and
/// whitespace do not count. Drives the `empty` and `too_short` filters.
pub fn content_chars(clean: &str) -> usize {
    clean
        .split_whitespace()
        .filter(|word| *word != URL_PLACEHOLDER && *word != MENTION_PLACEHOLDER)
        .flat_map(str::chars)
        .filter(|c| c.is_alphanumeric() || (!c.is_ascii() && !c.is_whitespace()))
        .count()
}

/// The text a language detector should see: no URLs, mentions, hashtags or emoji names.
pub(crate) fn text_for_language_detection(text: &str) -> String {
    let without_urls = URL.replace_all(text, " ");
    let without_mentions = MENTION.replace_all(&without_urls, "$1 ");
    without_mentions
        .split_whitespace()
        .filter(|word| !word.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(text: &str) -> String {
        clean_text(text, &CleanConfig::default())
    }

    #[test]
    fn urls_and_mentions_become_placeholders() {
        assert_eq!(
            clean("@united thanks!! see https://t.co/AbC123 and www.example.com/x?y=1"),
            "@user thanks!! see http and http"
        );
        assert_eq!(
            clean("mail me at me@example.com"),
            "mail me at me@example.com"
        );
        assert_eq!(clean("RT @jack: hi"), "RT @user: hi");
    }

    #[test]
    fn each_version_keeps_its_output() {
        let text = "#EpicFail soooo bad :( lol";
        let v1 = CleanConfig {
            version: CleaningVersion::V1,
            ..CleanConfig::default()
        };
        assert_eq!(clean_text(text, &v1), text);
        assert_eq!(clean(text), "epic fail soo bad slightly frowning face lol");
        let keep = CleanConfig {
            emoji: EmojiMode::Keep,
            ..CleanConfig::default()
        };
        assert_eq!(clean_text("so good :D", &keep), "so good 😃");
        assert_eq!("CLEAN-V1".parse(), Ok(CleaningVersion::V1));
        assert!("clean-v0".parse::<CleaningVersion>().is_err());
        assert_eq!(
            serde_json::to_string(&CleaningVersion::LATEST).expect("serializes"),
            "\"clean-v2\""
        );
    }

    #[test]
    fn whitespace_is_collapsed_and_text_is_nfc() {
        assert_eq!(clean("  a\t\tb\r\n\nc  "), "a b c");
        assert_eq!(clean("cafe\u{301}"), "caf\u{e9}");
    }

    #[test]
    fn emoji_are_described_in_words_by_default() {
        assert_eq!(
            clean("love it 😍😍"),
            "love it smiling face with heart-eyes smiling face with heart-eyes"
        );
        assert_eq!(clean("ok 👍🏽!"), "ok thumbs up !");
        assert_eq!(clean("❤️ this"), "red heart this");
        assert_eq!(clean("family 👨‍👩‍👧 time"), "family family man woman girl time");
    }

    #[test]
    fn emoji_can_be_kept_or_removed() {
        let keep = CleanConfig {
            emoji: EmojiMode::Keep,
            ..CleanConfig::default()
        };
        let remove = CleanConfig {
            emoji: EmojiMode::Remove,
            ..CleanConfig::default()
        };
        assert_eq!(clean_text("yes 😂", &keep), "yes 😂");
        assert_eq!(clean_text("yes 😂 no", &remove), "yes no");
        assert_eq!("REMOVE".parse::<EmojiMode>(), Ok(EmojiMode::Remove));
        assert!("loud".parse::<EmojiMode>().is_err());
    }

    #[test]
    fn non_latin_text_is_untouched() {
        assert_eq!(clean("こんにちは 世界"), "こんにちは 世界");
        assert_eq!(clean("Привет, мир"), "Привет, мир");
    }

    #[test]
    fn content_ignores_placeholders_and_punctuation() {
        assert_eq!(content_chars("@user http !!"), 0);
        assert_eq!(content_chars("@user ok!"), 2);
        assert_eq!(content_chars("こんにちは"), 5);
    }

    #[test]
    fn detection_text_drops_entities() {
        assert_eq!(
            text_for_language_detection("@bob see https://x.y #tag now"),
            "see now"
        );
    }
}
