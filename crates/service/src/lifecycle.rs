//! Administrative lifecycle actions: approving and rejecting pending
//! clients, creating, suspending, resuming and offboarding organizations,
//! listing and revoking initial access tokens. Each is one
//! `store::Change` applied with its audit entry in one transaction.

use charter_protocol::Error as ProtocolError;
use charter_store::{Change, ClientRecord, InitialAccessToken, Organization};
use serde_json::{json, Value};

use crate::credentials;
use crate::registration::{Registrar, RequestContext};
use crate::Error;

/// The longest an approval may hold before it must be renewed.
const MAX_APPROVAL_SECS: i64 = 3 * 366 * 86_400;

fn not_found(what: &str) -> Error {
    ProtocolError::invalid_request(what.to_owned()).into()
}

impl Registrar {
    /// The organization named `name`, or a request error saying it does not exist.
    pub(crate) async fn organization(&self, name: &str) -> Result<Organization, Error> {
        self.store
            .organization_by_name(name)
            .await?
            .ok_or_else(|| not_found(&format!("organization: {name:?} does not exist")))
    }

    /// The client `client_id`, or a request error saying it does not exist.
    pub(crate) async fn existing(&self, client_id: &str) -> Result<ClientRecord, Error> {
        self.store
            .client(client_id)
            .await?
            .ok_or_else(|| not_found(&format!("client: {client_id:?} does not exist")))
    }

    /// Approves a pending client: who, why, under which policy version, and
    /// until when the approval holds (`valid_for_secs`, default: the client's
    /// own expiry).
    pub async fn approve(
        &self,
        client_id: &str,
        reason: &str,
        valid_for_secs: Option<i64>,
        context: &RequestContext,
    ) -> Result<Value, Error> {
        self.decide_pending(client_id, reason, valid_for_secs, true, context)
            .await
    }

    /// Rejects a pending client with a reason; it can never be used.
    pub async fn reject(
        &self,
        client_id: &str,
        reason: &str,
        context: &RequestContext,
    ) -> Result<Value, Error> {
        self.decide_pending(client_id, reason, None, false, context)
            .await
    }

    async fn decide_pending(
        &self,
        client_id: &str,
        reason: &str,
        valid_for_secs: Option<i64>,
        approve: bool,
        context: &RequestContext,
    ) -> Result<Value, Error> {
        if reason.trim().is_empty() {
            return Err(ProtocolError::invalid_request(
                "reason: required; an approval or rejection records why",
            )
            .into());
        }
        if valid_for_secs.is_some_and(|s| !(60..=MAX_APPROVAL_SECS).contains(&s)) {
            return Err(ProtocolError::invalid_request(format!(
                "valid_for: must be 60 to {MAX_APPROVAL_SECS} seconds"
            ))
            .into());
        }
        let client = self.existing(client_id).await?;
        let now = crate::now();
        let until = valid_for_secs.map(|s| now + s).or(client.expires_at);
        let record = json!({
            "decision": if approve { "approved" } else { "rejected" },
            "by": context.admin.clone().unwrap_or_else(|| "admin".into()),
            "reason": reason,
            "policy_version": self.policy.version,
            "at": now,
            "until": if approve { json!(until) } else { Value::Null },
        });
        let approval = record.to_string();
        let change = if approve {
            Change::ApproveClient {
                client_id: client_id.to_owned(),
                approval,
                until,
            }
        } else {
            Change::RejectClient {
                client_id: client_id.to_owned(),
                approval,
            }
        };
        let action = if approve {
            "client.approve"
        } else {
            "client.reject"
        };
        let mut event = context.admin_event(action, "done");
        event.organization_id = Some(client.organization_id.clone());
        event.client_id = Some(client_id.to_owned());
        event.reasons = vec![reason.to_owned()];
        event.policy_version = Some(self.policy.version.clone());
        if !self.store.apply_change(change, event).await? {
            return Err(ProtocolError::invalid_request(format!(
                "client: {client_id:?} is {}, not pending; only pending clients are approved or rejected",
                client.status.as_str()
            ))
            .into());
        }
        Ok(record)
    }

    /// The lifecycle sweep: approvals that lapsed send their clients back to
    /// pending (re-approval needed), and clients left pending longer than the
    /// pending lifetime expire. Each step is one audited change whose
    /// precondition is re-checked, so a concurrent decision wins.
    pub async fn sweep(&self, now: i64, context: &RequestContext) -> Result<Value, Error> {
        let mut lapsed = Vec::new();
        for client_id in self.store.lapsed_approvals(now, 1000).await? {
            let mut event = context.admin_event("client.approval_lapsed", "done");
            event.client_id = Some(client_id.clone());
            event.reasons = vec!["approval period ended; re-approval required".into()];
            let change = Change::LapseApproval {
                client_id: client_id.clone(),
                now,
            };
            if self.store.apply_change(change, event).await? {
                lapsed.push(client_id);
            }
        }
        let expired = self.expire_pending(now, context).await?;
        let past_expiry = self
            .expire_each(
                self.store.clients_past_expiry(now, 1000).await?,
                now,
                "registration reached its expiry",
                context,
            )
            .await?;
        let unused = match self.lifecycle.unused_client_expiry {
            Some(after) => {
                let cutoff = now - after.as_secs() as i64;
                self.expire_each(
                    self.store.clients_unused_since(cutoff, 1000).await?,
                    now,
                    &format!("not used for {} s", after.as_secs()),
                    context,
                )
                .await?
            }
            None => Vec::new(),
        };
        let retention = self.lifecycle.expired_retention.as_secs() as i64;
        let mut deleted = Vec::new();
        for client_id in self
            .store
            .expired_clients_before(now - retention, 1000)
            .await?
        {
            let mut event = context.admin_event("client.reap", "done");
            event.client_id = Some(client_id.clone());
            event.reasons = vec![format!("expired more than {retention} s ago")];
            let change = Change::DeleteClient {
                client_id: client_id.clone(),
            };
            if self.store.apply_change(change, event).await? {
                deleted.push(client_id);
            }
        }
        let purged = self.store.purge_expired(now).await?;
        if !(past_expiry.is_empty() && unused.is_empty() && deleted.is_empty()) {
            tracing::info!(
                expired = past_expiry.len(),
                unused = unused.len(),
                deleted = deleted.len(),
                "reaper expired and deleted clients"
            );
        }
        Ok(json!({
            "approvals_lapsed": lapsed,
            "expired_pending": expired,
            "expired": past_expiry,
            "expired_unused": unused,
            "deleted": deleted,
            "purged_token_records": purged,
        }))
    }

    /// Expires each client (if still active or pending), one audited change each.
    async fn expire_each(
        &self,
        ids: Vec<String>,
        now: i64,
        reason: &str,
        context: &RequestContext,
    ) -> Result<Vec<String>, Error> {
        let mut expired = Vec::new();
        for client_id in ids {
            let mut event = context.admin_event("client.expire", "done");
            event.client_id = Some(client_id.clone());
            event.reasons = vec![reason.to_owned()];
            let change = Change::ExpireClient {
                client_id: client_id.clone(),
                now,
            };
            if self.store.apply_change(change, event).await? {
                expired.push(client_id);
            }
        }
        Ok(expired)
    }

    /// Expires clients left pending longer than the pending lifetime.
    async fn expire_pending(
        &self,
        now: i64,
        context: &RequestContext,
    ) -> Result<Vec<String>, Error> {
        let cutoff = now - self.config.pending_lifetime.as_secs() as i64;
        let mut expired = Vec::new();
        for client_id in self.store.pending_clients_before(cutoff, 1000).await? {
            let mut event = context.admin_event("client.expire_pending", "done");
            event.client_id = Some(client_id.clone());
            event.reasons = vec![format!(
                "not decided within {} s",
                self.config.pending_lifetime.as_secs()
            )];
            let change = Change::ExpireClient {
                client_id: client_id.clone(),
                now,
            };
            if self.store.apply_change(change, event).await? {
                expired.push(client_id);
            }
        }
        if !expired.is_empty() {
            tracing::info!(count = expired.len(), "expired clients left pending");
        }
        Ok(expired)
    }

    /// Creates an organization.
    pub async fn create_organization(
        &self,
        name: &str,
        context: &RequestContext,
    ) -> Result<Organization, Error> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(ProtocolError::invalid_request(
                "name: 1 to 64 characters among letters, digits, '-', '_' and '.'",
            )
            .into());
        }
        let org = Organization {
            id: format!("org_{}", credentials::random_id()?),
            name: name.to_owned(),
            created_at: crate::now(),
            status: "active".into(),
        };
        match self.store.insert_organization(org.clone()).await {
            Ok(()) => {}
            Err(charter_store::Error::Conflict(_)) => {
                return Err(ProtocolError::invalid_request(format!(
                    "name: organization {name:?} already exists"
                ))
                .into())
            }
            Err(e) => return Err(e.into()),
        }
        let mut event = context.admin_event("organization.create", "done");
        event.organization_id = Some(org.id.clone());
        event.reasons = vec![format!("organization {name:?} created")];
        self.store.append_audit(event).await?;
        Ok(org)
    }

    pub async fn organizations(&self) -> Result<Vec<Organization>, Error> {
        Ok(self.store.organizations().await?)
    }

    /// Suspends (`active` → `suspended`) or resumes (`suspended` → `active`)
    /// an organization; offboards it (all clients revoked, all tokens
    /// revoked, in one transaction) for `offboarded`.
    pub async fn set_organization_status(
        &self,
        name: &str,
        to: &str,
        reason: &str,
        context: &RequestContext,
    ) -> Result<Organization, Error> {
        let org = self.organization(name).await?;
        let (change, action) = match to {
            "suspended" => (
                Change::SetOrganizationStatus {
                    organization_id: org.id.clone(),
                    from: "active".into(),
                    to: to.into(),
                },
                "organization.suspend",
            ),
            "active" => (
                Change::SetOrganizationStatus {
                    organization_id: org.id.clone(),
                    from: "suspended".into(),
                    to: to.into(),
                },
                "organization.resume",
            ),
            "offboarded" => (
                Change::OffboardOrganization {
                    organization_id: org.id.clone(),
                },
                "organization.offboard",
            ),
            other => {
                return Err(ProtocolError::invalid_request(format!(
                    "status: {other:?} is not one of suspended, active, offboarded"
                ))
                .into())
            }
        };
        let mut event = context.admin_event(action, "done");
        event.organization_id = Some(org.id.clone());
        event.reasons = vec![reason.to_owned()];
        if !self.store.apply_change(change, event).await? {
            return Err(ProtocolError::invalid_request(format!(
                "organization {name:?} is {} and cannot become {to}",
                org.status
            ))
            .into());
        }
        self.organization(name).await
    }

    /// The organization's initial access tokens with their usage (never the tokens).
    pub async fn initial_access_tokens(
        &self,
        organization: &str,
    ) -> Result<Vec<InitialAccessToken>, Error> {
        let org = self.organization(organization).await?;
        Ok(self.store.initial_access_tokens(&org.id).await?)
    }

    pub async fn revoke_initial_access_token(
        &self,
        id: &str,
        context: &RequestContext,
    ) -> Result<(), Error> {
        let mut event = context.admin_event("iat.revoke", "done");
        event.reasons = vec![format!("iat {id} revoked")];
        if !self
            .store
            .apply_change(
                Change::RevokeInitialAccessToken { id: id.to_owned() },
                event,
            )
            .await?
        {
            return Err(not_found(&format!(
                "initial access token {id:?} does not exist or is already revoked"
            )));
        }
        Ok(())
    }
}
