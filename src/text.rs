//! Text kernels shared by dedup, tagging and the hashing vectorizer: normalisation,
//! tokenisation, shingles and hash functions.
//!
//! - [`murmur3_32`]: MurmurHash3 x86_32 (Austin Appleby, public domain), the hash
//!   scikit-learn's `HashingVectorizer` uses (`sklearn.utils.murmurhash3_32`), so feature
//!   indices and signs match it.
//! - [`hash64`]: 64-bit FNV-1a (Fowler/Noll/Vo) followed by the SplitMix64 finaliser (Steele
//!   et al., "Fast splittable pseudorandom number generators", OOPSLA 2014) for shingles and
//!   rows: stable across platforms and versions (unlike `std`'s hasher).
//! - [`strings`]: a text column's rows as `Option<&str>` (UTF-8 checked, naming the row).

use std::sync::OnceLock;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;

use regex::Regex;

use crate::error::{LakeError, Result};

/// How to normalise text before hashing or shingling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Normalize {
    /// Unicode NFKC (compatibility composition): "ﬁ" -> "fi", full-width -> ASCII.
    pub nfkc: bool,
    /// Full Unicode lower-casing (`str::to_lowercase`; Python's `str.lower`).
    pub lowercase: bool,
    /// Trim, and collapse runs of Unicode whitespace into one space.
    pub whitespace: bool,
}

impl Normalize {
    #[cfg(test)]
    pub fn none() -> Self {
        Normalize::default()
    }
    #[cfg(test)]
    pub fn all() -> Self {
        Normalize { nfkc: true, lowercase: true, whitespace: true }
    }

    /// Apply to `s` (borrowed when nothing changes).
    pub fn apply<'a>(&self, s: &'a str) -> std::borrow::Cow<'a, str> {
        use unicode_normalization::UnicodeNormalization;
        let mut out = std::borrow::Cow::Borrowed(s);
        if self.nfkc && !unicode_normalization::is_nfkc_quick(s.chars()).eq(&unicode_normalization::IsNormalized::Yes) {
            out = std::borrow::Cow::Owned(out.nfkc().collect());
        }
        if self.lowercase && out.chars().any(|c| c.is_uppercase()) {
            out = std::borrow::Cow::Owned(out.to_lowercase());
        }
        if self.whitespace {
            let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
            if collapsed != out {
                out = std::borrow::Cow::Owned(collapsed);
            }
        }
        out
    }
}

/// MurmurHash3 x86_32 of `data` with `seed`, as a signed 32-bit value (scikit-learn's
/// `murmurhash3_32(..., positive=False)`).
pub fn murmur3_32(data: &[u8], seed: u32) -> i32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let mut k = 0u32;
    if tail.len() >= 3 {
        k ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        k ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        k ^= tail[0] as u32;
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h as i32
}

/// SplitMix64's finaliser: a bijective 64-bit mixer.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable 64-bit hash of `data` with `seed` (FNV-1a, then [`mix64`]).
#[inline]
pub fn hash64(data: &[u8], seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ mix64(seed);
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h ^ data.len() as u64)
}

/// Calls `f` with each maximal run of word characters of `s`, in order: the matches of the
/// regex `\w+` (Unicode word characters: Alphabetic, Join_Control, Decimal_Number, Mark,
/// Connector_Punctuation; UTS #18 Annex C), found without a regex engine. ASCII bytes are
/// classified by a comparison; other characters by `regex_syntax::is_word_character`, the
/// table `regex` itself uses. About 3x faster than `Regex::find_iter` on the Debian corpus
/// (the regex search was a quarter of MinHash signature time).
#[inline]
pub fn for_each_word<'a>(s: &'a str, mut f: impl FnMut(&'a str)) {
    let bytes = s.as_bytes();
    let (mut i, mut start) = (0, None);
    while i < bytes.len() {
        let b = bytes[i];
        let (word, len) = if b < 0x80 {
            (b.is_ascii_alphanumeric() || b == b'_', 1)
        } else {
            // `i` is a character boundary: it only advances by whole characters.
            match s[i..].chars().next() {
                Some(c) => (regex_syntax::is_word_character(c), c.len_utf8()),
                None => break,
            }
        };
        match (word, start) {
            (true, None) => start = Some(i),
            (false, Some(st)) => {
                f(&s[st..i]);
                start = None;
            }
            _ => {}
        }
        i += len;
    }
    if let Some(st) = start {
        f(&s[st..]);
    }
}

/// [`hash64`] of the ASCII lower-case form of `data` (equal to
/// `hash64(&data.to_ascii_lowercase(), seed)`), without building it.
#[inline]
pub fn hash64_ascii_lower(data: &[u8], seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ mix64(seed);
    for &b in data {
        h ^= b.to_ascii_lowercase() as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h ^ data.len() as u64)
}

/// scikit-learn's default `token_pattern`, `(?u)\b\w\w+\b`: words of 2+ word characters.
pub fn word_regex() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"\b\w\w+\b").expect("valid regex"))
}

/// Word tokens of `s` (scikit-learn's default token pattern).
pub fn words(s: &str) -> Vec<&str> {
    word_regex().find_iter(s).map(|m| m.as_str()).collect()
}

/// Call `f` on every word n-gram (`lo..=hi` words joined by one space) of `tokens`,
/// in scikit-learn's order (all n-grams of size `lo` first, then `lo + 1`, ...).
pub fn word_ngrams(tokens: &[&str], lo: usize, hi: usize, mut f: impl FnMut(&str)) {
    let mut buf = String::new();
    for n in lo.max(1)..=hi {
        if n > tokens.len() {
            break;
        }
        for w in tokens.windows(n) {
            if n == 1 {
                f(w[0]);
            } else {
                buf.clear();
                for (i, t) in w.iter().enumerate() {
                    if i > 0 {
                        buf.push(' ');
                    }
                    buf.push_str(t);
                }
                f(&buf);
            }
        }
    }
}

/// Call `f` on every character n-gram (`lo..=hi` chars) of `s`, after replacing runs of two
/// or more whitespace characters by one space (scikit-learn's `analyzer="char"`: its
/// `_white_spaces = re.compile(r"\s\s+")`), in scikit-learn's order.
pub fn char_ngrams(s: &str, lo: usize, hi: usize, mut f: impl FnMut(&str)) {
    let chars: Vec<char> = s.chars().collect();
    let mut collapsed = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() && i + 1 < chars.len() && chars[i + 1].is_whitespace() {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            collapsed.push(' ');
        } else {
            collapsed.push(chars[i]);
            i += 1;
        }
    }
    let idx: Vec<usize> = collapsed.char_indices().map(|(i, _)| i).chain(std::iter::once(collapsed.len())).collect();
    let nchars = idx.len() - 1;
    for n in lo.max(1)..=hi {
        if n > nchars {
            break;
        }
        for i in 0..=nchars - n {
            f(&collapsed[idx[i]..idx[i + n]]);
        }
    }
}

/// The rows of a text column as `Option<&str>` (null -> None). Utf8, LargeUtf8, Utf8View,
/// and Binary/LargeBinary/BinaryView holding UTF-8 are accepted; invalid UTF-8 is an error
/// naming the row.
pub fn strings<'a>(array: &'a ArrayRef, column: &str) -> Result<Vec<Option<&'a str>>> {
    Ok(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().collect(),
        DataType::Utf8View => array.as_string_view().iter().collect(),
        DataType::Binary => utf8_rows(array.as_binary::<i32>().iter(), column)?,
        DataType::LargeBinary => utf8_rows(array.as_binary::<i64>().iter(), column)?,
        DataType::BinaryView => utf8_rows(array.as_binary_view().iter(), column)?,
        other => {
            return Err(LakeError::Schema(format!(
                "column '{column}' is not a text column (type {other}); expected string or binary"
            )))
        }
    })
}

fn utf8_rows<'a>(rows: impl Iterator<Item = Option<&'a [u8]>>, column: &str) -> Result<Vec<Option<&'a str>>> {
    rows.enumerate()
        .map(|(i, b)| {
            b.map(|b| {
                std::str::from_utf8(b).map_err(|_| {
                    LakeError::InvalidArgument(format!("column '{column}', row {i}: bytes are not valid UTF-8"))
                })
            })
            .transpose()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use std::sync::Arc;

    #[test]
    fn ascii_lower_hash_is_the_hash_of_the_lowered_bytes() {
        for t in ["", "a", "Hello_World", "MiXeD 123 CASE!", "already lower"] {
            assert_eq!(hash64_ascii_lower(t.as_bytes(), 7), hash64(t.to_ascii_lowercase().as_bytes(), 7), "{t}");
        }
    }

    #[test]
    fn words_are_the_matches_of_backslash_w_plus() {
        let re = Regex::new(r"\w+").unwrap();
        let mut texts: Vec<String> = vec![
            "".into(),
            "   ".into(),
            "snake_case and CamelCase, x2 -- 3.14!".into(),
            "naïve café ﬁne Ünïcödé straße".into(),
            "日本語のテキスト、中文字符 한국어".into(),
            "e\u{301}cole a\u{200d}b x\u{2060}y ‿join ①②③ ¹²³ ٣٤٥ १२३".into(),
            "emoji 🎉 party🎉time tab\tnew\nline".into(),
        ];
        // every character up to U+3100, in runs of 7, and a sample of higher planes
        let all: String = (0u32..0x3100).chain((0x1_0000..0x1_F000).step_by(97)).filter_map(char::from_u32).collect();
        let chars: Vec<char> = all.chars().collect();
        texts.extend(chars.chunks(7).map(|c| c.iter().collect::<String>() + " "));
        texts.push(all);
        for t in &texts {
            let mut got = Vec::new();
            for_each_word(t, |w| got.push(w));
            let want: Vec<&str> = re.find_iter(t).map(|m| m.as_str()).collect();
            assert_eq!(got, want, "{t:?}");
        }
    }

    #[test]
    fn murmur3_matches_reference_values() {
        // sklearn.utils.murmurhash3_32(b, seed=0) / (seed=42)
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"foo", 0), -156908512);
        assert_eq!(murmur3_32(b"foo", 42), -1322301282);
        assert_eq!(murmur3_32(b"hello world", 0), 1586663183);
    }

    #[test]
    fn normalisation() {
        let n = Normalize::all();
        assert_eq!(n.apply("  Ｆｕｌｌ\u{00A0}Width\tﬁle  "), "full width file");
        assert_eq!(Normalize::none().apply(" A "), " A ");
    }

    #[test]
    fn tokens_and_ngrams() {
        assert_eq!(words("a bc, déf_1 x"), vec!["bc", "déf_1"]);
        let mut out = vec![];
        word_ngrams(&["a", "b", "c"], 1, 2, |g| out.push(g.to_string()));
        assert_eq!(out, vec!["a", "b", "c", "a b", "b c"]);
        let mut out = vec![];
        char_ngrams("ab  c\td", 2, 2, |g| out.push(g.to_string()));
        assert_eq!(out, vec!["ab", "b ", " c", "c\t", "\td"]);
    }

    #[test]
    fn binary_must_be_utf8() {
        let b: ArrayRef = Arc::new(arrow::array::BinaryArray::from(vec![b"ok".as_ref(), b"\xff\xfe".as_ref()]));
        let e = strings(&b, "raw").unwrap_err().to_string();
        assert!(e.contains("'raw', row 1"), "{e}");
        let n: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        assert!(strings(&n, "x").unwrap_err().to_string().contains("not a text column"));
    }
}
