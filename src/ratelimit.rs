//! Rate limits: token buckets keyed by source address or client id, and
//! the source address itself (`TESSERA_TRUSTED_PROXIES`).
//!
//! A bucket holds `burst` tokens and refills at `rate` a second; a request
//! (or a failed authentication) takes one. Memory is bounded: past
//! `CAPACITY` keys, the buckets that have refilled (idle keys) are dropped,
//! and if that is not enough, all of them — an attacker spraying keys resets
//! the limits rather than exhausting memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use crate::config::IpNet;

/// Keys tracked at most, per limiter.
const CAPACITY: usize = 100_000;

pub struct Limiter<K> {
    /// Tokens a second; 0 = no limit.
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// `rate` a second, up to `burst` at once.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `per_minute` a minute, as deep as a minute's worth.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(f64::from(per_minute) / 60.0, f64::from(per_minute))
    }

    pub fn is_off(&self) -> bool {
        self.rate <= 0.0
    }

    fn level(&self, tokens: f64, since: Instant, now: Instant) -> f64 {
        (tokens + now.saturating_duration_since(since).as_secs_f64() * self.rate).min(self.burst)
    }

    /// Seconds until a token is there (at least 1), for `Retry-After`.
    fn wait(&self, level: f64) -> u64 {
        ((1.0 - level) / self.rate).ceil().max(1.0) as u64
    }

    /// Whether `key` has a token left, without taking it: `Err(seconds)`
    /// to wait when not.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), u64> {
        if self.is_off() {
            return Ok(());
        }
        let Ok(buckets) = self.buckets.lock() else {
            return Ok(());
        };
        match buckets.get(key) {
            Some((tokens, since)) => {
                let level = self.level(*tokens, *since, now);
                if level >= 1.0 {
                    Ok(())
                } else {
                    Err(self.wait(level))
                }
            }
            None => Ok(()),
        }
    }

    /// Takes a token for `key`: `Err(seconds)` to wait when there is none
    /// (nothing is taken then).
    pub fn take(&self, key: &K, now: Instant) -> Result<(), u64> {
        if self.is_off() {
            return Ok(());
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() >= CAPACITY && !buckets.contains_key(key) {
            buckets.retain(|_, (t, since)| self.level(*t, *since, now) < self.burst);
            if buckets.len() >= CAPACITY {
                buckets.clear();
            }
        }
        let level = match buckets.get(key) {
            Some((tokens, since)) => self.level(*tokens, *since, now),
            None => self.burst,
        };
        if level < 1.0 {
            return Err(self.wait(level));
        }
        buckets.insert(key.clone(), (level - 1.0, now));
        Ok(())
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.buckets.lock().map_or(0, |b| b.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The address a request comes from: the peer, unless the peer is a trusted
/// proxy; then the right-most address of `X-Forwarded-For` that is not a
/// trusted proxy (addresses to its left are what the client claimed, and
/// may be forged). A malformed header is not believed.
pub fn client_ip(peer: SocketAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer.ip());
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(*ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut hops = Vec::new();
    for part in header.split(',') {
        match part.trim().parse::<IpAddr>() {
            Ok(ip) => hops.push(canonical(ip)),
            Err(_) => return peer,
        }
    }
    for ip in hops.iter().rev() {
        if !is_trusted(ip) {
            return *ip;
        }
    }
    // Every hop is a proxy: the left-most is the closest to the client.
    hops.first().copied().unwrap_or(peer)
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as IPv4, so a dual-stack
/// listener counts one client once.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_the_rate() {
        let l = Limiter::new(2.0, 4.0);
        let t0 = Instant::now();
        for _ in 0..4 {
            assert!(l.take(&"a", t0).is_ok());
        }
        assert_eq!(l.take(&"a", t0), Err(1));
        assert_eq!(l.check(&"a", t0), Err(1));
        // Another key has its own bucket.
        assert!(l.take(&"b", t0).is_ok());
        // Half a second refills one token.
        let t1 = t0 + Duration::from_millis(500);
        assert!(l.take(&"a", t1).is_ok());
        assert!(l.take(&"a", t1).is_err());
    }

    #[test]
    fn the_wait_is_until_the_next_token() {
        let l = Limiter::<&str>::per_minute(6);
        let t0 = Instant::now();
        for _ in 0..6 {
            l.take(&"c", t0).unwrap();
        }
        assert_eq!(l.take(&"c", t0), Err(10), "one token each ten seconds");
    }

    #[test]
    fn off_means_no_limit() {
        let l = Limiter::new(0.0, 0.0);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert!(l.take(&1u8, t0).is_ok());
        }
        assert!(l.is_empty());
    }

    #[test]
    fn memory_stays_bounded() {
        let l = Limiter::new(1.0, 2.0);
        let t0 = Instant::now();
        for i in 0..(CAPACITY as u64 + 10) {
            let _ = l.take(&i, t0);
        }
        assert!(l.len() <= CAPACITY, "{}", l.len());
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|n| crate::config::ip_net(n).unwrap())
            .collect()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let peer: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let lb = nets(&["10.0.0.0/24"]);
        // Not trusted: the header is ignored.
        assert_eq!(
            client_ip(peer, Some("203.0.113.9"), &[]),
            "10.0.0.5".parse::<IpAddr>().unwrap()
        );
        // Trusted: the right-most untrusted hop.
        assert_eq!(
            client_ip(peer, Some("198.51.100.1, 203.0.113.9"), &lb),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(peer, Some("203.0.113.9, 10.0.0.7"), &lb),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // Malformed or missing: the peer.
        assert_eq!(
            client_ip(peer, Some("203.0.113.9, not-an-ip"), &lb),
            "10.0.0.5".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(peer, None, &lb),
            "10.0.0.5".parse::<IpAddr>().unwrap()
        );
        // IPv4-mapped IPv6 is the IPv4 address.
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:80".parse().unwrap();
        assert_eq!(
            client_ip(mapped, None, &[]),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
