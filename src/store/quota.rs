//! Per-account storage quotas for uploads (assets and style LoRA files): the operator's default,
//! an account's own override, and the check made when an upload's row is stored. The check is
//! pure; each store runs it inside the transaction that inserts the row and adds to the account's
//! running totals, so two concurrent uploads cannot both pass on the same remaining room.
use serde::Serialize;

/// A pair of limits; 0 means no limit of that kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StorageQuota {
    pub bytes: u64,
    pub files: u64,
}

impl StorageQuota {
    pub const UNLIMITED: StorageQuota = StorageQuota { bytes: 0, files: 0 };

    /// The account's own limits where it has them, else these (the operator's defaults).
    pub fn for_account(self, own: QuotaOverride) -> StorageQuota {
        StorageQuota { bytes: own.bytes.unwrap_or(self.bytes), files: own.files.unwrap_or(self.files) }
    }
}

/// An account's own quota, per kind; `None` follows the operator's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QuotaOverride {
    pub bytes: Option<u64>,
    pub files: Option<u64>,
}

/// A change to one kind of an account's own quota (`admin quota set`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaSetting {
    /// Follow the operator's default again.
    Default,
    /// This many bytes or files; 0 is no limit.
    Limit(u64),
}

impl QuotaSetting {
    pub fn apply(setting: Option<QuotaSetting>, current: Option<u64>) -> Option<u64> {
        match setting {
            None => current,
            Some(QuotaSetting::Default) => None,
            Some(QuotaSetting::Limit(n)) => Some(n),
        }
    }
}

/// What an account's stored uploads take (kept as running totals on the account row).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StorageUse {
    pub bytes: u64,
    pub files: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaKind {
    Bytes,
    Files,
}

/// An upload refused because it would take the account past one of its quotas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub kind: QuotaKind,
    pub limit: u64,
    pub used: u64,
    /// The upload's size in bytes.
    pub adding: u64,
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            QuotaKind::Files => write!(
                f,
                "The account's storage quota of {} files is used up ({} files stored); delete assets or styles to upload more.",
                self.limit, self.used
            ),
            QuotaKind::Bytes => write!(
                f,
                "This upload of {} bytes would take the account past its storage quota of {} bytes ({} bytes in use); delete assets or styles to upload more.",
                self.adding, self.limit, self.used
            ),
        }
    }
}

/// Whether one more file of `adding` bytes fits in `quota` on top of `used`.
pub fn admit(quota: StorageQuota, used: StorageUse, adding: u64) -> Result<(), QuotaExceeded> {
    if quota.files > 0 && used.files.saturating_add(1) > quota.files {
        return Err(QuotaExceeded { kind: QuotaKind::Files, limit: quota.files, used: used.files, adding });
    }
    if quota.bytes > 0 && used.bytes.saturating_add(adding) > quota.bytes {
        return Err(QuotaExceeded { kind: QuotaKind::Bytes, limit: quota.bytes, used: used.bytes, adding });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_fits_up_to_each_limit_and_not_past_it() {
        let quota = StorageQuota { bytes: 100, files: 3 };
        assert_eq!(admit(quota, StorageUse { bytes: 60, files: 2 }, 40), Ok(()), "exactly full is allowed");
        assert_eq!(
            admit(quota, StorageUse { bytes: 60, files: 2 }, 41),
            Err(QuotaExceeded { kind: QuotaKind::Bytes, limit: 100, used: 60, adding: 41 })
        );
        assert_eq!(
            admit(quota, StorageUse { bytes: 0, files: 3 }, 1),
            Err(QuotaExceeded { kind: QuotaKind::Files, limit: 3, used: 3, adding: 1 })
        );
        let huge = StorageUse { bytes: u64::MAX, files: u64::MAX };
        assert_eq!(admit(StorageQuota::UNLIMITED, huge, u64::MAX), Ok(()), "0 is no limit");
    }

    #[test]
    fn an_accounts_own_quota_wins_per_kind_and_settings_change_one_kind() {
        let defaults = StorageQuota { bytes: 1000, files: 10 };
        assert_eq!(defaults.for_account(QuotaOverride::default()), defaults);
        let own = QuotaOverride { bytes: Some(0), files: None };
        assert_eq!(defaults.for_account(own), StorageQuota { bytes: 0, files: 10 });
        assert_eq!(QuotaSetting::apply(None, Some(5)), Some(5));
        assert_eq!(QuotaSetting::apply(Some(QuotaSetting::Default), Some(5)), None);
        assert_eq!(QuotaSetting::apply(Some(QuotaSetting::Limit(7)), None), Some(7));
    }

    #[test]
    fn the_message_names_the_quota_its_limit_and_the_use() {
        let files = QuotaExceeded { kind: QuotaKind::Files, limit: 3, used: 3, adding: 9 };
        assert!(files.to_string().contains("quota of 3 files") && files.to_string().contains("3 files stored"));
        let bytes = QuotaExceeded { kind: QuotaKind::Bytes, limit: 100, used: 60, adding: 41 };
        let text = bytes.to_string();
        assert!(text.contains("41 bytes") && text.contains("quota of 100 bytes") && text.contains("60 bytes in use"));
    }
}
