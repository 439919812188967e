//! The API's error: a status and an [`ErrorBody`], and how a
//! [`ServiceError`] becomes one.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use breakglass_core::api::{ErrorBody, ErrorDetail};

use crate::service::ServiceError;

/// An API error: a status and the JSON body of [`ErrorBody`].
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    /// Open to the handlers, which add a refusal's reasons.
    pub(super) body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody { error: ErrorDetail { code: code.into(), message: message.into(), reasons: Vec::new() } },
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        let (status, code) = match &e {
            ServiceError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ServiceError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ServiceError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ServiceError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ServiceError::PolicyDenied { .. } => (StatusCode::FORBIDDEN, "policy_denied"),
            ServiceError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ServiceError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ServiceError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let reasons = match &e {
            ServiceError::PolicyDenied { reasons, .. } => reasons.clone(),
            _ => Vec::new(),
        };
        let mut err = ApiError::new(status, code, e.to_string());
        err.body.error.reasons = reasons;
        err
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

pub(super) type ApiResult<T> = Result<T, ApiError>;
