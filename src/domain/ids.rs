//! Typed identifiers. Public ones print with a prefix so a pasted id says what it is, and a
//! value of one type can never be passed where another is expected.

use std::fmt;

use uuid::Uuid;

/// Declares an id type: a prefix and a time-ordered UUID (`org_0190…`).
macro_rules! prefixed_id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(format!("{}{}", Self::PREFIX, Uuid::now_v7().simple()))
            }

            /// Wraps an id read back from our own store; input from outside goes through `parse`.
            pub fn from_stored(raw: String) -> Self {
                Self(raw)
            }

            /// An id as a caller wrote it (a path segment, a form field): `None` unless it has
            /// the prefix and a UUID, so junk never reaches a query.
            pub fn parse(raw: &str) -> Option<Self> {
                let rest = raw.strip_prefix(Self::PREFIX)?;
                Uuid::try_parse(rest).ok()?;
                Some(Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        /// Serialized as the bare id; read back only if it is a well-formed id of this type.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).ok_or_else(|| {
                    serde::de::Error::custom(concat!("not a ", $prefix, "… id"))
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id_type!(
    /// An organization (tenant). Every store call for tenant data takes one first.
    OrgId,
    "org_"
);
prefixed_id_type!(
    /// A lead: what a capture token belongs to and every lead event names.
    LeadId,
    "lead_"
);
prefixed_id_type!(
    /// A webhook endpoint.
    EndpointId,
    "wh_"
);
prefixed_id_type!(
    /// One message to one endpoint; also its `webhook-id` header, the same on every attempt.
    DeliveryId,
    "msg_"
);

/// Generates a prefixed random id (`key_…`, `evt_…`) for rows that are referenced from outside.
pub fn prefixed_id(prefix: &str) -> String {
    format!("{prefix}{}", Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_with_their_own_prefix_and_a_uuid() {
        let endpoint = EndpointId::generate();
        assert_eq!(EndpointId::parse(endpoint.as_str()), Some(endpoint.clone()));
        assert_eq!(DeliveryId::parse(endpoint.as_str()), None);
        assert_eq!(EndpointId::parse("wh_not-a-uuid"), None);
        assert_eq!(EndpointId::parse("wh_"), None);
        assert_eq!(EndpointId::parse("' OR 1=1 --"), None);
    }

    #[test]
    fn ids_read_back_from_json_only_when_well_formed() {
        let lead = LeadId::generate();
        let json = serde_json::to_string(&lead).unwrap();
        assert_eq!(json, format!("\"{lead}\""));
        assert_eq!(serde_json::from_str::<LeadId>(&json).unwrap(), lead);
        assert!(serde_json::from_str::<LeadId>("\"lead_x\"").is_err());
        assert!(serde_json::from_str::<EndpointId>(&json).is_err());
    }
}
