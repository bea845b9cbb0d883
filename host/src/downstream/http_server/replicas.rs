//! `[replicas]`: session ids for several interpose processes behind one address
//! (docs/deploy.md). A session that can move carries its state in its id, sealed with
//! the key every replica shares (AES-256-GCM, random 96-bit nonces, from aws-lc-rs);
//! one that cannot (a stdio backend) carries the name of its replica in clear, for the
//! load balancer to route on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::downstream::auth::Principal;
use crate::wire::handoff::HandoffState;

/// The `[replicas]` table: sessions that continue on another replica, and ids that
/// name the replica a session cannot leave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicasConfig {
    /// The environment variable holding the key every replica shares: 32 random
    /// bytes, base64.
    pub key_env: String,
    /// This replica's name, in the ids of sessions that cannot move (stdio backends).
    #[serde(default)]
    pub name: Option<String>,
    /// The environment variable holding this replica's name (a pod's name), when the
    /// replicas share one config file.
    #[serde(default)]
    pub name_env: Option<String>,
}

/// What starts the id of a session that can move: the format's version.
const PORTABLE_PREFIX: &str = "v1.";
/// Between a replica's name and the random part of a sticky id.
pub const STICKY_SEPARATOR: char = ':';
/// Binds the ciphertext to its use: a sealed id is not valid as anything else.
const AAD: &[u8] = b"interpose session id v1";
const KEY_BYTES: usize = 32;

/// Why `[replicas]` cannot be used. The text is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum ReplicasError {
    #[error("[replicas] key_env: the environment variable `{0}` is not set or is empty")]
    MissingKey(String),
    #[error(
        "[replicas] key_env: `{0}` must hold {KEY_BYTES} random bytes in base64 (`openssl rand -base64 32`); {1}"
    )]
    BadKey(String, String),
    #[error("[replicas]: give this replica's name with `name` or `name_env`")]
    NoName,
    #[error("[replicas] name_env: the environment variable `{0}` is not set or is empty")]
    MissingName(String),
    #[error(
        "[replicas] name `{0}`: use only letters, digits, `.`, `_` and `-` (it is part of session ids)"
    )]
    BadName(String),
}

/// This replica's name and the key all replicas share.
pub struct Replicas {
    name: String,
    key: RandomizedNonceKey,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What a session id says about where its session lives.
#[derive(Debug, PartialEq, Eq)]
pub enum IdKind<'a> {
    /// Sealed state: any replica with the key can continue it.
    Portable,
    /// Bound to the replica of this name.
    Sticky(&'a str),
    /// Neither (a plain id, or garbage).
    Other,
}

/// Why a sealed id was not accepted; the client is told only "not found".
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "it does not open with this replica's key (tampered with, forged, or sealed with another key)"
    )]
    Unreadable,
    #[error("it was opened by another party ({0})")]
    OtherParty(String),
}

/// What is sealed into a portable id.
#[derive(Serialize, Deserialize)]
struct Ticket {
    /// Seconds since the epoch when it was sealed.
    #[serde(rename = "t")]
    issued: u64,
    /// Who opened the session (`[auth]`).
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    party: Option<Party>,
    #[serde(rename = "s")]
    session: HandoffState,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Party {
    #[serde(rename = "i")]
    issuer: String,
    #[serde(rename = "u")]
    subject: String,
}

impl Party {
    fn of(principal: Option<&Principal>) -> Option<Party> {
        principal.map(|p| Party {
            issuer: p.issuer.clone(),
            subject: p.subject.clone(),
        })
    }
}

impl Replicas {
    /// Reads the key and the name from the environment as `[replicas]` says.
    pub fn from_config(config: &ReplicasConfig) -> Result<Self, ReplicasError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let key_text = env(&config.key_env)
            .ok_or_else(|| ReplicasError::MissingKey(config.key_env.clone()))?;
        let name = match (&config.name, &config.name_env) {
            (Some(name), _) => name.clone(),
            (None, Some(var)) => env(var).ok_or_else(|| ReplicasError::MissingName(var.clone()))?,
            (None, None) => return Err(ReplicasError::NoName),
        };
        Self::new(name, key_text.trim()).map_err(|e| match e {
            ReplicasError::BadKey(_, why) => ReplicasError::BadKey(config.key_env.clone(), why),
            other => other,
        })
    }

    /// A replica named `name` with the base64 key `key`.
    pub fn new(name: String, key: &str) -> Result<Self, ReplicasError> {
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
        if !valid_name {
            return Err(ReplicasError::BadName(name));
        }
        let bad_key = |why: String| ReplicasError::BadKey(String::new(), why);
        let bytes = STANDARD
            .decode(key)
            .map_err(|e| bad_key(format!("it is not base64: {e}")))?;
        if bytes.len() != KEY_BYTES {
            return Err(bad_key(format!("it holds {} bytes", bytes.len())));
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| bad_key("the AEAD refused it".into()))?;
        Ok(Replicas { name, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The id of a session that cannot leave this replica: `{name}:{128 random bits}`.
    pub fn sticky_id(&self, random: &str) -> String {
        format!("{}{STICKY_SEPARATOR}{random}", self.name)
    }

    pub fn classify<'a>(&self, id: &'a str) -> IdKind<'a> {
        if id.starts_with(PORTABLE_PREFIX) {
            return IdKind::Portable;
        }
        match id.split_once(STICKY_SEPARATOR) {
            Some((name, _)) if !name.is_empty() => IdKind::Sticky(name),
            _ => IdKind::Other,
        }
    }

    /// A session id that carries `session`, bound to `principal`.
    pub fn seal(&self, principal: Option<&Principal>, session: HandoffState) -> String {
        let ticket = Ticket {
            issued: now_secs(),
            party: Party::of(principal),
            session,
        };
        // Serializing plain data with string keys cannot fail.
        let mut sealed = serde_json::to_vec(&ticket).unwrap_or_default();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(AAD), &mut sealed)
            .expect("AES-GCM seals any message shorter than 64 GiB");
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&sealed);
        format!("{PORTABLE_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// The session a portable id carries, when it was sealed with our key for the
    /// party `principal`, and how long ago it was sealed.
    pub fn open(
        &self,
        id: &str,
        principal: Option<&Principal>,
    ) -> Result<(HandoffState, Duration), Refused> {
        let ticket = id
            .strip_prefix(PORTABLE_PREFIX)
            .and_then(|text| URL_SAFE_NO_PAD.decode(text).ok())
            .and_then(|bytes| self.unseal(bytes))
            .ok_or(Refused::Unreadable)?;
        if ticket.party != Party::of(principal) {
            let who = match &ticket.party {
                Some(party) => format!("`{}` of {}", party.subject, party.issuer),
                None => "an unauthenticated client".into(),
            };
            return Err(Refused::OtherParty(who));
        }
        let age = Duration::from_secs(now_secs().saturating_sub(ticket.issued));
        Ok((ticket.session, age))
    }

    fn unseal(&self, mut bytes: Vec<u8>) -> Option<Ticket> {
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).ok()?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(AAD), &mut sealed)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::handoff::BackendState;

    const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const KEY_B: &str = "HxobHBkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAE=";

    fn state() -> HandoffState {
        HandoffState {
            initialize: Some(crate::wire::jsonrpc::raw(r#"{"clientInfo":{"name":"c"}}"#)),
            backends: vec![BackendState {
                name: "one".into(),
                session_id: Some("backend-session".into()),
                version: Some("2025-06-18".into()),
            }],
        }
    }

    fn principal(subject: &str) -> Principal {
        Principal {
            issuer: "https://idp".into(),
            subject: subject.into(),
            scopes: vec![],
            claims: Default::default(),
        }
    }

    #[test]
    fn a_sealed_id_opens_with_the_same_key_for_the_same_party() {
        let a = Replicas::new("a".into(), KEY_A).unwrap();
        let b = Replicas::new("b".into(), KEY_A).unwrap();
        let alice = principal("alice");
        let id = a.seal(Some(&alice), state());
        assert!(id.starts_with("v1."));
        assert!(id.bytes().all(|c| c.is_ascii_graphic()), "{id}");
        assert_eq!(b.classify(&id), IdKind::Portable);
        let (opened, age) = b.open(&id, Some(&alice)).unwrap();
        assert!(age < Duration::from_secs(60), "{age:?}");
        assert_eq!(opened.backends, state().backends);
        assert_eq!(
            opened.initialize.unwrap().get(),
            r#"{"clientInfo":{"name":"c"}}"#
        );
        assert_ne!(id, a.seal(Some(&alice), state()), "a fresh nonce each time");
    }

    #[test]
    fn tampered_foreign_and_other_party_ids_are_refused() {
        let a = Replicas::new("a".into(), KEY_A).unwrap();
        let other_key = Replicas::new("a".into(), KEY_B).unwrap();
        let id = a.seal(Some(&principal("alice")), state());
        let mut tampered = id.clone().into_bytes();
        let last = tampered.len() - 5;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            a.open(&tampered, Some(&principal("alice"))).err(),
            Some(Refused::Unreadable)
        );
        assert_eq!(
            other_key.open(&id, Some(&principal("alice"))).err(),
            Some(Refused::Unreadable)
        );
        assert_eq!(a.open("v1.", None).err(), Some(Refused::Unreadable));
        assert_eq!(a.open("v1.!!", None).err(), Some(Refused::Unreadable));
        assert!(matches!(
            a.open(&id, Some(&principal("mallory"))),
            Err(Refused::OtherParty(_))
        ));
        assert!(matches!(a.open(&id, None), Err(Refused::OtherParty(_))));
    }

    #[test]
    fn sticky_ids_name_their_replica() {
        let a = Replicas::new("replica-a".into(), KEY_A).unwrap();
        let id = a.sticky_id("00ff");
        assert_eq!(id, "replica-a:00ff");
        assert_eq!(a.classify(&id), IdKind::Sticky("replica-a"));
        assert_eq!(a.classify("00ff"), IdKind::Other);
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        let error =
            |name: &str, key: &str| Replicas::new(name.into(), key).err().unwrap().to_string();
        assert_eq!(
            error("a:b", KEY_A),
            "[replicas] name `a:b`: use only letters, digits, `.`, `_` and `-` (it is part of session ids)"
        );
        assert!(
            error("a", "c2hvcnQ=").ends_with("; it holds 5 bytes"),
            "{}",
            error("a", "c2hvcnQ=")
        );
        let config = ReplicasConfig {
            key_env: "INTERPOSE_TEST_UNSET_KEY".into(),
            name: Some("a".into()),
            name_env: None,
        };
        assert_eq!(
            Replicas::from_config(&config).err().unwrap().to_string(),
            "[replicas] key_env: the environment variable `INTERPOSE_TEST_UNSET_KEY` is not set or is empty"
        );
    }
}
