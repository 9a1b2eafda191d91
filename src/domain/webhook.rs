//! Standard Webhooks signing (https://www.standardwebhooks.com) and the retry schedule.
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::time::Duration;

pub const SECRET_PREFIX: &str = "whsec_";

pub fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// `v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">` under the decoded secret.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let key = STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .map_err(|_| "the webhook secret is not base64".to_owned())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// How long deliveries are retried before they are marked failed.
pub const RETRY_HORIZON: Duration = Duration::from_secs(24 * 60 * 60);

/// Delay before retry number `attempts` (1 = after the first failure): `base · 2^(attempts−1)`,
/// capped at an hour, with ±20 % jitter (`jitter` in −1..1) so receivers coming back up are not
/// hit by every sender at once. From a 5 s base a day holds some 30 to 40 tries.
pub fn retry_delay(attempts: u32, base: Duration, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let capped = exp.min(Duration::from_secs(3600)).max(base);
    capped.mul_f64(1.0 + 0.2 * jitter.clamp(-1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature.unwrap(), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn new_secrets_are_distinct_and_usable() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_"));
        assert!(sign(&a, "m", 1, b"x").unwrap().starts_with("v1,"));
        assert!(sign("whsec_***", "m", 1, b"x").is_err());
    }

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        let base = Duration::from_secs(5);
        assert_eq!(retry_delay(1, base, 0.0), Duration::from_secs(5));
        assert_eq!(retry_delay(2, base, 0.0), Duration::from_secs(10));
        assert_eq!(retry_delay(5, base, 0.0), Duration::from_secs(80));
        assert_eq!(retry_delay(30, base, 0.0), Duration::from_secs(3600));
        assert_eq!(retry_delay(1, base, 1.0), Duration::from_secs(6));
        assert_eq!(retry_delay(1, base, -1.0), Duration::from_secs(4));
        // From a 5 s base the 24 h horizon allows some 30 to 40 tries.
        let total = |n: u32| (1..=n).map(|i| retry_delay(i, base, 0.0)).sum::<Duration>();
        assert!(total(30) < RETRY_HORIZON && RETRY_HORIZON < total(40));
    }
}
