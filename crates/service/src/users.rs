//! End users: the [`UserDirectory`] interface the authorization flow signs
//! people in through, and [`LocalUsers`], the built-in directory kept in
//! the store, whose users an administrator creates, disables and enables,
//! and whose remembered consents they can list and revoke.
//!
//! Passwords are hashed with argon2id (RFC 9106) at the OWASP parameters and
//! stored as PHC strings; neither a password nor its hash is ever logged,
//! audited or returned. This module does not run the login or consent
//! pages (that is the authorization endpoint's job) and does not federate
//! with an upstream identity provider: one can implement [`UserDirectory`]
//! later without the flow changing.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use charter_protocol::Error as ProtocolError;
use charter_store::{Change, Consent, Store, User};
use tokio::sync::Semaphore;

use crate::credentials;
use crate::registration::RequestContext;
use crate::Error;

/// An authenticated end user, as the authorization flow sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndUser {
    /// The stable subject identifier (`sub`).
    pub id: String,
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

impl From<&User> for EndUser {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.clone(),
            username: user.username.clone(),
            name: user.name.clone(),
            email: user.email.clone(),
        }
    }
}

/// Where end users come from; the flow only knows this trait (an upstream
/// identity provider can implement it later).
#[async_trait::async_trait]
pub trait UserDirectory: Send + Sync {
    /// Username and password; `None` for an unknown user, a wrong password
    /// or a disabled user — the same answer after the same work, so that
    /// neither the answer nor its timing reveals which usernames exist.
    async fn authenticate(&self, username: &str, password: &str) -> Result<Option<EndUser>, Error>;
    /// The user now, if they exist and are enabled.
    async fn user(&self, id: &str) -> Result<Option<EndUser>, Error>;
}

/// Memory cost in KiB, iterations and lanes: the OWASP Password Storage
/// Cheat Sheet's first argon2id configuration (m=19 MiB, t=2, p=1).
const ARGON2_MEMORY_KIB: u32 = 19_456;
const ARGON2_ITERATIONS: u32 = 2;
const ARGON2_LANES: u32 = 1;

/// Usernames: ASCII letters, digits and `._@-`, at most this many.
pub const MAX_USERNAME_CHARS: usize = 64;
/// Passwords: at least 12 characters (NIST SP 800-63B §3.1.1.2 asks for
/// at least 8 when single-factor; we ask for more) and at most 256, which
/// bounds the hashing work an attacker can ask for.
pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 256;
const MAX_NAME_CHARS: usize = 200;
/// RFC 5321 §4.5.3.1.3: a path holds at most 256 octets, so an address at most 254.
const MAX_EMAIL_CHARS: usize = 254;
/// The most users one listing returns.
const MAX_LIST: u32 = 10_000;

/// The argon2 parameters new hashes get.
fn owasp_params() -> Params {
    Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
        // The constants are within argon2's ranges (the unit tests check
        // the parameters hashes get); its default is the same setting.
        .unwrap_or_default()
}

/// The built-in user directory, kept in the store.
pub struct LocalUsers {
    store: Arc<dyn Store>,
    hashing: Arc<Hashing>,
}

/// The argon2 configuration and the resources hashing may use.
struct Hashing {
    params: Params,
    /// A hash of a password nobody knows, verified against when the
    /// username is unknown so that the answer takes as long as for a user
    /// who exists. Computed on first use.
    dummy: OnceLock<String>,
    /// Each hash holds 19 MiB for tens of milliseconds: at most one per
    /// core at a time, so a burst of logins queues rather than exhausting
    /// memory in the blocking thread pool.
    permits: Arc<Semaphore>,
}

impl Hashing {
    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A new PHC string for `password` with a fresh 128-bit salt from the
    /// OS random source (RFC 9106 §3.1 recommends 128 bits).
    fn hash(&self, password: &str) -> Result<String, Error> {
        let salt = SaltString::encode_b64(&credentials::random_bytes::<16>()?)
            .map_err(|e| Error::Internal(format!("argon2 salt encoding failed: {e}")))?;
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| Error::Internal(format!("argon2 hashing failed: {e}")))
    }

    /// Whether `password` matches the PHC string `phc`, with the parameters
    /// the string records (so hashes made under older parameters still
    /// verify). A malformed string verifies nothing.
    fn verify(&self, password: &str, phc: &str) -> bool {
        match PasswordHash::new(phc) {
            Ok(parsed) => self
                .argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => {
                tracing::error!("a stored password hash is not a PHC string");
                false
            }
        }
    }

    fn dummy(&self) -> Result<&str, Error> {
        if let Some(dummy) = self.dummy.get() {
            return Ok(dummy);
        }
        // Two first logins may both compute one; either result serves.
        let unknowable = credentials::random_id()?;
        let hash = self.hash(&unknowable)?;
        Ok(self.dummy.get_or_init(|| hash))
    }
}

impl LocalUsers {
    pub fn new(store: Arc<dyn Store>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            store,
            hashing: Arc::new(Hashing {
                params: owasp_params(),
                dummy: OnceLock::new(),
                permits: Arc::new(Semaphore::new(cores)),
            }),
        }
    }

    /// Runs `work` (hashing or verifying) on the blocking pool, one per core
    /// at a time: argon2 is deliberately slow and must not stall the
    /// async workers. The permit goes with the work, so a caller that
    /// gives up does not free a slot while its hash still runs.
    async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Hashing) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let permit = self
            .hashing
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::Internal(format!("password hashing closed: {e}")))?;
        let hashing = self.hashing.clone();
        tokio::task::spawn_blocking(move || {
            let answer = work(&hashing);
            drop(permit);
            answer
        })
        .await
        .map_err(|e| Error::Internal(format!("password hashing task failed: {e}")))?
    }

    /// Admin: creates an enabled user. The username is stored in lower case
    /// (`Alice` and `alice` are one user, so nobody can pose as another by
    /// case alone); the answer is the stored record, whose `Debug` and
    /// whose admin API form leave out the password hash.
    pub async fn create(
        &self,
        username: &str,
        password: &str,
        name: Option<String>,
        email: Option<String>,
        context: &RequestContext,
    ) -> Result<User, Error> {
        let username = validate_username(username)?;
        validate_password(password)?;
        let name = validate_optional("name", name, MAX_NAME_CHARS)?;
        let email = validate_optional("email", email, MAX_EMAIL_CHARS)?;
        if let Some(email) = &email {
            validate_email(email)?;
        }
        // A cheap early answer; the insert below decides under concurrency.
        if self.store.user_by_username(&username).await?.is_some() {
            return Err(taken(&username));
        }
        let password = password.to_owned();
        let password_hash = self.hashing(move |h| h.hash(&password)).await?;
        // The prefix keeps user ids apart from client ids, so a `sub` never
        // names a user and a client at once (RFC 9068 §5, RFC 9700 §4.15).
        let user = User {
            id: format!("usr_{}", credentials::random_id()?),
            username,
            password_hash,
            name,
            email,
            disabled: false,
            created_at: crate::now(),
        };
        let mut event = context.admin_event("user.create", "done");
        event.reasons = vec![format!("user {} ({})", user.id, user.username)];
        if !self.store.insert_user(user.clone(), event).await? {
            return Err(taken(&user.username));
        }
        tracing::info!(user_id = %user.id, "user created");
        Ok(user)
    }

    /// Admin: disables a user (their sessions end and every grant they made
    /// is revoked) or enables them again. False if there is no such user;
    /// setting the state a user already has changes and audits nothing.
    pub async fn set_disabled(
        &self,
        id: &str,
        disabled: bool,
        context: &RequestContext,
    ) -> Result<bool, Error> {
        let Some(user) = self.store.user(id).await? else {
            return Ok(false);
        };
        if user.disabled == disabled {
            return Ok(true);
        }
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        let mut event = context.admin_event(action, "done");
        event.reasons = vec![format!("user {id} ({})", user.username)];
        let change = Change::SetUserDisabled {
            user_id: id.to_owned(),
            disabled,
        };
        if self.store.apply_change(change, event).await? {
            tracing::info!(user_id = %id, disabled, "user disabled state changed");
        }
        Ok(true)
    }

    /// Admin: users by username, at most `limit` (capped at 10,000).
    pub async fn list(&self, limit: u32) -> Result<Vec<User>, Error> {
        Ok(self.store.users(limit.clamp(1, MAX_LIST)).await?)
    }

    /// Admin: a user's remembered consents, by client id; a not-found error
    /// for an unknown user.
    pub async fn consents(&self, user_id: &str) -> Result<Vec<Consent>, Error> {
        if self.store.user(user_id).await?.is_none() {
            return Err(no_such_user(user_id));
        }
        Ok(self.store.consents(user_id).await?)
    }

    /// Admin: withdraws a user's consent for a client and revokes every
    /// grant of that user to that client, with its tokens. False if the
    /// user had no consent for the client.
    pub async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        context: &RequestContext,
    ) -> Result<bool, Error> {
        if self.store.consent(user_id, client_id).await?.is_none() {
            return Ok(false);
        }
        let mut event = context.admin_event("consent.revoke", "done");
        event.client_id = Some(client_id.to_owned());
        event.organization_id = self
            .store
            .client(client_id)
            .await?
            .map(|c| c.organization_id);
        event.reasons = vec![format!("user {user_id}")];
        let change = Change::RevokeConsent {
            user_id: user_id.to_owned(),
            client_id: client_id.to_owned(),
        };
        let revoked = self.store.apply_change(change, event).await?;
        if revoked {
            tracing::info!(user_id = %user_id, client_id = %client_id, "consent revoked");
        }
        Ok(revoked)
    }
}

#[async_trait::async_trait]
impl UserDirectory for LocalUsers {
    async fn authenticate(&self, username: &str, password: &str) -> Result<Option<EndUser>, Error> {
        // A malformed username names nobody but still costs a verification
        // against the dummy hash. The password is cut just past the longest
        // one `create` accepts: it still cannot match, and the hashing work
        // a caller can demand stays bounded.
        let found = match validate_username(username) {
            Ok(username) => self.store.user_by_username(&username).await?,
            Err(_) => None,
        };
        let password: String = password.chars().take(MAX_PASSWORD_CHARS + 1).collect();
        let stored = found.as_ref().map(|u| u.password_hash.clone());
        let matches = self
            .hashing(move |h| {
                let phc = match &stored {
                    Some(phc) => phc.as_str(),
                    None => h.dummy()?,
                };
                Ok(h.verify(&password, phc))
            })
            .await?;
        Ok(match found {
            Some(user) if matches && usable(&user) => Some(EndUser::from(&user)),
            _ => None,
        })
    }

    async fn user(&self, id: &str) -> Result<Option<EndUser>, Error> {
        Ok(self
            .store
            .user(id)
            .await?
            .filter(usable)
            .map(|u| EndUser::from(&u)))
    }
}

fn usable(user: &User) -> bool {
    !user.disabled
}

fn taken(username: &str) -> Error {
    Error::Conflict(format!("username: {username:?} is taken"))
}

fn no_such_user(id: &str) -> Error {
    Error::NotFound(format!("user: {id:?} does not exist"))
}

/// 1–64 characters of `[A-Za-z0-9._@-]`, answered in lower case.
fn validate_username(username: &str) -> Result<String, Error> {
    let length = username.chars().count();
    if !(1..=MAX_USERNAME_CHARS).contains(&length)
        || !username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))
    {
        return Err(ProtocolError::invalid_request(format!(
            "username: use 1 to {MAX_USERNAME_CHARS} characters of A-Z, a-z, 0-9 and . _ @ -"
        ))
        .into());
    }
    Ok(username.to_ascii_lowercase())
}

/// 12–256 characters of anything. The message never quotes the password.
fn validate_password(password: &str) -> Result<(), Error> {
    let length = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&length) {
        return Err(ProtocolError::invalid_request(format!(
            "password: must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long"
        ))
        .into());
    }
    Ok(())
}

/// An optional display value: absent stays absent; present must be
/// non-blank, at most `max` characters and free of control characters.
fn validate_optional(
    member: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, Error> {
    let Some(value) = value else {
        return Ok(None);
    };
    let length = value.chars().count();
    if value.trim().is_empty() || length > max || value.chars().any(char::is_control) {
        return Err(ProtocolError::invalid_request(format!(
            "{member}: use 1 to {max} characters without control characters, or leave it out"
        ))
        .into());
    }
    Ok(Some(value))
}

/// A plausible address: one `@` with something on both sides, no spaces.
/// Deliverability is not our concern; this catches swapped fields.
fn validate_email(email: &str) -> Result<(), Error> {
    let plausible = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if plausible {
        Ok(())
    } else {
        Err(ProtocolError::invalid_request(format!(
            "email: {email:?} is not an address of the form local@domain"
        ))
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashing() -> Hashing {
        Hashing {
            params: owasp_params(),
            dummy: OnceLock::new(),
            permits: Arc::new(Semaphore::new(1)),
        }
    }

    /// The description of a refusal, or "ok".
    fn outcome<T>(result: Result<T, Error>) -> String {
        match result {
            Ok(_) => "ok".into(),
            Err(Error::Protocol(e)) => format!("{}: {}", e.code, e.description),
            Err(other) => format!("unexpected {other:?}"),
        }
    }

    fn check_username(input: &str, expected: &str) {
        assert_eq!(outcome(validate_username(input)), expected, "{input:?}");
    }

    const BAD_USERNAME: &str =
        "invalid_request: username: use 1 to 64 characters of A-Z, a-z, 0-9 and . _ @ -";

    #[test]
    fn usernames() {
        check_username("alice", "ok");
        check_username("a", "ok");
        check_username("alice.smith-2_x@example.com", "ok");
        check_username(&"a".repeat(64), "ok");
        check_username("", BAD_USERNAME);
        check_username(&"a".repeat(65), BAD_USERNAME);
        check_username("alice smith", BAD_USERNAME);
        check_username("al:ce", BAD_USERNAME);
        check_username("\u{e9}lodie", BAD_USERNAME);
        check_username("alice\n", BAD_USERNAME);
        // One user per name whatever its case.
        assert_eq!(
            validate_username("Alice@Example.COM").unwrap(),
            "alice@example.com"
        );
    }

    #[test]
    fn passwords_are_12_to_256_characters_and_never_quoted() {
        let bad = "invalid_request: password: must be 12 to 256 characters long";
        assert_eq!(outcome(validate_password("correct horse")), "ok");
        assert_eq!(outcome(validate_password(&"x".repeat(12))), "ok");
        assert_eq!(outcome(validate_password(&"x".repeat(256))), "ok");
        // Characters, not bytes: twelve two-byte characters are enough.
        assert_eq!(outcome(validate_password(&"\u{e9}".repeat(12))), "ok");
        assert_eq!(outcome(validate_password("")), bad);
        assert_eq!(outcome(validate_password("hunter2hunt")), bad);
        assert_eq!(outcome(validate_password(&"x".repeat(257))), bad);
        assert!(!outcome(validate_password("hunter2hunt")).contains("hunter2"));
    }

    #[test]
    fn names_and_emails_are_optional_and_bounded() {
        let name = |v: &str| outcome(validate_optional("name", Some(v.into()), MAX_NAME_CHARS));
        assert_eq!(
            outcome(validate_optional("name", None, MAX_NAME_CHARS)),
            "ok"
        );
        assert_eq!(name("Alice Smith"), "ok");
        assert_eq!(name(&"\u{e9}".repeat(200)), "ok");
        let bad_name = "invalid_request: name: use 1 to 200 characters without control characters, or leave it out";
        assert_eq!(name(""), bad_name);
        assert_eq!(name("   "), bad_name);
        assert_eq!(name(&"a".repeat(201)), bad_name);
        assert_eq!(name("Alice\nBob"), bad_name);

        let email = |v: &str| outcome(validate_email(v));
        assert_eq!(email("alice@example.com"), "ok");
        for bad in [
            "alice",
            "@example.com",
            "alice@",
            "a@b@c",
            "alice @example.com",
        ] {
            assert!(email(bad).starts_with("invalid_request: email: "), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(
            outcome(validate_optional("email", Some(long), MAX_EMAIL_CHARS))
                .starts_with("invalid_request: email: use 1 to 254")
        );
    }

    // RFC 9106 §3.1 and the OWASP parameters: argon2id, version 19,
    // m=19456 KiB, t=2, p=1, in a PHC string with a random salt.
    #[test]
    fn hashes_are_argon2id_phc_strings_that_verify() {
        let h = hashing();
        let phc = h.hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let parsed = PasswordHash::new(&phc).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(parsed.salt.is_some_and(|s| s.as_str().len() >= 22));
        assert!(h.verify("correct horse battery", &phc));
        assert!(!h.verify("correct horse batterY", &phc));
        assert!(!h.verify("correct horse battery", "not a PHC string"));
        // A fresh salt each time: equal passwords hash differently.
        assert_ne!(phc, h.hash("correct horse battery").unwrap());
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let h = hashing();
        let dummy = h.dummy().unwrap().to_owned();
        assert!(dummy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(h.dummy().unwrap(), dummy, "computed once");
        assert!(!h.verify("", &dummy));
    }
}
