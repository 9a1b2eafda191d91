//! Outbound HTTP to addresses users give us (webhook receivers, `start_image`, `start_video`),
//! guarded against SSRF: only http(s); only public unicast addresses (`domain::address`: IANA's
//! special-purpose blocks refused, IPv4 addresses embedded in IPv6 ones judged as IPv4, every
//! spelling of `localhost` refused) — checked on the URL itself (reqwest never asks a resolver
//! about IP literals) *and* on every address DNS returns when connecting; no redirects; no
//! proxies; timeouts.
use crate::domain::address::{is_local_name, is_public_ip};
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
        Some(Host::Domain(name)) if !policy.allow_private && is_local_name(name) => {
            return Err("points to a private or reserved address".into());
        }
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

/// Writes a response body to `to`, refusing (and removing) more than `max` bytes.
pub async fn stream_to_file(response: reqwest::Response, to: &std::path::Path, max: u64) -> Result<(), String> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    if response.content_length().is_some_and(|n| n > max) {
        return Err(format!("it is larger than {max} bytes"));
    }
    let mut file = tokio::fs::File::create(to).await.map_err(|e| e.to_string())?;
    let mut stream = response.bytes_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| describe_error(&e))?;
        written += chunk.len() as u64;
        if written > max {
            drop(file);
            let _ = tokio::fs::remove_file(to).await;
            return Err(format!("it is larger than {max} bytes"));
        }
        file.write_all(&chunk).await.map_err(|e| e.to_string())?;
    }
    file.flush().await.map_err(|e| e.to_string())
}

/// Downloads an image a user named by URL, through `client` (a `guarded_client`): 2xx only, an
/// image content type if one is declared, at most `max` bytes. The error says why, in words
/// that fit after "`start_image` could not be used: ".
pub async fn fetch_image(client: &reqwest::Client, url: &str, max: u64) -> Result<Vec<u8>, String> {
    fetch_media(client, url, max, "image").await
}

/// Like `fetch_image`, for a `noun` ("image", "video") whose MIME types start with `noun/`.
pub async fn fetch_media(client: &reqwest::Client, url: &str, max: u64, noun: &str) -> Result<Vec<u8>, String> {
    use futures_util::StreamExt;
    let response = client.get(url).send().await.map_err(|e| describe_error(&e))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(format!("the URL answered a redirect ({status}), which is not followed"));
    }
    if !status.is_success() {
        return Err(format!("the URL answered {status}"));
    }
    let content_type = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let prefix = format!("{noun}/");
    if let Some(kind) = content_type.filter(|t| !t.starts_with(&prefix) && !t.starts_with("application/octet-stream")) {
        let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        return Err(format!("the URL returned {kind}, not {article} {noun}"));
    }
    if response.content_length().is_some_and(|n| n > max) {
        return Err(format!("the {noun} is larger than {max} bytes"));
    }
    let mut bytes = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.map_err(|e| describe_error(&e))?);
        if bytes.len() as u64 > max {
            return Err(format!("the {noun} is larger than {max} bytes"));
        }
    }
    Ok(bytes)
}

fn describe_error(e: &reqwest::Error) -> String {
    let chain = {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    };
    if chain.contains("refused addresses") {
        "the URL points to a private or reserved address, which this server does not fetch".into()
    } else if e.is_timeout() {
        "the URL did not answer in time".into()
    } else if e.is_connect() {
        "the URL is unreachable".into()
    } else {
        format!("the download failed ({chain})")
    }
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
            // What an adversarial probe reached or could have: IETF protocol assignments, NAT64,
            // IPv4-compatible, IPv4-translated, 6to4 of a private address, localhost spelled otherwise.
            "http://192.0.0.170/",
            "http://[64:ff9b::7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://[::ffff:0:a00:1]/",
            "http://[2002:c0a8:101::1]/",
            "http://LOCALHOST./hook",
            "http://LocalHost/hook",
            "http://api.localhost/hook",
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

    /// Serves `routes` on 127.0.0.1 and returns its base URL.
    async fn site(routes: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, routes).await.unwrap() });
        base
    }

    #[tokio::test]
    async fn image_downloads_say_what_was_wrong() {
        use axum::http::header::CONTENT_TYPE;
        use axum::routing::get;
        let routes = axum::Router::new()
            .route("/small.png", get(|| async { ([(CONTENT_TYPE, "image/png")], vec![1u8; 100]) }))
            .route("/big.png", get(|| async { ([(CONTENT_TYPE, "image/png")], vec![1u8; 5000]) }));
        let base = site(routes).await;
        let open = guarded_client(UrlPolicy { allow_private: true }, Duration::from_secs(2));
        assert_eq!(fetch_image(&open, &format!("{base}/small.png"), 1000).await.unwrap().len(), 100);
        let big = fetch_image(&open, &format!("{base}/big.png"), 1000).await.unwrap_err();
        assert!(big.contains("larger than 1000 bytes"), "{big}");
        let missing = fetch_image(&open, &format!("{base}/none.png"), 1000).await.unwrap_err();
        assert!(missing.contains("answered 404"), "{missing}");
        // A name that resolves to a private address when the worker fetches (DNS rebinding).
        let strict = guarded_client(STRICT, Duration::from_secs(2));
        let port = base.rsplit(':').next().unwrap();
        let rebound = fetch_image(&strict, &format!("http://localhost:{port}/small.png"), 1000).await.unwrap_err();
        assert!(rebound.contains("private or reserved address"), "{rebound}");
        let closed = fetch_image(&open, "http://127.0.0.1:9/x.png", 1000).await.unwrap_err();
        assert!(closed.contains("unreachable"), "{closed}");
    }

    #[tokio::test]
    async fn the_client_refuses_to_connect_to_a_private_name() {
        let client = guarded_client(STRICT, Duration::from_secs(2));
        let err = client.get("http://localhost:9/").send().await.unwrap_err();
        assert!(format!("{err:?}").contains("refused addresses"), "{err:?}");
    }
}
