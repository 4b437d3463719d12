//! Where a node finds members to join through: a static list of addresses, or a DNS name
//! whose addresses are looked up at every join attempt (a Kubernetes headless service lists
//! the ready pods of a StatefulSet this way), and a task following a name's address.

use std::net::SocketAddr;
use std::time::Duration;

/// How long one lookup may take before the attempt goes on without it.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The seeds a node announces itself to while it is alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seeds {
    /// These addresses.
    Static(Vec<SocketAddr>),
    /// Every address `HOST:PORT` resolves to, looked up again at each attempt.
    Dns(String),
}

impl From<Vec<SocketAddr>> for Seeds {
    fn from(addrs: Vec<SocketAddr>) -> Self {
        Self::Static(addrs)
    }
}

impl Seeds {
    /// The seed addresses now, of the same family as `local` (the node's socket), without
    /// `local` itself; a name that does not resolve (yet) gives none, logged.
    pub async fn resolve(&self, local: SocketAddr) -> Vec<SocketAddr> {
        let found = match self {
            Self::Static(v) => v.clone(),
            Self::Dns(name) => match lookup(name).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(%name, error = %e, "seed lookup");
                    Vec::new()
                }
            },
        };
        let mut out: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| a.is_ipv4() == local.is_ipv4() && *a != local)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Every address `name` (`HOST:PORT`) resolves to, within [`LOOKUP_TIMEOUT`].
pub async fn lookup(name: &str) -> std::io::Result<Vec<SocketAddr>> {
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(name)).await {
        Ok(r) => Ok(r?.collect()),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("looking up {name} took over {LOOKUP_TIMEOUT:?}"),
        )),
    }
}

/// Looks `name` up every `every` and calls `changed` with its first address whenever that
/// differs from the last one seen (starting from `current`): a peer known by a DNS name whose
/// address moves (a restarted pod) is reached at its new address. Runs until dropped.
pub async fn follow(
    name: String,
    every: Duration,
    mut current: SocketAddr,
    mut changed: impl FnMut(SocketAddr) + Send,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match lookup(&name).await {
            Ok(addrs) => {
                // Keep the current address while the name still lists it.
                if addrs.contains(&current) {
                    continue;
                }
                if let Some(a) = addrs.into_iter().find(|a| a.is_ipv4() == current.is_ipv4()) {
                    tracing::info!(%name, from = %current, to = %a, "peer address changed");
                    current = a;
                    changed(a);
                }
            }
            Err(e) => tracing::debug!(%name, error = %e, "address lookup"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Seeds;
    use std::net::SocketAddr;

    fn v4(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_dns_name_resolves_to_seeds_of_the_socket_s_family_without_this_node() {
        let local = v4("127.0.0.1:7000");
        let seeds = Seeds::Dns("localhost:7001".into()).resolve(local).await;
        assert_eq!(seeds, vec![v4("127.0.0.1:7001")]);
        assert!(
            Seeds::Dns("localhost:7000".into())
                .resolve(local)
                .await
                .is_empty()
        );
        let s = Seeds::from(vec![
            v4("127.0.0.1:1"),
            local,
            v4("[::1]:2"),
            v4("127.0.0.1:1"),
        ]);
        assert_eq!(s.resolve(local).await, vec![v4("127.0.0.1:1")]);
    }

    #[tokio::test]
    async fn following_a_name_reports_its_new_address_once() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = std::sync::Arc::clone(&seen);
        let task = tokio::spawn(super::follow(
            "localhost:7001".into(),
            std::time::Duration::from_millis(5),
            v4("127.0.0.2:7001"),
            move |a| s.lock().unwrap().push(a),
        ));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        task.abort();
        assert_eq!(*seen.lock().unwrap(), vec![v4("127.0.0.1:7001")]);
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_gives_no_seeds() {
        let seeds = Seeds::Dns("no-such-host.invalid:7001".into())
            .resolve(v4("127.0.0.1:7000"))
            .await;
        assert!(seeds.is_empty());
    }
}
