//! Attribution at arrival: which widget and source a visit or lead belongs to, and, for
//! untagged traffic, which channel it most likely came through.

use serde::{Deserialize, Serialize};
use url::Url;

use super::channel::ChannelCategory;
use super::source::{SourceCode, SourceStatus};
use super::widget::{WidgetStatus, WidgetVersion};

/// What attribution needs to know about one of the organization's widgets.
#[derive(Debug, Clone)]
pub struct WidgetFacts {
    pub version: WidgetVersion,
    pub name: String,
    pub status: WidgetStatus,
}

#[derive(Debug, Clone)]
pub struct SourceFacts {
    pub code: SourceCode,
    pub name: String,
    pub category: ChannelCategory,
    pub status: SourceStatus,
}

/// `v` if it names a live widget of the organization, else the embedding widget if live,
/// else Primary (which can never be archived).
pub fn resolve_widget(
    widgets: &[WidgetFacts],
    embedding: Option<WidgetVersion>,
    v: Option<&str>,
) -> WidgetVersion {
    let live = |version: WidgetVersion| {
        widgets
            .iter()
            .any(|w| w.version == version && w.status.is_live())
    };
    v.and_then(WidgetVersion::parse)
        .filter(|version| live(*version))
        .or(embedding.filter(|version| live(*version)))
        .unwrap_or(WidgetVersion::PRIMARY)
}

/// `s` if it names a source of the resolved widget — archived ones included, because the link
/// is still printed on yard signs — else the system source.
pub fn resolve_source(sources: &[SourceFacts], s: Option<&str>) -> SourceCode {
    s.and_then(SourceCode::parse)
        .filter(|code| sources.iter().any(|src| src.code == *code))
        .unwrap_or(SourceCode::SYSTEM)
}

/// A channel for traffic that reached the system source, after GA4's default channel group:
/// click ids and UTM medium first, then the referrer's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DerivedChannel {
    Direct,
    OrganicSearch,
    OrganicSocial,
    OrganicVideo,
    Referral,
    Email,
    Sms,
    PaidSearch,
    PaidSocial,
    PaidOther,
    Display,
    Affiliates,
    Unassigned,
}

impl DerivedChannel {
    pub fn id(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::OrganicSearch => "organic_search",
            Self::OrganicSocial => "organic_social",
            Self::OrganicVideo => "organic_video",
            Self::Referral => "referral",
            Self::Email => "email",
            Self::Sms => "sms",
            Self::PaidSearch => "paid_search",
            Self::PaidSocial => "paid_social",
            Self::PaidOther => "paid_other",
            Self::Display => "display",
            Self::Affiliates => "affiliates",
            Self::Unassigned => "unassigned",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        use DerivedChannel::*;
        [
            Direct,
            OrganicSearch,
            OrganicSocial,
            OrganicVideo,
            Referral,
            Email,
            Sms,
            PaidSearch,
            PaidSocial,
            PaidOther,
            Display,
            Affiliates,
            Unassigned,
        ]
        .into_iter()
        .find(|c| c.id() == id)
    }
}

/// Tracking parameters as the widget read them from the page URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Utm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_term: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gclid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbclid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msclkid: Option<String>,
}

impl Utm {
    /// Caps every value, so a hostile page cannot make us store megabytes per visit.
    pub fn bounded(mut self) -> Self {
        for field in [
            &mut self.utm_source,
            &mut self.utm_medium,
            &mut self.utm_campaign,
            &mut self.utm_term,
            &mut self.utm_content,
            &mut self.gclid,
            &mut self.fbclid,
            &mut self.msclkid,
        ] {
            if let Some(value) = field {
                let kept: String = value
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect();
                *field = (!kept.is_empty()).then_some(kept);
            }
        }
        self
    }
}

const SEARCH_ENGINES: [&str; 9] = [
    "google",
    "bing",
    "duckduckgo",
    "yahoo",
    "ecosia",
    "baidu",
    "yandex",
    "brave",
    "startpage",
];
const SOCIAL_SITES: [&str; 12] = [
    "facebook",
    "instagram",
    "t.co",
    "twitter",
    "x.com",
    "linkedin",
    "pinterest",
    "reddit",
    "tiktok",
    "nextdoor",
    "threads",
    "lnkd.in",
];
const VIDEO_SITES: [&str; 3] = ["youtube", "youtu.be", "vimeo"];

fn host_matches(host: &str, names: &[&str]) -> bool {
    names.iter().any(|name| {
        if name.contains('.') {
            host == *name || host.ends_with(&format!(".{name}"))
        } else {
            host.split('.').any(|label| label == *name)
        }
    })
}

/// The GA4-style channel of untagged (`SRC-01`) traffic.
pub fn derive_channel(
    utm: &Utm,
    referrer: Option<&str>,
    page_host: Option<&str>,
) -> DerivedChannel {
    let lower = |v: &Option<String>| {
        v.as_deref()
            .map(str::to_ascii_lowercase)
            .unwrap_or_default()
    };
    let medium = lower(&utm.utm_medium);
    let source = lower(&utm.utm_source);
    let social_source = host_matches(&source, &SOCIAL_SITES) || source == "fb" || source == "ig";
    let search_source = host_matches(&source, &SEARCH_ENGINES);
    let paid_medium = matches!(
        medium.as_str(),
        "cpc" | "ppc" | "paid" | "paidsearch" | "paid_search"
    ) || medium.starts_with("paid");

    if utm.gclid.is_some() || utm.msclkid.is_some() {
        return DerivedChannel::PaidSearch;
    }
    if paid_medium {
        return if social_source || medium.contains("social") {
            DerivedChannel::PaidSocial
        } else if search_source || medium.contains("search") || medium == "cpc" || medium == "ppc" {
            DerivedChannel::PaidSearch
        } else {
            DerivedChannel::PaidOther
        };
    }
    match medium.as_str() {
        "email" | "e-mail" | "e_mail" | "newsletter" => return DerivedChannel::Email,
        "sms" | "text" => return DerivedChannel::Sms,
        "display" | "banner" | "cpm" | "expandable" | "interstitial" => {
            return DerivedChannel::Display;
        }
        "affiliate" | "affiliates" => return DerivedChannel::Affiliates,
        "organic" => return DerivedChannel::OrganicSearch,
        "referral" | "app" | "link" => return DerivedChannel::Referral,
        "social" | "social-network" | "social-media" | "sm" | "social network" | "social media" => {
            return DerivedChannel::OrganicSocial;
        }
        "video" => return DerivedChannel::OrganicVideo,
        "" => {}
        _ => return DerivedChannel::Unassigned,
    }
    if social_source || utm.fbclid.is_some() {
        return DerivedChannel::OrganicSocial;
    }
    let referrer_host = referrer.and_then(|r| Url::parse(r).ok()).and_then(|u| {
        u.host_str()
            .map(|h| h.trim_start_matches("www.").to_ascii_lowercase())
    });
    let Some(host) = referrer_host else {
        return DerivedChannel::Direct;
    };
    if page_host.is_some_and(|p| p.trim_start_matches("www.").eq_ignore_ascii_case(&host)) {
        return DerivedChannel::Direct;
    }
    if host_matches(&host, &VIDEO_SITES) {
        DerivedChannel::OrganicVideo
    } else if host_matches(&host, &SEARCH_ENGINES) {
        DerivedChannel::OrganicSearch
    } else if host_matches(&host, &SOCIAL_SITES) {
        DerivedChannel::OrganicSocial
    } else {
        DerivedChannel::Referral
    }
}

/// `derive_channel` for an arrival on `page_url`: a referrer from the page's own host is an
/// internal navigation, so it counts as direct.
pub fn derive_channel_on_page(
    utm: &Utm,
    referrer: Option<&str>,
    page_url: Option<&str>,
) -> DerivedChannel {
    let page = page_url.and_then(|u| Url::parse(u).ok());
    derive_channel(utm, referrer, page.as_ref().and_then(Url::host_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widget(n: u32, status: WidgetStatus) -> WidgetFacts {
        WidgetFacts {
            version: WidgetVersion::new(n).unwrap_or(WidgetVersion::PRIMARY),
            name: format!("W{n}"),
            status,
        }
    }

    fn source(n: u32, status: SourceStatus) -> SourceFacts {
        SourceFacts {
            code: SourceCode::new(n).unwrap_or(SourceCode::SYSTEM),
            name: format!("S{n}"),
            category: ChannelCategory::Other,
            status,
        }
    }

    #[test]
    fn v_names_the_widget_when_it_is_live() {
        let widgets = [
            widget(1, WidgetStatus::Configured),
            widget(2, WidgetStatus::NotConfigured),
            widget(3, WidgetStatus::Archived),
        ];
        let v2 = WidgetVersion::new(2);
        let v3 = WidgetVersion::new(3);
        assert_eq!(
            resolve_widget(&widgets, Some(WidgetVersion::PRIMARY), Some("02")),
            v2.unwrap_or(WidgetVersion::PRIMARY)
        );
        // An archived or unknown v falls back to the embedding widget.
        assert_eq!(
            resolve_widget(&widgets, v2, Some("03")),
            v2.unwrap_or(WidgetVersion::PRIMARY)
        );
        assert_eq!(
            resolve_widget(&widgets, v2, Some("99")),
            v2.unwrap_or(WidgetVersion::PRIMARY)
        );
        assert_eq!(
            resolve_widget(&widgets, v2, Some("junk")),
            v2.unwrap_or(WidgetVersion::PRIMARY)
        );
        // An archived embedding widget falls back to Primary.
        assert_eq!(resolve_widget(&widgets, v3, None), WidgetVersion::PRIMARY);
    }

    #[test]
    fn s_names_the_source_even_when_archived_and_unknown_codes_go_to_the_system_source() {
        let sources = [
            source(1, SourceStatus::Active),
            source(2, SourceStatus::Archived),
        ];
        assert_eq!(
            resolve_source(&sources, Some("02")),
            SourceCode::new(2).unwrap_or(SourceCode::SYSTEM)
        );
        assert_eq!(resolve_source(&sources, Some("07")), SourceCode::SYSTEM);
        assert_eq!(
            resolve_source(&sources, Some("<script>")),
            SourceCode::SYSTEM
        );
        assert_eq!(resolve_source(&sources, None), SourceCode::SYSTEM);
    }

    fn utm(medium: &str, source: &str) -> Utm {
        Utm {
            utm_medium: Some(medium.into()),
            utm_source: Some(source.into()),
            ..Utm::default()
        }
    }

    #[test]
    fn untagged_traffic_gets_a_ga4_style_channel() {
        let none = Utm::default();
        let cases = [
            (derive_channel(&none, None, None), DerivedChannel::Direct),
            (
                derive_channel(&none, Some("https://www.google.com/"), None),
                DerivedChannel::OrganicSearch,
            ),
            (
                derive_channel(&none, Some("https://l.facebook.com/"), None),
                DerivedChannel::OrganicSocial,
            ),
            (
                derive_channel(&none, Some("https://m.youtube.com/watch"), None),
                DerivedChannel::OrganicVideo,
            ),
            (
                derive_channel(&none, Some("https://roofing-blog.example/"), None),
                DerivedChannel::Referral,
            ),
            (
                derive_channel(
                    &none,
                    Some("https://acme.example/about"),
                    Some("acme.example"),
                ),
                DerivedChannel::Direct,
            ),
            (
                derive_channel(&utm("cpc", "google"), None, None),
                DerivedChannel::PaidSearch,
            ),
            (
                derive_channel(&utm("paid", "facebook"), None, None),
                DerivedChannel::PaidSocial,
            ),
            (
                derive_channel(&utm("email", "newsletter"), None, None),
                DerivedChannel::Email,
            ),
            (
                derive_channel(&utm("sms", "twilio"), None, None),
                DerivedChannel::Sms,
            ),
            (
                derive_channel(&utm("banner", "network"), None, None),
                DerivedChannel::Display,
            ),
            (
                derive_channel(&utm("social", "nextdoor"), None, None),
                DerivedChannel::OrganicSocial,
            ),
            (
                derive_channel(&utm("carrier-pigeon", "x"), None, None),
                DerivedChannel::Unassigned,
            ),
            (
                derive_channel(
                    &Utm {
                        gclid: Some("abc".into()),
                        ..Utm::default()
                    },
                    None,
                    None,
                ),
                DerivedChannel::PaidSearch,
            ),
            (
                derive_channel(
                    &Utm {
                        fbclid: Some("abc".into()),
                        ..Utm::default()
                    },
                    None,
                    None,
                ),
                DerivedChannel::OrganicSocial,
            ),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn utm_values_are_capped_and_stripped_of_control_characters() {
        let long = Utm {
            utm_campaign: Some(format!("a\n{}", "b".repeat(500))),
            ..Utm::default()
        }
        .bounded();
        let campaign = long.utm_campaign.unwrap_or_default();
        assert_eq!(campaign.chars().count(), 200);
        assert!(!campaign.contains('\n'));
    }
}
