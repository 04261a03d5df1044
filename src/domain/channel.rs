//! The fixed list of marketing channel categories a source can belong to.

use serde::{Deserialize, Serialize};

use super::DomainError;

/// A source's channel. `Website` belongs to the system source alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelCategory {
    Website,
    PaidSearch,
    PaidSocial,
    OrganicSocial,
    Email,
    Sms,
    Display,
    Video,
    Referral,
    DirectMail,
    PrintOutdoor,
    Events,
    Partner,
    Other,
}

impl ChannelCategory {
    pub const ALL: [ChannelCategory; 14] = [
        Self::Website,
        Self::PaidSearch,
        Self::PaidSocial,
        Self::OrganicSocial,
        Self::Email,
        Self::Sms,
        Self::Display,
        Self::Video,
        Self::Referral,
        Self::DirectMail,
        Self::PrintOutdoor,
        Self::Events,
        Self::Partner,
        Self::Other,
    ];

    /// The stable id used in the API, payloads and the database.
    pub fn id(self) -> &'static str {
        match self {
            Self::Website => "website",
            Self::PaidSearch => "paid_search",
            Self::PaidSocial => "paid_social",
            Self::OrganicSocial => "organic_social",
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Display => "display",
            Self::Video => "video",
            Self::Referral => "referral",
            Self::DirectMail => "direct_mail",
            Self::PrintOutdoor => "print_outdoor",
            Self::Events => "events",
            Self::Partner => "partner",
            Self::Other => "other",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Self::Website => "Website",
            Self::PaidSearch => "Paid Search",
            Self::PaidSocial => "Paid Social",
            Self::OrganicSocial => "Organic Social",
            Self::Email => "Email",
            Self::Sms => "SMS",
            Self::Display => "Display Ads",
            Self::Video => "Video",
            Self::Referral => "Referral",
            Self::DirectMail => "Direct Mail",
            Self::PrintOutdoor => "Print & Outdoor",
            Self::Events => "Events & Trade Shows",
            Self::Partner => "Partners",
            Self::Other => "Other",
        }
    }

    /// Any known category, including `website` (for values read back from the store).
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.id() == id)
    }

    /// A category a subscriber may choose for a custom source: known, and not the reserved
    /// `website`, which would make a custom source indistinguishable from untagged traffic.
    pub fn parse_custom(id: &str) -> Result<Self, DomainError> {
        match Self::from_id(id) {
            Some(Self::Website) => Err(DomainError::new(
                "channel_category",
                "channel_category \"website\" is reserved for the system source",
            )),
            Some(category) => Ok(category),
            None => Err(DomainError::new(
                "channel_category",
                format!(
                    "unknown channel_category {id:?}; expected one of: {}",
                    Self::custom_ids().collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }

    pub fn custom_ids() -> impl Iterator<Item = &'static str> {
        Self::ALL
            .into_iter()
            .filter(|c| *c != Self::Website)
            .map(Self::id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_id_round_trips() {
        for c in ChannelCategory::ALL {
            assert_eq!(ChannelCategory::from_id(c.id()), Some(c));
            let json = serde_json::to_string(&c).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", c.id()));
        }
    }

    #[test]
    fn website_is_reserved_for_the_system_source() {
        assert!(ChannelCategory::parse_custom("website").is_err());
    }

    #[test]
    fn unknown_categories_are_refused_with_the_list() {
        let err = ChannelCategory::parse_custom("tiktok").err();
        assert!(err.is_some_and(|e| e.message.contains("paid_social")));
    }
}
