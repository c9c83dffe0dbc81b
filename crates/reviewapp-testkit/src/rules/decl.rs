//! The CEL types schema nodes declare, as far as field selection goes.

use crate::schema::Schema;

/// The CEL type a schema node declares, as far as field selection goes (the API server's
/// `SchemaDeclType`).
#[derive(Clone, Debug)]
pub(super) enum Decl<'s> {
    /// An object with its declared properties; a resource root also has `apiVersion`, `kind`
    /// and `metadata`.
    Object(&'s Schema, bool),
    /// The `metadata` of a resource root: `name` and `generateName` only.
    Meta,
    /// `additionalProperties`: a map of this value type.
    Map(Box<Decl<'s>>),
    /// `items`: a list of this item type.
    List(Box<Decl<'s>>),
    /// A scalar, by its CEL type name (`string`, `int`, `bool`, ...).
    Scalar(&'static str),
    /// Anything (`x-kubernetes-int-or-string`, variables whose type is not tracked).
    Dyn,
}

impl Decl<'_> {
    /// The type's name as the API server's errors print it.
    pub(super) fn name(&self) -> String {
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
pub(super) fn declared(schema: &Schema, resource: bool) -> Option<Decl<'_>> {
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
