//! `max.connections.per.ip` with its overrides: how many connections one client address may
//! hold at once, so one host cannot take every connection slot.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

pub struct PerIp {
    /// Connections per address; `usize::MAX` for no limit.
    limit: usize,
    overrides: HashMap<IpAddr, usize>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; its address's count drops when it does.
pub struct Admitted {
    of: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.of.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl PerIp {
    /// `limit` connections per address (0: no limit), `overrides` for some addresses.
    pub fn new(limit: usize, overrides: HashMap<IpAddr, usize>) -> PerIp {
        PerIp {
            limit: if limit == 0 { usize::MAX } else { limit },
            overrides,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a new connection from `ip`, or `None` when that address is at its limit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let limit = self.overrides.get(&ip).copied().unwrap_or(self.limit);
        let mut open = self.open.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                open.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(Admitted {
            of: self.clone(),
            ip,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_holds_at_most_its_limit() {
        let overrides = crate::config::ip_overrides("10.0.0.9:0, ::1:3").expect("valid");
        let p = Arc::new(PerIp::new(2, overrides));
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let first = p.admit(a).expect("1");
        let _second = p.admit(a).expect("2");
        assert!(p.admit(a).is_none(), "a third from the same address");
        drop(first);
        assert!(p.admit(a).is_some(), "a slot came back");
        assert!(
            p.admit("10.0.0.9".parse().expect("ip")).is_none(),
            "override 0"
        );
        let v6: IpAddr = "::1".parse().expect("ip");
        let held: Vec<_> = (0..3).filter_map(|_| p.admit(v6)).collect();
        assert_eq!(held.len(), 3, "override 3");
        assert!(p.admit(v6).is_none());
        assert!(p
            .open
            .lock()
            .get(&"10.0.0.9".parse().expect("ip"))
            .is_none());
        let unlimited = Arc::new(PerIp::new(0, HashMap::new()));
        let many: Vec<_> = (0..10_000).filter_map(|_| unlimited.admit(a)).collect();
        assert_eq!(many.len(), 10_000);
        assert!(crate::config::ip_overrides("nonsense").is_err());
        assert!(crate::config::ip_overrides("1.2.3.4:x").is_err());
    }
}
