//! `x-kubernetes-validations` rules: compiled with cel-rust, checked against the schema the way
//! the API server's CEL type checker rejects selections of undeclared fields, and evaluated
//! with `self` (and `oldSelf`) bound to the value at the rule's node.

mod check;
mod decl;
mod value;

use std::sync::{Arc, LazyLock};

use cel::{Context, Env, ExecutionError, Program};
use serde_json::Value;

use self::decl::{Decl, declared};
pub(crate) use self::value::to_cel;
use crate::schema::Schema;

/// The CEL environment of every rule: the standard library, the strings extension, and
/// cel-go's handling of repeated map keys.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    env.set_error_on_duplicate_map_keys(false);
    if let Err(err) = env.add_extension(cel::extensions::strings) {
        tracing::warn!(%err, "the CEL strings extension is not available");
    }
    Arc::new(env)
});

/// One compiled rule.
#[derive(Debug)]
pub(crate) struct Rule {
    /// The rule as written.
    pub source: String,
    pub message: Option<String>,
    message_expression: Option<Program>,
    /// `reason`: `FieldValueInvalid` (the default), `FieldValueForbidden`,
    /// `FieldValueRequired` or `FieldValueDuplicate`.
    pub reason: Option<String>,
    /// `fieldPath`, relative to the rule's node (`.a.b`).
    pub field_path: Option<String>,
    program: Program,
    /// Whether the rule reads `oldSelf` (it then only runs on updates).
    pub transition: bool,
}

/// Why a rule did not compile: the rule's field (`rule`, `messageExpression`), the rule as
/// the server prints it, and the detail.
#[derive(Debug)]
pub(crate) struct CompileFailure {
    pub field: &'static str,
    pub value: String,
    pub detail: String,
}

/// The outcome of one rule on one value.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    Passed,
    /// The rule is false: the message to report.
    Failed(String),
    /// The rule could not be evaluated (a missing key, no matching overload, ...): the
    /// message to report.
    Error(String),
}

/// Compiles the rule `spec` (`{rule, message, messageExpression, reason, fieldPath}`) of the
/// schema node `node`; `resource` when the node is a resource root (`apiVersion`, `kind`
/// and `metadata.name`/`generateName` are then readable).
pub(crate) fn compile(spec: &Value, node: &Schema, resource: bool) -> Result<Rule, CompileFailure> {
    let text = |k: &str| spec.get(k).and_then(Value::as_str).map(str::to_string);
    let source = text("rule").unwrap_or_default();
    let message = text("message").filter(|m| !m.trim().is_empty());
    let reason = text("reason");
    let field_path = text("fieldPath").filter(|p| !p.is_empty());
    let failure = |field: &'static str, detail: String| CompileFailure {
        field,
        value: go_rule(spec),
        detail,
    };
    if source.trim().is_empty() {
        return Err(failure("rule", "rule is not specified".to_string()));
    }
    let self_type = declared(node, resource).unwrap_or(Decl::Dyn);
    let program = parse(&source, &self_type).map_err(|e| failure("rule", e))?;
    let message_expression = match text("messageExpression").filter(|m| !m.trim().is_empty()) {
        Some(expression) => Some(parse(&expression, &self_type).map_err(|e| {
            failure(
                "messageExpression",
                e.replacen(
                    "compilation failed",
                    "messageExpression compilation failed",
                    1,
                ),
            )
        })?),
        None => None,
    };
    let transition = check::mentions(program.expression(), "oldSelf");
    Ok(Rule {
        source,
        message,
        message_expression,
        reason,
        field_path,
        program,
        transition,
    })
}

/// Parses and checks one expression.
fn parse(source: &str, self_type: &Decl<'_>) -> Result<Program, String> {
    let program = ENV.compile(source).map_err(|errors| {
        let listed: Vec<String> = errors
            .errors
            .iter()
            .map(|e| display_error(source, e.pos.0, e.pos.1, &e.msg))
            .collect();
        format!("compilation failed: {}", listed.join("\n"))
    })?;
    let errors = check::undeclared(program.expression(), self_type);
    if errors.is_empty() {
        return Ok(program);
    }
    let mut located: Vec<((isize, isize), String)> = errors
        .into_iter()
        .map(|(id, message)| (position(&program, source, id), message))
        .collect();
    located.sort();
    let listed: Vec<String> = located
        .iter()
        .map(|((line, column), message)| display_error(source, *line, *column, message))
        .collect();
    Err(format!("compilation failed: {}", listed.join("\n")))
}

/// (line, column), both from 1, of the expression `id`.
fn position(program: &Program, source: &str, id: u64) -> (isize, isize) {
    let Some((start, _)) = program.source_info().offset_for(id) else {
        return (1, 1);
    };
    let start = usize::try_from(start).unwrap_or(0);
    let (mut line, mut column) = (1isize, 1isize);
    for c in source.chars().take(start) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// `ERROR: <input>:L:C: message` with the source line and a caret, as cel-go prints issues.
fn display_error(source: &str, line: isize, column: isize, message: &str) -> String {
    let mut out = format!("ERROR: <input>:{line}:{column}: {message}");
    let snippet = usize::try_from(line - 1)
        .ok()
        .and_then(|l| source.lines().nth(l));
    if let Some(snippet) = snippet {
        let dots = ".".repeat(usize::try_from(column - 1).unwrap_or(0));
        out.push_str(&format!("\n | {}\n | {dots}^", snippet.replace('\t', " ")));
    }
    out
}

/// The rule as the server prints the invalid value (Go's `%#v` of its `ValidationRule`).
fn go_rule(spec: &Value) -> String {
    let quoted = |k: &str| {
        Value::String(
            spec.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        )
        .to_string()
    };
    let reason = match spec.get("reason").and_then(Value::as_str) {
        Some(reason) => format!("(*apiextensions.FieldValueErrorReason)({:?})", reason),
        None => "(*apiextensions.FieldValueErrorReason)(nil)".to_string(),
    };
    let optional_old_self = match spec.get("optionalOldSelf").and_then(Value::as_bool) {
        Some(flag) => format!("(*bool)({flag})"),
        None => "(*bool)(nil)".to_string(),
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{reason}, FieldPath:{}, OptionalOldSelf:{optional_old_self}}}",
        quoted("rule"),
        quoted("message"),
        quoted("messageExpression"),
        quoted("fieldPath"),
    )
}

impl Rule {
    /// Runs the rule with `self` (and, for a transition rule, `oldSelf`) bound.
    pub(crate) fn evaluate(&self, this: &cel::Value, old: Option<&cel::Value>) -> Outcome {
        let mut context = Context::with_env(ENV.clone());
        context.add_variable_from_value("self", this.clone());
        if let Some(old) = old {
            context.add_variable_from_value("oldSelf", old.clone());
        }
        match self.program.execute(&context) {
            Ok(cel::Value::Bool(true)) => Outcome::Passed,
            Ok(_) => Outcome::Failed(self.failure_message(&context)),
            Err(err) => Outcome::Error(runtime_message(&err, self.error_name())),
        }
    }

    /// What a failed rule reports: `messageExpression`'s string, else `message`, else
    /// `failed rule: <rule>`.
    fn failure_message(&self, context: &Context<'_, '_>) -> String {
        if let Some(expression) = &self.message_expression
            && let Ok(cel::Value::String(text)) = expression.execute(context)
            && !text.trim().is_empty()
            && !text.contains('\n')
        {
            return text.trim().to_string();
        }
        match &self.message {
            Some(message) => message.trim().to_string(),
            None => format!("failed rule: {}", self.source.trim()),
        }
    }

    /// The message, or the rule itself, as runtime errors name the rule.
    fn error_name(&self) -> &str {
        self.message.as_deref().unwrap_or(&self.source).trim()
    }
}

/// A runtime error worded as the API server reports it.
fn runtime_message(err: &ExecutionError, rule: &str) -> String {
    match err {
        ExecutionError::NoSuchOverload(_)
        | ExecutionError::UnsupportedBinaryOperator(..)
        | ExecutionError::ValuesNotComparable(..) => format!(
            "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {rule}"
        ),
        ExecutionError::NoSuchKey(key) => format!("no such key: {key} evaluating rule: {rule}"),
        other => {
            let text = other.to_string();
            let mut chars = text.chars();
            let lowered = chars
                .next()
                .map(|c| c.to_lowercase().collect::<String>() + chars.as_str())
                .unwrap_or_default();
            format!("{lowered} evaluating rule: {rule}")
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(schema: Value) -> Schema {
        let mut errors = Vec::new();
        let parsed = Schema::parse(&schema, "s", false, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        parsed
    }

    fn spec_schema() -> Schema {
        node(json!({
            "type": "object",
            "properties": {
                "repo": {"type": "string"},
                "pr": {"x-kubernetes-int-or-string": true},
                "config": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {
                        "namespace": {"type": "string"},
                        "x-port": {"type": "integer"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "env": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                        "anything": {"x-kubernetes-preserve-unknown-fields": true},
                    },
                },
            },
        }))
    }

    fn compile_rule(rule: &str) -> Result<Rule, CompileFailure> {
        compile(&json!({"rule": rule}), &spec_schema(), false)
    }

    #[test]
    fn reserved_words_must_be_escaped() {
        let failure = compile_rule(
            "!has(oldSelf.config) || !has(oldSelf.config.namespace) || has(self.config) && has(self.config.namespace) && self.config.namespace == oldSelf.config.namespace",
        )
        .unwrap_err();
        assert_eq!(failure.field, "rule");
        assert!(
            failure
                .detail
                .starts_with("compilation failed: ERROR: <input>:1:29: undefined field 'namespace'\n | !has(oldSelf.config)"),
            "{}",
            failure.detail
        );
        assert!(
            failure
                .value
                .starts_with("apiextensions.ValidationRule{Rule:\"!has(oldSelf.config)")
        );
        let rule = compile_rule(
            "!has(oldSelf.config) || !has(oldSelf.config.__namespace__) || has(self.config) && has(self.config.__namespace__) && self.config.__namespace__ == oldSelf.config.__namespace__",
        )
        .unwrap();
        assert!(rule.transition);
        assert!(!compile_rule("self.repo != ''").unwrap().transition);
    }

    #[test]
    fn selections_follow_the_schema() {
        for ok in [
            "self.config.x__dash__port > 0",
            "self.config.labels.anyKey == 'x'",
            "self.config.env.all(e, e.name != '')",
            "self.config.env.exists(e, has(e.name))",
            "self.config.labels.all(k, k != '')",
            "self.pr.whatever == 1",
            "type(self.pr) == int",
            "self.config.env[0].name == 'a'",
            "self.config.labels['a-b'] == 'x'",
        ] {
            assert!(
                compile_rule(ok).is_ok(),
                "{ok}: {:?}",
                compile_rule(ok).err()
            );
        }
        for (bad, detail) in [
            ("self.config.baseApp == 'x'", "undefined field 'baseApp'"),
            ("self.config.anything == 1", "undefined field 'anything'"),
            ("self.config.env.all(e, e.nope)", "undefined field 'nope'"),
            (
                "self.repo.x",
                "type 'string' does not support field selection",
            ),
            (
                "self.config.env.name",
                "type 'list(object)' does not support field selection",
            ),
            ("other == 1", "undeclared reference to 'other'"),
            ("self.metadata.name == 'x'", "undefined field 'metadata'"),
            ("self.repo ==", "Syntax error"),
        ] {
            let failure = compile_rule(bad).unwrap_err();
            assert!(failure.detail.contains(detail), "{bad}: {}", failure.detail);
        }
    }

    #[test]
    fn a_resource_root_exposes_its_name() {
        let root = node(json!({"type": "object", "properties": {"spec": {"type": "object"}}}));
        assert!(
            compile(
                &json!({"rule": "self.metadata.name.startsWith('a')"}),
                &root,
                true
            )
            .is_ok()
        );
        assert!(
            compile(
                &json!({"rule": "self.metadata.labels.size() > 0"}),
                &root,
                true
            )
            .is_err()
        );
        let rule = compile(
            &json!({"rule": "self.metadata.name.startsWith('a') && self.kind == 'W'"}),
            &root,
            true,
        )
        .unwrap();
        let object = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "abc", "labels": {"a": "b"}}});
        assert_eq!(
            rule.evaluate(&to_cel(&object, &root, true), None),
            Outcome::Passed
        );
    }

    #[test]
    fn evaluation_sees_escaped_names_and_reports_like_the_server() {
        let schema = spec_schema();
        let value = json!({"repo": "r", "pr": 1, "config": {"namespace": "ns", "x-port": 8080, "unknown": 1}});
        let this = to_cel(&value, &schema, false);
        let pass = compile_rule("self.config.__namespace__ == 'ns' && self.config.x__dash__port == 8080 && self.pr == 1").unwrap();
        assert_eq!(pass.evaluate(&this, None), Outcome::Passed);
        let fail = compile(&json!({"rule": "self.repo == 'other'"}), &schema, false).unwrap();
        assert_eq!(
            fail.evaluate(&this, None),
            Outcome::Failed("failed rule: self.repo == 'other'".into())
        );
        let with_message = compile(
            &json!({"rule": "self.repo == 'other'", "message": " repo must be other ", "messageExpression": "'repo ' + self.repo + ' is wrong'"}),
            &schema,
            false,
        )
        .unwrap();
        assert_eq!(
            with_message.evaluate(&this, None),
            Outcome::Failed("repo r is wrong".into())
        );
        let missing = compile_rule("self.config.labels.a == 'x'").unwrap();
        assert_eq!(
            missing.evaluate(&this, None),
            Outcome::Error(
                "no such key: labels evaluating rule: self.config.labels.a == 'x'".into()
            )
        );
        let overload = compile_rule("self.pr > 'a'").unwrap();
        assert!(
            matches!(overload.evaluate(&this, None), Outcome::Error(m) if m.starts_with("'no such overload'"))
        );
        let old = to_cel(&json!({"repo": "before"}), &schema, false);
        let transition = compile_rule("self.repo == oldSelf.repo").unwrap();
        assert!(matches!(
            transition.evaluate(&this, Some(&old)),
            Outcome::Failed(_)
        ));
        assert_eq!(transition.evaluate(&this, Some(&this)), Outcome::Passed);
    }
}
