//! Admin tokens: what opens the admin HTTP API. Made and revoked only on the command line (by
//! whoever can reach the store), shown once, stored hashed like API keys.
use super::{AdminError, AdminResult};
use crate::domain::api_key;
use crate::store::Admin;
use serde_json::json;
use uuid::Uuid;

/// Creates a token; the JSON holds `admin_token`, shown this once only.
pub async fn create_admin_token(store: &dyn Admin, label: Option<String>) -> AdminResult {
    let token = api_key::generate();
    store.create_admin_token(token.key_id, token.secret_hash, label.clone()).await?;
    Ok(json!({ "token_id": token.key_id, "admin_token": token.token, "label": label }))
}

/// Revokes a token at once (admin tokens are not cached).
pub async fn revoke_admin_token(store: &dyn Admin, id: Uuid) -> AdminResult {
    if !store.revoke_admin_token(id).await? {
        return Err(AdminError::NotFound(format!("no admin token with id {id}")));
    }
    Ok(json!({ "token_id": id, "revoked": true }))
}
