//! The API's error: a status and an [`ErrorBody`], and how a
//! [`ServiceError`] becomes one. A fault of the server's own (5xx) keeps its
//! cause chain beside the body, never in it: the response carries it as an
//! extension ([`Fault`]) that the `track` layer logs, once, for every
//! route. Nothing else in the server logs a request's failure.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use breakglass_core::api::{ErrorBody, ErrorDetail};

use crate::service::ServiceError;

/// An API error: a status and the JSON body of [`ErrorBody`].
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    /// For a fault of the server's: the error and its causes, for the log.
    fault: Option<String>,
}

/// The cause chain of a 5xx answer, carried to the logging layer on the
/// response (extensions are never sent).
#[derive(Clone, Debug)]
pub(super) struct Fault(pub(super) String);

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody { error: ErrorDetail { code: code.into(), message: message.into(), reasons: Vec::new() } },
            fault: None,
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
            ServiceError::InvalidPolicy { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy"),
            ServiceError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ServiceError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ServiceError::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let reasons = match &e {
            ServiceError::PolicyDenied { reasons, .. } => reasons.clone(),
            ServiceError::InvalidPolicy { problems, .. } => problems.clone(),
            _ => Vec::new(),
        };
        let mut err = ApiError::new(status, code, e.to_string());
        err.body.error.reasons = reasons;
        err.fault = e.is_server_fault().then(|| e.chain());
        err
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(self.body)).into_response();
        if let Some(chain) = self.fault {
            res.extensions_mut().insert(Fault(chain));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

pub(super) type ApiResult<T> = Result<T, ApiError>;
