//! Why a service call failed. Each variant is one HTTP status (the mapping
//! is in `http`); a failure of storage or of something the server needs
//! keeps its cause, which the HTTP layer logs once, with the whole chain.
//! Nothing here logs.

use breakglass_core::grant::GrantError;
use breakglass_store::StoreError;
use breakglass_store::ledger::AppendError;

/// The cause kept under an internal or unavailable error.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Policy decided against the caller; `reasons` say which rules.
    #[error("{message}")]
    PolicyDenied { message: String, reasons: Vec<String> },
    /// A policy or principals file that does not load: the old ones stay in
    /// force. Not a decision against anyone.
    #[error("{message}")]
    InvalidPolicy { message: String, problems: Vec<String> },
    #[error("{0}")]
    Unprocessable(String),
    /// Something the server needs (its database, the audit log, a CI
    /// issuer's keys) cannot be used now; nothing was changed.
    #[error("{message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// A fault of the server's own (an unreadable stored object, no
    /// randomness); nothing was changed.
    #[error("{message}")]
    Internal {
        message: String,
        #[source]
        source: Cause,
    },
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl ServiceError {
    /// The one constructor of internal errors: `what` failed because of `cause`.
    pub fn internal(what: &str, cause: impl Into<Cause>) -> ServiceError {
        ServiceError::Internal { message: format!("{what}; nothing was changed"), source: cause.into() }
    }

    /// Unavailable, with nothing more to say about the cause.
    pub fn unavailable(message: impl Into<String>) -> ServiceError {
        ServiceError::Unavailable { message: message.into(), source: None }
    }

    /// The message and every cause under it, `: `-separated, for logs.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }

    /// Whether this is a fault of the server (5xx) rather than of the request.
    pub fn is_server_fault(&self) -> bool {
        matches!(self, ServiceError::Unavailable { .. } | ServiceError::Internal { .. })
    }
}

/// [`ServiceError::internal`], for `map_err`.
pub fn internal(what: &str, cause: impl Into<Cause>) -> ServiceError {
    ServiceError::internal(what, cause)
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> ServiceError {
        ServiceError::Unavailable {
            message: "the database failed; nothing was changed".into(),
            source: Some(Box::new(e)),
        }
    }
}

impl From<AppendError> for ServiceError {
    fn from(e: AppendError) -> ServiceError {
        match e {
            AppendError::Conflict { kind, id } => ServiceError::Conflict(format!("{kind} {id} changed concurrently")),
            AppendError::Invalid(e) => ServiceError::BadRequest(e.to_string()),
            other => ServiceError::Unavailable {
                message: format!("the audit log could not record this, so nothing was done: {other}"),
                source: Some(Box::new(other)),
            },
        }
    }
}

impl From<GrantError> for ServiceError {
    fn from(e: GrantError) -> ServiceError {
        match e {
            GrantError::MissingReason
            | GrantError::NothingRequested
            | GrantError::BadDuration { .. }
            | GrantError::OverMaximum { .. }
            | GrantError::ExtensionOverMaximum { .. }
            | GrantError::BadText(_)
            | GrantError::Duplicate { .. }
            | GrantError::BadIncident { .. } => ServiceError::BadRequest(e.to_string()),
            GrantError::SelfApproval { .. } => ServiceError::Forbidden(e.to_string()),
            GrantError::WrongState { .. }
            | GrantError::DuplicateApproval { .. }
            | GrantError::RequestLapsed { .. }
            | GrantError::AlreadyExpired { .. }
            | GrantError::EndingEarly { .. } => ServiceError::Conflict(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_faults_keep_their_cause_and_requests_faults_do_not_have_one() {
        let e = ServiceError::from(StoreError::Corrupt("disk I/O error".into()));
        assert!(e.is_server_fault());
        assert_eq!(e.to_string(), "the database failed; nothing was changed");
        assert!(e.chain().ends_with("disk I/O error"), "{}", e.chain());
        let e = internal("a stored grant is unreadable", "expected value at line 1");
        assert_eq!(e.chain(), "a stored grant is unreadable; nothing was changed: expected value at line 1");
        let e = ServiceError::BadRequest("no".into());
        assert!(!e.is_server_fault());
        assert_eq!(e.chain(), "no");
    }
}
