//! The OpenAPI document: its title, the bearer scheme, the schemas, and
//! each feature's paths (every feature file's `Doc`) merged into it.

use breakglass_core::api::*;
use breakglass_core::grant::{Approval, Extension, GrantState};
use breakglass_core::time::Timestamp;
use utoipa::OpenApi;

use super::{ci, drift, drills, events, forges, grants, incidents, log, notifications, ops, reviews, sessions, stats};

#[derive(OpenApi)]
#[openapi(
    info(title = "breakglass", description = "Emergency access for Git and CI/CD: time-bound, policy-approved grants, recorded in a tamper-evident log."),
    components(schemas(
        StatsView, DurationStats, CountBy, DriftFinding, DriftReport, DriftCheck, DrillReport, DrillStep, DrillRecord, DrillList, ConsistencyView, breakglass_core::report::Report, breakglass_core::report::ProvenEntry, TimelineEntry, ReviewView, ReviewList, ReviewDecision, IncidentResponder, IncidentView, IncidentList, IncidentReceipt, NotificationView, NotificationList,
        SessionView, SessionList, SessionsEnded, ErrorBody, ErrorDetail, ChallengeRequest, ChallengeResponse, LoginRequest, LoginResponse, WhoAmI,
        GrantRequest, ReasonRequest, ApproveRequest, ExtendRequest, GrantView, ForgeBypassView, ForgeRepoStatus, ForgeHolder, ForgeStatusList, ForgeInstall, GrantList, GrantStatus,
        CheckResponse, TokenResponse, CreateApiToken, ApiTokenView, CreatedApiToken, ApiTokenList,
        PolicyReloaded, CheckpointView, EntryView, GrantState, Approval, Extension, Timestamp, EventRequest,
        EventRecorded, RepoRegistration, RepoList, RefRecord, RefList, CiStatus, CiGrant, GateDecision
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The OpenAPI document, as served at `/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for part in [
        ops::Doc::openapi(),
        sessions::Doc::openapi(),
        grants::Doc::openapi(),
        events::Doc::openapi(),
        ci::Doc::openapi(),
        incidents::Doc::openapi(),
        notifications::Doc::openapi(),
        reviews::Doc::openapi(),
        stats::Doc::openapi(),
        drift::Doc::openapi(),
        drills::Doc::openapi(),
        forges::Doc::openapi(),
        log::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    doc
}
