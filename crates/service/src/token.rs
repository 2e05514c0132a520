//! The point of use: client authentication (RFC 6749 §2.3, RFC 7523), the
//! `client_credentials` grant with JWT access tokens (RFC 6749 §4.4,
//! RFC 9068, RFC 8707), introspection (RFC 7662) and revocation (RFC 7009).
//!
//! Every decision here reads the client's current state: a client that was
//! revoked, suspended (with its organization), expired or whose approval
//! lapsed is refused at its next request, and its outstanding tokens
//! introspect as inactive. Nothing is written on the token path: tokens are
//! self-contained JWTs, and `last_used_at` is batched in memory.

use charter_config::{DpopConfig, Issuer, LifecycleConfig, TokensConfig};
use charter_jose::DpopProof;
use charter_jose::{decode, Jwt, PublicKey};
use charter_policy::{Policy, Profile};
use charter_protocol::{
    is_document_client_id, AuthMethod, ClientMetadata, Error as ProtocolError, ErrorCode, GrantType,
};
use charter_store::{Change, ClientInUse, ClientStatus, Store};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

use crate::credentials::{self, Credential, Hasher};
use crate::keys::KeyRing;
use crate::registration::RequestContext;
use crate::usage::UsageRecorder;
use crate::workloads::JWT_SPIFFE_ASSERTION;
use crate::Error;

/// RFC 7523 §2.2.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Clock skew allowed on assertion times.
const LEEWAY_SECS: i64 = 30;
/// The longest a client assertion may be valid: assertions are single-use
/// and short-lived, which also bounds the replay cache.
const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;
/// The longest `jti` accepted (it is stored hashed, but parsing stays bounded).
const MAX_JTI_LEN: usize = 256;
/// The most `resource` values one token request may name, and their length.
const MAX_RESOURCES: usize = 8;
const MAX_RESOURCE_LEN: usize = 512;

/// How a request presented client credentials; the HTTP layer fills it in
/// from the `Authorization` header and the form body. `Debug` shows no secret.
#[derive(Default, Clone)]
pub struct ClientCredentials {
    /// `Authorization: Basic`, already form-decoded (RFC 6749 §2.3.1).
    pub basic: Option<(String, String)>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<String>,
    /// Whether resolving a metadata-document `client_id` may fetch: false
    /// for a source over its failure limit, so that it cannot make the
    /// server fetch on its behalf.
    pub may_fetch: bool,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("basic_client_id", &self.basic.as_ref().map(|(id, _)| id))
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("client_assertion_type", &self.client_assertion_type)
            .field(
                "client_assertion",
                &self.client_assertion.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Proof that a request authenticated as a client that may be used now;
/// only [`TokenService::authenticate`] makes one.
#[derive(Debug)]
pub struct UsableClient {
    in_use: ClientInUse,
    metadata: ClientMetadata,
    method: AuthMethod,
    /// A token id whose revocation was read together with the client, and
    /// whether it is revoked (see [`TokenService::authenticate_probing`]).
    probed: Option<(String, bool)>,
}

impl UsableClient {
    pub fn client_id(&self) -> &str {
        &self.in_use.client.client_id
    }

    pub(crate) fn metadata(&self) -> &ClientMetadata {
        &self.metadata
    }

    pub(crate) fn record(&self) -> &charter_store::ClientRecord {
        &self.in_use.client
    }

    pub(crate) fn method(&self) -> AuthMethod {
        self.method
    }
}

/// Issues, introspects and revokes access tokens.
pub struct TokenService {
    store: Arc<dyn Store>,
    hasher: Hasher,
    issuer: Issuer,
    policy: Arc<Policy>,
    keys: Arc<KeyRing>,
    config: TokensConfig,
    lifecycle: LifecycleConfig,
    usage: Arc<UsageRecorder>,
    verified: crate::verified::VerifiedTokens,
    users: Arc<dyn crate::UserDirectory>,
    dpop: DpopConfig,
    /// Fetches the keys of clients registered with `jwks_uri`.
    fetcher: Option<charter_fetch::Fetcher>,
    pub(crate) workloads: crate::workloads::Workloads,
    /// Resolves clients whose `client_id` is a metadata document URL.
    documents: Option<Arc<crate::MetadataDocuments>>,
}

/// Answers for the four states of a client that may not be used; each
/// tells the client's owner what to do.
pub(crate) fn unusable(
    in_use: &ClientInUse,
    profile: Option<&Profile>,
    now: i64,
) -> Option<String> {
    let client = &in_use.client;
    if in_use.organization_status != "active" {
        return Some(format!(
            "the client's organization is {}",
            in_use.organization_status
        ));
    }
    match client.status {
        ClientStatus::Active => {}
        ClientStatus::Pending => {
            return Some("the client is pending an administrator's approval".into())
        }
        ClientStatus::Expired => {
            return Some("the client's registration has expired; register again".into())
        }
        ClientStatus::Rejected => return Some("the client's registration was rejected".into()),
        ClientStatus::Revoked => return Some("the client has been revoked".into()),
    }
    if client.expires_at.is_some_and(|at| at <= now) {
        return Some("the client's registration has expired; register again".into());
    }
    if client.approved_until.is_some_and(|at| at < now) {
        return Some("the client's approval has lapsed; it awaits re-approval".into());
    }
    if profile.is_none() {
        return Some(format!(
            "the client's policy profile {:?} is no longer defined",
            client.profile
        ));
    }
    None
}

impl TokenService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        hasher: Hasher,
        issuer: Issuer,
        policy: Arc<Policy>,
        keys: Arc<KeyRing>,
        config: TokensConfig,
        lifecycle: LifecycleConfig,
        usage: Arc<UsageRecorder>,
        users: Arc<dyn crate::UserDirectory>,
        dpop: DpopConfig,
    ) -> Self {
        Self {
            store,
            hasher,
            issuer,
            policy,
            keys,
            config,
            lifecycle,
            usage,
            verified: Default::default(),
            users,
            dpop,
            fetcher: None,
            workloads: Default::default(),
            documents: None,
        }
    }

    /// The fetcher for `jwks_uri` keys (without one, such clients cannot
    /// use `private_key_jwt`).
    pub fn with_fetcher(mut self, fetcher: charter_fetch::Fetcher) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// Resolves metadata-document clients before they authenticate.
    pub fn with_documents(mut self, documents: Arc<crate::MetadataDocuments>) -> Self {
        self.documents = Some(documents);
        self
    }

    /// The keys at a client's `jwks_uri`, through the fetcher's cache, or
    /// fetched again (`fresh`) when a `kid` is unknown (OIDC Core §10.1.1:
    /// the client rotated its keys).
    async fn remote_keys(&self, uri: &str, fresh: bool) -> Result<Vec<PublicKey>, String> {
        let fetcher = self
            .fetcher
            .as_ref()
            .ok_or_else(|| "this server fetches no jwks_uri".to_owned())?;
        let fetched = if fresh {
            fetcher.get_fresh(uri, charter_fetch::Purpose::JwkSet).await
        } else {
            fetcher.get(uri, charter_fetch::Purpose::JwkSet).await
        }
        .map_err(|e| format!("jwks_uri: {e}"))?;
        let set: Value = serde_json::from_slice(&fetched.body)
            .map_err(|_| "jwks_uri: the document is not a JSON JWK Set".to_owned())?;
        Ok(public_keys(&set))
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) fn fetcher(&self) -> Option<&charter_fetch::Fetcher> {
        self.fetcher.as_ref()
    }

    pub(crate) fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    pub(crate) fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    pub(crate) fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub(crate) fn tokens_config(&self) -> &TokensConfig {
        &self.config
    }

    pub(crate) fn usage_recorder(&self) -> &UsageRecorder {
        &self.usage
    }

    pub(crate) fn users(&self) -> &Arc<dyn crate::UserDirectory> {
        &self.users
    }

    pub fn dpop_config(&self) -> &DpopConfig {
        &self.dpop
    }

    pub fn lifecycle(&self) -> &LifecycleConfig {
        &self.lifecycle
    }

    /// Authenticates the client with the one method it registered, then
    /// checks it may be used now. Every failure is `invalid_client`, except
    /// a request that uses two methods at once (`invalid_request`, RFC 6749 §2.3).
    pub async fn authenticate(
        &self,
        credentials: ClientCredentials,
    ) -> Result<UsableClient, Error> {
        self.authenticate_probing(credentials, None).await
    }

    /// [`Self::authenticate`], also reading whether the access token `jti`
    /// was revoked in the same store read (introspection needs both).
    pub async fn authenticate_probing(
        &self,
        credentials: ClientCredentials,
        jti: Option<&str>,
    ) -> Result<UsableClient, Error> {
        let via_header = credentials.basic.is_some();
        let fail = |description: &str| Error::InvalidClient {
            description: description.to_owned(),
            via_header,
        };
        let presented_methods = [
            credentials.basic.is_some(),
            credentials.client_secret.is_some(),
            credentials.client_assertion.is_some() || credentials.client_assertion_type.is_some(),
        ]
        .iter()
        .filter(|m| **m)
        .count();
        if presented_methods > 1 {
            return Err(ProtocolError::invalid_request(
                "the request uses more than one client authentication method; use exactly one (RFC 6749 section 2.3)",
            )
            .into());
        }
        let assertion =
            match (
                &credentials.client_assertion_type,
                &credentials.client_assertion,
            ) {
                (Some(kind), Some(token))
                    if kind == JWT_BEARER_ASSERTION || kind == JWT_SPIFFE_ASSERTION =>
                {
                    Some(decode(token).map_err(|e| fail(&format!("client_assertion: {e}")))?)
                }
                (Some(_), Some(_)) => {
                    return Err(fail(&format!(
                        "client_assertion_type must be {JWT_BEARER_ASSERTION} (or {JWT_SPIFFE_ASSERTION} for a workload's JWT-SVID)"
                    )))
                }
                (None, None) => None,
                _ => return Err(ProtocolError::invalid_request(
                    "client_assertion and client_assertion_type go together (RFC 7521 section 4.2)",
                )
                .into()),
            };
        // A workload's own token (a JWT-SVID or a Kubernetes service-account
        // token) rather than a private_key_jwt assertion: its subject is the
        // workload, so `client_id` names the client (workloads.rs).
        let workload = assertion.as_ref().filter(|jwt| {
            crate::workloads::is_workload_assertion(
                credentials.client_assertion_type.as_deref(),
                jwt,
            )
        });
        let (client_id, method) = match (&credentials.basic, &assertion) {
            (Some((id, _)), _) => (id.clone(), AuthMethod::ClientSecretBasic),
            (None, Some(_)) if workload.is_some() => (
                credentials.client_id.clone().ok_or_else(|| {
                    fail("client_id is required with a workload identity assertion, whose subject is the workload, not the client")
                })?,
                // Replaced by the registered method once the client is read.
                AuthMethod::PrivateKeyJwt,
            ),
            (None, Some(jwt)) => (
                jwt.claim_str("sub")
                    .ok_or_else(|| fail("client_assertion: \"sub\" must be the client_id"))?
                    .to_owned(),
                AuthMethod::PrivateKeyJwt,
            ),
            (None, None) => match (&credentials.client_id, &credentials.client_secret) {
                (Some(id), Some(_)) => (id.clone(), AuthMethod::ClientSecretPost),
                (Some(id), None) => (id.clone(), AuthMethod::None),
                (None, _) => return Err(fail("client authentication is required")),
            },
        };
        // A client_id parameter beside other credentials must name the same client.
        if credentials
            .client_id
            .as_deref()
            .is_some_and(|id| id != client_id)
        {
            return Err(fail(
                "client_id does not match the client that authenticated",
            ));
        }
        // A metadata-document client is made current (fetched again when
        // its stored copy is stale) before it is read; a document that is
        // gone or refused refuses the client. Documents are public, so the
        // description may say why.
        if let (Some(documents), true) = (&self.documents, is_document_client_id(&client_id)) {
            documents
                .resolve(
                    &client_id,
                    &crate::RequestContext::default(),
                    credentials.may_fetch,
                )
                .await
                .map_err(|e| match e {
                    Error::Protocol(p) => fail(&p.description),
                    other => other,
                })?;
        }
        // Hash before the lookup so an unknown client costs the same work.
        let secret = credentials
            .basic
            .as_ref()
            .map(|(_, s)| s.as_str())
            .or(credentials.client_secret.as_deref());
        let presented_hash = secret.map(|s| self.hasher.hash(Credential::ClientSecret, s));
        // Until the credentials verify, every failure reads the same, so an
        // unauthenticated caller learns nothing about which clients exist
        // or how they authenticate.
        let generic = "client authentication failed: unknown client, wrong credentials, or not the method the client registered";
        let (in_use, probed) = match jti {
            Some(jti) => {
                let (client, revoked) = self
                    .store
                    .client_in_use_and_revoked(&client_id, jti)
                    .await?;
                (client, Some((jti.to_owned(), revoked)))
            }
            None => (self.store.client_in_use(&client_id).await?, None),
        };
        let in_use = in_use.ok_or_else(|| fail(generic))?;
        let metadata = <ClientMetadata as serde::Deserialize>::deserialize(&in_use.client.metadata)
            .map_err(|e| Error::Internal(format!("stored metadata of {client_id}: {e}")))?;
        let now = crate::now();
        let method = match workload {
            // The workload's token stands in for the credential of the
            // registered method, only where the profile requires it.
            Some(jwt) => {
                self.verify_workload_assertion(jwt, &in_use.client.profile, &metadata)
                    .await
                    .map_err(|why| fail(why.as_deref().unwrap_or(generic)))?;
                metadata.token_endpoint_auth_method
            }
            None if metadata.token_endpoint_auth_method != method => return Err(fail(generic)),
            None => method,
        };
        match method {
            // Verified above, in place of this method's credential.
            _ if workload.is_some() => {}
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => {
                let presented = presented_hash.unwrap_or_default();
                let client = &in_use.client;
                let matches = |stored: Option<[u8; 32]>| {
                    stored.is_some_and(|h| {
                        bool::from(subtle::ConstantTimeEq::ct_eq(&h[..], &presented[..]))
                    })
                };
                let current = matches(client.secret_hash);
                let previous = matches(client.previous_secret_hash)
                    && client.previous_secret_expires_at.is_some_and(|at| at > now);
                if current && client.secret_expires_at.is_some_and(|at| at <= now) {
                    return Err(fail(
                        "the client secret has expired; rotate it at the client configuration endpoint",
                    ));
                }
                if !(current || previous) {
                    return Err(fail(generic));
                }
            }
            AuthMethod::PrivateKeyJwt => {
                let jwt = assertion.as_ref().ok_or_else(|| fail(generic))?;
                self.verify_assertion(jwt, &client_id, &metadata, now)
                    .await
                    .map_err(|e| match e {
                        Error::InvalidClient { description, .. } => fail(&description),
                        other => other,
                    })?;
            }
            AuthMethod::None => {}
        }
        let profile = self.policy.profile(&in_use.client.profile);
        if let Some(why) = unusable(&in_use, profile, now) {
            // A public client proves nothing, so it is told nothing more.
            let why = if method == AuthMethod::None {
                generic.to_owned()
            } else {
                why
            };
            return Err(fail(&why));
        }
        if profile
            .and_then(|p| p.token_endpoint_auth_methods.as_ref())
            .is_some_and(|allowed| !allowed.contains(&method))
        {
            return Err(fail(&format!(
                "the client's profile no longer allows {}",
                method.as_str()
            )));
        }
        // The registered credential alone no longer authenticates a client
        // whose profile requires its workload's token: a copied client_id
        // and secret are useless off that workload.
        if workload.is_none() && self.requires_workload_assertion(profile) {
            return Err(fail(if method == AuthMethod::None {
                generic
            } else {
                "the client's profile requires it to authenticate with its workload's identity token as client_assertion (client_assertion_type urn:ietf:params:oauth:client-assertion-type:jwt-spiffe or jwt-bearer, with client_id)"
            }));
        }
        Ok(UsableClient {
            in_use,
            metadata,
            method,
            probed,
        })
    }

    /// RFC 7523 §3 with the 7523bis tightening: `iss` = `sub` = client_id,
    /// `aud` = the issuer as the sole value, a short `exp`, a single-use
    /// `jti`, the registered algorithm and a registered key.
    async fn verify_assertion(
        &self,
        jwt: &Jwt,
        client_id: &str,
        metadata: &ClientMetadata,
        now: i64,
    ) -> Result<(), Error> {
        let fail = |d: String| Error::InvalidClient {
            description: format!("client_assertion: {d}"),
            via_header: false,
        };
        let alg = jwt.alg();
        if let Some(registered) = &metadata.token_endpoint_auth_signing_alg {
            if registered != alg {
                return Err(fail(format!(
                    "signed with {alg}, but the client registered {registered}"
                )));
            }
        }
        if let Some(typ) = jwt.typ() {
            // RFC 7515 §4.1.9: a typ without '/' means application/<typ>.
            let typ = typ.to_ascii_lowercase();
            let typ = typ.strip_prefix("application/").unwrap_or(&typ);
            if typ != "client-authentication+jwt" && typ != "jwt" {
                return Err(fail(format!(
                    "typ {typ:?} is not a client assertion; use client-authentication+jwt"
                )));
            }
        }
        if jwt.claim_str("iss") != Some(client_id) || jwt.claim_str("sub") != Some(client_id) {
            return Err(fail("iss and sub must both be the client_id".into()));
        }
        let issuer = self.issuer.as_str();
        let aud_ok = match jwt.claims().get("aud") {
            Some(Value::String(aud)) => aud == issuer,
            Some(Value::Array(list)) => list.len() == 1 && list[0].as_str() == Some(issuer),
            _ => false,
        };
        if !aud_ok {
            return Err(fail(format!(
                "aud must be the issuer identifier {issuer} as its only value"
            )));
        }
        let exp = jwt
            .claim_time("exp")
            .ok_or_else(|| fail("exp is required".into()))?;
        if exp <= now - LEEWAY_SECS {
            return Err(fail("it has expired".into()));
        }
        if exp > now + MAX_ASSERTION_LIFETIME_SECS + LEEWAY_SECS {
            return Err(fail(format!(
                "exp is more than {MAX_ASSERTION_LIFETIME_SECS} seconds away; use short-lived assertions"
            )));
        }
        if jwt
            .claim_time("nbf")
            .is_some_and(|nbf| nbf > now + LEEWAY_SECS)
        {
            return Err(fail("it is not valid yet (nbf)".into()));
        }
        if jwt
            .claim_time("iat")
            .is_some_and(|iat| iat > now + LEEWAY_SECS)
        {
            return Err(fail("iat is in the future".into()));
        }
        let jti = jwt
            .claim_str("jti")
            .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
            .ok_or_else(|| fail(format!("jti is required (1 to {MAX_JTI_LEN} characters)")))?;
        // The signature last among the checks without side effects: it is
        // the expensive one. The jti is recorded only once it verified.
        let verifies = |keys: &[PublicKey]| {
            keys.iter()
                .filter(|k| jwt.kid().is_none() || k.kid() == jwt.kid())
                .any(|k| k.verify(jwt).is_ok())
        };
        let verified = match (&metadata.jwks, &metadata.jwks_uri) {
            (Some(jwks), _) => verifies(&public_keys(jwks)),
            (None, Some(uri)) => {
                let keys = self.remote_keys(uri, false).await.map_err(fail)?;
                let known_kid = jwt
                    .kid()
                    .is_none_or(|kid| keys.iter().any(|k| k.kid() == Some(kid)));
                // An unknown kid means the client rotated its keys: fetch
                // once more (rate limited by the fetcher), never on a
                // known kid whose signature fails.
                verifies(&keys)
                    || (!known_kid && verifies(&self.remote_keys(uri, true).await.map_err(fail)?))
            }
            (None, None) => return Err(fail("the client registered no keys".into())),
        };
        if !verified {
            return Err(fail(
                "the signature does not verify with any key the client registered".into(),
            ));
        }
        let jti_hash: [u8; 32] = Sha256::digest(jti.as_bytes()).into();
        if !self
            .store
            .use_assertion_jti(client_id, &jti_hash, exp + LEEWAY_SECS)
            .await?
        {
            return Err(fail(
                "this jti was already used; assertions are single-use".into(),
            ));
        }
        Ok(())
    }

    /// RFC 6749 §4.4: an access token for the client itself.
    pub fn client_credentials(
        &self,
        client: &UsableClient,
        scope: Option<&str>,
        resources: &[String],
        dpop: Option<&DpopProof>,
    ) -> Result<Value, Error> {
        let profile = self
            .policy
            .profile(&client.in_use.client.profile)
            .ok_or_else(|| Error::Internal("profile vanished".into()))?;
        let grant = GrantType::ClientCredentials;
        if client.method == AuthMethod::None || !client.metadata.grant_types.contains(&grant) {
            return Err(ProtocolError::new(
                ErrorCode::UnauthorizedClient,
                "the client is not registered for the client_credentials grant",
            )
            .into());
        }
        if profile
            .grant_types
            .as_ref()
            .is_some_and(|allowed| !allowed.contains(&grant))
        {
            return Err(ProtocolError::new(
                ErrorCode::UnauthorizedClient,
                "the client's profile no longer allows the client_credentials grant",
            )
            .into());
        }
        self.require_dpop_if_bound(client, dpop)?;
        let granted = grant_scope(&client.metadata, profile, scope)?;
        let audience = audience(&self.issuer, profile, resources)?;
        let now = crate::now();
        let client_id = client.client_id();
        // RFC 9068 §2.2: sub names the client itself for client tokens.
        let (token, exp) = self.sign_access_token(
            client,
            client_id,
            granted.as_deref(),
            &audience,
            dpop.map(|p| p.jkt.as_str()),
            None,
            &credentials::random_id()?,
        )?;
        self.usage.record(client_id, now);
        let mut body = json!({
            "access_token": token,
            "token_type": if dpop.is_some() { "DPoP" } else { "Bearer" },
            "expires_in": exp - now,
        });
        if let (Some(scope), Some(map)) = (granted, body.as_object_mut()) {
            map.insert("scope".into(), json!(scope));
        }
        Ok(body)
    }

    /// Signs an RFC 9068 access token and returns it with its `exp`. A
    /// token never outlives the client's registration or approval, so
    /// resource servers validating it locally stop at those dates too.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sign_access_token(
        &self,
        client: &UsableClient,
        subject: &str,
        scope: Option<&str>,
        audience: &[String],
        dpop_jkt: Option<&str>,
        auth_time: Option<i64>,
        jti: &str,
    ) -> Result<(String, i64), Error> {
        let now = crate::now();
        let record = &client.in_use.client;
        let exp = [record.expires_at, record.approved_until]
            .into_iter()
            .flatten()
            .fold(
                now + self.config.access_token_lifetime.as_secs() as i64,
                i64::min,
            );
        let client_id = client.client_id();
        let mut claims = json!({
            "iss": self.issuer.as_str(),
            "sub": subject,
            "aud": if audience.len() == 1 { json!(audience[0]) } else { json!(audience) },
            "client_id": client_id,
            "iat": now,
            "exp": exp,
            "jti": jti,
        });
        let map = claims
            .as_object_mut()
            .ok_or_else(|| Error::Internal("access token claims".into()))?;
        if let Some(scope) = scope {
            map.insert("scope".into(), json!(scope));
        }
        if let Some(auth_time) = auth_time {
            map.insert("auth_time".into(), json!(auth_time));
        }
        // RFC 9449 §6.1: the token is bound to the proof's key.
        if let Some(jkt) = dpop_jkt {
            map.insert("cnf".into(), json!({ "jkt": jkt }));
        }
        let key = self
            .keys
            .signer(self.config.signing_alg, now)
            .ok_or_else(|| Error::Internal("no signing key is active".into()))?;
        let token = key
            .sign_jwt("at+jwt", &claims)
            .map_err(|e| Error::Internal(e.to_string()))?;
        // Every token issued must be one the server can parse again to
        // introspect or revoke it.
        if token.len() > charter_jose::MAX_JWT_BYTES {
            return Err(ProtocolError::invalid_request(
                "the token would be too large; request fewer resources or scopes",
            )
            .into());
        }
        Ok((token, exp))
    }

    /// Verifies one of our access tokens: signature by a published key,
    /// `typ`, issuer, expiry, not revoked. `None` for anything else.
    pub(crate) async fn own_access_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<Arc<Jwt>>, Error> {
        let Some(jwt) = self.verified_token(token, now) else {
            return Ok(None);
        };
        let revoked = match jwt.claim_str("jti") {
            Some(jti) => self.store.access_token_revoked(jti).await?,
            None => true,
        };
        Ok((!revoked).then_some(jwt))
    }

    /// The `jti` claim of `token`, read without verifying anything (this
    /// runs before the caller authenticated, so it must stay cheap), so that
    /// introspection can read its revocation with the caller's record. The
    /// answer is used only for the `jti` the verified token turns out to carry.
    pub fn token_id(&self, token: &str) -> Option<String> {
        let digest = crate::verified::digest(token);
        match self.verified.get(&digest, crate::now()) {
            Some(jwt) => jwt.claim_str("jti").map(str::to_owned),
            None => decode(token).ok()?.claim_str("jti").map(str::to_owned),
        }
    }

    /// One of our access tokens, verified (signature by a published key,
    /// `typ`, issuer, expiry) but not yet checked for revocation.
    fn verified_token(&self, token: &str, now: i64) -> Option<Arc<Jwt>> {
        let digest = crate::verified::digest(token);
        let jwt = match self.verified.get(&digest, now) {
            Some(jwt) => jwt,
            None => {
                let jwt = decode(token).ok()?;
                let exp = jwt.claim_time("exp").unwrap_or(0);
                let valid = jwt.typ() == Some("at+jwt")
                    && jwt.claim_str("iss") == Some(self.issuer.as_str())
                    && exp > now
                    && jwt.claim_str("client_id").is_some()
                    && self.keys.verify(&jwt);
                if !valid {
                    return None;
                }
                let jwt = Arc::new(jwt);
                self.verified.insert(digest, jwt.clone(), exp, now);
                jwt
            }
        };
        Some(jwt)
    }

    /// RFC 7662 §2: what the caller may know about `token`. Tokens of a
    /// client that may not be used now are inactive; so are tokens the
    /// caller is not entitled to (neither its own nor for an audience its
    /// profile may introspect).
    pub async fn introspect(&self, caller: &UsableClient, token: &str) -> Result<Value, Error> {
        if caller.method == AuthMethod::None {
            return Err(Error::InvalidClient {
                description: "public clients cannot introspect tokens".into(),
                via_header: false,
            });
        }
        let inactive = || Ok(json!({"active": false}));
        let now = crate::now();
        let Some(jwt) = self.verified_token(token, now) else {
            // RFC 7662 §2.1: every kind of token is searched.
            return Ok(self
                .introspect_refresh_token(caller, token, now)
                .await?
                .unwrap_or_else(|| json!({"active": false})));
        };
        let revoked = match (jwt.claim_str("jti"), &caller.probed) {
            (None, _) => true,
            (Some(jti), Some((probed, revoked))) if probed == jti => *revoked,
            (Some(jti), _) => self.store.access_token_revoked(jti).await?,
        };
        if revoked {
            return inactive();
        }
        let owner_id = jwt.claim_str("client_id").unwrap_or_default();
        let owner = if owner_id == caller.client_id() {
            Some(caller.in_use.clone())
        } else {
            self.store.client_in_use(owner_id).await?
        };
        let Some(owner) = owner else {
            return inactive();
        };
        let owner_profile = self.policy.profile(&owner.client.profile);
        if unusable(&owner, owner_profile, now).is_some() {
            return inactive();
        }
        // A token from before this incarnation of its client (a metadata
        // document client replaced or re-admitted under the same id).
        if jwt
            .claim_time("iat")
            .is_none_or(|iat| iat < owner.client.issued_at)
        {
            return inactive();
        }
        // The grant and scopes must still be within what the owner's
        // profile allows now.
        // A token whose subject is its client came from client_credentials;
        // any other subject is a user, through the authorization code.
        let grant = if jwt.claim_str("sub") == Some(owner_id) {
            GrantType::ClientCredentials
        } else {
            GrantType::AuthorizationCode
        };
        let still_allowed = owner_profile.is_some_and(|p| {
            let grant_ok = p.grant_types.as_ref().is_none_or(|g| g.contains(&grant));
            let scope_ok = jwt.claim_str("scope").is_none_or(|scope| {
                scope.split(' ').all(|s| {
                    p.scopes
                        .as_ref()
                        .is_none_or(|allowed| allowed.iter().any(|a| a == s))
                })
            });
            grant_ok && scope_ok
        });
        if !still_allowed {
            return inactive();
        }
        let audiences: Vec<&str> = match jwt.claims().get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let entitled = owner_id == caller.client_id()
            || self
                .policy
                .profile(&caller.in_use.client.profile)
                .is_some_and(|p| audiences.iter().any(|a| p.may_introspect(a)));
        if !entitled {
            return inactive();
        }
        let mut body = Map::new();
        body.insert("active".into(), json!(true));
        for claim in [
            "scope",
            "client_id",
            "sub",
            "aud",
            "iss",
            "exp",
            "iat",
            "jti",
            "auth_time",
            "cnf",
        ] {
            if let Some(value) = jwt.claims().get(claim) {
                body.insert(claim.into(), value.clone());
            }
        }
        // RFC 9449 §6.2: a DPoP-bound token's type is DPoP.
        let token_type = if jwt.claims().contains_key("cnf") {
            "DPoP"
        } else {
            "Bearer"
        };
        body.insert("token_type".into(), json!(token_type));
        Ok(Value::Object(body))
    }

    /// RFC 7009 §2.1: revokes one of the caller's access tokens. Unknown,
    /// invalid or expired tokens are not an error; another client's token is.
    pub async fn revoke(
        &self,
        caller: &UsableClient,
        token: &str,
        context: &RequestContext,
    ) -> Result<(), Error> {
        let now = crate::now();
        let Some(jwt) = self.own_access_token(token, now).await? else {
            // RFC 7009 §2.1: a refresh token revokes its whole grant.
            return self.revoke_refresh_token(caller, token, context).await;
        };
        let owner = jwt.claim_str("client_id").unwrap_or_default();
        if owner != caller.client_id() {
            // RFC 7009 §2.1 refuses the request; RFC 6749 §5.2 names the
            // case: invalid_grant covers a token "issued to another client".
            return Err(ProtocolError::new(
                ErrorCode::InvalidGrant,
                "the token was not issued to this client; a client may revoke only its own tokens",
            )
            .into());
        }
        let jti = jwt.claim_str("jti").unwrap_or_default().to_owned();
        let mut event = context.event(format!("client:{owner}"), "token.revoke", "done");
        event.client_id = Some(owner.to_owned());
        event.organization_id = Some(caller.in_use.client.organization_id.clone());
        event.reasons = vec![format!("access token {jti}")];
        self.store
            .apply_change(
                Change::RevokeAccessToken {
                    jti,
                    client_id: owner.to_owned(),
                    expires_at: jwt.claim_time("exp").unwrap_or(now),
                },
                event,
            )
            .await?;
        Ok(())
    }
}

/// The usable public keys of a JWK Set (a client's `jwks` or the document
/// at its `jwks_uri`); keys this server cannot use are skipped.
fn public_keys(set: &Value) -> Vec<PublicKey> {
    set.get("keys")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(|k| PublicKey::from_jwk(k).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// RFC 6749 §3.3: the scope granted. A client may get what it registered
/// and its profile allows now; asking for no scope gets all of that.
pub(crate) fn grant_scope(
    metadata: &ClientMetadata,
    profile: &Profile,
    requested: Option<&str>,
) -> Result<Option<String>, Error> {
    let allowed: Vec<&str> = metadata
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .filter(|s| {
            profile
                .scopes
                .as_ref()
                .is_none_or(|p| p.iter().any(|x| x == s))
        })
        .collect();
    let Some(requested) = requested else {
        // RFC 6749 §3.3: without a request, the profile's default scope
        // (least privilege), else everything the client registered.
        let granted: Vec<&str> = match &profile.default_scope {
            Some(default) => default.split(' ').filter(|s| allowed.contains(s)).collect(),
            None => allowed,
        };
        return Ok((!granted.is_empty()).then(|| granted.join(" ")));
    };
    let valid_token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    };
    let mut granted: Vec<&str> = Vec::new();
    for token in requested.split(' ') {
        if !valid_token(token) {
            return Err(ProtocolError::new(
                ErrorCode::InvalidScope,
                "scope: must be scope tokens separated by single spaces (RFC 6749 section 3.3)",
            )
            .into());
        }
        if !allowed.contains(&token) {
            return Err(ProtocolError::new(
                ErrorCode::InvalidScope,
                format!("scope: {token:?} is not a scope this client may request"),
            )
            .into());
        }
        if !granted.contains(&token) {
            granted.push(token);
        }
    }
    Ok(Some(granted.join(" ")))
}

/// RFC 8707 §2: the audience. Each `resource` must be an absolute URI
/// without a fragment that the client's profile allows; without any, the
/// profile's default resource, or else the issuer itself.
pub(crate) fn audience(
    issuer: &Issuer,
    profile: &Profile,
    resources: &[String],
) -> Result<Vec<String>, Error> {
    if resources.is_empty() {
        return Ok(vec![profile
            .default_resource
            .clone()
            .unwrap_or_else(|| issuer.as_str().to_owned())]);
    }
    if resources.len() > MAX_RESOURCES {
        return Err(ProtocolError::new(
            ErrorCode::InvalidTarget,
            format!("resource: at most {MAX_RESOURCES} resources per token"),
        )
        .into());
    }
    let mut audience = Vec::new();
    for resource in resources {
        // Only URIs already in normalized form: the profile's patterns
        // match the string the token carries, so "/a/../b" or "%2e%2e"
        // must not slip past a prefix.
        let normalized = url::Url::parse(resource)
            .is_ok_and(|u| u.as_str() == resource && u.fragment().is_none() && u.query().is_none());
        if resource.len() > MAX_RESOURCE_LEN || !normalized {
            return Err(ProtocolError::new(
                ErrorCode::InvalidTarget,
                format!("resource: {resource:?} must be an absolute URI in normalized form, without query or fragment, of at most {MAX_RESOURCE_LEN} characters (RFC 8707 section 2)"),
            )
            .into());
        }
        // The issuer itself (its userinfo endpoint) is always a resource.
        if resource != issuer.as_str() && !profile.allows_resource(resource) {
            return Err(ProtocolError::new(
                ErrorCode::InvalidTarget,
                format!(
                    "resource: {resource:?} is not a resource this client may request tokens for"
                ),
            )
            .into());
        }
        if !audience.contains(resource) {
            audience.push(resource.clone());
        }
    }
    Ok(audience)
}
