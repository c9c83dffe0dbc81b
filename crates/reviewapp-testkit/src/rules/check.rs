//! The API server's check of a rule's field selections: every selection on `self`,
//! `oldSelf` or a comprehension variable must name a field the schema declares (under the
//! property-name escaping), and every identifier must be declared.

use cel::common::ast::{Expr, IdedExpr};

use super::decl::{Decl, declared};
use crate::escape::escape;

/// Whether `expr` reads the variable `name`.
pub(super) fn mentions(expr: &IdedExpr, name: &str) -> bool {
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

/// The selections and identifiers of `expr` that `self_type` (the type of `self` and
/// `oldSelf`) does not declare, as (expression id, message), in the order met.
pub(super) fn undeclared(expr: &IdedExpr, self_type: &Decl<'_>) -> Vec<(u64, String)> {
    let mut checker = Checker {
        self_type: self_type.clone(),
        scopes: Vec::new(),
        errors: Vec::new(),
    };
    checker.walk(expr);
    checker.errors
}

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
            Expr::Call(call) => self.call(expr.id, call),
            Expr::Comprehension(c) => {
                self.comprehension(c);
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

    /// A call: indexing gives the item type, an optional selection (`a.?b`) is checked like a
    /// selection; anything else is `dyn`.
    fn call(&mut self, id: u64, call: &cel::common::ast::CallExpr) -> Decl<'s> {
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
                    self.select(id, operand, &field);
                }
                Decl::Dyn
            }
            _ => Decl::Dyn,
        }
    }

    /// A comprehension (a macro such as `all` or `exists`): its variables are in scope, typed
    /// by the range, for the loop; only the accumulator for the result.
    fn comprehension(&mut self, c: &cel::common::ast::ComprehensionExpr) {
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
