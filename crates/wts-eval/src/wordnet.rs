//! WordNet 3.0 reader with exactly the behaviour nltk's METEOR needs:
//! `wordnet.synsets(word)` (nltk 3.10.4 `WordNetCorpusReader.synsets` + `_morphy`)
//! reduced to the set of lemma names of those synsets.
//!
//! Data: the Debian/Ubuntu package `wordnet-base` (`/usr/share/wordnet`: `index.*`,
//! `data.*`, `*.exc`). Opening reads the eight index/data files into memory and parses
//! only the (small) exception lists; lemma look-ups binary-search the index files
//! (WordNet keeps them sorted bytewise; checked at open) and synset lines are parsed
//! on demand at their byte offset in `data.*`, as the WordNet library itself does.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::EvalError;

/// Where `wordnet-base` installs WordNet 3.0.
pub const DEFAULT_WORDNET_DIR: &str = "/usr/share/wordnet";

/// The parts of speech nltk's `synsets()` iterates when `pos=None` (`POS_LIST`),
/// in that order, with their file suffixes.
const POS: [(char, &str); 4] = [('n', "noun"), ('v', "verb"), ('a', "adj"), ('r', "adv")];

/// nltk `WordNetCorpusReader.MORPHOLOGICAL_SUBSTITUTIONS`, per `POS` entry.
const SUBSTITUTIONS: [&[(&str, &str)]; 4] = [
    &[
        ("s", ""),
        ("ses", "s"),
        ("ves", "f"),
        ("xes", "x"),
        ("zes", "z"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("men", "man"),
        ("ies", "y"),
    ],
    &[
        ("s", ""),
        ("ies", "y"),
        ("es", "e"),
        ("es", ""),
        ("ed", "e"),
        ("ed", ""),
        ("ing", "e"),
        ("ing", ""),
    ],
    &[("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    &[],
];

/// One sorted `index.<pos>` file: its bytes and the start offset of every entry line.
struct IndexFile {
    bytes: Vec<u8>,
    lines: Vec<(u32, u32)>,
}

impl IndexFile {
    fn parse(path: &Path, bytes: Vec<u8>) -> Result<IndexFile, EvalError> {
        let mut lines = Vec::new();
        let mut start = 0usize;
        while start < bytes.len() {
            let end = bytes[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |p| start + p);
            // Licence header lines start with two spaces (nltk skips lines starting with ' ').
            if end > start && bytes[start] != b' ' {
                let (s, e) = (u32::try_from(start), u32::try_from(end));
                match (s, e) {
                    (Ok(s), Ok(e)) => lines.push((s, e)),
                    _ => return Err(EvalError::wordnet_format(path, "file too large")),
                }
            }
            start = end + 1;
        }
        let file = IndexFile { bytes, lines };
        for pair in file.lines.windows(2) {
            if file.key(pair[0]) >= file.key(pair[1]) {
                return Err(EvalError::wordnet_format(
                    path,
                    "index entries are not sorted bytewise",
                ));
            }
        }
        Ok(file)
    }

    fn line(&self, (s, e): (u32, u32)) -> &[u8] {
        &self.bytes[s as usize..e as usize]
    }

    fn key(&self, span: (u32, u32)) -> &[u8] {
        let line = self.line(span);
        let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
        &line[..end]
    }

    /// Synset offsets of `lemma` (nltk `_load_lemma_pos_offset_map` fields), if listed.
    fn offsets(&self, lemma: &str) -> Option<Vec<usize>> {
        let i = self
            .lines
            .binary_search_by(|&span| self.key(span).cmp(lemma.as_bytes()))
            .ok()?;
        let line = std::str::from_utf8(self.line(self.lines[i])).ok()?;
        let mut it = line.split_ascii_whitespace();
        let _lemma = it.next()?;
        let _pos = it.next()?;
        let n_synsets: usize = it.next()?.parse().ok()?;
        let n_pointers: usize = it.next()?.parse().ok()?;
        for _ in 0..n_pointers {
            it.next()?;
        }
        let _n_senses = it.next()?;
        let _tagsense_cnt = it.next()?;
        (0..n_synsets)
            .map(|_| it.next().and_then(|t| t.parse().ok()))
            .collect()
    }
}

/// WordNet 3.0 loaded from a `wordnet-base` directory; cheap to share across threads.
pub struct WordNet {
    dir: PathBuf,
    index: Vec<IndexFile>,
    data: Vec<Vec<u8>>,
    exceptions: Vec<HashMap<String, Vec<String>>>,
}

impl std::fmt::Debug for WordNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordNet")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, EvalError> {
    fs::read(path).map_err(|source| EvalError::WordNetIo {
        path: path.to_owned(),
        source,
    })
}

impl WordNet {
    /// Opens WordNet 3.0 in `dir` (normally [`DEFAULT_WORDNET_DIR`]).
    pub fn open(dir: &Path) -> Result<WordNet, EvalError> {
        if !dir.join("index.noun").is_file() {
            return Err(EvalError::WordNetMissing {
                dir: dir.to_owned(),
            });
        }
        let mut index = Vec::with_capacity(4);
        let mut data = Vec::with_capacity(4);
        let mut exceptions = Vec::with_capacity(4);
        for (_, suffix) in POS {
            let path = dir.join(format!("index.{suffix}"));
            index.push(IndexFile::parse(&path, read(&path)?)?);
            data.push(read(&dir.join(format!("data.{suffix}")))?);
            // nltk `_load_exception_map`: first field -> remaining fields.
            let path = dir.join(format!("{suffix}.exc"));
            let text = String::from_utf8(read(&path)?)
                .map_err(|_| EvalError::wordnet_format(&path, "not UTF-8"))?;
            let mut map = HashMap::new();
            for line in text.lines() {
                let mut terms = line.split_ascii_whitespace();
                if let Some(first) = terms.next() {
                    map.insert(first.to_owned(), terms.map(str::to_owned).collect());
                }
            }
            exceptions.push(map);
        }
        Ok(WordNet {
            dir: dir.to_owned(),
            index,
            data,
            exceptions,
        })
    }

    /// The directory this WordNet was read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// nltk `_morphy(form, pos)` (3.10.4: the exception list *or* one round of suffix
    /// rules, then keep the forms listed in `index.<pos>`, de-duplicated in order),
    /// with the synset offsets of every surviving form.
    fn morphy(&self, form: &str, p: usize) -> Vec<(String, Vec<usize>)> {
        let mut candidates: Vec<String> = vec![form.to_owned()];
        if let Some(forms) = self.exceptions[p].get(form) {
            candidates.extend(forms.iter().cloned());
        } else {
            for (old, new) in SUBSTITUTIONS[p] {
                if let Some(stem) = form.strip_suffix(old) {
                    candidates.push(format!("{stem}{new}"));
                }
            }
        }
        let mut out: Vec<(String, Vec<usize>)> = Vec::new();
        for c in candidates {
            if out.iter().any(|(f, _)| *f == c) {
                continue;
            }
            if let Some(offsets) = self.index[p].offsets(&c) {
                out.push((c, offsets));
            }
        }
        out
    }

    /// Lemma names of the synset at `offset` in `data.<pos>` (syntactic markers such as
    /// `(a)` stripped, as nltk's `(.*?)(\([^()]*\))?$` does), appended to `out`.
    fn synset_lemma_names(&self, p: usize, offset: usize, out: &mut Vec<String>) {
        let data = &self.data[p];
        let Some(rest) = data.get(offset..) else {
            return;
        };
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let Ok(line) = std::str::from_utf8(&rest[..end]) else {
            return;
        };
        let mut it = line.split_ascii_whitespace();
        // nltk checks the line really starts with this offset (else it returns None).
        match it.next() {
            Some(o) if o.parse::<usize>().ok() == Some(offset) => {}
            _ => return,
        }
        let _lex_filenum = it.next();
        let _ss_type = it.next();
        let Some(n) = it.next().and_then(|t| usize::from_str_radix(t, 16).ok()) else {
            return;
        };
        for _ in 0..n {
            let Some(name) = it.next() else { return };
            let _lex_id = it.next();
            out.push(strip_syntactic_marker(name).to_owned());
        }
    }

    /// `{lemma.name() for synset in wordnet.synsets(word) for lemma in synset.lemmas()}`,
    /// unfiltered (names may contain `_` and capitals), with duplicates.
    pub fn synset_lemma_names_of(&self, word: &str) -> Vec<String> {
        let word = word.to_lowercase();
        let mut names = Vec::new();
        for p in 0..POS.len() {
            for (_, offsets) in self.morphy(&word, p) {
                for offset in offsets {
                    self.synset_lemma_names(p, offset, &mut names);
                }
            }
        }
        names
    }

    /// The synonym set nltk's `_enum_wordnetsyn_match` builds for a hypothesis word:
    /// lemma names without `_` of all its synsets, plus the word itself.
    pub fn meteor_synonyms(&self, word: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .synset_lemma_names_of(word)
            .into_iter()
            .filter(|n| !n.contains('_'))
            .collect();
        names.push(word.to_owned());
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The base forms nltk's `_morphy(form, pos)` returns for one part of speech
    /// (`'n'`, `'v'`, `'a'` or `'r'`).
    pub fn morphy_forms(&self, form: &str, pos: char) -> Vec<String> {
        match POS.iter().position(|(c, _)| *c == pos) {
            Some(p) => self.morphy(form, p).into_iter().map(|(f, _)| f).collect(),
            None => Vec::new(),
        }
    }
}

/// nltk's `redos.match('(.*?)(\\([^()]*\\))?$', lemma_name).group(1)`.
fn strip_syntactic_marker(name: &str) -> &str {
    if let Some(body) = name.strip_suffix(')')
        && let Some(open) = body.rfind('(')
        && !body[open + 1..].contains(')')
    {
        return &name[..open];
    }
    name
}

#[cfg(test)]
mod tests {
    use super::strip_syntactic_marker;

    #[test]
    fn markers() {
        assert_eq!(strip_syntactic_marker("galore(ip)"), "galore");
        assert_eq!(strip_syntactic_marker("car"), "car");
        assert_eq!(strip_syntactic_marker("a(b)c"), "a(b)c");
    }
}
