//! Client lifecycle actions beyond approval: secret rotation with overlap
//! (by the client over its configuration endpoint, or by an administrator),
//! revocation and deletion by an administrator, and the reports that show
//! what the reaper will do next.

use charter_protocol::Error as ProtocolError;
use charter_store::{Change, ClientQuery, ClientRecord, ClientStatus};
use serde_json::{json, Value};

use crate::credentials::{self, Credential};
use crate::registration::{AuthenticatedClient, ClientInformation, Registrar, RequestContext};
use crate::Error;

/// Which report to produce.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ReportQuery {
    /// Clients whose registration ends within this many days.
    pub expiring_within_days: Option<i64>,
    /// Clients not used for this many days.
    pub unused_for_days: Option<i64>,
    /// Only clients with this status (`pending`, `active`, ...).
    pub status: Option<String>,
    /// Only clients of this organization (by name).
    pub organization: Option<String>,
    /// `iat` or `anonymous`.
    pub registration_path: Option<String>,
    pub limit: Option<u32>,
}

impl Registrar {
    /// Rotation requested by the client itself with its registration access
    /// token (a Charter extension of the RFC 7592 configuration endpoint).
    pub async fn rotate_own_secret(
        &self,
        client: AuthenticatedClient,
        context: &RequestContext,
    ) -> Result<ClientInformation, Error> {
        let AuthenticatedClient(client) = client;
        let actor = format!("client:{}", client.client_id);
        self.rotate(client, actor, context).await
    }

    /// Rotation by an administrator.
    pub async fn rotate_secret(
        &self,
        client_id: &str,
        context: &RequestContext,
    ) -> Result<ClientInformation, Error> {
        let client = self.existing(client_id).await?;
        let actor = context.admin.clone().unwrap_or_else(|| "admin".into());
        self.rotate(client, actor, context).await
    }

    /// A new server-generated secret; the current one keeps working for
    /// `lifecycle.secret_rotation_overlap` (never past its own expiry).
    async fn rotate(
        &self,
        client: ClientRecord,
        actor: String,
        context: &RequestContext,
    ) -> Result<ClientInformation, Error> {
        let Some(current) = client.secret_hash else {
            return Err(ProtocolError::invalid_request(
                "the client has no secret to rotate: it authenticates with keys or is public",
            )
            .into());
        };
        if !matches!(client.status, ClientStatus::Active | ClientStatus::Pending) {
            return Err(ProtocolError::invalid_request(format!(
                "the client is {}; its secret cannot be rotated",
                client.status.as_str()
            ))
            .into());
        }
        let profile = self.policy.profile(&client.profile).ok_or_else(|| {
            ProtocolError::invalid_request(format!(
                "the client's policy profile {:?} is no longer defined",
                client.profile
            ))
        })?;
        let now = crate::now();
        let client_expires_at = client.expires_at.unwrap_or(i64::MAX);
        let secret = credentials::generate(Credential::ClientSecret)?;
        let secret_expires_at =
            (now + profile.secret_lifetime.as_secs() as i64).min(client_expires_at);
        let overlap = self.lifecycle.secret_rotation_overlap.as_secs() as i64;
        let previous_expires_at = (now + overlap).min(client.secret_expires_at.unwrap_or(i64::MAX));
        let mut event = context.event(actor, "client.rotate_secret", "done");
        event.client_id = Some(client.client_id.clone());
        event.organization_id = Some(client.organization_id.clone());
        event.reasons = vec![format!("previous secret valid until {previous_expires_at}")];
        let rotated = self
            .store
            .apply_change(
                Change::RotateSecret {
                    client_id: client.client_id.clone(),
                    expected_secret_hash: current,
                    secret_hash: self.hasher.hash(Credential::ClientSecret, secret.expose()),
                    secret_expires_at,
                    previous_expires_at,
                },
                event,
            )
            .await?;
        if !rotated {
            return Err(ProtocolError::invalid_request(
                "the secret was rotated concurrently; read the client and retry",
            )
            .into());
        }
        tracing::info!(client_id = %client.client_id, "client secret rotated");
        let record = ClientRecord {
            secret_expires_at: Some(secret_expires_at),
            ..client
        };
        self.describe(record, Some(secret), None)
    }

    /// Revokes an active or pending client: it is refused at its next
    /// request and its tokens introspect as inactive.
    pub async fn revoke_client(
        &self,
        client_id: &str,
        reason: &str,
        context: &RequestContext,
    ) -> Result<(), Error> {
        let change = Change::RevokeClient {
            client_id: client_id.to_owned(),
        };
        let client = self
            .admin_client_change(client_id, "client.revoke", change, reason, context)
            .await?;
        match client {
            None => Ok(()),
            Some(unchanged) => Err(ProtocolError::invalid_request(format!(
                "client: {client_id:?} is {}, not active or pending",
                unchanged.status.as_str()
            ))
            .into()),
        }
    }

    /// Deletes a client outright.
    pub async fn delete_client_as_admin(
        &self,
        client_id: &str,
        reason: &str,
        context: &RequestContext,
    ) -> Result<(), Error> {
        let change = Change::DeleteClient {
            client_id: client_id.to_owned(),
        };
        self.admin_client_change(client_id, "client.delete", change, reason, context)
            .await?;
        Ok(())
    }

    /// Applies an administrator's `change` to an existing client with its
    /// audit entry; answers the client as it was if the change did not apply.
    async fn admin_client_change(
        &self,
        client_id: &str,
        action: &str,
        change: Change,
        reason: &str,
        context: &RequestContext,
    ) -> Result<Option<ClientRecord>, Error> {
        let client = self.existing(client_id).await?;
        let mut event = context.admin_event(action, "done");
        event.client_id = Some(client_id.to_owned());
        event.organization_id = Some(client.organization_id.clone());
        event.reasons = vec![reason.to_owned()];
        let applied = self.store.apply_change(change, event).await?;
        Ok((!applied).then_some(client))
    }

    /// Clients matching a report query, newest expiry last, with the
    /// columns an operator needs (never credentials).
    pub async fn client_report(&self, query: &ReportQuery) -> Result<Value, Error> {
        let now = crate::now();
        let day = 86_400;
        let status = match query.status.as_deref() {
            None => None,
            Some(text) => Some(ClientStatus::parse(text).ok_or_else(|| {
                ProtocolError::invalid_request(format!(
                    "status: {text:?} is not one of active, pending, rejected, revoked, expired"
                ))
            })?),
        };
        if query
            .registration_path
            .as_deref()
            .is_some_and(|p| p != "iat" && p != "anonymous")
        {
            return Err(
                ProtocolError::invalid_request("registration_path: use iat or anonymous").into(),
            );
        }
        for (name, days) in [
            ("expiring_within_days", query.expiring_within_days),
            ("unused_for_days", query.unused_for_days),
        ] {
            if days.is_some_and(|d| !(0..=3660).contains(&d)) {
                return Err(
                    ProtocolError::invalid_request(format!("{name}: use 0 to 3660")).into(),
                );
            }
        }
        let organization_id = match &query.organization {
            Some(name) => Some(self.organization(name).await?.id),
            None => None,
        };
        let expiring = query.expiring_within_days.map(|d| now + d * day);
        let clients = self
            .store
            .clients(&ClientQuery {
                organization_id,
                // "Expiring" means still in force: expired ones have expired already.
                status: status.or(expiring.map(|_| ClientStatus::Active)),
                expires_before: expiring,
                unused_since: query.unused_for_days.map(|d| now - d * day),
                registration_path: query.registration_path.clone(),
                limit: query.limit.unwrap_or(1000).min(10_000),
            })
            .await?;
        let rows: Vec<Value> = clients
            .iter()
            .map(|c| {
                json!({
                    "client_id": c.client_id,
                    "client_name": c.metadata.get("client_name"),
                    "organization_id": c.organization_id,
                    "status": c.status.as_str(),
                    "profile": c.profile,
                    "registration_path": c.registration_path(),
                    "issued_at": c.issued_at,
                    "expires_at": c.expires_at,
                    "secret_expires_at": c.secret_expires_at,
                    "last_used_at": c.last_used_at,
                })
            })
            .collect();
        Ok(json!({"clients": rows}))
    }

    /// Client counts by organization, registration path and status.
    pub async fn client_counts(&self) -> Result<Value, Error> {
        let names: std::collections::HashMap<String, String> = self
            .store
            .organizations()
            .await?
            .into_iter()
            .map(|o| (o.id, o.name))
            .collect();
        let rows: Vec<Value> = self
            .store
            .client_counts()
            .await?
            .into_iter()
            .map(|c| {
                json!({
                    "organization": names.get(&c.organization_id).cloned().unwrap_or(c.organization_id),
                    "registration_path": c.registration_path,
                    "status": c.status.as_str(),
                    "count": c.count,
                })
            })
            .collect();
        Ok(json!({"counts": rows}))
    }
}
