//! Outbound HTTP to addresses users give us (webhook receivers, later image URLs), guarded
//! against SSRF: only http(s); no loopback, private, link-local, multicast, unspecified,
//! IPv4-mapped or metadata addresses — checked on the URL itself (reqwest never asks a resolver
//! about IP literals) *and* on every address DNS returns; no redirects; no proxies; timeouts.
use crate::domain::request::is_public_ip;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use url::{Host, Url};

#[derive(Clone, Copy, Debug)]
pub struct UrlPolicy {
    /// Operator switch for private networks (and tests with a receiver on 127.0.0.1).
    pub allow_private: bool,
}

/// Syntax, scheme and (for IP literals) address class.
pub fn check_url(text: &str, policy: UrlPolicy) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|_| "is not a valid URL".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("must use http or https, not {}", url.scheme()));
    }
    let literal = match url.host() {
        None => return Err("has no host".into()),
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(Host::Domain(_)) => None,
    };
    if let Some(ip) = literal {
        if !policy.allow_private && !is_public_ip(ip) {
            return Err("points to a private or reserved address".into());
        }
    }
    Ok(url)
}

/// Resolves the URL's host now and refuses it if any address is not public. A name that does
/// not resolve passes here (it may be temporary); the guarded client checks again on use.
pub async fn check_resolution(url: &Url, policy: UrlPolicy) -> Result<(), String> {
    let Some(Host::Domain(name)) = url.host() else { return Ok(()) };
    if policy.allow_private {
        return Ok(());
    }
    let Ok(addrs) = tokio::net::lookup_host((name, url.port_or_known_default().unwrap_or(443))).await else {
        return Ok(());
    };
    for addr in addrs {
        if !is_public_ip(addr.ip()) {
            return Err(format!("resolves to a private or reserved address ({})", addr.ip()));
        }
    }
    Ok(())
}

/// A resolver that drops non-public addresses (and fails when none are left).
struct GuardedResolver {
    policy: UrlPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                addrs.into_iter().filter(|a| policy.allow_private || is_public_ip(a.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("{} resolves only to refused addresses", name.as_str()).into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The client for user-given URLs.
pub fn guarded_client(policy: UrlPolicy, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .dns_resolver(std::sync::Arc::new(GuardedResolver { policy }))
        .user_agent(concat!("ltx-serve/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a TLS backend is compiled in")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlPolicy = UrlPolicy { allow_private: false };

    #[test]
    fn literal_private_addresses_are_refused() {
        for url in [
            "http://127.0.0.1/hook",
            "http://10.0.0.1/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hook",
            "http://2130706433/hook",
            "http://0x7f.1/hook",
            "http://[::ffff:7f00:1]/hook",
            "http://0.0.0.0/",
        ] {
            assert!(check_url(url, STRICT).unwrap_err().contains("private or reserved"), "{url}");
            assert!(check_url(url, UrlPolicy { allow_private: true }).is_ok(), "{url}");
        }
        assert!(check_url("https://example.com/hook", STRICT).is_ok());
        assert!(check_url("ftp://example.com/hook", STRICT).is_err());
        assert!(check_url("not a url", STRICT).is_err());
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused() {
        let url = Url::parse("http://localhost:9/hook").unwrap();
        assert!(check_resolution(&url, STRICT).await.unwrap_err().contains("private or reserved"));
        assert!(check_resolution(&url, UrlPolicy { allow_private: true }).await.is_ok());
    }

    #[tokio::test]
    async fn the_client_refuses_to_connect_to_a_private_name() {
        let client = guarded_client(STRICT, Duration::from_secs(2));
        let err = client.get("http://localhost:9/").send().await.unwrap_err();
        assert!(format!("{err:?}").contains("refused addresses"), "{err:?}");
    }
}
