//! Organizations: created by the operator, read and edited by their own API keys.

use crate::domain::privacy::RetentionDays;
use crate::domain::time_zone::OrgTimeZone;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::widgets::WidgetBody;
use crate::domain::ids::OrgId;
use crate::domain::organization::{BrandColor, OrgName, SiteUrl};
use crate::domain::tier::Tier;
use crate::domain::user::{Email, hash_password};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, Operator, OrgAuth};
use crate::store::rfc3339;
use crate::store::{NewOrganization, NewOwner, Organization, OrganizationPatch};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/organizations", post(create_organization))
        .route("/organizations/{id}", patch(change_organization))
        .route(
            "/organization",
            get(get_organization).patch(update_organization),
        )
}

#[derive(Serialize, ToSchema)]
pub struct OrganizationBody {
    id: String,
    name: String,
    website_url: String,
    brand_color: String,
    tier: Tier,
    /// The embed snippet's key; not a secret.
    public_key: String,
    /// IANA time zone: where the organization's days begin in reports and date filters.
    time_zone: String,
    /// Days raw request data (raw arrival parameters, visitor ids, visit pages and referrers)
    /// is kept; `null` keeps it. Counts, attribution and touches are kept regardless.
    raw_data_retention_days: Option<u32>,
    created_at: String,
    updated_at: String,
}

impl From<Organization> for OrganizationBody {
    fn from(o: Organization) -> Self {
        Self {
            id: o.id.to_string(),
            name: o.name,
            website_url: o.website_url,
            brand_color: o.brand_color,
            tier: o.tier,
            public_key: o.public_key,
            time_zone: o.time_zone.name().to_owned(),
            raw_data_retention_days: o.raw_data_retention_days,
            created_at: rfc3339(o.created_at),
            updated_at: rfc3339(o.updated_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    name: String,
    tier: String,
    website_url: String,
    brand_color: String,
    owner_email: Option<String>,
    owner_password: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedOrganizationBody {
    #[serde(flatten)]
    organization: OrganizationBody,
    /// The organization's first secret key. Shown this once; store it now.
    api_key: String,
    primary_widget: WidgetBody,
}

/// Create an organization (operator only)
#[utoipa::path(post, path = "/organizations", request_body = CreateOrganization,
    responses(
        (status = 201, body = CreatedOrganizationBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn create_organization(
    State(state): State<AppState>,
    _operator: Operator,
    ApiJson(body): ApiJson<CreateOrganization>,
) -> ApiResult<(StatusCode, Json<CreatedOrganizationBody>)> {
    let owner = match (body.owner_email, body.owner_password) {
        (None, None) => None,
        (Some(email), Some(password)) => {
            let email = Email::parse("owner_email", &email)?;
            let password_hash =
                tokio::task::spawn_blocking(move || hash_password("owner_password", &password))
                    .await
                    .map_err(ApiError::internal)??;
            Some(NewOwner {
                email: email.as_str().to_owned(),
                password_hash,
            })
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "owner_email and owner_password go together",
            ));
        }
    };
    let new = NewOrganization {
        name: OrgName::parse(&body.name)?,
        website_url: SiteUrl::parse("website_url", &body.website_url)?,
        brand_color: BrandColor::parse(&body.brand_color)?,
        tier: Tier::parse(&body.tier)?,
        owner,
    };
    let created = state.store.create_organization(new).await?;
    let primary = WidgetBody::from(created.primary_widget);
    Ok((
        StatusCode::CREATED,
        Json(CreatedOrganizationBody {
            organization: created.organization.into(),
            api_key: created.api_key,
            primary_widget: primary,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeOrganization {
    /// `starter`, `premium` or `ultimate`.
    tier: String,
}

/// Change an organization's tier (operator). A tier allowing fewer live widgets than the
/// organization has is refused with the widgets to archive first.
#[utoipa::path(patch, path = "/organizations/{id}", request_body = ChangeOrganization,
    params(("id" = String, Path)),
    responses(
        (status = 200, body = OrganizationBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn change_organization(
    State(state): State<AppState>,
    _operator: Operator,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChangeOrganization>,
) -> ApiResult<Json<OrganizationBody>> {
    let org = OrgId::parse(&id).ok_or_else(|| ApiError::not_found("organization"))?;
    let tier = Tier::parse(&body.tier)?;
    let changed = state
        .store
        .change_tier(&org, tier, &state.config.tiers)
        .await?;
    Ok(Json(changed.into()))
}

/// The caller's organization
#[utoipa::path(get, path = "/organization",
    responses((status = 200, body = OrganizationBody), (status = 401, body = ErrorBody)))]
pub async fn get_organization(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
) -> ApiResult<Json<OrganizationBody>> {
    Ok(Json(state.store.organization(&org).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganization {
    name: Option<String>,
    website_url: Option<String>,
    /// `#RRGGBB`, dark enough to scan on white (contrast at least 3:1).
    brand_color: Option<String>,
    /// IANA name, like `America/Denver`; `UTC` by default.
    time_zone: Option<String>,
    /// 30 to 3650 days, at least the attribution lookback; `null` keeps raw data.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    raw_data_retention_days: Option<Option<i64>>,
}

/// A field that may be sent as `null` to clear it: absent is `None`, `null` is `Some(None)`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// Edit the organization's name, website, brand colour, time zone or raw-data retention
#[utoipa::path(patch, path = "/organization", request_body = UpdateOrganization,
    responses((status = 200, body = OrganizationBody), (status = 422, body = ErrorBody)))]
pub async fn update_organization(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiJson(body): ApiJson<UpdateOrganization>,
) -> ApiResult<Json<OrganizationBody>> {
    let patch = OrganizationPatch {
        name: body.name.as_deref().map(OrgName::parse).transpose()?,
        website_url: body
            .website_url
            .as_deref()
            .map(|u| SiteUrl::parse("website_url", u))
            .transpose()?,
        brand_color: body
            .brand_color
            .as_deref()
            .map(BrandColor::parse)
            .transpose()?,
        time_zone: body
            .time_zone
            .as_deref()
            .map(OrgTimeZone::parse)
            .transpose()?,
        raw_data_retention: body
            .raw_data_retention_days
            .map(|days| days.map(RetentionDays::parse).transpose())
            .transpose()?,
    };
    Ok(Json(
        state.store.update_organization(&org, patch).await?.into(),
    ))
}
