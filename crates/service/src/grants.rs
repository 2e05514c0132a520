//! The user-facing grants at the token endpoint: `authorization_code` with
//! PKCE (RFC 6749 §4.1.3, RFC 7636 §4.6) and `refresh_token` with rotation
//! and replay detection (RFC 6749 §6, RFC 9700 §4.14); DPoP proofs and
//! sender-constrained tokens (RFC 9449); ID tokens (OIDC Core §3.1.3) and
//! the userinfo endpoint (OIDC Core §5.3).
//!
//! A code or refresh token is a bearer secret known to the store only by
//! its keyed hash. Each is single-use: the store marks it used atomically,
//! and a second use revokes the whole grant it belongs to with every
//! access token issued from it, because one of the two users is an attacker
//! and the server cannot tell which.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use charter_jose::{oidc_hash, verify_dpop_proof, DpopCheck, DpopProof};
use charter_protocol::{AuthMethod, Error as ProtocolError, ErrorCode, GrantType};
use charter_store::{Change, Grant, GrantAccessToken, Issue, RefreshToken};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::credentials::{self, Credential};
use crate::registration::RequestContext;
use crate::token::{audience, TokenService, UsableClient};
use crate::Error;

/// How far in the future a proof's `iat` may be (clock skew).
const DPOP_FUTURE_SKEW_SECS: i64 = 5;
/// DPoP nonces change every this many seconds; the current and previous
/// ones are accepted, so a nonce lives between one and two windows.
const DPOP_NONCE_WINDOW_SECS: i64 = 300;

fn invalid_grant(description: &str) -> Error {
    ProtocolError::new(ErrorCode::InvalidGrant, description).into()
}

fn invalid_proof(description: impl Into<String>) -> Error {
    ProtocolError::new(ErrorCode::InvalidDpopProof, description).into()
}

/// RFC 7636 §4.1, §4.6: the verifier's shape, then S256 against the stored
/// challenge, compared in constant time.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let shaped = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    shaped
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            computed.as_bytes(),
            challenge.as_bytes(),
        ))
}

/// Where a DPoP proof is checked: the token endpoint answers 400, a
/// protected resource 401 with a challenge (RFC 9449 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofSite {
    TokenEndpoint,
    Resource,
}

impl TokenService {
    /// The DPoP nonce for `now` (RFC 9449 §8): the window number and a MAC
    /// of it under the server's hash key, so every replica issues and
    /// accepts the same nonces without storing them.
    pub fn dpop_nonce(&self, now: i64) -> String {
        self.nonce_for_window(now.div_euclid(DPOP_NONCE_WINDOW_SECS))
    }

    fn nonce_for_window(&self, window: i64) -> String {
        let mac = self
            .hasher()
            .hash(Credential::DpopNonce, &window.to_string());
        format!("{window:x}.{}", URL_SAFE_NO_PAD.encode(&mac[..18]))
    }

    fn nonce_valid(&self, nonce: &str, now: i64) -> bool {
        let current = now.div_euclid(DPOP_NONCE_WINDOW_SECS);
        [current, current - 1].iter().any(|w| {
            let expected = self.nonce_for_window(*w);
            bool::from(subtle::ConstantTimeEq::ct_eq(
                expected.as_bytes(),
                nonce.as_bytes(),
            ))
        })
    }

    /// Verifies the request's DPoP proof, if any (RFC 9449 §4.3): every
    /// check of the proof itself, the server nonce, and single use of its
    /// `jti` across replicas. `proofs` are all `DPoP` header values.
    pub async fn dpop_proof(
        &self,
        proofs: &[String],
        method: &str,
        url: &str,
        access_token: Option<&str>,
        site: ProofSite,
    ) -> Result<Option<DpopProof>, Error> {
        let fail = |code: ErrorCode, description: String, nonce: Option<String>| match site {
            ProofSite::TokenEndpoint => match (code, nonce) {
                (ErrorCode::UseDpopNonce, Some(nonce)) => Error::DpopNonce { description, nonce },
                _ => ProtocolError::new(code, description).into(),
            },
            ProofSite::Resource => Error::ResourceDpop {
                code,
                description,
                nonce,
            },
        };
        let proof = match proofs {
            [] => return Ok(None),
            [one] => one,
            _ => {
                return Err(fail(
                    ErrorCode::InvalidDpopProof,
                    "more than one DPoP header (RFC 9449 section 4.3)".into(),
                    None,
                ))
            }
        };
        let now = crate::now();
        let max_age = self.dpop_config().proof_max_age.as_secs() as i64;
        let check = DpopCheck {
            method,
            url,
            now,
            max_age_secs: max_age,
            future_skew_secs: DPOP_FUTURE_SKEW_SECS,
            access_token,
        };
        let proof = verify_dpop_proof(proof, &check)
            .map_err(|e| fail(ErrorCode::InvalidDpopProof, e.to_string(), None))?;
        if self.dpop_config().require_nonce
            && !proof
                .nonce
                .as_deref()
                .is_some_and(|n| self.nonce_valid(n, now))
        {
            let why = if proof.nonce.is_some() {
                "the DPoP proof's nonce is stale or unknown; use the nonce in the DPoP-Nonce header"
            } else {
                "this server requires a nonce in DPoP proofs; use the nonce in the DPoP-Nonce header"
            };
            return Err(fail(
                ErrorCode::UseDpopNonce,
                why.into(),
                Some(self.dpop_nonce(now)),
            ));
        }
        // RFC 9449 §11.1: a proof is single-use within its window.
        let jti_hash: [u8; 32] = Sha256::digest(format!("{url}\0{}", proof.jti).as_bytes()).into();
        if !self
            .store()
            .use_assertion_jti(
                &format!("dpop:{}", proof.jkt),
                &jti_hash,
                proof.iat + max_age + DPOP_FUTURE_SKEW_SECS + 1,
            )
            .await?
        {
            return Err(fail(
                ErrorCode::InvalidDpopProof,
                "this DPoP proof was already used; make a new proof with a new jti for every request".into(),
                None,
            ));
        }
        Ok(Some(proof))
    }

    /// RFC 9449 §5.2 and the profile: whether this client must use DPoP.
    pub(crate) fn require_dpop_if_bound(
        &self,
        client: &UsableClient,
        dpop: Option<&DpopProof>,
    ) -> Result<(), Error> {
        let registered = client.metadata().dpop_bound_access_tokens == Some(true);
        let profile = self
            .policy()
            .profile(&client.record().profile)
            .is_some_and(|p| p.require_dpop);
        if dpop.is_none() && (registered || profile) {
            let why = if registered {
                "the client registered dpop_bound_access_tokens; send a DPoP proof (RFC 9449 section 5.2)"
            } else {
                "the client's profile requires DPoP-bound tokens; send a DPoP proof (RFC 9449)"
            };
            return Err(invalid_proof(why));
        }
        Ok(())
    }

    fn check_grant_allowed(&self, client: &UsableClient, grant: GrantType) -> Result<(), Error> {
        let profile_allows = self
            .policy()
            .profile(&client.record().profile)
            .is_some_and(|p| p.grant_types.as_ref().is_none_or(|g| g.contains(&grant)));
        if !client.metadata().grant_types.contains(&grant) || !profile_allows {
            return Err(ProtocolError::new(
                ErrorCode::UnauthorizedClient,
                format!("the client may not use the {} grant", grant.as_str()),
            )
            .into());
        }
        Ok(())
    }

    /// RFC 6749 §4.1.3 with RFC 7636 §4.6: redeems a code.
    #[allow(clippy::too_many_arguments)]
    pub async fn authorization_code(
        &self,
        client: &UsableClient,
        code: Option<&str>,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        resources: &[String],
        dpop: Option<&DpopProof>,
        context: &RequestContext,
    ) -> Result<Value, Error> {
        self.check_grant_allowed(client, GrantType::AuthorizationCode)?;
        // RFC 9449 §5.2: checked before the code is spent.
        self.require_dpop_if_bound(client, dpop)?;
        let code = code
            .ok_or_else(|| ProtocolError::invalid_request("code: required parameter is missing"))?;
        // Checked before the code is spent; invalid_grant per RFC 9700
        // §2.1.1 (checklist TOK-06).
        let Some(verifier) = code_verifier else {
            return Err(invalid_grant(
                "code_verifier: required; every code was issued with a PKCE challenge (RFC 7636 section 4.5)",
            ));
        };
        let hash = self.hasher().hash(Credential::AuthorizationCode, code);
        let Some(stored) = self.store().take_code(&hash).await? else {
            return Err(invalid_grant(
                "the code is unknown, expired or already used",
            ));
        };
        let now = crate::now();
        // Another client holding a leaked code learns nothing and revokes
        // nothing.
        if stored.client_id != client.client_id() {
            return Err(invalid_grant("the code was issued to another client"));
        }
        if stored.used {
            // RFC 6749 §4.1.2: a code used twice revokes what it issued.
            let mut event = context.event(
                format!("client:{}", client.client_id()),
                "grant.revoke",
                "done",
            );
            event.client_id = Some(stored.client_id.clone());
            event.reasons = vec!["authorization code used twice".into()];
            self.store()
                .apply_change(
                    Change::RevokeGrant {
                        grant_id: stored.grant_id.clone(),
                        client_id: stored.client_id.clone(),
                        user_id: stored.user_id.clone(),
                        now,
                    },
                    event,
                )
                .await?;
            return Err(invalid_grant(
                "the code is unknown, expired or already used",
            ));
        }
        if stored.expires_at <= now {
            return Err(invalid_grant(
                "the code is unknown, expired or already used",
            ));
        }
        match (&stored.redirect_uri, redirect_uri) {
            (Some(expected), Some(given)) if expected == given => {}
            (None, None) => {}
            // The request named none and the client's only URI was used;
            // naming that one URI now is the same.
            (None, Some(given)) if client.metadata().redirect_uris == [given] => {}
            (Some(_), None) => {
                return Err(invalid_grant(
                    "redirect_uri: required, and identical to the authorization request's (RFC 6749 section 4.1.3)",
                ))
            }
            _ => return Err(invalid_grant("redirect_uri does not match the authorization request's")),
        }
        if !pkce_matches(verifier, &stored.code_challenge) {
            return Err(invalid_grant(
                "code_verifier does not match the code_challenge (RFC 7636 section 4.6)",
            ));
        }
        if let Some(jkt) = &stored.dpop_jkt {
            if dpop.is_none_or(|p| &p.jkt != jkt) {
                return Err(invalid_proof(
                    "the DPoP proof's key is not the one named by dpop_jkt in the authorization request (RFC 9449 section 10)",
                ));
            }
        }
        let Some(user) = self.users().user(&stored.user_id).await? else {
            return Err(invalid_grant(
                "the user who authorized this code is disabled or gone",
            ));
        };
        let audience = self.narrow_resources(client, &stored.resources, resources)?;
        let profile = self.policy().profile(&client.record().profile);
        let refresh_lifetime = profile
            .and_then(|p| p.refresh_token_lifetime)
            .map_or(self.tokens_config().refresh_token_lifetime, |d| {
                d.min(self.tokens_config().refresh_token_lifetime)
            });
        // RFC 9449 §5: a public client's refresh tokens are bound to its
        // DPoP key; a confidential client's by its authentication.
        let public = client.method() == AuthMethod::None;
        let grant = Grant {
            id: stored.grant_id.clone(),
            client_id: stored.client_id.clone(),
            user_id: stored.user_id.clone(),
            scope: stored.scope.clone(),
            resources: stored.resources.clone(),
            auth_time: stored.auth_time,
            created_at: now,
            expires_at: now + refresh_lifetime.as_secs() as i64,
            revoked: false,
            dpop_jkt: if public {
                dpop.map(|p| p.jkt.clone())
            } else {
                None
            },
        };
        let issued = IssueRequest {
            subject: &user.id,
            scope: &stored.scope,
            audience,
            auth_time: grant.auth_time,
            nonce: stored.nonce.as_deref(),
            grant_expires_at: grant.expires_at,
        };
        self.issue(client, issued, Some(grant), None, dpop).await
    }

    /// RFC 6749 §6 with rotation (RFC 9700 §4.14.2): a used refresh token
    /// presented again revokes its grant.
    #[allow(clippy::too_many_arguments)]
    pub async fn refresh(
        &self,
        client: &UsableClient,
        refresh_token: Option<&str>,
        scope: Option<&str>,
        resources: &[String],
        dpop: Option<&DpopProof>,
        context: &RequestContext,
    ) -> Result<Value, Error> {
        self.check_grant_allowed(client, GrantType::RefreshToken)?;
        // RFC 9449 §5.2: also for confidential clients, whose refresh
        // tokens are not bound to the key.
        self.require_dpop_if_bound(client, dpop)?;
        let token = refresh_token.ok_or_else(|| {
            ProtocolError::invalid_request("refresh_token: required parameter is missing")
        })?;
        let hash = self.hasher().hash(Credential::RefreshToken, token);
        let unknown = "the refresh token is unknown, expired, revoked or already used";
        let Some((stored, grant)) = self.store().refresh_token(&hash).await? else {
            return Err(invalid_grant(unknown));
        };
        if stored.client_id != client.client_id() {
            return Err(invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        let now = crate::now();
        // A bound token is useless without its key, so someone holding only
        // a copy cannot even revoke the grant with it.
        if let Some(jkt) = &grant.dpop_jkt {
            if dpop.is_none_or(|p| &p.jkt != jkt) {
                return Err(invalid_proof(
                    "the refresh token is bound to a DPoP key; prove possession of that key (RFC 9449 section 5)",
                ));
            }
        }
        if stored.used {
            self.revoke_grant(&grant, "refresh token used twice", context)
                .await?;
            return Err(invalid_grant(unknown));
        }
        if grant.revoked || stored.expires_at <= now || grant.expires_at <= now {
            return Err(invalid_grant(unknown));
        }
        // RFC 9449 §5: a public client presenting a proof gets its refresh
        // tokens bound to that key from now on.
        let bind = (client.method() == AuthMethod::None && grant.dpop_jkt.is_none())
            .then(|| dpop.map(|p| p.jkt.clone()))
            .flatten();
        let Some(user) = self.users().user(&grant.user_id).await? else {
            return Err(invalid_grant("the user of this grant is disabled or gone"));
        };
        // RFC 6749 §6: a narrower scope may be asked for, never a wider one.
        let granted: Vec<&str> = grant.scope.split(' ').filter(|s| !s.is_empty()).collect();
        let scope_now = match scope {
            None => grant.scope.clone(),
            Some(requested) => {
                let mut narrowed: Vec<&str> = Vec::new();
                for s in requested.split(' ') {
                    if !granted.contains(&s) {
                        return Err(ProtocolError::new(
                            ErrorCode::InvalidScope,
                            format!("scope: {s:?} was not granted; a refresh may only narrow the scope (RFC 6749 section 6)"),
                        )
                        .into());
                    }
                    if !narrowed.contains(&s) {
                        narrowed.push(s);
                    }
                }
                narrowed.join(" ")
            }
        };
        // The scopes must still be ones the client and its profile allow.
        crate::token::grant_scope(
            client.metadata(),
            self.policy()
                .profile(&client.record().profile)
                .ok_or_else(|| Error::Internal("profile vanished".into()))?,
            Some(&scope_now),
        )?;
        let audience = self.narrow_resources(client, &grant.resources, resources)?;
        let issued = IssueRequest {
            subject: &user.id,
            scope: &scope_now,
            audience,
            auth_time: grant.auth_time,
            nonce: None,
            grant_expires_at: grant.expires_at,
        };
        match self
            .issue(client, issued, None, Some((hash, &grant, bind)), dpop)
            .await
        {
            Err(Error::Protocol(e)) if e.code == ErrorCode::InvalidGrant => {
                // The token was used concurrently: a replay after all.
                self.revoke_grant(&grant, "refresh token used twice", context)
                    .await?;
                Err(invalid_grant(unknown))
            }
            other => other,
        }
    }

    async fn revoke_grant(
        &self,
        grant: &Grant,
        why: &str,
        context: &RequestContext,
    ) -> Result<(), Error> {
        let mut event = context.event(
            format!("client:{}", grant.client_id),
            "grant.revoke",
            "done",
        );
        event.client_id = Some(grant.client_id.clone());
        event.reasons = vec![why.to_owned()];
        self.store()
            .apply_change(
                Change::RevokeGrant {
                    grant_id: grant.id.clone(),
                    client_id: grant.client_id.clone(),
                    user_id: grant.user_id.clone(),
                    now: crate::now(),
                },
                event,
            )
            .await?;
        Ok(())
    }

    /// RFC 8707 §2.2: a token request may name a subset of the resources
    /// authorized; none means all of them (or the profile's default).
    fn narrow_resources(
        &self,
        client: &UsableClient,
        authorized: &[String],
        requested: &[String],
    ) -> Result<Vec<String>, Error> {
        let profile = self
            .policy()
            .profile(&client.record().profile)
            .ok_or_else(|| Error::Internal("profile vanished".into()))?;
        if requested.is_empty() {
            return audience(self.issuer(), profile, authorized);
        }
        if let Some(extra) = requested.iter().find(|r| !authorized.contains(r)) {
            return Err(ProtocolError::new(
                ErrorCode::InvalidTarget,
                format!("resource: {extra:?} was not authorized for this grant"),
            )
            .into());
        }
        audience(self.issuer(), profile, requested)
    }

    /// Signs the tokens and records them with the grant in one transaction.
    async fn issue(
        &self,
        client: &UsableClient,
        request: IssueRequest<'_>,
        new_grant: Option<Grant>,
        rotated: Option<([u8; 32], &Grant, Option<String>)>,
        dpop: Option<&DpopProof>,
    ) -> Result<Value, Error> {
        let now = crate::now();
        let jti = credentials::random_id()?;
        let (access_token, exp) = self.sign_access_token(
            client,
            request.subject,
            Some(request.scope),
            &request.audience,
            dpop.map(|p| p.jkt.as_str()),
            Some(request.auth_time),
            &jti,
        )?;
        let grant_id = new_grant
            .as_ref()
            .map(|g| g.id.clone())
            .or_else(|| rotated.as_ref().map(|(_, g, _)| g.id.clone()))
            .ok_or_else(|| Error::Internal("an issue needs a grant".into()))?;
        // Refresh tokens only for a client that may use them now.
        let refreshable = client
            .metadata()
            .grant_types
            .contains(&GrantType::RefreshToken)
            && self
                .policy()
                .profile(&client.record().profile)
                .is_some_and(|p| {
                    p.grant_types
                        .as_ref()
                        .is_none_or(|g| g.contains(&GrantType::RefreshToken))
                });
        // Signed before anything is stored, so a failure here spends no
        // code and rotates no refresh token.
        let id_token = if request.scope.split(' ').any(|s| s == "openid") {
            Some(self.id_token(client, &request, &access_token, now, exp)?)
        } else {
            None
        };
        let refresh = if refreshable {
            let secret = credentials::generate(Credential::RefreshToken)?;
            let record = RefreshToken {
                token_hash: self
                    .hasher()
                    .hash(Credential::RefreshToken, secret.expose()),
                grant_id: grant_id.clone(),
                client_id: client.client_id().to_owned(),
                issued_at: now,
                expires_at: request.grant_expires_at,
                used: false,
            };
            Some((secret, record))
        } else {
            None
        };
        let stored = self
            .store()
            .issue(Issue {
                grant_id,
                grant: new_grant,
                rotated_from: rotated.as_ref().map(|(hash, _, _)| *hash),
                refresh_token: refresh.as_ref().map(|(_, r)| r.clone()),
                access_token: GrantAccessToken {
                    jti,
                    expires_at: exp,
                },
                bind_dpop_jkt: rotated.and_then(|(_, _, bind)| bind),
            })
            .await?;
        if !stored {
            return Err(invalid_grant("the grant was revoked"));
        }
        let mut body = json!({
            "access_token": access_token,
            "token_type": if dpop.is_some() { "DPoP" } else { "Bearer" },
            "expires_in": exp - now,
            "scope": request.scope,
        });
        let map = body
            .as_object_mut()
            .ok_or_else(|| Error::Internal("token response".into()))?;
        if let Some((secret, _)) = refresh {
            map.insert("refresh_token".into(), json!(secret.expose()));
        }
        if let Some(id_token) = id_token {
            map.insert("id_token".into(), json!(id_token));
        }
        self.usage_recorder().record(client.client_id(), now);
        Ok(body)
    }

    /// OIDC Core §2, §3.1.3.6: the ID token, signed with the client's
    /// registered `id_token_signed_response_alg` (RS256 by default).
    fn id_token(
        &self,
        client: &UsableClient,
        request: &IssueRequest<'_>,
        access_token: &str,
        now: i64,
        exp: i64,
    ) -> Result<String, Error> {
        let alg = client
            .metadata()
            .id_token_signed_response_alg
            .clone()
            .unwrap_or_else(|| "RS256".into());
        let key = self
            .keys()
            .signer(&alg, now)
            .ok_or_else(|| Error::Internal(format!("no {alg} signing key is active")))?;
        let mut claims = json!({
            "iss": self.issuer().as_str(),
            "sub": request.subject,
            "aud": client.client_id(),
            "iat": now,
            "exp": exp,
            "auth_time": request.auth_time,
        });
        let map = claims
            .as_object_mut()
            .ok_or_else(|| Error::Internal("id token claims".into()))?;
        if let Some(nonce) = request.nonce {
            map.insert("nonce".into(), json!(nonce));
        }
        if let Some(at_hash) = oidc_hash(&alg, access_token) {
            map.insert("at_hash".into(), json!(at_hash));
        }
        key.sign_jwt("JWT", &claims)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// OIDC Core §5.3: claims about the user the access token is for.
    /// `authorization` is the `Authorization` header; DPoP-bound tokens
    /// need the DPoP scheme and a proof with `ath` (RFC 9449 §7).
    pub async fn userinfo(
        &self,
        authorization: Option<&str>,
        proofs: &[String],
        method: &str,
        url: &str,
    ) -> Result<Value, Error> {
        let Some(header) = authorization else {
            return Err(Error::MissingToken);
        };
        let (scheme, token) = header.split_once(' ').ok_or(Error::MissingToken)?;
        let token = token.trim();
        let dpop_scheme = scheme.eq_ignore_ascii_case("dpop");
        if !dpop_scheme && !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Error::MissingToken);
        }
        let now = crate::now();
        let Some(jwt) = self.own_access_token(token, now).await? else {
            return Err(Error::InvalidToken(
                "the access token is invalid, expired or revoked",
            ));
        };
        // RFC 9068 §4: userinfo is a resource like any other; a token
        // audience-restricted to another resource is not for it.
        let issuer = self.issuer().as_str();
        let for_us = match jwt.claims().get("aud") {
            Some(Value::String(a)) => a == issuer,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(issuer)),
            _ => false,
        };
        if !for_us {
            return Err(Error::InvalidToken(
                "the access token's audience is not this server; request one without resource, or with the issuer as a resource",
            ));
        }
        // The token's client must still be usable, as at introspection.
        let owner = self
            .store()
            .client_in_use(jwt.claim_str("client_id").unwrap_or_default())
            .await?;
        if owner.as_ref().is_none_or(|o| {
            crate::token::unusable(o, self.policy().profile(&o.client.profile), now).is_some()
        }) {
            return Err(Error::InvalidToken(
                "the access token is invalid, expired or revoked",
            ));
        }
        let bound = jwt
            .claims()
            .get("cnf")
            .and_then(|c| c.get("jkt"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        match (&bound, dpop_scheme) {
            (Some(jkt), true) => {
                let proof = self
                    .dpop_proof(proofs, method, url, Some(token), ProofSite::Resource)
                    .await?
                    .ok_or_else(|| Error::ResourceDpop {
                        code: ErrorCode::InvalidDpopProof,
                        description: "a DPoP proof is required with a DPoP-bound token".into(),
                        nonce: None,
                    })?;
                if &proof.jkt != jkt {
                    return Err(Error::ResourceDpop {
                        code: ErrorCode::InvalidToken,
                        description: "the DPoP proof was made with another key than the token is bound to".into(),
                        nonce: None,
                    });
                }
            }
            (Some(_), false) => {
                return Err(Error::ResourceDpop {
                    code: ErrorCode::InvalidToken,
                    description: "the token is DPoP-bound; present it with the DPoP scheme and a proof (RFC 9449 section 7.1)".into(),
                    nonce: None,
                })
            }
            (None, true) => {
                return Err(Error::InvalidToken("the token is not DPoP-bound; present it as a Bearer token"))
            }
            (None, false) => {}
        }
        let scopes: Vec<&str> = jwt
            .claim_str("scope")
            .unwrap_or_default()
            .split(' ')
            .collect();
        if !scopes.contains(&"openid") {
            return Err(Error::Forbidden(
                "the access token was not issued for the openid scope".into(),
            ));
        }
        let subject = jwt.claim_str("sub").unwrap_or_default();
        let Some(user) = self.users().user(subject).await? else {
            return Err(Error::InvalidToken(
                "the access token is invalid, expired or revoked",
            ));
        };
        let mut claims = json!({ "sub": user.id });
        let map = claims
            .as_object_mut()
            .ok_or_else(|| Error::Internal("userinfo".into()))?;
        if scopes.contains(&"profile") {
            map.insert("preferred_username".into(), json!(user.username));
            if let Some(name) = &user.name {
                map.insert("name".into(), json!(name));
            }
        }
        if scopes.contains(&"email") {
            if let Some(email) = &user.email {
                map.insert("email".into(), json!(email));
            }
        }
        Ok(claims)
    }
}

impl TokenService {
    /// The refresh token `token` if it is one of ours, unused, unexpired
    /// and its grant not revoked.
    async fn live_refresh_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<(RefreshToken, Grant)>, Error> {
        if !token.starts_with("chrt_") || token.len() > 128 {
            return Ok(None);
        }
        let hash = self.hasher().hash(Credential::RefreshToken, token);
        Ok(self
            .store()
            .refresh_token(&hash)
            .await?
            .filter(|(r, g)| !r.used && !g.revoked && r.expires_at > now && g.expires_at > now))
    }

    /// RFC 7662 for refresh tokens: only the client they were issued to
    /// learns anything about them.
    pub(crate) async fn introspect_refresh_token(
        &self,
        caller: &UsableClient,
        token: &str,
        now: i64,
    ) -> Result<Option<Value>, Error> {
        let Some((refresh, grant)) = self.live_refresh_token(token, now).await? else {
            return Ok(None);
        };
        if refresh.client_id != caller.client_id() {
            return Ok(None);
        }
        let mut body = json!({
            "active": true,
            "client_id": refresh.client_id,
            "sub": grant.user_id,
            "scope": grant.scope,
            "iss": self.issuer().as_str(),
            "iat": refresh.issued_at,
            "exp": refresh.expires_at,
        });
        if let (Some(jkt), Some(map)) = (&grant.dpop_jkt, body.as_object_mut()) {
            map.insert("cnf".into(), json!({ "jkt": jkt }));
        }
        Ok(Some(body))
    }

    /// RFC 7009 §2.1: revoking a refresh token revokes its grant and the
    /// access tokens issued from it (§2.1 SHOULD). Another client's refresh
    /// token is refused and stays valid; unknown tokens are not an error.
    pub(crate) async fn revoke_refresh_token(
        &self,
        caller: &UsableClient,
        token: &str,
        context: &RequestContext,
    ) -> Result<(), Error> {
        let Some((refresh, grant)) = self.live_refresh_token(token, crate::now()).await? else {
            return Ok(());
        };
        if refresh.client_id != caller.client_id() {
            return Err(invalid_grant(
                "the token was not issued to this client; a client may revoke only its own tokens",
            ));
        }
        self.revoke_grant(&grant, "refresh token revoked by its client", context)
            .await
    }
}

/// What a user-facing issuance is for.
struct IssueRequest<'a> {
    subject: &'a str,
    scope: &'a str,
    audience: Vec<String>,
    auth_time: i64,
    nonce: Option<&'a str>,
    grant_expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::pkce_matches;

    #[test]
    fn pkce_s256_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            challenge
        ));
        // plain: the verifier equal to the challenge is not S256.
        assert!(!pkce_matches(challenge, challenge));
        assert!(!pkce_matches("short", challenge));
    }
}
