//! A Unigram (SentencePiece) model for the `tokenizers` pipeline that is ready in tens of
//! milliseconds. The library's own `Unigram` builds a character trie of every piece: for
//! XLM-R's 250,002 pieces that took 0.45 s, most of a multilingual model's cold start. This one
//! looks pieces up in a hash map instead and runs the same Viterbi search as the library's
//! `Unigram::encode_optimized` (sentencepiece's `unigram_model.cc`): the same scores (f64),
//! the same tie-breaking (the first, shortest candidate wins ties), unknown characters scored
//! `min score − 10` and runs of them fused into one `<unk>`. Tests hold it to the library's
//! output, token for token.
//!
//! Normalization, pre-tokenization, added tokens, truncation and special tokens stay the
//! library's: only the model is swapped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::unigram::UnigramTrainer;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, Model, Token, TokenizerBuilder, TokenizerImpl};

/// sentencepiece's penalty for an unknown character, below the lowest piece score.
const UNKNOWN_PENALTY: f64 = 10.0;

/// The model's pieces with their scores; ids are positions.
#[derive(Debug, Clone)]
pub struct FastUnigram {
    pieces: Vec<(String, f64)>,
    ids: HashMap<String, u32>,
    unk_id: u32,
    unk_score: f64,
    longest_piece: usize,
}

/// The `tokenizers` pipeline around a [`FastUnigram`].
pub type UnigramTokenizer = TokenizerImpl<
    FastUnigram,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

impl FastUnigram {
    pub fn new(pieces: Vec<(String, f64)>, unk_id: usize) -> Result<Self, String> {
        let Some((_, _)) = pieces.get(unk_id) else {
            return Err(format!(
                "unk_id {unk_id} is outside the {} pieces",
                pieces.len()
            ));
        };
        let ids: HashMap<String, u32> = pieces
            .iter()
            .enumerate()
            .map(|(id, (piece, _))| (piece.clone(), id as u32))
            .collect();
        let min_score = pieces
            .iter()
            .map(|(_, score)| *score)
            .fold(f64::INFINITY, f64::min);
        Ok(Self {
            longest_piece: pieces
                .iter()
                .map(|(piece, _)| piece.len())
                .max()
                .unwrap_or(0),
            ids,
            unk_id: unk_id as u32,
            unk_score: min_score - UNKNOWN_PENALTY,
            pieces,
        })
    }

    /// The best segmentation of `text` as byte ranges, unknown runs fused.
    fn segment(&self, text: &str) -> Vec<(usize, usize)> {
        /// The best path ending at a byte position: its score, where its last piece starts,
        /// and whether that piece is unknown.
        #[derive(Clone, Copy)]
        struct Best {
            score: f64,
            start: Option<usize>,
            unknown: bool,
        }
        let mut best = vec![
            Best {
                score: 0.0,
                start: None,
                unknown: false
            };
            text.len() + 1
        ];
        for (start, character) in text.char_indices() {
            let till_here = best[start].score;
            let mut consider = |end: usize, score: f64, unknown: bool| {
                let candidate = till_here + score;
                if best[end].start.is_none() || candidate > best[end].score {
                    best[end] = Best {
                        score: candidate,
                        start: Some(start),
                        unknown,
                    };
                }
            };
            let single = start + character.len_utf8();
            let mut has_single = false;
            let longest = (start + self.longest_piece).min(text.len());
            for end in (single..=longest).filter(|end| text.is_char_boundary(*end)) {
                if let Some(id) = self.ids.get(&text[start..end]) {
                    consider(end, self.pieces[*id as usize].1, *id == self.unk_id);
                    has_single |= end == single;
                }
            }
            if !has_single {
                consider(single, self.unk_score, true);
            }
        }
        // Back from the end; a run of unknown pieces becomes one range.
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        let mut previous_unknown = false;
        let mut end = text.len();
        while let Some(start) = best[end].start {
            let unknown = best[end].unknown;
            match ranges.last_mut() {
                Some(run) if unknown && previous_unknown => run.0 = start,
                _ => ranges.push((start, end)),
            }
            previous_unknown = unknown;
            end = start;
        }
        ranges.reverse();
        ranges
    }
}

impl Model for FastUnigram {
    type Trainer = UnigramTrainer;

    fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        Ok(self
            .segment(sequence)
            .into_iter()
            .map(|(start, end)| {
                let piece = &sequence[start..end];
                let id = self.ids.get(piece).copied().unwrap_or(self.unk_id);
                Token::new(id, piece.to_owned(), (start, end))
            })
            .collect())
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.pieces.get(id as usize).map(|(piece, _)| piece.clone())
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        self.ids.clone()
    }

    fn get_vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// Never needed: the model directory keeps the `tokenizer.json` it was loaded from.
    fn save(&self, _folder: &Path, _prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        Err("the fast Unigram model is not saved; keep the tokenizer.json it came from".into())
    }

    fn get_trainer(&self) -> UnigramTrainer {
        UnigramTrainer::default()
    }
}

/// `tokenizer.json` with a Unigram model: the parts the pipeline needs.
#[derive(Deserialize)]
struct UnigramFile {
    normalizer: Option<NormalizerWrapper>,
    pre_tokenizer: Option<PreTokenizerWrapper>,
    post_processor: Option<PostProcessorWrapper>,
    decoder: Option<DecoderWrapper>,
    #[serde(default)]
    added_tokens: Vec<AddedTokenEntry>,
    model: UnigramSection,
}

#[derive(Deserialize)]
struct AddedTokenEntry {
    id: u32,
    #[serde(flatten)]
    token: AddedToken,
}

#[derive(Deserialize)]
struct UnigramSection {
    unk_id: Option<usize>,
    vocab: Vec<(String, f64)>,
    #[serde(default)]
    byte_fallback: bool,
}

/// Just the model's type, to choose a loader without building anything.
#[derive(Deserialize)]
struct ModelKind {
    model: ModelType,
}

#[derive(Deserialize)]
struct ModelType {
    #[serde(rename = "type")]
    kind: String,
}

/// Whether `tokenizer.json` holds a Unigram model.
pub fn is_unigram(tokenizer_json: &[u8]) -> bool {
    serde_json::from_slice::<ModelKind>(tokenizer_json)
        .is_ok_and(|kind| kind.model.kind == "Unigram")
}

/// The pipeline of a Unigram `tokenizer.json`, with [`FastUnigram`] as its model.
pub fn load(tokenizer_json: &[u8]) -> Result<UnigramTokenizer, String> {
    let file: UnigramFile =
        serde_json::from_slice(tokenizer_json).map_err(|error| error.to_string())?;
    if file.model.byte_fallback {
        return Err("byte fallback is not supported by the fast Unigram model".to_owned());
    }
    let unk_id = file.model.unk_id.ok_or("a Unigram model without unk_id")?;
    let model = FastUnigram::new(file.model.vocab, unk_id)?;
    for entry in &file.added_tokens {
        if model.token_to_id(&entry.token.content) != Some(entry.id) {
            return Err(format!(
                "added token {:?} has id {}, not its id in the vocabulary",
                entry.token.content, entry.id
            ));
        }
    }
    let mut tokenizer: UnigramTokenizer = TokenizerBuilder::new()
        .with_model(model)
        .with_normalizer(file.normalizer)
        .with_pre_tokenizer(file.pre_tokenizer)
        .with_post_processor(file.post_processor)
        .with_decoder(file.decoder)
        .build()
        .map_err(|error| error.to_string())?;
    let (special, normal): (Vec<AddedToken>, Vec<AddedToken>) = file
        .added_tokens
        .into_iter()
        .map(|entry| entry.token)
        .partition(|token| token.special);
    tokenizer.add_special_tokens(&special);
    tokenizer.add_tokens(&normal);
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use tokenizers::models::unigram::Unigram;

    use super::*;

    /// Pieces with overlapping prefixes, equal scores (ties), multi-byte characters, a piece
    /// equal to `<unk>`'s text, and characters with no piece at all.
    fn pieces() -> Vec<(String, f64)> {
        [
            ("<unk>", 0.0),
            ("▁", -2.0),
            ("a", -3.0),
            ("b", -3.0),
            ("ab", -4.5),
            ("ba", -4.5),
            ("▁ab", -5.0),
            ("abab", -6.0),
            ("é", -4.0),
            ("▁é", -4.0),
            ("日本", -3.5),
            ("日", -5.0),
            ("😀", -6.0),
            ("c", -8.0),
            ("cc", -9.0),
        ]
        .into_iter()
        .map(|(piece, score)| (piece.to_owned(), score))
        .collect()
    }

    /// Deterministic strings over the pieces' characters and some that no piece covers.
    fn texts() -> Vec<String> {
        let alphabet: Vec<&str> = vec![
            "▁", "a", "b", "é", "日", "本", "😀", "c", "x", "ß", "🚀", "<unk>", "e\u{301}",
        ];
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let mut texts: Vec<String> = vec![String::new(), "x".into(), "xyz".into(), "ababab".into()];
        for _ in 0..2_000 {
            let len = 1 + next() % 12;
            texts.push(
                (0..len)
                    .map(|_| alphabet[next() % alphabet.len()])
                    .collect(),
            );
        }
        texts
    }

    #[test]
    fn tokenizes_exactly_as_the_library_unigram() {
        let library = Unigram::from(pieces(), Some(0), false).expect("library model");
        let ours = FastUnigram::new(pieces(), 0).expect("our model");
        for text in texts() {
            let expected = library.tokenize(&text).expect("library tokenizes");
            let got = ours.tokenize(&text).expect("we tokenize");
            let view = |tokens: &[Token]| -> Vec<(u32, String, (usize, usize))> {
                tokens
                    .iter()
                    .map(|t| (t.id, t.value.clone(), t.offsets))
                    .collect()
            };
            assert_eq!(view(&got), view(&expected), "{text:?}");
        }
    }

    #[test]
    fn unknown_runs_fuse_and_lookups_agree() {
        let ours = FastUnigram::new(pieces(), 0).expect("model");
        let tokens = ours.tokenize("axyzb").expect("tokenizes");
        let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
        assert_eq!(ids, vec![2, 0, 3], "one <unk> for the whole unknown run");
        assert_eq!(tokens[1].offsets, (1, 4));
        assert_eq!(ours.token_to_id("abab"), Some(7));
        assert_eq!(ours.id_to_token(10).as_deref(), Some("日本"));
        assert_eq!(ours.get_vocab_size(), 15);
        assert!(
            FastUnigram::new(pieces(), 15).is_err(),
            "unk_id outside the vocabulary"
        );
    }
}
