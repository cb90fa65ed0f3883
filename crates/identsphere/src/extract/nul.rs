//! NUL characters are refused at the edge, for every body and query.
//!
//! PostgreSQL text cannot hold U+0000: a NUL that reached a query failed there
//! as a 500. No field of the API has a use for one, so the JSON and query
//! extractors refuse it before any handler runs, naming the field as
//! `validation_failed` does for a value of the wrong type.
use crate::error::ApiError;
use identsphere_core::{CoreError, FieldError};
use serde_json::Value;

const MESSAGE: &str = "must not contain NUL characters";

fn refusal(field: String) -> ApiError {
    ApiError::Core(CoreError::Validation(vec![FieldError::new(field, MESSAGE)]))
}

/// Refuses a JSON body holding a NUL in any string or key.
///
/// Well-formed JSON can only carry one as the escape `\u0000` (a raw control
/// byte inside a string is a syntax error), so bodies without that text are
/// let through unread; the rare one with it is parsed to find the field. A
/// body that is not well-formed JSON is left to the typed parse, which
/// answers 400.
pub(super) fn refuse_in_json(bytes: &[u8]) -> Result<(), ApiError> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return Ok(());
    };
    match find(&value, String::new()) {
        Some(path) if path.is_empty() => Err(refusal("body".into())),
        Some(path) => Err(refusal(path)),
        None => Ok(()),
    }
}

/// The path of the first string holding a NUL, in `serde_path_to_error`'s
/// notation (`a.b[0]`); a key holding one names its parent object.
fn find(value: &Value, path: String) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find(v, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(path.clone());
            }
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            find(v, child)
        }),
        _ => None,
    }
}

/// Refuses a query string with a parameter name or value that decodes to a NUL.
pub(super) fn refuse_in_query(query: &str) -> Result<(), ApiError> {
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key.contains('\0') {
            return Err(refusal("query".into()));
        }
        if value.contains('\0') {
            return Err(refusal(key.into_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(err: ApiError) -> String {
        match err {
            ApiError::Core(CoreError::Validation(list)) => list[0].field.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_nul_is_refused_with_its_path() {
        for (body, path) in [
            (r#"{"identifier":"a\u0000b"}"#, "identifier"),
            (r#"{"a":{"b":["x","\u0000"]}}"#, "a.b[1]"),
            (r#"{"a\u0000":1}"#, "body"),
            (r#""\u0000""#, "body"),
        ] {
            assert_eq!(field(refuse_in_json(body.as_bytes()).unwrap_err()), path);
        }
    }

    #[test]
    fn json_without_nul_passes() {
        for body in [
            r#"{"a":"\\u0000"}"#,
            r#"{"a":"\u0001"}"#,
            r#"{"a":"x"}"#,
            r#"{"a":"\u0000"#,
        ] {
            assert!(refuse_in_json(body.as_bytes()).is_ok(), "{body}");
        }
    }

    #[test]
    fn query_nul_is_refused_by_name() {
        assert_eq!(
            field(refuse_in_query("limit=5&cursor=a%00b").unwrap_err()),
            "cursor"
        );
        assert_eq!(field(refuse_in_query("a%00=1").unwrap_err()), "query");
        assert!(refuse_in_query("since=2020-01-01T00:00:00Z&a=%01").is_ok());
    }
}
