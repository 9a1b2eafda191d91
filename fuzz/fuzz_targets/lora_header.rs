//! The LoRA safetensors check on any file: it reads the length, then the header alone, and
//! refuses with a sentence or accepts a LoRA that fits LTX-2.3; never a panic or a huge read.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ltx_serve::domain::lora::{check_header, header_len, DEFAULT_LIMITS, LTX_2_3};

fuzz_target!(|data: &[u8]| {
    let Some(prefix) = data.get(..8) else { return };
    let Ok(n) = header_len(prefix.try_into().unwrap(), data.len() as u64, &DEFAULT_LIMITS) else { return };
    let header = &data[8..8 + n as usize];
    if let Ok(summary) = check_header(header, data.len() as u64 - 8 - n, &LTX_2_3, &DEFAULT_LIMITS) {
        assert!(summary.rank >= 1 && summary.rank <= DEFAULT_LIMITS.max_rank);
        assert!(summary.layers >= 1);
    }
});
