//! The LLM tokenizer of a VILA checkpoint (`llm/tokenizer.json` + `llm/tokenizer_config.json`),
//! loaded offline with the `tokenizers` crate.
//!
//! VILA loads it with `AutoTokenizer.from_pretrained(llm_path, use_fast=True, legacy=False)`
//! (`llava/model/language_model/builder.py`) and tokenizes every prompt with
//! `tokenizer(prompt).input_ids` (`llava/mm_utils.py::tokenizer_image_token`). Qwen2's fast
//! tokenizer adds no BOS (its post-processor is a plain ByteLevel one), so [`Tokenizer::encode`]
//! encodes without special-token post-processing, which is the same for Qwen2 and never prepends
//! a BOS for a tokenizer that would.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::AddedToken;

use super::template::ChatTemplate;
use crate::error::ModelError;

/// `<image>`: one per image (or tile) in the prompt (`llava/constants.py::DEFAULT_IMAGE_TOKEN`).
pub const IMAGE_TOKEN: &str = "<image>";
/// `<vila/video>` (`MEDIA_TOKENS["video"]`).
pub const VIDEO_TOKEN: &str = "<vila/video>";
/// `<vila/sentinel>`, the placeholder for assistant turns when building the label template.
pub const SENTINEL_TOKEN: &str = "<vila/sentinel>";

/// A VILA `llm/` tokenizer with the ids the processor needs, looked up by name.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    dir: PathBuf,
    template: ChatTemplate,
    image_token_id: u32,
    sentinel_token_id: u32,
    im_end_token_id: u32,
    eos_token_id: u32,
    pad_token_id: Option<u32>,
    model_max_length: Option<usize>,
}

/// A special-token entry of `tokenizer_config.json`: a string or `{"content": ...}`.
fn token_name(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("content").and_then(Value::as_str),
        _ => None,
    }
}

impl Tokenizer {
    /// Load `tokenizer.json` and `tokenizer_config.json` from a checkpoint's `llm/` folder.
    ///
    /// Errors name the file: a missing file, unparsable JSON, a missing `<image>`, `<|im_end|>`
    /// or eos token, or a chat template other than VILA's qwen2 one (looked for in
    /// `tokenizer_config.json`'s `chat_template`, then in a `chat_template.jinja` file as newer
    /// transformers save it).
    pub fn load(llm_dir: &Path) -> Result<Self, ModelError> {
        let tok_path = llm_dir.join("tokenizer.json");
        let cfg_path = llm_dir.join("tokenizer_config.json");
        for (path, what) in [(&tok_path, "tokenizer"), (&cfg_path, "tokenizer config")] {
            if !path.is_file() {
                return Err(ModelError::Missing {
                    path: path.clone(),
                    what: what.to_owned(),
                });
            }
        }
        let mut inner =
            tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| ModelError::Tokenizer {
                path: tok_path.clone(),
                message: e.to_string(),
            })?;
        let cfg_text = std::fs::read_to_string(&cfg_path).map_err(|source| ModelError::Io {
            path: cfg_path.clone(),
            source,
        })?;
        let cfg: Value = serde_json::from_str(&cfg_text).map_err(|e| ModelError::Json {
            path: cfg_path.clone(),
            message: e.to_string(),
        })?;

        let template_text = match cfg.get("chat_template") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => {
                let jinja = llm_dir.join("chat_template.jinja");
                if jinja.is_file() {
                    Some(
                        std::fs::read_to_string(&jinja).map_err(|source| ModelError::Io {
                            path: jinja,
                            source,
                        })?,
                    )
                } else {
                    None
                }
            }
        };
        let template = match template_text {
            None => {
                return Err(ModelError::Tokenizer {
                    path: cfg_path,
                    message: "no `chat_template` (expected VILA's qwen2 template, which VILA saves \
                              there after `--chat_template qwen2`)"
                        .to_owned(),
                });
            }
            Some(t) => ChatTemplate::from_stored(&t).ok_or_else(|| ModelError::Tokenizer {
                path: cfg_path.clone(),
                message: format!(
                    "`chat_template` is not VILA's qwen2 template (the only one supported); found: {}",
                    t.chars().take(160).collect::<String>()
                ),
            })?,
        };

        let need = |name: &str| {
            inner
                .token_to_id(name)
                .ok_or_else(|| ModelError::Tokenizer {
                    path: tok_path.clone(),
                    message: format!("no `{name}` token in the vocabulary"),
                })
        };
        let image_token_id = need(IMAGE_TOKEN)?;
        let im_end_token_id = need(template.assistant_end_token())?;
        let eos_name =
            cfg.get("eos_token")
                .and_then(token_name)
                .ok_or_else(|| ModelError::Tokenizer {
                    path: cfg_path.clone(),
                    message: "no `eos_token`".to_owned(),
                })?;
        let eos_token_id = need(eos_name)?;
        let pad_token_id = cfg
            .get("pad_token")
            .and_then(token_name)
            .and_then(|n| inner.token_to_id(n));
        // VILA's `_maybe_add_sentinel_token` adds the sentinel when the saved tokenizer lacks it;
        // it only ever appears in the label template, never in model input.
        let sentinel_token_id = match inner.token_to_id(SENTINEL_TOKEN) {
            Some(id) => id,
            None => {
                inner
                    .add_special_tokens([AddedToken::from(SENTINEL_TOKEN, true)])
                    .map_err(|e| ModelError::Tokenizer {
                        path: tok_path.clone(),
                        message: format!("adding `{SENTINEL_TOKEN}`: {e}"),
                    })?;
                inner
                    .token_to_id(SENTINEL_TOKEN)
                    .ok_or_else(|| ModelError::Tokenizer {
                        path: tok_path.clone(),
                        message: format!("could not add `{SENTINEL_TOKEN}`"),
                    })?
            }
        };
        // HF writes "no limit" as a huge float (1e30); treat anything beyond usize as absent.
        let model_max_length = cfg.get("model_max_length").and_then(|v| {
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| *f >= 0.0 && *f < 1e15)
                        .map(|f| f as usize)
                })
        });
        Ok(Self {
            inner,
            dir: llm_dir.to_owned(),
            template,
            image_token_id,
            sentinel_token_id,
            im_end_token_id,
            eos_token_id,
            pad_token_id,
            model_max_length,
        })
    }

    /// Token ids of `text`, without BOS or other post-processing (see the module doc).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| ModelError::Tokenizer {
                path: self.dir.join("tokenizer.json"),
                message: format!("encode: {e}"),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`; `skip_special_tokens` as in HF (`generate_content` decodes with `true`).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, ModelError> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| ModelError::Tokenizer {
                path: self.dir.join("tokenizer.json"),
                message: format!("decode: {e}"),
            })
    }

    /// Id of a token by its text, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Number of ids including added tokens (`len(tokenizer)`).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of `<image>`.
    pub fn image_token_id(&self) -> u32 {
        self.image_token_id
    }

    /// Id of `<vila/sentinel>`.
    pub fn sentinel_token_id(&self) -> u32 {
        self.sentinel_token_id
    }

    /// Id of `<|im_end|>`.
    pub fn im_end_token_id(&self) -> u32 {
        self.im_end_token_id
    }

    /// Id of `eos_token` from `tokenizer_config.json`.
    pub fn eos_token_id(&self) -> u32 {
        self.eos_token_id
    }

    /// Id of `pad_token`, if set and in the vocabulary.
    pub fn pad_token_id(&self) -> Option<u32> {
        self.pad_token_id
    }

    /// VILA's `infer_stop_tokens`: the eos token and the token that follows an assistant
    /// message in the template (`<|im_end|>`), without duplicates, `<|im_end|>` first.
    pub fn stop_token_ids(&self) -> Vec<u32> {
        let mut ids = vec![self.im_end_token_id];
        if self.eos_token_id != self.im_end_token_id {
            ids.push(self.eos_token_id);
        }
        ids
    }

    /// `model_max_length` from `tokenizer_config.json`, when it is a real limit.
    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }

    /// The chat template.
    pub fn chat_template(&self) -> ChatTemplate {
        self.template
    }

    /// The folder the tokenizer was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
