//! First start: the `default` organization, an admin token and an initial
//! access token for `default`, created together in one transaction so that
//! a crash never leaves an organization without its credentials.

use charter_store::{AuditEvent, Bootstrap, InitialAccessToken, Organization, Store};

use crate::credentials::{self, Credential, Hasher, Secret};
use crate::Error;

/// The bootstrap IAT lets the README walk-through work at once; like every
/// credential it expires. Operators mint more through the admin API.
pub const BOOTSTRAP_IAT_LIFETIME_SECS: i64 = 30 * 86_400;

/// Credentials created at first start, in clear, to be shown exactly once.
#[derive(Debug)]
pub struct BootstrapOutput {
    pub admin_token: Secret,
    pub initial_access_token: Secret,
    pub initial_access_token_expires_at: i64,
}

/// Creates the first-start records unless they exist; returns the new
/// credentials only when it created them.
/// The bootstrap IAT is bound to `profile`, the policy's default profile.
pub async fn bootstrap(
    store: &dyn Store,
    hasher: &Hasher,
    profile: &str,
) -> Result<Option<BootstrapOutput>, Error> {
    if store.organization_by_name("default").await?.is_some() {
        return Ok(None);
    }
    let now = crate::now();
    let admin_token = credentials::generate(Credential::AdminToken)?;
    let iat = credentials::generate(Credential::InitialAccessToken)?;
    let organization_id = format!("org_{}", credentials::random_id()?);
    let organization_id_for_audit = organization_id.clone();
    let expires_at = now + BOOTSTRAP_IAT_LIFETIME_SECS;
    let created = store
        .bootstrap(
            Bootstrap {
                organization: Organization {
                    id: organization_id.clone(),
                    name: "default".into(),
                    created_at: now,
                    status: "active".into(),
                },
                admin_token_hash: hasher.hash(Credential::AdminToken, admin_token.expose()),
                initial_access_token: InitialAccessToken {
                    id: format!("iat_{}", credentials::random_id()?),
                    organization_id,
                    token_hash: hasher.hash(Credential::InitialAccessToken, iat.expose()),
                    created_at: now,
                    expires_at: Some(expires_at),
                    revoked: false,
                    profile: profile.to_owned(),
                    max_uses: None,
                    uses: 0,
                    allowed_cidr: None,
                },
            },
            {
                let mut event = AuditEvent::new(now, "system", "bootstrap", "done");
                event.organization_id = Some(organization_id_for_audit);
                event.reasons = vec![
                    "first start: organization default, admin token, initial access token".into(),
                ];
                event
            },
        )
        .await?;
    // Another replica may have bootstrapped between the check and the write.
    Ok(created.then_some(BootstrapOutput {
        admin_token,
        initial_access_token: iat,
        initial_access_token_expires_at: expires_at,
    }))
}
