//! `data:` URI decoding and image decoding with limits on any bytes: an error with a sentence,
//! or an image of exactly the canvas size; never a panic, never an unbounded allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ltx_serve::domain::request::decode_data_uri;
use ltx_serve::media::input_image::decode_and_fit;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode_data_uri(text);
    }
    if let Ok(image) = decode_and_fit(data, 32, 18) {
        assert_eq!(image.dimensions(), (32, 18));
    }
});
