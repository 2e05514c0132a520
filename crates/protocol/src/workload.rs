//! The workload a client is bound to (issue 6, checklist §10): a Charter
//! extension member of the client information response, `workload_identity`.
//!
//! The server sets it from the SPIFFE JWT-SVID or Kubernetes service-account
//! token a workload registered with, stores it with the metadata and echoes
//! it read-only. Registration and update requests can never set or change it:
//! validation ignores the member like any unknown one, and the service keeps
//! the stored value across RFC 7592 updates. Tokens are verified in
//! `charter_jose::workload`; this module only names what is kept.

use charter_jose::{WorkloadIdentity, WorkloadKind};
use serde::{Deserialize, Serialize};

/// Who a client is bound to: the workload's subject and the trust source
/// that vouched for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadBinding {
    /// `spiffe` or `kubernetes`.
    pub kind: WorkloadKind,
    /// The SPIFFE ID, or `system:serviceaccount:NAMESPACE:NAME`.
    pub subject: String,
    /// SPIFFE: the trust domain whose bundle verified the JWT-SVID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    /// Kubernetes: the cluster's issuer (`iss`). The same service account
    /// name in another cluster is another workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Kubernetes: `kubernetes.io.serviceaccount.uid`, when the token
    /// carried it, so that a service account deleted and re-created under
    /// the same name does not inherit the client (checklist WL-23).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_uid: Option<String>,
}

impl WorkloadBinding {
    /// The binding a verified token establishes.
    pub fn of(identity: &WorkloadIdentity) -> Self {
        let (trust_domain, issuer) = match identity.kind {
            WorkloadKind::Spiffe => (Some(identity.trust.clone()), None),
            WorkloadKind::Kubernetes => (None, Some(identity.trust.clone())),
        };
        Self {
            kind: identity.kind,
            subject: identity.subject.clone(),
            trust_domain,
            issuer,
            service_account_uid: identity.service_account_uid.clone(),
        }
    }

    /// The trust domain or issuer the binding names.
    pub fn trust(&self) -> &str {
        self.trust_domain
            .as_deref()
            .or(self.issuer.as_deref())
            .unwrap_or_default()
    }

    /// Whether `identity` is this workload: the same kind, trust domain or
    /// issuer, subject and (where bound) service account uid.
    pub fn matches(&self, identity: &WorkloadIdentity) -> bool {
        *self == Self::of(identity)
            || (self.service_account_uid.is_none() && {
                let mut other = Self::of(identity);
                other.service_account_uid = None;
                *self == other
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(
        kind: WorkloadKind,
        trust: &str,
        subject: &str,
        uid: Option<&str>,
    ) -> WorkloadIdentity {
        WorkloadIdentity {
            kind,
            trust: trust.into(),
            subject: subject.into(),
            service_account_uid: uid.map(Into::into),
            expires_at: 0,
        }
    }

    #[test]
    fn a_binding_matches_its_own_workload_only() {
        use WorkloadKind::*;
        let sa = "system:serviceaccount:payments:api";
        let k8s = WorkloadBinding::of(&identity(Kubernetes, "https://a", sa, Some("u1")));
        assert_eq!(k8s.issuer.as_deref(), Some("https://a"));
        assert!(k8s.matches(&identity(Kubernetes, "https://a", sa, Some("u1"))));
        // A re-created account (WL-23), another cluster, no uid at all.
        assert!(!k8s.matches(&identity(Kubernetes, "https://a", sa, Some("u2"))));
        assert!(!k8s.matches(&identity(Kubernetes, "https://b", sa, Some("u1"))));
        assert!(!k8s.matches(&identity(Kubernetes, "https://a", sa, None)));
        // Bound without a uid: any token of that account in that cluster.
        let loose = WorkloadBinding::of(&identity(Kubernetes, "https://a", sa, None));
        assert!(loose.matches(&identity(Kubernetes, "https://a", sa, Some("u9"))));

        let id = "spiffe://prod.example/api";
        let svid = WorkloadBinding::of(&identity(Spiffe, "prod.example", id, None));
        assert_eq!(svid.trust(), "prod.example");
        assert!(svid.matches(&identity(Spiffe, "prod.example", id, None)));
        assert!(!svid.matches(&identity(
            Spiffe,
            "prod.example",
            "spiffe://prod.example/web",
            None
        )));
        assert_eq!(
            serde_json::to_value(&svid).unwrap(),
            serde_json::json!({"kind": "spiffe", "subject": id, "trust_domain": "prod.example"})
        );
    }
}
