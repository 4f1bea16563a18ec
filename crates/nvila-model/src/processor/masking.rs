//! Training labels by VILA's greedy template match (`preprocess_conversation` in
//! `llava/utils/tokenizer.py` and `llava/remote_code/tokenizer_utils.py`), and the collator's
//! truncation.
//!
//! The algorithm, reproduced exactly because its quirks change which tokens are trained:
//! 1. `inputs` = the tokenized conversation;
//! 2. `template` = the conversation tokenized again with every gpt value replaced by
//!    `<vila/sentinel>`; each sentinel (except in the last position) is deleted together with
//!    the token after it (`<|im_end|>`), and on the retry also the token before it;
//! 3. walk `inputs` greedily: a token equal to `template[p]` advances `p` and stays −100, any
//!    other token is trained (label = token);
//! 4. if the template was not consumed, retry once (step 2's retry mask); if that fails too,
//!    every label is −100 (VILA logs an error).
//!
//! So the assistant text and its `<|im_end|>` are trained, the "\n" after `<|im_end|>` is not,
//! and a bare "\n" token inside an answer that matches the template's next "\n" is *not* trained
//! while the final "\n" is (nvila.md §3.3).

use super::conversation::{SystemPrompt, Turn, tokenize_conversation};
use super::tokenizer::{SENTINEL_TOKEN, Tokenizer};
use crate::error::ModelError;

/// Label of a position that is not trained (`llava/constants.py::IGNORE_INDEX`).
pub const IGNORE_INDEX: i64 = -100;

/// Result of [`mask_labels`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    /// One label per input id: the id where trained, [`IGNORE_INDEX`] elsewhere.
    pub labels: Vec<i64>,
    /// The first match failed and the retry mask was used.
    pub retried: bool,
    /// Both matches failed: every label is [`IGNORE_INDEX`].
    pub failed: bool,
}

/// One attempt of the template match; `None` when the template is not fully consumed.
fn match_template(
    inputs: &[u32],
    template: &[u32],
    sentinel: u32,
    retried: bool,
) -> Option<Vec<i64>> {
    let mut keep = vec![true; template.len()];
    // `for k in range(template.size(0) - 1)`: a sentinel in the last position is kept.
    for k in 0..template.len().saturating_sub(1) {
        if template[k] == sentinel {
            keep[k] = false;
            keep[k + 1] = false;
            if k > 0 && retried {
                keep[k - 1] = false;
            }
        }
    }
    let template: Vec<u32> = template
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(t, _)| *t)
        .collect();
    let mut labels = vec![IGNORE_INDEX; inputs.len()];
    let mut p = 0;
    for (k, &id) in inputs.iter().enumerate() {
        if p < template.len() && id == template[p] {
            p += 1;
        } else {
            labels[k] = i64::from(id);
        }
    }
    (p >= template.len()).then_some(labels)
}

/// Steps 2–4 of the algorithm on token ids (`template` still contains the sentinels).
pub fn mask_labels(inputs: &[u32], template: &[u32], sentinel: u32) -> Masked {
    if let Some(labels) = match_template(inputs, template, sentinel, false) {
        return Masked {
            labels,
            retried: false,
            failed: false,
        };
    }
    match match_template(inputs, template, sentinel, true) {
        Some(labels) => Masked {
            labels,
            retried: true,
            failed: false,
        },
        None => Masked {
            labels: vec![IGNORE_INDEX; inputs.len()],
            retried: true,
            failed: true,
        },
    }
}

/// `preprocess_conversation`: token ids and labels of a training conversation whose media tags
/// are already in place. Returns `(rendered text, input_ids, labels)`.
pub fn preprocess_conversation(
    tokenizer: &Tokenizer,
    turns: &[Turn],
    system: &SystemPrompt,
) -> Result<(String, Vec<u32>, Vec<i64>), ModelError> {
    let (text, inputs) = tokenize_conversation(tokenizer, turns, system, None, false)?;
    let (_, template) =
        tokenize_conversation(tokenizer, turns, system, Some(SENTINEL_TOKEN), false)?;
    let masked = mask_labels(&inputs, &template, tokenizer.sentinel_token_id());
    if masked.failed {
        tracing::error!(
            ?turns,
            "label template did not match the conversation; all labels are -100"
        );
    }
    Ok((text, inputs, masked.labels))
}

/// Number of LLM positions after media splicing: each `<image>` id becomes
/// `embeddings_per_image` embeddings (121 projected features + the encoder's "\n" end token = 122
/// for NVILA-Lite at 448, nvila.md §1.5). `_embed` truncates to `model_max_length` after this.
pub fn expanded_length(
    input_ids: &[u32],
    image_token_id: u32,
    embeddings_per_image: usize,
) -> usize {
    let images = input_ids.iter().filter(|&&id| id == image_token_id).count();
    input_ids.len() - images + images * embeddings_per_image
}

/// How many leading ids survive `_embed`'s truncation to `max_len` positions after expansion:
/// an `<image>` whose embeddings are cut partway counts as kept (its first embeddings survive).
pub fn ids_kept_after_expansion(
    input_ids: &[u32],
    image_token_id: u32,
    embeddings_per_image: usize,
    max_len: usize,
) -> usize {
    let mut pos = 0;
    for (k, &id) in input_ids.iter().enumerate() {
        if pos >= max_len {
            return k;
        }
        pos += if id == image_token_id {
            embeddings_per_image
        } else {
            1
        };
    }
    input_ids.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion() {
        let ids = [1, 9, 9, 2];
        assert_eq!(expanded_length(&ids, 9, 122), 2 + 244);
        assert_eq!(ids_kept_after_expansion(&ids, 9, 122, 1), 1);
        assert_eq!(ids_kept_after_expansion(&ids, 9, 122, 2), 2);
        assert_eq!(ids_kept_after_expansion(&ids, 9, 122, 124), 3);
        assert_eq!(ids_kept_after_expansion(&ids, 9, 122, 245), 3);
        assert_eq!(ids_kept_after_expansion(&ids, 9, 122, 246), 4);
        assert_eq!(ids_kept_after_expansion(&ids, 9, 122, 10_000), 4);
    }
}
