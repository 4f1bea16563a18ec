//! Prompt rendering: template placeholders, `<image>` tokens, VQA option lines.

use crate::annotations::VqaQuestion;

/// Replaces `{name}` placeholders; unknown placeholders are left as they are.
pub(crate) fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// The human turn: one `<image>\n` per image, then the text. VILA removes the tokens and puts
/// the images first anyway (nvila.md §4); writing them keeps the file LLaVA-compatible.
pub(crate) fn with_images(images: usize, text: &str) -> String {
    let mut out = "<image>\n".repeat(images);
    out.push_str(text);
    out
}

/// `a. Wet\nb. Dry\n...`, in letter order (TrafficInternVL `transform_vqa_format.py`).
pub(crate) fn options(q: &VqaQuestion) -> String {
    q.options
        .iter()
        .map(|(l, t)| format!("{l}. {t}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The answer: the letter and its text, e.g. `b. Dry`.
pub(crate) fn answer(q: &VqaQuestion) -> Option<String> {
    let l = q.correct?;
    q.option(l).map(|t| format!("{l}. {t}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_known_placeholders_only() {
        assert_eq!(
            fill(
                "{phase} {subject} {x}",
                &[("phase", "action"), ("subject", "vehicle")]
            ),
            "action vehicle {x}"
        );
        assert_eq!(with_images(2, "hi"), "<image>\n<image>\nhi");
    }
}
