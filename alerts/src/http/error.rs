//! HTTP error answers: a status and `{"error": "..."}`.

use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::Error;

/// What a request gets instead of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 401: no key, or one the server does not know.
    Unauthorized,
    /// 403: a known key without the role the route needs.
    Forbidden(String),
    /// 400: a bad parameter or body; the message says which.
    BadRequest(String),
    /// 404
    NotFound(String),
    /// 503: the store is unreachable for now; try again later.
    Unavailable,
    /// 500: details are logged, not returned.
    Internal,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> &str {
        match self {
            ApiError::Unauthorized => "a valid bearer API key is required",
            ApiError::Forbidden(m) | ApiError::BadRequest(m) | ApiError::NotFound(m) => m,
            ApiError::Unavailable => "the alert store is unavailable; try again later",
            ApiError::Internal => "internal error",
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidQuery(m) => ApiError::BadRequest(m),
            Error::UnknownId { what, id } => ApiError::NotFound(format!("no {what} {id}")),
            Error::Unsupported(what) => {
                ApiError::NotFound(format!("{what} is not supported by this store"))
            }
            e if e.is_retryable() => {
                tracing::warn!(error = %e, "request failed; store unavailable");
                ApiError::Unavailable
            }
            e => {
                tracing::error!(error = %e, "request failed");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message() }).to_string();
        let mut response =
            (self.status(), [(CONTENT_TYPE, "application/json")], body).into_response();
        if self == ApiError::Unauthorized {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"outrider\""),
            );
        }
        response
    }
}
