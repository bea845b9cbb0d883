//! Requests in flight in one direction, with the id remapping between the two sides.
//!
//! The relay gives every request it forwards a fresh numeric id on the receiving side,
//! so ids from the two peers (and requests the proxy answers itself) never collide. The
//! table maps that id back to the sender's original id, and the sender's original id to
//! the new one, which `notifications/cancelled` needs. Requests towards the client come
//! from several backends, whose ids may be equal: the sender is part of the key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::value::RawValue;

use super::intercept::SessionPrincipal;
use crate::wire::jsonrpc::{Payload, RawId, raw};

/// One side of a session: the client, or one of its backends (by its place in the
/// session's set of backends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    Client,
    Backend(usize),
}

/// A request forwarded and not yet answered.
#[derive(Debug)]
pub struct Pending {
    /// Who sent it: the answer goes back there.
    pub origin: Peer,
    /// The id the sender used, restored on the response.
    pub original_id: RawId,
    pub method: String,
    /// The request's `params` as the global plugin chain passed them on (the
    /// client's names), kept only when that chain wants them for the response.
    pub params: Option<Payload>,
    /// The `params` as the server's own chain passed them on (the server's names),
    /// kept only when that chain wants them; `params` stand in when absent.
    pub own_params: Option<Payload>,
    /// `_meta.progressToken` of the request, as JSON text.
    pub progress_token: Option<Box<str>>,
    pub started: Instant,
    /// For one backend's part of a client request fanned out to several: the fan-out.
    pub part_of: Option<u64>,
    /// When the server it went to has a request timeout: its place in the relay's
    /// deadlines, to forget it once answered.
    pub deadline: Option<tokio_util::time::delay_queue::Key>,
    /// Its sender cancelled it: the receiver need not answer, so it is forgotten
    /// after a grace period instead of waiting for an answer that may never come.
    pub cancelled: bool,
    /// A client's request: its server-side metric and span.
    pub operation: Option<crate::telemetry::Operation>,
    /// Its span as forwarded to a server, when traced.
    pub upstream: Option<crate::telemetry::trace::ClientSpan>,
    /// Who sent it, when that is the request's own rather than its session's (a
    /// sessionless client's): plugins judging its answer are lent this one.
    pub principal: Option<Arc<SessionPrincipal>>,
}

impl Pending {
    /// A request from `origin`, starting now, with nothing kept of it yet.
    pub fn new(origin: Peer, original_id: RawId, method: String) -> Self {
        Pending {
            origin,
            original_id,
            method,
            params: None,
            own_params: None,
            progress_token: None,
            started: Instant::now(),
            part_of: None,
            deadline: None,
            cancelled: false,
            operation: None,
            upstream: None,
            principal: None,
        }
    }
}

/// The requests in flight from one side to the other.
#[derive(Debug, Default)]
pub struct PendingTable {
    next_id: u64,
    by_forwarded_id: HashMap<u64, Pending>,
    /// By sender, then the sender's id: found without allocating.
    by_original_id: HashMap<Peer, HashMap<Box<str>, u64>>,
}

impl PendingTable {
    /// Records a request and returns the id to forward it with.
    pub fn insert(&mut self, pending: Pending) -> RawId {
        self.next_id += 1;
        let id = self.next_id;
        self.by_original_id
            .entry(pending.origin)
            .or_default()
            .insert(pending.original_id.get().into(), id);
        self.by_forwarded_id.insert(id, pending);
        raw(id.to_string())
    }

    /// Takes the request a response with this (forwarded) id answers.
    pub fn take(&mut self, forwarded_id: &RawValue) -> Option<Pending> {
        let id: u64 = forwarded_id.get().parse().ok()?;
        let pending = self.by_forwarded_id.remove(&id)?;
        if let Some(ids) = self.by_original_id.get_mut(&pending.origin) {
            let original = pending.original_id.get();
            if ids.get(original) == Some(&id) {
                ids.remove(original);
            }
        }
        Some(pending)
    }

    /// Looks up a request in flight by its forwarded id.
    pub fn get(&self, forwarded_id: &RawValue) -> Option<&Pending> {
        let id: u64 = forwarded_id.get().parse().ok()?;
        self.by_forwarded_id.get(&id)
    }

    /// Looks up a request in flight by its forwarded id, to change it.
    pub fn get_mut(&mut self, forwarded_id: &RawValue) -> Option<&mut Pending> {
        let id: u64 = forwarded_id.get().parse().ok()?;
        self.by_forwarded_id.get_mut(&id)
    }

    /// The forwarded id of the request `origin` knows as `original_id`.
    pub fn forwarded_id(&self, origin: Peer, original_id: &RawValue) -> Option<RawId> {
        self.by_original_id
            .get(&origin)?
            .get(original_id.get())
            .map(|id| raw(id.to_string()))
    }

    /// The forwarded ids of every request in flight, oldest first.
    pub fn forwarded_ids(&self) -> Vec<RawId> {
        let mut ids: Vec<u64> = self.by_forwarded_id.keys().copied().collect();
        ids.sort_unstable();
        ids.into_iter().map(|id| raw(id.to_string())).collect()
    }

    /// Removes and returns every request in flight, oldest first.
    pub fn drain(&mut self) -> Vec<Pending> {
        self.by_original_id.clear();
        let mut all: Vec<(u64, Pending)> = self.by_forwarded_id.drain().collect();
        all.sort_by_key(|(id, _)| *id);
        all.into_iter().map(|(_, pending)| pending).collect()
    }

    pub fn len(&self) -> usize {
        self.by_forwarded_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_forwarded_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: &str) -> Pending {
        from(Peer::Client, id)
    }

    fn from(origin: Peer, id: &str) -> Pending {
        Pending::new(origin, raw(id), "tools/call".into())
    }

    #[test]
    fn maps_ids_both_ways() {
        let mut table = PendingTable::default();
        let a = table.insert(pending(r#""a""#));
        let b = table.insert(pending("7"));
        assert_ne!(a.get(), b.get());
        let forwarded = table.forwarded_id(Peer::Client, &raw("7"));
        assert_eq!(forwarded.unwrap().get(), b.get());
        let taken = table.take(&a).unwrap();
        assert_eq!(taken.original_id.get(), r#""a""#);
        assert!(table.take(&a).is_none(), "a response is matched once");
        assert!(table.forwarded_id(Peer::Client, &raw(r#""a""#)).is_none());
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn unknown_or_foreign_ids_match_nothing() {
        let mut table = PendingTable::default();
        table.insert(pending("1"));
        assert!(table.take(&raw(r#""1""#)).is_none());
        assert!(table.take(&raw("99")).is_none());
    }

    #[test]
    fn equal_ids_from_two_backends_stay_apart() {
        let mut table = PendingTable::default();
        let first = table.insert(from(Peer::Backend(0), "1"));
        let second = table.insert(from(Peer::Backend(1), "1"));
        assert_ne!(first.get(), second.get());
        let of = |backend| table.forwarded_id(Peer::Backend(backend), &raw("1"));
        assert_eq!(of(0).unwrap().get(), first.get());
        assert_eq!(of(1).unwrap().get(), second.get());
        table.take(&first);
        assert!(table.forwarded_id(Peer::Backend(0), &raw("1")).is_none());
        let second_again = table.forwarded_id(Peer::Backend(1), &raw("1"));
        assert_eq!(second_again.unwrap().get(), second.get());
    }

    #[test]
    fn drain_returns_oldest_first() {
        let mut table = PendingTable::default();
        table.insert(pending("1"));
        table.insert(pending("2"));
        let drained = table.drain();
        assert_eq!(drained[0].original_id.get(), "1");
        assert_eq!(drained[1].original_id.get(), "2");
        assert!(table.is_empty());
    }
}
