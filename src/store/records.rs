//! What the store hands back and takes in: plain records of already-validated values.

use crate::domain::channel::ChannelCategory;
use crate::domain::ids::OrgId;
use crate::domain::organization::{BrandColor, OrgName, SiteUrl};
use crate::domain::privacy::RetentionDays;
use crate::domain::self_report::SelfReportSetting;
use crate::domain::source::{SourceCode, SourceName, SourceStatus};
use crate::domain::tier::Tier;
use crate::domain::time_zone::OrgTimeZone;
use crate::domain::widget::{WidgetName, WidgetStatus, WidgetVersion};

#[derive(Debug, Clone)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub website_url: String,
    pub brand_color: String,
    pub tier: Tier,
    pub public_key: String,
    /// Where the organization's days begin: reports, date filters and times on the dashboard.
    pub time_zone: OrgTimeZone,
    /// Days raw request data is kept (`None`: kept).
    pub raw_data_retention_days: Option<u32>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct Widget {
    pub version: WidgetVersion,
    pub name: String,
    pub site_url: String,
    pub status: WidgetStatus,
    /// "How did you hear about us?" in step 3: asked or not, with which choices.
    pub self_report: SelfReportSetting,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct Source {
    pub widget_version: WidgetVersion,
    /// The widget's current site URL, which every tracking URL of the source is built on.
    pub site_url: String,
    pub code: SourceCode,
    pub name: String,
    pub channel_category: ChannelCategory,
    pub status: SourceStatus,
    pub is_system: bool,
    pub qr_generated: bool,
    pub lead_count: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct ApiKeyInfo {
    pub id: String,
    pub hint: String,
    pub label: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A dashboard user to create with the organization. The password arrives already hashed.
#[derive(Debug, Clone)]
pub struct NewOwner {
    pub email: String,
    pub password_hash: String,
}

#[derive(Debug, Clone)]
pub struct NewOrganization {
    pub name: OrgName,
    pub website_url: SiteUrl,
    pub brand_color: BrandColor,
    pub tier: Tier,
    pub owner: Option<NewOwner>,
}

/// Everything created with an organization; `api_key` is the only time the secret is seen.
#[derive(Debug, Clone)]
pub struct CreatedOrganization {
    pub organization: Organization,
    pub primary_widget: Widget,
    pub api_key: String,
}

#[derive(Debug, Clone, Default)]
pub struct OrganizationPatch {
    pub name: Option<OrgName>,
    pub website_url: Option<SiteUrl>,
    pub brand_color: Option<BrandColor>,
    pub time_zone: Option<OrgTimeZone>,
    /// `Some(None)` clears the retention (raw data kept).
    pub raw_data_retention: Option<Option<RetentionDays>>,
}

#[derive(Debug, Clone, Default)]
pub struct WidgetPatch {
    pub name: Option<WidgetName>,
    pub site_url: Option<SiteUrl>,
    pub status: Option<WidgetStatus>,
    pub self_report: Option<SelfReportSetting>,
}

#[derive(Debug, Clone)]
pub struct NewSource {
    pub name: SourceName,
    pub channel_category: ChannelCategory,
    pub generate_qr: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SourcePatch {
    pub name: Option<SourceName>,
    pub channel_category: Option<ChannelCategory>,
}

/// Which of a widget's sources to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceFilter {
    #[default]
    Active,
    Archived,
    All,
}
