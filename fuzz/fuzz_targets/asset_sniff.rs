//! Telling an upload's kind from its first bytes, on any bytes: a kind whose extension maps back
//! to it, or none; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ltx_serve::domain::asset::{sniff, AssetKind};

fuzz_target!(|data: &[u8]| {
    if let Some(kind) = sniff(data) {
        assert_eq!(AssetKind::from_extension(kind.extension()), Some(kind));
    }
});
