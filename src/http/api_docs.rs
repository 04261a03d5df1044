//! The API reference page at `/api/docs`, rendered on the server from the very OpenAPI
//! document `/api/v1/openapi.json` serves: no script, no font, its one stylesheet compiled into
//! the binary, nothing fetched from elsewhere, so it works offline and under the dashboard's
//! content policy (the dashboard router serves it, with its security headers).

use std::sync::OnceLock;

use askama::Template;
use axum::Router;
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use utoipa::OpenApi;

use super::AppState;
use super::api::ApiDoc;

const CSS: &str = include_str!("../../assets/api_docs.css");

pub fn router() -> Router<AppState> {
    Router::new().route("/api/docs", get(page)).route(
        "/api/docs/style.css",
        get(|h: HeaderMap| async move {
            super::dashboard::assets::asset(&h, CSS, "text/css; charset=utf-8")
        }),
    )
}

async fn page() -> Response {
    static PAGE: OnceLock<String> = OnceLock::new();
    let html = PAGE.get_or_init(|| {
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        Reference::from_document(&document)
            .render()
            .unwrap_or_else(|e| format!("the API reference could not be rendered: {e}"))
    });
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        html.as_str(),
    )
        .into_response()
}

/// The page: operations grouped by their first path segment, then the schemas they use.
#[derive(Template, Debug, Default)]
#[template(path = "api_docs.html")]
pub struct Reference {
    pub title: String,
    pub description: String,
    pub version: String,
    pub base: String,
    pub groups: Vec<Group>,
    pub schemas: Vec<SchemaView>,
}

#[derive(Debug, Default)]
pub struct Group {
    pub name: String,
    pub operations: Vec<Operation>,
}

#[derive(Debug, Default)]
pub struct Operation {
    pub anchor: String,
    pub method: String,
    pub path: String,
    pub summary: String,
    pub description: String,
    pub params: Vec<Field>,
    pub body: Option<Kind>,
    pub responses: Vec<ResponseView>,
}

/// A type as a reader meets it: its words, and the schema it links to if it names one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Kind {
    pub text: String,
    pub link: Option<String>,
}

#[derive(Debug, Default)]
pub struct Field {
    pub name: String,
    pub location: String,
    pub required: bool,
    pub kind: Kind,
    pub description: String,
}

#[derive(Debug, Default)]
pub struct ResponseView {
    pub status: String,
    pub description: String,
    pub content_type: String,
    pub kind: Option<Kind>,
}

#[derive(Debug, Default)]
pub struct SchemaView {
    pub name: String,
    pub description: String,
    pub kind: Kind,
    pub fields: Vec<Field>,
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `#/components/schemas/LeadBody` → `LeadBody`.
fn ref_name(reference: &str) -> &str {
    reference.rsplit('/').next().unwrap_or(reference)
}

/// Describes a schema in a few words: `string`, `array of LeadBody`, `integer or null`.
pub fn kind_of(schema: &Value) -> Kind {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = ref_name(reference).to_owned();
        return Kind {
            link: Some(format!("schema-{name}")),
            text: name,
        };
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(options) = schema.get(combinator).and_then(Value::as_array) {
            let kinds: Vec<Kind> = options.iter().map(kind_of).collect();
            let joiner = if combinator == "allOf" {
                " and "
            } else {
                " or "
            };
            return Kind {
                text: kinds
                    .iter()
                    .map(|k| k.text.as_str())
                    .collect::<Vec<_>>()
                    .join(joiner),
                link: kinds.into_iter().find_map(|k| k.link),
            };
        }
    }
    let types: Vec<String> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let mut link = None;
    let words: Vec<String> = types
        .iter()
        .map(|t| match t.as_str() {
            "array" => {
                let item = schema.get("items").map(kind_of).unwrap_or_default();
                link = item.link.clone();
                format!("array of {}", item.text)
            }
            other => match schema.get("format").and_then(Value::as_str) {
                Some(format) if other != "null" => format!("{other} ({format})"),
                _ => other.to_owned(),
            },
        })
        .collect();
    let mut text = if words.is_empty() {
        "any".to_owned()
    } else {
        words.join(" or ")
    };
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let values: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
        if !values.is_empty() {
            text = format!("one of {}", values.join(", "));
        }
    }
    Kind { text, link }
}

fn fields_of(schema: &Value) -> Vec<Field> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(name, prop)| Field {
                    name: name.clone(),
                    location: String::new(),
                    required: required.contains(&name.as_str()),
                    kind: kind_of(prop),
                    description: text(prop, "description"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The first content of a request body or response: its media type and schema.
fn content_of(v: &Value) -> Option<(String, Option<Kind>)> {
    let (media, body) = v.get("content")?.as_object()?.iter().next()?;
    Some((media.clone(), body.get("schema").map(kind_of)))
}

fn operation(path: &str, method: &str, op: &Value) -> Operation {
    let params = op
        .get("parameters")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| Field {
                    name: text(p, "name"),
                    location: text(p, "in"),
                    required: p.get("required").and_then(Value::as_bool).unwrap_or(false),
                    kind: p.get("schema").map(kind_of).unwrap_or_default(),
                    description: text(p, "description"),
                })
                .collect()
        })
        .unwrap_or_default();
    let body = op
        .get("requestBody")
        .and_then(content_of)
        .and_then(|(_, kind)| kind);
    let responses = op
        .get("responses")
        .and_then(Value::as_object)
        .map(|rs| {
            rs.iter()
                .map(|(status, r)| {
                    let (content_type, kind) = content_of(r).unwrap_or_default();
                    ResponseView {
                        status: status.clone(),
                        description: text(r, "description"),
                        content_type,
                        kind,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let anchor: String = format!("{method}-{path}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    Operation {
        anchor,
        method: method.to_uppercase(),
        path: path.to_owned(),
        summary: text(op, "summary"),
        description: text(op, "description"),
        params,
        body,
        responses,
    }
}

impl Reference {
    /// The page for an OpenAPI 3 document (as JSON).
    pub fn from_document(doc: &Value) -> Self {
        let info = doc.get("info").cloned().unwrap_or_default();
        let base = doc
            .get("servers")
            .and_then(|s| s.get(0))
            .map(|s| text(s, "url"))
            .unwrap_or_default();
        let mut groups: Vec<Group> = Vec::new();
        if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
            for (path, item) in paths {
                let name = path
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                for method in METHODS {
                    let Some(op) = item.get(method) else { continue };
                    let op = operation(path, method, op);
                    match groups.iter_mut().find(|g| g.name == name) {
                        Some(group) => group.operations.push(op),
                        None => groups.push(Group {
                            name: name.clone(),
                            operations: vec![op],
                        }),
                    }
                }
            }
        }
        let schemas = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .map(|schemas| {
                schemas
                    .iter()
                    .map(|(name, schema)| SchemaView {
                        name: name.clone(),
                        description: text(schema, "description"),
                        kind: kind_of(schema),
                        fields: fields_of(schema),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            title: text(&info, "title"),
            description: text(&info, "description"),
            version: text(&info, "version"),
            base,
            groups,
            schemas,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_read_as_words_and_link_to_their_schema() {
        assert_eq!(kind_of(&json!({"type": "string"})).text, "string");
        assert_eq!(
            kind_of(&json!({"type": ["integer", "null"], "format": "int64"})).text,
            "integer (int64) or null"
        );
        let list =
            kind_of(&json!({"type": "array", "items": {"$ref": "#/components/schemas/LeadBody"}}));
        assert_eq!(list.text, "array of LeadBody");
        assert_eq!(list.link.as_deref(), Some("schema-LeadBody"));
        assert_eq!(
            kind_of(&json!({"type": "string", "enum": ["last", "first"]})).text,
            "one of last, first"
        );
        assert_eq!(
            kind_of(&json!({"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/X"}]})).text,
            "null or X"
        );
    }

    #[test]
    fn every_operation_of_the_served_document_is_on_the_page() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let page = Reference::from_document(&doc);
        let count: usize = page.groups.iter().map(|g| g.operations.len()).sum();
        let expected: usize = doc["paths"]
            .as_object()
            .map(|p| {
                p.values()
                    .map(|item| METHODS.iter().filter(|m| item.get(**m).is_some()).count())
                    .sum()
            })
            .unwrap_or_default();
        assert!(expected > 40, "{expected}");
        assert_eq!(count, expected);
        let html = page.render().unwrap_or_default();
        assert!(html.contains("/leads/export.csv"));
        assert!(html.contains(r#"id="schema-LeadBody""#));
        assert!(
            !html.contains("src=\"http")
                && !html.contains("href=\"http")
                && !html.contains("<script"),
            "nothing is fetched from elsewhere"
        );
    }
}
