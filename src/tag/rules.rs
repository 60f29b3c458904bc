//! Rule tagging: many regexes and keyword lists in one pass per text.
//!
//! Regexes are compiled into one `regex::RegexSet` (which patterns match, in one scan);
//! only the patterns that matched are run again to report their spans. Keywords go into
//! one Aho-Corasick automaton (Aho & Corasick, CACM 1975; the `aho-corasick` crate),
//! matched as whole words (no word character just before or after), ASCII case-folded when
//! not case sensitive.

use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use arrow::array::{ArrayRef, Int64Builder, ListBuilder, StringBuilder, StructBuilder};
use arrow::datatypes::{DataType, Field, Fields};
use rayon::prelude::*;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::error::{LakeError, Result};
use crate::runtime::CancelToken;

/// A compiled rule set.
pub struct Rules {
    /// Tag names, in the order given (regex tags first, then keyword-only tags).
    pub tags: Vec<String>,
    /// Per regex: (tag index, pattern).
    regex_rules: Vec<(usize, String)>,
    set: Option<RegexSet>,
    regexes: Vec<Regex>,
    /// Per keyword: (tag index, keyword).
    keyword_rules: Vec<(usize, String)>,
    ac: Option<AhoCorasick>,
}

/// One match: (tag index, rule text, byte start, byte end).
pub type Match<'a> = (usize, &'a str, usize, usize);

fn is_word_byte_boundary(text: &str, at: usize, before: bool) -> bool {
    let c = if before { text[..at].chars().next_back() } else { text[at..].chars().next() };
    !c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

impl Rules {
    /// `regex` and `keywords` map tags to rules, in order.
    pub fn new(
        regex: &[(String, Vec<String>)],
        keywords: &[(String, Vec<String>)],
        case_sensitive: bool,
    ) -> Result<Self> {
        let mut tags: Vec<String> = Vec::new();
        let tag_ix = |t: &str, tags: &mut Vec<String>| match tags.iter().position(|x| x == t) {
            Some(i) => i,
            None => {
                tags.push(t.to_string());
                tags.len() - 1
            }
        };
        let mut regex_rules = Vec::new();
        for (tag, pats) in regex {
            let i = tag_ix(tag, &mut tags);
            for p in pats {
                regex_rules.push((i, p.clone()));
            }
        }
        let mut keyword_rules = Vec::new();
        for (tag, words) in keywords {
            let i = tag_ix(tag, &mut tags);
            for w in words {
                if w.is_empty() {
                    return Err(LakeError::InvalidArgument(format!("tag '{tag}' has an empty keyword")));
                }
                keyword_rules.push((i, w.clone()));
            }
        }
        let mut regexes = Vec::with_capacity(regex_rules.len());
        for (i, p) in &regex_rules {
            let r = RegexBuilder::new(p)
                .case_insensitive(!case_sensitive)
                .size_limit(1 << 26)
                .build()
                .map_err(|e| LakeError::InvalidArgument(format!("tag '{}': invalid regex {p:?}: {e}", tags[*i])))?;
            regexes.push(r);
        }
        let set = if regex_rules.is_empty() {
            None
        } else {
            Some(
                RegexSetBuilder::new(regex_rules.iter().map(|(_, p)| p))
                    .case_insensitive(!case_sensitive)
                    .size_limit(1 << 28)
                    .build()
                    .map_err(|e| LakeError::InvalidArgument(format!("the regex set does not compile: {e}")))?,
            )
        };
        let ac = if keyword_rules.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(!case_sensitive)
                    .match_kind(MatchKind::Standard)
                    .build(keyword_rules.iter().map(|(_, w)| w))
                    .map_err(|e| LakeError::InvalidArgument(format!("keywords do not compile: {e}")))?,
            )
        };
        Ok(Rules { tags, regex_rules, set, regexes, keyword_rules, ac })
    }

    /// Every match in `text`, by (tag, start).
    pub fn matches<'s>(&'s self, text: &str) -> Vec<Match<'s>> {
        let mut out = Vec::new();
        if let Some(set) = &self.set {
            for ri in set.matches(text).iter() {
                let (tag, pat) = &self.regex_rules[ri];
                for m in self.regexes[ri].find_iter(text) {
                    out.push((*tag, pat.as_str(), m.start(), m.end()));
                }
            }
        }
        if let Some(ac) = &self.ac {
            for m in ac.find_overlapping_iter(text) {
                let (s, e) = (m.start(), m.end());
                if is_word_byte_boundary(text, s, true) && is_word_byte_boundary(text, e, false) {
                    let (tag, w) = &self.keyword_rules[m.pattern().as_usize()];
                    out.push((*tag, w.as_str(), s, e));
                }
            }
        }
        out.sort_by_key(|m| (m.0, m.2, m.3));
        out
    }

    /// Tag texts: (`tags` list<utf8>, `matches` list<struct<tag, rule, start, end>>); null
    /// texts get empty lists.
    pub fn tag(&self, texts: &[Option<&str>], cancel: &CancelToken) -> Result<(ArrayRef, ArrayRef)> {
        let per_row: Vec<Vec<Match<'_>>> = texts
            .par_iter()
            .map(|t| {
                if cancel.is_cancelled() {
                    return Vec::new();
                }
                cancel.advance(1);
                t.map(|t| self.matches(t)).unwrap_or_default()
            })
            .collect();
        cancel.check()?;
        let mut tags_b = ListBuilder::new(StringBuilder::new());
        let fields = Fields::from(vec![
            Field::new("tag", DataType::Utf8, false),
            Field::new("rule", DataType::Utf8, false),
            Field::new("start", DataType::Int64, false),
            Field::new("end", DataType::Int64, false),
        ]);
        let mut m_b = ListBuilder::new(StructBuilder::from_fields(fields, 0));
        for ms in &per_row {
            let mut last = usize::MAX;
            for m in ms {
                if m.0 != last {
                    tags_b.values().append_value(&self.tags[m.0]);
                    last = m.0;
                }
                let sb = m_b.values();
                sb.field_builder::<StringBuilder>(0).expect("tag").append_value(&self.tags[m.0]);
                sb.field_builder::<StringBuilder>(1).expect("rule").append_value(m.1);
                sb.field_builder::<Int64Builder>(2).expect("start").append_value(m.2 as i64);
                sb.field_builder::<Int64Builder>(3).expect("end").append_value(m.3 as i64);
                sb.append(true);
            }
            tags_b.append(true);
            m_b.append(true);
        }
        Ok((Arc::new(tags_b.finish()), Arc::new(m_b.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_and_keywords() {
        let r = Rules::new(
            &[("py".into(), vec![r"\bpython\s*3?\b".into()]), ("lib".into(), vec![r"librar(y|ies)".into()])],
            &[("gui".into(), vec!["gtk".into(), "qt".into()])],
            false,
        )
        .unwrap();
        let ms = r.matches("A Python 3 library for GTK and Qt5, qt");
        let tags: Vec<&str> = ms.iter().map(|m| r.tags[m.0].as_str()).collect();
        assert_eq!(tags, vec!["py", "lib", "gui", "gui"]);
        assert_eq!(&"A Python 3 library"[ms[0].2..ms[0].3], "Python 3");
        // "Qt5" is not the whole word "qt"
        assert!(ms.iter().all(|m| m.2 != 28));
        assert!(Rules::new(&[("bad".into(), vec!["(".into()])], &[], false).is_err());
    }
}
