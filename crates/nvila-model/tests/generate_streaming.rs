//! `TextStreamer` on the tiny checkpoint's byte-level BPE tokenizer: pieces are emitted only when
//! they decode cleanly (no half UTF-8 characters), and they concatenate to the final text,
//! `decode(ids, skip_special_tokens=true).trim()` as VILA returns it.

use std::path::PathBuf;

use nvila_model::generate::TextStreamer;
use nvila_model::processor::Tokenizer;

fn tokenizer() -> Tokenizer {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/tiny-nvila/llm");
    Tokenizer::load(&dir).unwrap()
}

/// Streams `ids`; returns the pieces (each from one push or the final flush) and the final text.
fn stream(tok: &Tokenizer, ids: &[u32]) -> (Vec<String>, String) {
    let mut streamer = TextStreamer::new(tok);
    let mut pieces = Vec::new();
    for &id in ids {
        if let Some(p) = streamer.push(id).unwrap() {
            assert!(!p.is_empty());
            pieces.push(p);
        }
    }
    let (text, last) = streamer.finish().unwrap();
    pieces.extend(last);
    (pieces, text)
}

#[test]
fn multibyte_characters_are_emitted_whole() {
    let tok = tokenizer();
    let text = "héllo wörld: 3€ 😀 日本語 ok";
    let ids = tok.encode(text).unwrap();
    // The tiny vocabulary has few merges, so the non-ASCII characters span several tokens.
    let chars = text.chars().count();
    assert!(ids.len() > chars / 2, "{} ids for {chars} chars", ids.len());
    let (pieces, final_text) = stream(&tok, &ids);
    assert_eq!(final_text, text);
    assert_eq!(pieces.concat(), text);
    for p in &pieces {
        assert!(
            !p.contains('\u{FFFD}'),
            "piece {p:?} has a replacement character"
        );
    }
    // Some token ends inside a character, so there are fewer pieces than tokens.
    assert!(pieces.len() < ids.len(), "{pieces:?}");
    assert!(pieces.len() > 3, "streaming emits as it goes: {pieces:?}");
}

#[test]
fn surrounding_whitespace_is_trimmed_like_vila() {
    let tok = tokenizer();
    let text = " \n  two words \n\n ";
    let ids = tok.encode(text).unwrap();
    let (pieces, final_text) = stream(&tok, &ids);
    assert_eq!(final_text, "two words");
    assert_eq!(pieces.concat(), "two words");
    assert!(pieces.iter().all(|p| !p.starts_with('\n')));
    // Whitespace inside the text is kept.
    let ids = tok.encode("a  \n b").unwrap();
    assert_eq!(stream(&tok, &ids).0.concat(), "a  \n b");
}

#[test]
fn special_tokens_are_skipped() {
    let tok = tokenizer();
    let mut ids = tok.encode("before").unwrap();
    ids.push(tok.image_token_id());
    ids.extend(tok.encode(" after").unwrap());
    ids.push(tok.im_end_token_id());
    let (pieces, final_text) = stream(&tok, &ids);
    assert_eq!(final_text, "before after");
    assert_eq!(pieces.concat(), final_text);
}

#[test]
fn arbitrary_token_sequences_concatenate_to_the_final_text() {
    // Random ids, as a random model produces them: bytes that never form valid UTF-8 included.
    let tok = tokenizer();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..20 {
        let ids: Vec<u32> = (0..40)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 512) as u32
            })
            .collect();
        let (pieces, final_text) = stream(&tok, &ids);
        assert_eq!(pieces.concat(), final_text, "ids {ids:?}");
        assert_eq!(final_text, tok.decode(&ids, true).unwrap().trim());
    }
}

#[test]
fn empty_streams_give_empty_text() {
    let tok = tokenizer();
    assert_eq!(stream(&tok, &[]), (vec![], String::new()));
    let ids = vec![tok.im_end_token_id(), tok.eos_token_id()];
    assert_eq!(stream(&tok, &ids), (vec![], String::new()));
}
