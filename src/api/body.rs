//! Request bodies: `application/x-www-form-urlencoded` or `application/json` with the same field
//! names, read up to `max_body_bytes` into a typed value. Anything else is a clear 4xx, never a 500.
//!
//! Both encodings are first read into string pairs (so that duplicates, non-string JSON values
//! and bad UTF-8 get their own errors), then the fields the type's schema requires are checked in
//! order (an empty string or `null` counts as missing), then the pairs become the type.

use rocket::data::{self, Data, FromData, ToByteUnit};
use rocket::http::Status;
use rocket::request::Request;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use super::ApiSettings;
use super::error::{ApiError, ErrorCode, remember};

/// A request body of type `T`, from a form or JSON by the request's content type.
#[derive(Debug)]
pub struct Body<T>(pub T);

/// The string fields of a request body, in order.
#[derive(Debug, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The field's value; `None` when absent (an empty string counts as absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, ApiError> {
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(earlier, _)| earlier == k) {
                return Err(ApiError::new(
                    Status::BadRequest,
                    ErrorCode::DuplicateField,
                    format!("The field '{}' appears more than once.", printable(k)),
                ));
            }
        }
        Ok(Self(pairs))
    }

    /// The typed body: every field `T`'s schema requires must be present, checked in order.
    pub fn into_typed<T: DeserializeOwned + utoipa::ToSchema>(self) -> Result<T, ApiError> {
        for name in required_fields::<T>() {
            if self.get(&name).is_none() {
                return Err(ApiError::missing_field(&name));
            }
        }
        self.into_value()
    }

    /// `T` from the fields present; absent and empty ones take `T`'s defaults (the pages' forms).
    pub fn into_value<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        let object: serde_json::Map<String, serde_json::Value> =
            self.0.into_iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k, serde_json::Value::String(v))).collect();
        serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|_| invalid_body("The body does not have the fields this route needs."))
    }
}

/// The required properties of `T`'s schema, in declaration order.
fn required_fields<T: utoipa::ToSchema>() -> Vec<String> {
    match T::schema() {
        RefOr::T(Schema::Object(o)) => o.required,
        _ => Vec::new(),
    }
}

/// Field names echoed in messages are cut short and stripped of control characters.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(40).collect()
}

fn invalid_body(message: &str) -> ApiError {
    ApiError::new(Status::BadRequest, ErrorCode::InvalidBody, message)
}

pub fn parse_form(body: &str) -> Result<Fields, ApiError> {
    // serde_urlencoded decodes invalid UTF-8 lossily; refuse it instead of storing U+FFFD. The
    // separators are ASCII, so the whole body decodes to UTF-8 exactly when every part does.
    if percent_encoding::percent_decode_str(body).decode_utf8().is_err() {
        return Err(invalid_body("The form body does not decode to valid UTF-8."));
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(body).map_err(|_| invalid_body("The form body could not be decoded."))?;
    Fields::from_pairs(pairs)
}

/// A JSON object's members in order, duplicates kept so that they can be refused.
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    out.push(entry);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

pub fn parse_json(body: &str) -> Result<Fields, ApiError> {
    let Members(members) = serde_json::from_str(body)
        .map_err(|_| invalid_body("The body must be a JSON object whose fields are strings."))?;
    let mut pairs = Vec::with_capacity(members.len());
    for (k, v) in members {
        match v {
            serde_json::Value::String(s) => pairs.push((k, s)),
            // null means "not given", as a missing field.
            serde_json::Value::Null => pairs.push((k, String::new())),
            _ => {
                return Err(ApiError::new(
                    Status::BadRequest,
                    ErrorCode::InvalidField,
                    format!("The field '{}' must be a string.", printable(&k)),
                ));
            }
        }
    }
    Fields::from_pairs(pairs)
}

/// Parses a complete body according to its content type.
pub fn parse(content_type: Option<&rocket::http::ContentType>, bytes: &[u8]) -> Result<Fields, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Fields::default());
    }
    let text = std::str::from_utf8(bytes).map_err(|_| invalid_body("The body is not valid UTF-8."))?;
    match content_type {
        Some(ct) if ct.is_form() => parse_form(text),
        Some(ct) if ct.is_json() => parse_json(text),
        _ => Err(ApiError::for_status(Status::UnsupportedMediaType)),
    }
}

/// Reads the whole body, at most `max_body_bytes` (413 beyond).
pub(crate) async fn read_bytes(req: &Request<'_>, data: Data<'_>) -> Result<Vec<u8>, ApiError> {
    let limit = req.rocket().state::<ApiSettings>().map_or(4096, |s| s.max_body_bytes);
    match data.open(limit.bytes()).into_bytes().await {
        Ok(capped) if capped.is_complete() => Ok(capped.into_inner()),
        Ok(_) => Err(ApiError::for_status(Status::PayloadTooLarge)),
        Err(_) => Err(invalid_body("The request body could not be read.")),
    }
}

/// Reads the body (at most `max_body_bytes`) into fields.
pub(crate) async fn read_fields(req: &Request<'_>, data: Data<'_>) -> Result<Fields, ApiError> {
    parse(req.content_type(), &read_bytes(req, data).await?)
}

#[rocket::async_trait]
impl<'r, T: DeserializeOwned + utoipa::ToSchema + Send> FromData<'r> for Body<T> {
    type Error = ApiError;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        match read_fields(req, data).await.and_then(Fields::into_typed::<T>) {
            Ok(body) => data::Outcome::Success(Body(body)),
            Err(e) => data::Outcome::Error(remember(req, e)),
        }
    }
}

/// The untyped fields, for routes that map missing fields to their own status (classic routes).
#[rocket::async_trait]
impl<'r> FromData<'r> for Fields {
    type Error = ApiError;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        match read_fields(req, data).await {
            Ok(fields) => data::Outcome::Success(fields),
            Err(e) => data::Outcome::Error(remember(req, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decodes_plus_and_percent() {
        let f = parse_form("email=a%40b.c&password=two+words%21").unwrap();
        assert_eq!(f.get("email"), Some("a@b.c"));
        assert_eq!(f.get("password"), Some("two words!"));
    }

    #[test]
    fn form_rejects_bad_utf8_and_duplicates() {
        assert_eq!(parse_form("email=%FF").unwrap_err().code, ErrorCode::InvalidBody);
        assert_eq!(parse_form("email=a&email=b").unwrap_err().code, ErrorCode::DuplicateField);
    }

    #[test]
    fn json_needs_an_object_of_strings() {
        let f = parse_json(r#"{"email":"a@b.c","extra":null}"#).unwrap();
        assert_eq!(f.get("email"), Some("a@b.c"));
        assert_eq!(f.get("extra"), None);
        assert_eq!(parse_json("[1,2]").unwrap_err().code, ErrorCode::InvalidBody);
        assert_eq!(parse_json(r#"{"email":5}"#).unwrap_err().code, ErrorCode::InvalidField);
        assert_eq!(parse_json(r#"{"email":"a","email":"b"}"#).unwrap_err().code, ErrorCode::DuplicateField);
        assert_eq!(parse_json("{").unwrap_err().code, ErrorCode::InvalidBody);
    }

    #[test]
    fn empty_body_has_no_fields() {
        let f = parse(None, b"").unwrap();
        let err = f.into_typed::<crate::api::types::Credentials>().unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (ErrorCode::MissingField, "The field 'email' is required."));
        assert_eq!(parse(None, b"email=x").unwrap_err().status, Status::UnsupportedMediaType);
    }

    #[test]
    fn typed_bodies_check_required_fields_in_order() {
        use crate::api::types::{Credentials, UpdatePassword};
        let missing = |body: &str| parse_form(body).unwrap().into_typed::<Credentials>().unwrap_err().message;
        assert_eq!(missing("password=x"), "The field 'email' is required.");
        assert_eq!(missing("email=a%40b.c&password="), "The field 'password' is required.");
        let json = parse_json(r#"{"email":"a@b.c","password":null}"#).unwrap();
        assert_eq!(json.into_typed::<Credentials>().unwrap_err().code, ErrorCode::MissingField);
        let c = parse_form("email=a%40b.c&password=p+w&extra=1").unwrap().into_typed::<Credentials>().unwrap();
        assert_eq!((c.email.as_str(), c.password.as_str()), ("a@b.c", "p w"));
        let u = parse_json(r#"{"reset_token":"t","new_password":"n"}"#).unwrap().into_typed::<UpdatePassword>();
        assert_eq!(u.unwrap().reset_token, "t");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;
        use rocket::http::ContentType;

        fn encode(s: &str) -> String {
            s.bytes().map(|b| format!("%{b:02X}")).collect()
        }

        proptest! {
            #[test]
            fn any_bytes_give_fields_or_a_4xx(body in proptest::collection::vec(any::<u8>(), 0..600), ct in 0usize..4) {
                let ct = [None, Some(ContentType::Form), Some(ContentType::JSON), Some(ContentType::Plain)][ct].clone();
                if let Err(e) = parse(ct.as_ref(), &body) {
                    prop_assert!(e.status.code >= 400 && e.status.code < 500);
                }
            }

            #[test]
            fn form_round_trips(email in "\\PC{1,50}", password in "\\PC{1,50}") {
                let body = format!("email={}&password={}", encode(&email), encode(&password));
                let f = parse(Some(&ContentType::Form), body.as_bytes()).unwrap();
                prop_assert_eq!(f.get("email"), Some(email.as_str()));
                prop_assert_eq!(f.get("password"), Some(password.as_str()));
            }

            #[test]
            fn json_round_trips(email in "\\PC{1,50}", password in "\\PC{1,50}") {
                let body = serde_json::json!({"email": email, "password": password}).to_string();
                let f = parse(Some(&ContentType::JSON), body.as_bytes()).unwrap();
                prop_assert_eq!(f.get("email"), Some(email.as_str()));
                prop_assert_eq!(f.get("password"), Some(password.as_str()));
            }
        }
    }
}
