//! What an uploaded file is, told from its first bytes — never from its name or the client's
//! `Content-Type` — and the kinds Krea's `POST /assets` accepts.

/// Krea's limit ("Maximum size: 75MB"), read as decimal megabytes so that neither reading of a
/// 76 MB file gets through.
pub const MAX_ASSET_BYTES: u64 = 75_000_000;

/// How many leading bytes `sniff` needs to tell every kind apart.
pub const SNIFF_BYTES: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssetKind {
    Jpeg,
    Png,
    Webp,
    Heic,
    Mp4,
    Mov,
    Webm,
    Glb,
    Wav,
    Mp3,
}

impl AssetKind {
    pub fn mime_type(self) -> &'static str {
        match self {
            AssetKind::Jpeg => "image/jpeg",
            AssetKind::Png => "image/png",
            AssetKind::Webp => "image/webp",
            AssetKind::Heic => "image/heic",
            AssetKind::Mp4 => "video/mp4",
            AssetKind::Mov => "video/quicktime",
            AssetKind::Webm => "video/webm",
            AssetKind::Glb => "model/gltf-binary",
            AssetKind::Wav => "audio/wav",
            AssetKind::Mp3 => "audio/mpeg",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            AssetKind::Jpeg => "jpg",
            AssetKind::Png => "png",
            AssetKind::Webp => "webp",
            AssetKind::Heic => "heic",
            AssetKind::Mp4 => "mp4",
            AssetKind::Mov => "mov",
            AssetKind::Webm => "webm",
            AssetKind::Glb => "glb",
            AssetKind::Wav => "wav",
            AssetKind::Mp3 => "mp3",
        }
    }

    pub fn from_extension(ext: &str) -> Option<AssetKind> {
        ALL.into_iter().find(|k| k.extension() == ext)
    }

    /// Kinds we decode (and so can use as a start or end frame); the others are stored as they are.
    pub fn is_decodable_image(self) -> bool {
        matches!(self, AssetKind::Jpeg | AssetKind::Png | AssetKind::Webp)
    }
}

const ALL: [AssetKind; 10] = [
    AssetKind::Jpeg,
    AssetKind::Png,
    AssetKind::Webp,
    AssetKind::Heic,
    AssetKind::Mp4,
    AssetKind::Mov,
    AssetKind::Webm,
    AssetKind::Glb,
    AssetKind::Wav,
    AssetKind::Mp3,
];

/// The sentence a refused file gets.
pub const ACCEPTED: &str = "JPEG, PNG, WebP, HEIC, MP4, MOV, WebM, GLB, WAV or MP3";

/// ISO base media brands (`ftyp`) of HEIF/HEIC images.
const HEIC_BRANDS: [&[u8; 4]; 8] = [b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"];
/// Brands of MP4 video (AVIF, audio-only M4A and the like are not among Krea's kinds).
const MP4_BRANDS: [&[u8; 4]; 14] = [
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"dash", b"M4V ", b"mmp4",
    b"MSNV", b"XAVC",
];

/// The kind of file whose first bytes are `head` (at least `SNIFF_BYTES` of them when the file
/// is that long), or `None` for anything else.
pub fn sniff(head: &[u8]) -> Option<AssetKind> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if at(0, &[0xFF, 0xD8, 0xFF]) {
        return Some(AssetKind::Jpeg);
    }
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return Some(AssetKind::Png);
    }
    if at(0, b"RIFF") && at(8, b"WEBP") {
        return Some(AssetKind::Webp);
    }
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return Some(AssetKind::Wav);
    }
    if at(0, b"glTF") {
        return Some(AssetKind::Glb);
    }
    if at(4, b"ftyp") {
        let brand: &[u8] = head.get(8..12)?;
        if HEIC_BRANDS.iter().any(|b| &b[..] == brand) {
            return Some(AssetKind::Heic);
        }
        if brand == b"qt  " {
            return Some(AssetKind::Mov);
        }
        if MP4_BRANDS.iter().any(|b| &b[..] == brand) {
            return Some(AssetKind::Mp4);
        }
        return None;
    }
    // EBML (Matroska) whose DocType is "webm", within the header's first bytes.
    if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        return head.windows(4).any(|w| w == b"webm").then_some(AssetKind::Webm);
    }
    if at(0, b"ID3") {
        return Some(AssetKind::Mp3);
    }
    // An MPEG audio frame header: 11 sync bits, a valid version and a layer other than "reserved".
    if let [0xFF, second, ..] = head {
        let version = (second >> 3) & 0b11;
        let layer = (second >> 1) & 0b11;
        if second & 0xE0 == 0xE0 && version != 0b01 && layer != 0b00 {
            return Some(AssetKind::Mp3);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn padded(bytes: &[u8]) -> Vec<u8> {
        let mut v = bytes.to_vec();
        v.resize(SNIFF_BYTES, 0);
        v
    }

    #[test]
    fn every_kind_is_told_by_its_magic_bytes() {
        let cases: [(&[u8], AssetKind); 12] = [
            (&[0xFF, 0xD8, 0xFF, 0xE0], AssetKind::Jpeg),
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", AssetKind::Png),
            (b"RIFF\x10\0\0\0WEBPVP8 ", AssetKind::Webp),
            (b"RIFF\x10\0\0\0WAVEfmt ", AssetKind::Wav),
            (b"glTF\x02\0\0\0", AssetKind::Glb),
            (b"\0\0\0\x18ftypheic\0\0\0\0", AssetKind::Heic),
            (b"\0\0\0\x18ftypqt  \0\0\0\0", AssetKind::Mov),
            (b"\0\0\0\x20ftypisom\0\0\x02\0", AssetKind::Mp4),
            (b"\0\0\0\x20ftypmp42\0\0\0\0", AssetKind::Mp4),
            (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", AssetKind::Webm),
            (b"ID3\x04\0\0\0\0\0\0", AssetKind::Mp3),
            (&[0xFF, 0xFB, 0x90, 0x64], AssetKind::Mp3),
        ];
        for (head, kind) in cases {
            assert_eq!(sniff(&padded(head)), Some(kind), "{head:?}");
            assert_eq!(AssetKind::from_extension(kind.extension()), Some(kind));
        }
    }

    #[test]
    fn other_files_are_not_recognised_whatever_they_claim() {
        for head in [
            &b"hello, this is a text file"[..],
            b"%PDF-1.7",
            b"\0\0\0\x1cftypavif\0\0\0\0", // AVIF: not one of Krea's kinds
            b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska",
            b"GIF89a",
            b"",
            &[0xFF, 0xD8], // too short to be a JPEG
        ] {
            assert_eq!(sniff(&padded(head)), None, "{head:?}");
            assert_eq!(sniff(head), None, "{head:?}");
        }
    }

    #[test]
    fn only_jpeg_png_and_webp_are_decoded() {
        let decodable: Vec<_> = ALL.into_iter().filter(|k| k.is_decodable_image()).collect();
        assert_eq!(decodable, [AssetKind::Jpeg, AssetKind::Png, AssetKind::Webp]);
    }
}
