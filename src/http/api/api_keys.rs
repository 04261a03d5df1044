//! Secret API keys: several per organization, each shown once and revocable.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::parse_display_name;
use crate::http::AppState;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, OrgAuth};
use crate::store::ApiKeyInfo;
use crate::store::rfc3339;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api-keys", get(list_api_keys).post(create_api_key))
        .route("/api-keys/{id}/revoke", post(revoke_api_key))
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyBody {
    id: String,
    /// The first characters, to recognise the key.
    hint: String,
    label: String,
    created_at: String,
    revoked_at: Option<String>,
}

impl From<ApiKeyInfo> for ApiKeyBody {
    fn from(k: ApiKeyInfo) -> Self {
        Self {
            id: k.id,
            hint: k.hint,
            label: k.label,
            created_at: rfc3339(k.created_at),
            revoked_at: k.revoked_at.map(rfc3339),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    label: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApiKeyBody {
    #[serde(flatten)]
    key: ApiKeyBody,
    /// The secret. Shown this once.
    api_key: String,
}

/// List the organization's API keys (never their secrets)
#[utoipa::path(get, path = "/api-keys", responses((status = 200, body = [ApiKeyBody])))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
) -> ApiResult<Json<Vec<ApiKeyBody>>> {
    let keys = state.store.api_keys(&org).await?;
    Ok(Json(keys.into_iter().map(Into::into).collect()))
}

/// Mint another API key
#[utoipa::path(post, path = "/api-keys", request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKeyBody), (status = 422, body = ErrorBody)))]
pub async fn create_api_key(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKeyBody>)> {
    let label = parse_display_name("label", &body.label, 50)?;
    let (info, secret) = state.store.create_api_key(&org, &label).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKeyBody {
            key: info.into(),
            api_key: secret,
        }),
    ))
}

/// Revoke an API key; requests signed with it fail from now on
#[utoipa::path(post, path = "/api-keys/{id}/revoke",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.revoke_api_key(&org, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
