//! `x-kubernetes-validations` rules: compiled with cel-rust, checked against the schema the way
//! the API server's CEL type checker rejects selections of undeclared fields, and evaluated
//! with `self` (and `oldSelf`) bound to the value at the rule's node.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{Expr, IdedExpr};
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Program};
use serde_json::Value;

use crate::escape::escape;
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
    let transition = mentions(program.expression(), "oldSelf");
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
    let mut checker = Checker {
        self_type: self_type.clone(),
        scopes: Vec::new(),
        errors: Vec::new(),
    };
    checker.walk(program.expression());
    if checker.errors.is_empty() {
        return Ok(program);
    }
    let mut located: Vec<((isize, isize), String)> = checker
        .errors
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

/// Whether `expr` reads the variable `name`.
fn mentions(expr: &IdedExpr, name: &str) -> bool {
    let mut found = false;
    visit(expr, &mut |e| {
        if matches!(&e.expr, Expr::Ident(id) if id == name) {
            found = true;
        }
    });
    found
}

/// Calls `f` on every node of `expr`.
fn visit(expr: &IdedExpr, f: &mut impl FnMut(&IdedExpr)) {
    f(expr);
    for child in children(expr) {
        visit(child, f);
    }
}

/// The direct sub-expressions of `expr`.
fn children(expr: &IdedExpr) -> Vec<&IdedExpr> {
    match &expr.expr {
        Expr::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(call.args.iter())
            .collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map.entries.iter().flat_map(entry_children).collect(),
        Expr::Struct(s) => s.entries.iter().flat_map(entry_children).collect(),
        Expr::Select(select) => vec![select.operand.as_ref()],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

fn entry_children(entry: &cel::common::ast::IdedEntryExpr) -> Vec<&IdedExpr> {
    match &entry.expr {
        cel::common::ast::EntryExpr::StructField(f) => vec![&f.value],
        cel::common::ast::EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
    }
}

/// The CEL type a schema node declares, as far as field selection goes (the API server's
/// `SchemaDeclType`).
#[derive(Clone, Debug)]
enum Decl<'s> {
    /// An object with its declared properties; a resource root also has `apiVersion`, `kind`
    /// and `metadata`.
    Object(&'s Schema, bool),
    /// The `metadata` of a resource root: `name` and `generateName` only.
    Meta,
    /// `additionalProperties`: a map of this value type.
    Map(Box<Decl<'s>>),
    List(Box<Decl<'s>>),
    Scalar(&'static str),
    /// Anything (`x-kubernetes-int-or-string`, variables whose type is not tracked).
    Dyn,
}

impl Decl<'_> {
    fn name(&self) -> String {
        match self {
            Decl::Object(..) | Decl::Meta => "object".to_string(),
            Decl::Map(value) => format!("map(string, {})", value.name()),
            Decl::List(item) => format!("list({})", item.name()),
            Decl::Scalar(name) => (*name).to_string(),
            Decl::Dyn => "dyn".to_string(),
        }
    }
}

/// The declared type of a schema node; `None` when the node is not visible to CEL (a
/// schema-less `x-kubernetes-preserve-unknown-fields` node, a list without items).
fn declared(schema: &Schema, resource: bool) -> Option<Decl<'_>> {
    if schema.int_or_string {
        return Some(Decl::Dyn);
    }
    match schema.type_.as_deref() {
        Some("array") => {
            let items = schema.items.as_deref()?;
            Some(Decl::List(Box::new(declared(
                items,
                items.embedded_resource,
            )?)))
        }
        Some("object") => match schema.additional.as_deref() {
            Some(additional) if additional.type_.is_some() || additional.int_or_string => {
                Some(Decl::Map(Box::new(declared(
                    additional,
                    additional.embedded_resource,
                )?)))
            }
            Some(_) => None,
            None => Some(Decl::Object(schema, resource)),
        },
        Some("string") => Some(Decl::Scalar(match schema.format.as_deref() {
            Some("byte") => "bytes",
            Some("duration") => "google.protobuf.Duration",
            Some("date" | "date-time") => "google.protobuf.Timestamp",
            _ => "string",
        })),
        Some("boolean") => Some(Decl::Scalar("bool")),
        Some("number") => Some(Decl::Scalar("double")),
        Some("integer") => Some(Decl::Scalar("int")),
        _ if resource => Some(Decl::Object(schema, resource)),
        _ => None,
    }
}

/// The identifiers CEL knows without declarations: type names.
const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
];

/// Walks an expression and records the selections the schema does not declare.
struct Checker<'s> {
    self_type: Decl<'s>,
    /// Comprehension variables in scope, innermost last.
    scopes: Vec<(String, Decl<'s>)>,
    errors: Vec<(u64, String)>,
}

impl<'s> Checker<'s> {
    /// The type of `expr`, recording errors on the way.
    fn walk(&mut self, expr: &IdedExpr) -> Decl<'s> {
        match &expr.expr {
            Expr::Ident(name) => self.ident(expr.id, name),
            Expr::Select(select) => {
                let operand = self.walk(&select.operand);
                self.select(expr.id, &operand, &select.field)
            }
            Expr::Call(call) => {
                let target = call.target.as_deref().map(|t| self.walk(t));
                let args: Vec<Decl<'s>> = call.args.iter().map(|a| self.walk(a)).collect();
                match (call.func_name.as_str(), target, args.as_slice()) {
                    ("_[_]" | "_[?_]", None, [container, _]) => match container {
                        Decl::List(item) | Decl::Map(item) => (**item).clone(),
                        _ => Decl::Dyn,
                    },
                    ("_?._", None, [operand, _]) => {
                        if let Some(Expr::Literal(cel::common::ast::LiteralValue::String(field))) =
                            call.args.get(1).map(|a| &a.expr)
                        {
                            let field = field.inner().to_string();
                            self.select(expr.id, operand, &field);
                        }
                        Decl::Dyn
                    }
                    _ => Decl::Dyn,
                }
            }
            Expr::Comprehension(c) => {
                let range = self.walk(&c.iter_range);
                let (first, second) = match (&range, c.iter_var2.is_some()) {
                    (Decl::List(item), false) => ((**item).clone(), Decl::Dyn),
                    (Decl::List(item), true) => (Decl::Scalar("int"), (**item).clone()),
                    (Decl::Map(value), _) => (Decl::Scalar("string"), (**value).clone()),
                    _ => (Decl::Dyn, Decl::Dyn),
                };
                let depth = self.scopes.len();
                self.walk(&c.accu_init);
                self.scopes.push((c.accu_var.clone(), Decl::Dyn));
                self.scopes.push((c.iter_var.clone(), first));
                if let Some(second_var) = &c.iter_var2 {
                    self.scopes.push((second_var.clone(), second));
                }
                self.walk(&c.loop_cond);
                self.walk(&c.loop_step);
                self.scopes.truncate(depth);
                self.scopes.push((c.accu_var.clone(), Decl::Dyn));
                self.walk(&c.result);
                self.scopes.truncate(depth);
                Decl::Dyn
            }
            Expr::List(_) | Expr::Map(_) | Expr::Struct(_) => {
                for child in children(expr) {
                    self.walk(child);
                }
                Decl::Dyn
            }
            Expr::Literal(_) | Expr::Unspecified => Decl::Dyn,
        }
    }

    fn ident(&mut self, id: u64, name: &str) -> Decl<'s> {
        if let Some((_, decl)) = self.scopes.iter().rev().find(|(n, _)| n == name) {
            return decl.clone();
        }
        match name {
            "self" | "oldSelf" => self.self_type.clone(),
            _ if TYPE_NAMES.contains(&name) => Decl::Dyn,
            _ => {
                self.errors.push((
                    id,
                    format!("undeclared reference to '{name}' (in container '')"),
                ));
                Decl::Dyn
            }
        }
    }

    fn select(&mut self, id: u64, operand: &Decl<'s>, field: &str) -> Decl<'s> {
        match operand {
            Decl::Object(schema, resource) => {
                if *resource {
                    match field {
                        "apiVersion" | "kind" => return Decl::Scalar("string"),
                        "metadata" => return Decl::Meta,
                        _ => {}
                    }
                }
                let found = schema.properties.iter().find_map(|(name, property)| {
                    (escape(name).as_deref() == Some(field))
                        .then(|| declared(property, property.embedded_resource))
                        .flatten()
                });
                found.unwrap_or_else(|| {
                    self.errors.push((id, format!("undefined field '{field}'")));
                    Decl::Dyn
                })
            }
            Decl::Meta => {
                if matches!(field, "name" | "generateName") {
                    Decl::Scalar("string")
                } else {
                    self.errors.push((id, format!("undefined field '{field}'")));
                    Decl::Dyn
                }
            }
            Decl::Map(value) => (**value).clone(),
            Decl::Dyn => Decl::Dyn,
            other @ (Decl::List(_) | Decl::Scalar(_)) => {
                self.errors.push((
                    id,
                    format!("type '{}' does not support field selection", other.name()),
                ));
                Decl::Dyn
            }
        }
    }
}

/// The CEL value of `value` at a node of `schema` (`resource`: a resource root). Object
/// properties appear under their escaped names; properties the schema does not declare (or
/// CEL cannot see) are left out, as the API server does.
pub(crate) fn to_cel(value: &Value, schema: &Schema, resource: bool) -> cel::Value {
    match declared(schema, resource) {
        Some(decl) => convert(value, Some(schema), &decl),
        None => convert(value, None, &Decl::Dyn),
    }
}

fn convert(value: &Value, schema: Option<&Schema>, decl: &Decl<'_>) -> cel::Value {
    match (value, decl) {
        (Value::Null, _) => cel::Value::Null,
        (Value::Bool(b), _) => cel::Value::Bool(*b),
        (Value::Number(n), Decl::Scalar("double")) => cel::Value::Float(n.as_f64().unwrap_or(0.0)),
        (Value::Number(n), _) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        (Value::String(s), _) => cel::Value::String(Arc::new(s.clone())),
        (Value::Array(items), decl) => {
            let item_schema = schema.and_then(|s| s.items.as_deref());
            let item_decl = match decl {
                Decl::List(item) => (**item).clone(),
                _ => Decl::Dyn,
            };
            cel::Value::List(Arc::new(
                items
                    .iter()
                    .map(|i| convert(i, item_schema, &item_decl))
                    .collect(),
            ))
        }
        (Value::Object(map), Decl::Object(object_schema, resource)) => {
            let mut out: HashMap<Key, cel::Value> = HashMap::new();
            for (name, property) in &object_schema.properties {
                let (Some(field), Some(child)) = (map.get(name), escape(name)) else {
                    continue;
                };
                if let Some(child_decl) = declared(property, property.embedded_resource) {
                    out.insert(
                        Key::from(child),
                        convert(field, Some(property), &child_decl),
                    );
                }
            }
            if *resource {
                for field in ["apiVersion", "kind"] {
                    if let Some(Value::String(s)) = map.get(field) {
                        out.insert(
                            Key::from(field.to_string()),
                            cel::Value::String(Arc::new(s.clone())),
                        );
                    }
                }
                if let Some(Value::Object(meta)) = map.get("metadata") {
                    let mut kept: HashMap<Key, cel::Value> = HashMap::new();
                    for field in ["name", "generateName"] {
                        if let Some(Value::String(s)) = meta.get(field) {
                            kept.insert(
                                Key::from(field.to_string()),
                                cel::Value::String(Arc::new(s.clone())),
                            );
                        }
                    }
                    out.insert(
                        Key::from("metadata".to_string()),
                        cel::Value::Map(Map::from(kept)),
                    );
                }
            }
            cel::Value::Map(Map::from(out))
        }
        (Value::Object(map), decl) => {
            let value_schema = schema.and_then(|s| s.additional.as_deref());
            let value_decl = match decl {
                Decl::Map(value) => (**value).clone(),
                _ => Decl::Dyn,
            };
            let out: HashMap<Key, cel::Value> = map
                .iter()
                .map(|(k, v)| (Key::from(k.clone()), convert(v, value_schema, &value_decl)))
                .collect();
            cel::Value::Map(Map::from(out))
        }
    }
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
