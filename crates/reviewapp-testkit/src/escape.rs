//! How a schema property name is spelled in a CEL validation rule.
//!
//! Source: the Kubernetes API reference of `x-kubernetes-validations[].rule`
//! (apiextensions.k8s.io/v1 `ValidationRule`, "CRD validation rules"): only property names of
//! the form `[a-zA-Z_.-/][a-zA-Z0-9_.-/]*` are accessible; a name that is a CEL reserved word
//! is written `__{word}__`; otherwise `__` is written `__underscores__`, `.` `__dot__`, `-`
//! `__dash__` and `/` `__slash__`. The reserved words are those of the CEL lexer as the API
//! server lists them: `true false null in as break const continue else for function if import
//! let loop package namespace return var void while`.

/// The words the CEL lexer reserves.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The CEL identifier of the property `name`, or `None` when the property is not accessible
/// from CEL.
pub(crate) fn escape(name: &str) -> Option<String> {
    let first = name.chars().next()?;
    if first.is_ascii_digit() {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let accessible = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/');
    if !name.chars().all(accessible) {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("__") {
            out.push_str("__underscores__");
            rest = rest.get(2..).unwrap_or_default();
            continue;
        }
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            other => out.push(other),
        }
        rest = rest.get(c.len_utf8()..).unwrap_or_default();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn plain_names_are_themselves() {
        assert_eq!(
            escape("applicationPort").as_deref(),
            Some("applicationPort")
        );
        assert_eq!(escape("_private").as_deref(), Some("_private"));
        assert_eq!(escape("a_b").as_deref(), Some("a_b"));
    }

    #[test]
    fn reserved_words_are_wrapped_in_double_underscores() {
        for word in ["namespace", "in", "return", "var", "void", "while", "true"] {
            assert_eq!(escape(word), Some(format!("__{word}__")), "{word}");
        }
        // Only the whole name is a reserved word.
        assert_eq!(escape("namespaces").as_deref(), Some("namespaces"));
        assert_eq!(escape("myNamespace").as_deref(), Some("myNamespace"));
    }

    #[test]
    fn separators_and_double_underscores_are_spelled_out() {
        assert_eq!(escape("a.b").as_deref(), Some("a__dot__b"));
        assert_eq!(escape("x-prop").as_deref(), Some("x__dash__prop"));
        assert_eq!(
            escape("example.com/key").as_deref(),
            Some("example__dot__com__slash__key")
        );
        assert_eq!(
            escape("redact__d").as_deref(),
            Some("redact__underscores__d")
        );
        assert_eq!(escape("a___b").as_deref(), Some("a__underscores___b"));
        assert_eq!(escape(".x").as_deref(), Some("__dot__x"));
    }

    #[test]
    fn inaccessible_names_have_no_identifier() {
        for name in ["", "1st", "9", "has space", "ünïcode", "a:b", "a$b"] {
            assert_eq!(escape(name), None, "{name:?}");
        }
    }
}
