//! The pool of connections whose TLS handshake is in progress, and who gets a place in it.
//!
//! A place is cheap to take, so it must be cheap to lose. A connection that has not yet sent
//! its ClientHello is *idle*: it has cost the client nothing but a TCP connection, and it is
//! the first to go when room is needed. A new connection is admitted if
//!
//! - its source address holds fewer than `per_address` places, or one of that address's idle
//!   connections can be closed to make room (so one source never holds more than its share),
//! - and the pool holds fewer than `total` places, or the oldest idle connection of any source
//!   can be closed to make room.
//!
//! A legitimate client sends its ClientHello as soon as it is connected, so it stops being
//! idle within a round trip; a flood of idle connections only ever displaces itself. (On
//! loopback every client has the same address: telling them apart by behaviour rather than by
//! address keeps tests, and peers behind one NAT, working.)

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};

/// The size of the pool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolLimits {
    /// Places in all.
    pub(crate) total: usize,
    /// Places one source address may hold.
    pub(crate) per_address: usize,
}

#[derive(Debug)]
struct Entry {
    address: IpAddr,
    /// Present while the connection is idle (no ClientHello yet): sending on it closes it.
    evict: Option<oneshot::Sender<()>>,
}

#[derive(Debug, Default)]
struct State {
    /// By admission order, oldest first.
    entries: BTreeMap<u64, Entry>,
    per_address: HashMap<IpAddr, usize>,
    next_id: u64,
}

impl State {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.entries.remove(&id)?;
        if let Some(count) = self.per_address.get_mut(&entry.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_address.remove(&entry.address);
            }
        }
        Some(entry)
    }

    /// Closes the oldest idle connection that `matches`; false when there is none.
    fn evict_oldest_idle(&mut self, matches: impl Fn(&Entry) -> bool) -> bool {
        let Some(id) = self
            .entries
            .iter()
            .find(|(_, entry)| entry.evict.is_some() && matches(entry))
            .map(|(id, _)| *id)
        else {
            return false;
        };
        if let Some(evict) = self.remove(id).and_then(|entry| entry.evict) {
            // The connection's task may already be gone; either way its place is free.
            let _ = evict.send(());
        }
        true
    }

    fn has_room(&self, limits: PoolLimits) -> bool {
        self.entries.len() < limits.total || self.entries.values().any(|e| e.evict.is_some())
    }
}

/// The pending-handshake pool of one listener.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    limits: PoolLimits,
    state: Arc<Mutex<State>>,
    freed: Arc<Notify>,
}

/// Why a connection was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its address holds its share of places, all of them past their ClientHello.
    AddressFull,
    /// Every place is taken by a connection past its ClientHello.
    PoolFull,
}

impl Pool {
    pub(crate) fn new(limits: PoolLimits) -> Self {
        Self {
            limits: PoolLimits {
                total: limits.total.max(1),
                per_address: limits.per_address.max(1),
            },
            state: Arc::default(),
            freed: Arc::default(),
        }
    }

    /// Completes once a new connection could be admitted (a free place, or an idle
    /// connection to close for one).
    pub(crate) async fn room(&self) {
        loop {
            if self.state.lock().has_room(self.limits) {
                return;
            }
            // `notify_one` keeps a permit when nobody waits: no wake-up is lost between the
            // check and the wait.
            self.freed.notified().await;
        }
    }

    /// Admits a connection from `address`, closing idle ones to make room if needed. The
    /// receiver completes if the connection is closed to make room for another.
    pub(crate) fn admit(&self, address: IpAddr) -> Result<(Slot, oneshot::Receiver<()>), Refused> {
        let mut state = self.state.lock();
        let held = state.per_address.get(&address).copied().unwrap_or(0);
        if held >= self.limits.per_address && !state.evict_oldest_idle(|e| e.address == address) {
            return Err(Refused::AddressFull);
        }
        if state.entries.len() >= self.limits.total && !state.evict_oldest_idle(|_| true) {
            return Err(Refused::PoolFull);
        }
        let id = state.next_id;
        state.next_id += 1;
        let (evict, evicted) = oneshot::channel();
        state.entries.insert(
            id,
            Entry {
                address,
                evict: Some(evict),
            },
        );
        *state.per_address.entry(address).or_default() += 1;
        Ok((
            Slot {
                id,
                pool: self.clone(),
            },
            evicted,
        ))
    }
}

/// A connection's place in the pool, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    id: u64,
    pool: Pool,
}

impl Slot {
    /// The ClientHello arrived: the connection is no longer idle and keeps its place until
    /// its handshake ends.
    pub(crate) fn hello_received(&self) {
        if let Some(entry) = self.pool.state.lock().entries.get_mut(&self.id) {
            entry.evict = None;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let removed = self.pool.state.lock().remove(self.id).is_some();
        if removed {
            self.pool.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn pool(total: usize, per_address: usize) -> Pool {
        Pool::new(PoolLimits { total, per_address })
    }

    #[test]
    fn a_full_pool_closes_its_oldest_idle_connection_for_a_new_one() {
        let pool = pool(2, 2);
        let (_first, mut first_evicted) = pool.admit(A).unwrap();
        let (second, mut second_evicted) = pool.admit(A).unwrap();
        second.hello_received();
        let (_third, _) = pool.admit(B).unwrap();
        assert!(
            first_evicted.try_recv().is_ok(),
            "the oldest idle one is closed"
        );
        assert!(
            second_evicted.try_recv().is_err(),
            "one past its ClientHello is kept"
        );
    }

    #[test]
    fn connections_past_their_client_hello_are_never_displaced() {
        let pool = pool(2, 2);
        let (a, _) = pool.admit(A).unwrap();
        let (b, _) = pool.admit(B).unwrap();
        a.hello_received();
        b.hello_received();
        assert_eq!(pool.admit(B).unwrap_err(), Refused::PoolFull);
        drop(a);
        assert!(pool.admit(B).is_ok(), "a place is given back when dropped");
    }

    #[test]
    fn one_address_holds_at_most_its_share_and_displaces_only_itself() {
        let pool = pool(10, 2);
        let (other, mut other_evicted) = pool.admit(B).unwrap();
        let (_a1, mut a1_evicted) = pool.admit(A).unwrap();
        let (a2, _) = pool.admit(A).unwrap();
        a2.hello_received();
        let (a3, _) = pool.admit(A).unwrap();
        assert!(a1_evicted.try_recv().is_ok(), "A's own idle one makes room");
        assert!(other_evicted.try_recv().is_err(), "B's is untouched");
        a3.hello_received();
        assert_eq!(pool.admit(A).unwrap_err(), Refused::AddressFull);
        drop(other);
    }

    #[tokio::test]
    async fn room_waits_for_a_place_to_be_given_back() {
        let pool = pool(1, 1);
        let (slot, _) = pool.admit(A).unwrap();
        slot.hello_received();
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.room().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(slot);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
    }
}
