//! VILA conversations (`[{"from": "human"|"gpt"|"system", "value": ...}]`), the media-token
//! handling of the training and inference paths, and `tokenize_conversation`.

use serde::{Deserialize, Serialize};

use super::template::ChatMessage;
use super::tokenizer::{IMAGE_TOKEN, Tokenizer, VIDEO_TOKEN};
use crate::error::ModelError;

/// Who speaks a turn (the dataset's `from` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Rendered as `user`.
    Human,
    /// Rendered as `assistant`; the only role whose tokens are trained.
    Gpt,
    /// Rendered as `system`.
    System,
}

impl Role {
    /// The chat-template role (`llava/remote_code/tokenizer_utils.py::tokenize_conversation`).
    pub fn template_role(self) -> &'static str {
        match self {
            Self::Human => "user",
            Self::Gpt => "assistant",
            Self::System => "system",
        }
    }
}

/// One turn of a conversation, as in LLaVA-format dataset JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub from: Role,
    pub value: String,
}

impl Turn {
    /// A turn from `from` with `value`.
    pub fn new(from: Role, value: impl Into<String>) -> Self {
        Self {
            from,
            value: value.into(),
        }
    }
}

/// The system prompt choice of a VILA dataset entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SystemPrompt {
    /// The template's default (`You are a helpful assistant`).
    #[default]
    Default,
    /// `no_system_prompt: true`: an empty system message (`<|im_start|>system\n<|im_end|>\n`).
    Empty,
    /// A dataset `system_prompt`: prepended as a `system` turn (`llava/data/base.py`), stripped
    /// like every value.
    Custom(String),
}

/// Python's `str.isspace` per character: Unicode White_Space plus the information separators
/// U+001C..U+001F, which Python also counts.
fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` (no argument).
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

/// `llava/data/dataset_impl/utils.py::_remove_media_tokens`: drop `<image>` / `<video>` tags with
/// an adjacent newline, then strip.
pub fn remove_media_tokens(text: &str) -> String {
    let mut t = text.to_owned();
    for token in ["<image>", "<video>"] {
        t = t
            .replace(&format!("{token}\n"), "")
            .replace(&format!("\n{token}"), "")
            .replace(token, "");
    }
    py_strip(&t).to_owned()
}

/// `llava/utils/media.py::extract_media` on one text part: a part containing a media token has
/// the tokens removed and is stripped; other parts are kept as they are.
pub fn extract_media_text(part: &str) -> String {
    let mut p = part.to_owned();
    for token in [IMAGE_TOKEN, VIDEO_TOKEN] {
        if p.contains(token) {
            p = py_strip(&p.replace(token, "")).to_owned();
        }
    }
    p
}

/// Number of `<image>` tags in `text`.
pub fn count_image_tags(text: &str) -> usize {
    text.matches(IMAGE_TOKEN).count()
}

/// The chat-template messages of `tokenize_conversation` (remote_code version, which
/// `llava/data/base.py` uses): values stripped, roles mapped, the gpt content replaced by
/// `gpt_override` when given, and the empty system message of `no_system_prompt` prepended.
/// `system` is applied first, as `BaseDataset.__getitem__` prepends a custom system turn.
pub fn chat_messages(
    turns: &[Turn],
    system: &SystemPrompt,
    gpt_override: Option<&str>,
) -> Result<Vec<ChatMessage>, ModelError> {
    let mut out = Vec::with_capacity(turns.len() + 1);
    match system {
        SystemPrompt::Default => {}
        SystemPrompt::Empty => {
            if turns.iter().any(|t| t.from == Role::System) {
                // tokenizer_utils.py raises the same ValueError.
                return Err(ModelError::Input(
                    "a `system` turn is not allowed together with no_system_prompt".to_owned(),
                ));
            }
            out.push(ChatMessage {
                role: "system".to_owned(),
                content: Some(String::new()),
            });
        }
        SystemPrompt::Custom(s) => out.push(ChatMessage {
            role: "system".to_owned(),
            content: Some(py_strip(s).to_owned()),
        }),
    }
    for t in turns {
        let content = match (t.from, gpt_override) {
            (Role::Gpt, Some(o)) => o.to_owned(),
            _ => py_strip(&t.value).to_owned(),
        };
        out.push(ChatMessage {
            role: t.from.template_role().to_owned(),
            content: Some(content),
        });
    }
    Ok(out)
}

/// `tokenize_conversation`: render with the chat template and tokenize (no BOS).
pub fn tokenize_conversation(
    tokenizer: &Tokenizer,
    turns: &[Turn],
    system: &SystemPrompt,
    gpt_override: Option<&str>,
    add_generation_prompt: bool,
) -> Result<(String, Vec<u32>), ModelError> {
    if turns.is_empty() {
        return Err(ModelError::Input("empty conversation".to_owned()));
    }
    let messages = chat_messages(turns, system, gpt_override)?;
    let text = tokenizer
        .chat_template()
        .render(&messages, add_generation_prompt);
    let ids = tokenizer.encode(&text)?;
    Ok((text, ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_matches_python() {
        assert_eq!(py_strip(" \t\n\u{1f}a b\u{a0}\u{3000}"), "a b");
        assert_eq!(py_strip("\u{200b}x"), "\u{200b}x"); // zero-width space is not whitespace
    }

    #[test]
    fn media_tokens_are_removed_like_vila() {
        assert_eq!(remove_media_tokens("<image>\nWhat?"), "What?");
        assert_eq!(remove_media_tokens("What?\n<image>"), "What?");
        assert_eq!(remove_media_tokens(" a<image>b <video>\n"), "ab");
        assert_eq!(extract_media_text(" keep "), " keep ");
        assert_eq!(extract_media_text(" x<vila/video> "), "x");
    }
}
