//! The pages' static files, compiled into the binary: the stylesheet and the passkeys script.
//! Cacheable: they carry nothing personal.

use rocket::http::{ContentType, Header};
use rocket::response::{self, Responder};
use rocket::{Request, Response};

const STYLESHEET: &str = include_str!("../../../static/style.css");
const SCRIPT: &str = include_str!("../../../static/passkeys.js");

/// A static file and its type.
pub struct Asset(ContentType, &'static str);

impl<'r> Responder<'r, 'static> for Asset {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        Response::build()
            .header(self.0)
            .header(Header::new("Cache-Control", "public, max-age=3600"))
            .sized_body(self.1.len(), std::io::Cursor::new(self.1))
            .ok()
    }
}

#[rocket::get("/static/style.css")]
pub fn stylesheet() -> Asset {
    Asset(ContentType::CSS, STYLESHEET)
}

#[rocket::get("/static/passkeys.js")]
pub fn script() -> Asset {
    Asset(ContentType::JavaScript, SCRIPT)
}
