//! VILA's `qwen2` chat template (`llava/model/language_model/chat_templates/qwen2.jinja`),
//! rendered without a Jinja engine.
//!
//! VILA's `language_model/builder.py` loads that file, deletes every 4-space run and newline, and
//! stores the result as the tokenizer's `chat_template`; later stages save it into
//! `llm/tokenizer_config.json`. [`ChatTemplate::from_stored`] accepts exactly that template (in the
//! stored or the original multi-line form) and refuses anything else with a clear error, so a
//! checkpoint with another template cannot be silently mis-rendered.
//!
//! Rendering (Jinja semantics of the template):
//! - if the first message's role is not `system`: `<|im_start|>system\nYou are a helpful
//!   assistant<|im_end|>\n` (no trailing period, unlike stock Qwen2);
//! - each message whose content is not `none`: `<|im_start|>{role}\n{content}<|im_end|>\n`;
//! - with `add_generation_prompt`: `<|im_start|>assistant\n`. No BOS anywhere.

/// The stored form of `qwen2.jinja` (`.replace("    ", "").replace("\n", "")`). The `\n` inside
/// the string literals are the two characters `\` `n` of the Jinja source.
pub const VILA_QWEN2_TEMPLATE: &str = "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant<|im_end|>\\n' }}{% endif %}{% for message in messages if message['content'] is not none %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// The default system prompt of the qwen2 template.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant";

/// One templated message (`{"role": ..., "content": ...}`); `content: None` is skipped, as the
/// template's `if message['content'] is not none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: Option<String>,
}

/// The one chat template this port renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTemplate {
    /// VILA's `qwen2.jinja`.
    VilaQwen2,
}

impl ChatTemplate {
    /// Recognise a stored `chat_template` string. Returns `None` for any other template.
    pub fn from_stored(template: &str) -> Option<Self> {
        let normalized = template.replace("    ", "").replace('\n', "");
        (normalized == VILA_QWEN2_TEMPLATE).then_some(Self::VilaQwen2)
    }

    /// Render like `tokenizer.apply_chat_template(messages, tokenize=False,
    /// add_generation_prompt=...)`.
    pub fn render(self, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
        let mut out = String::new();
        match self {
            Self::VilaQwen2 => {
                if messages.first().is_none_or(|m| m.role != "system") {
                    out.push_str("<|im_start|>system\n");
                    out.push_str(DEFAULT_SYSTEM_PROMPT);
                    out.push_str("<|im_end|>\n");
                }
                for m in messages {
                    if let Some(content) = &m.content {
                        out.push_str("<|im_start|>");
                        out.push_str(&m.role);
                        out.push('\n');
                        out.push_str(content);
                        out.push_str("<|im_end|>\n");
                    }
                }
                if add_generation_prompt {
                    out.push_str("<|im_start|>assistant\n");
                }
            }
        }
        out
    }

    /// The token text that follows an assistant message's content: what VILA's
    /// `infer_stop_tokens` finds after the sentinel.
    pub fn assistant_end_token(self) -> &'static str {
        match self {
            Self::VilaQwen2 => "<|im_end|>",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_multiline_source() {
        let source = "{% if messages[0]['role'] != 'system' %}\n    {{ '<|im_start|>system\\nYou are a helpful assistant<|im_end|>\\n' }}\n{% endif %}\n\n{% for message in messages if message['content'] is not none %}\n    {{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\n{% endfor %}\n\n{% if add_generation_prompt %}\n    {{ '<|im_start|>assistant\\n' }}\n{% endif %}\n";
        assert_eq!(
            ChatTemplate::from_stored(source),
            Some(ChatTemplate::VilaQwen2)
        );
        assert_eq!(
            ChatTemplate::from_stored(VILA_QWEN2_TEMPLATE),
            Some(ChatTemplate::VilaQwen2)
        );
        let stock = VILA_QWEN2_TEMPLATE.replace("helpful assistant", "helpful assistant.");
        assert_eq!(ChatTemplate::from_stored(&stock), None);
    }

    #[test]
    fn renders() {
        let m = |r: &str, c: &str| ChatMessage {
            role: r.into(),
            content: Some(c.into()),
        };
        let t = ChatTemplate::VilaQwen2;
        assert_eq!(
            t.render(&[m("user", "hi")], true),
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            t.render(
                &[m("system", ""), m("user", "q"), m("assistant", "a")],
                false
            ),
            "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n"
        );
    }
}
