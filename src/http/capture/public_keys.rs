//! Public key → organization, cached: every capture request names a public key, and public keys
//! never change owner, so a hit never needs to be re-checked.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::domain::ids::OrgId;
use crate::store::{Store, StoreError};

/// Unknown keys are not cached, so a bot spraying random keys cannot grow this map.
#[derive(Default)]
pub struct PublicKeyCache {
    known: RwLock<HashMap<String, OrgId>>,
}

impl PublicKeyCache {
    pub async fn resolve(
        &self,
        store: &Store,
        public_key: &str,
    ) -> Result<Option<OrgId>, StoreError> {
        if !crate::domain::keys::is_public_key_shaped(public_key) {
            return Ok(None);
        }
        if let Ok(known) = self.known.read()
            && let Some(org) = known.get(public_key)
        {
            return Ok(Some(org.clone()));
        }
        let org = store.org_for_public_key(public_key).await?;
        if let (Some(org), Ok(mut known)) = (&org, self.known.write()) {
            known.insert(public_key.to_owned(), org.clone());
        }
        Ok(org)
    }
}
