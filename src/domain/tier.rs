//! Subscription tiers and how many live widgets each allows.

use serde::{Deserialize, Serialize};

use super::DomainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Starter,
    Premium,
    Ultimate,
}

impl Tier {
    pub fn id(self) -> &'static str {
        match self {
            Self::Starter => "starter",
            Self::Premium => "premium",
            Self::Ultimate => "ultimate",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "starter" => Ok(Self::Starter),
            "premium" => Ok(Self::Premium),
            "ultimate" => Ok(Self::Ultimate),
            other => Err(DomainError::new(
                "tier",
                format!("unknown tier {other:?}; expected starter, premium or ultimate"),
            )),
        }
    }
}

/// Non-archived widgets allowed per tier; operators may override the defaults in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierLimits {
    pub starter: u32,
    pub premium: u32,
    pub ultimate: u32,
}

impl Default for TierLimits {
    fn default() -> Self {
        Self {
            starter: 1,
            premium: 3,
            ultimate: 10,
        }
    }
}

impl TierLimits {
    pub fn widgets_allowed(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Starter => self.starter,
            Tier::Premium => self.premium,
            Tier::Ultimate => self.ultimate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tier_limits_are_one_three_and_ten() {
        let limits = TierLimits::default();
        assert_eq!(limits.widgets_allowed(Tier::Starter), 1);
        assert_eq!(limits.widgets_allowed(Tier::Premium), 3);
        assert_eq!(limits.widgets_allowed(Tier::Ultimate), 10);
    }

    #[test]
    fn unknown_tier_is_refused() {
        assert!(Tier::parse("gold").is_err());
        assert_eq!(Tier::parse("premium"), Ok(Tier::Premium));
    }
}
