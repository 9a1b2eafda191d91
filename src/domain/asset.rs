//! What an uploaded file is, told from its first bytes — never from its name or the client's
//! `Content-Type`, though those must agree with the bytes when given — and the kinds Krea's
//! `POST /assets` accepts.
//!
//! The magic-byte table is our own rather than the `infer` crate's: it is a closed list of
//! Krea's kinds (GLB among them) with the exact `ftyp` brands we accept, it is already
//! tested, and `infer` would be a new dependency for no new check. The decodable images are then
//! decoded by the `image` crate, which is the real proof of those.

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

/// What a client's own description of an upload claims it is: `Some(kind)`, or `None` when it
/// claims nothing (no type, a generic binary one, an extension we do not know).
fn claimed_by_type(declared: &str) -> Result<Option<AssetKind>, ()> {
    let essence = declared.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    Ok(Some(match essence.as_str() {
        "" | "application/octet-stream" | "binary/octet-stream" | "application/binary" | "application/unknown" => {
            return Ok(None)
        }
        "image/jpeg" | "image/jpg" | "image/pjpeg" => AssetKind::Jpeg,
        "image/png" | "image/x-png" => AssetKind::Png,
        "image/webp" => AssetKind::Webp,
        "image/heic" | "image/heif" => AssetKind::Heic,
        "video/mp4" | "video/x-m4v" => AssetKind::Mp4,
        "video/quicktime" => AssetKind::Mov,
        "video/webm" | "audio/webm" => AssetKind::Webm,
        "model/gltf-binary" => AssetKind::Glb,
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => AssetKind::Wav,
        "audio/mpeg" | "audio/mp3" | "audio/x-mpeg" | "audio/mpeg3" => AssetKind::Mp3,
        // Any other named type (`text/html`, `image/svg+xml`, `image/gif`) is a claim the
        // bytes of an accepted kind cannot meet.
        _ => return Err(()),
    }))
}

fn claimed_by_name(file_name: &str) -> Option<AssetKind> {
    let (_, ext) = file_name.rsplit_once('.')?;
    Some(match ext.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" | "jpe" | "jfif" => AssetKind::Jpeg,
        "png" => AssetKind::Png,
        "webp" => AssetKind::Webp,
        "heic" | "heif" => AssetKind::Heic,
        "mp4" | "m4v" => AssetKind::Mp4,
        "mov" | "qt" => AssetKind::Mov,
        "webm" => AssetKind::Webm,
        "glb" => AssetKind::Glb,
        "wav" | "wave" => AssetKind::Wav,
        "mp3" => AssetKind::Mp3,
        _ => return None,
    })
}

/// MP4 and QuickTime are one container (ISO base media): cameras, phones and editors label
/// either as the other, so a claim of one is met by the bytes of the other.
fn same_kind(a: AssetKind, b: AssetKind) -> bool {
    let family = |k| if k == AssetKind::Mov { AssetKind::Mp4 } else { k };
    family(a) == family(b)
}

/// Checks what the client said an upload is (its part's `Content-Type` and file name) against
/// `kind`, what its bytes are. A claim that disagrees is refused, naming both, rather than
/// stored and served as something the client did not say it was (a PNG/HTML polyglot sent as
/// `text/html`, a script named `.png`, a JPEG labelled PNG). No claim at all is fine: then the
/// bytes alone decide.
pub fn check_claims(kind: AssetKind, declared_type: Option<&str>, file_name: Option<&str>) -> Result<(), String> {
    let is = kind.mime_type();
    if let Some(declared) = declared_type {
        let agrees = match claimed_by_type(declared) {
            Ok(claimed) => claimed.is_none_or(|c| same_kind(c, kind)),
            Err(()) => false,
        };
        if !agrees {
            return Err(format!("the file is declared `{declared}` but its bytes are {is}"));
        }
    }
    if let Some(name) = file_name {
        if let Some(claimed) = claimed_by_name(name).filter(|c| !same_kind(*c, kind)) {
            return Err(format!("the file is named `{name}` ({}) but its bytes are {is}", claimed.mime_type()));
        }
    }
    Ok(())
}

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
    fn a_claim_must_agree_with_the_bytes_and_no_claim_is_fine() {
        let fine = [
            (AssetKind::Png, None, None),
            (AssetKind::Png, Some("image/png"), Some("a.png")),
            (AssetKind::Png, Some("application/octet-stream"), Some("a")),
            (AssetKind::Png, Some("IMAGE/PNG; charset=binary"), Some("A.PNG")),
            (AssetKind::Jpeg, Some("image/jpg"), Some("photo.JPEG")),
            (AssetKind::Mov, Some("video/mp4"), Some("clip.mp4")),
            (AssetKind::Mp4, Some("video/quicktime"), Some("clip.MOV")),
            (AssetKind::Glb, None, Some("thing.bin")),
        ];
        for (kind, declared, name) in fine {
            assert_eq!(check_claims(kind, declared, name), Ok(()), "{kind:?} {declared:?} {name:?}");
        }
        let refused = [
            (AssetKind::Png, Some("image/jpeg"), None, "declared `image/jpeg` but its bytes are image/png"),
            (AssetKind::Png, Some("text/html"), Some("a.png"), "declared `text/html` but its bytes are image/png"),
            (AssetKind::Jpeg, None, Some("x.png"), "named `x.png` (image/png) but its bytes are image/jpeg"),
            (AssetKind::Mp4, Some("image/png"), None, "declared `image/png` but its bytes are video/mp4"),
            (AssetKind::Webp, None, Some("clip.webm"), "named `clip.webm` (video/webm) but its bytes are image/webp"),
        ];
        for (kind, declared, name, needle) in refused {
            let why = check_claims(kind, declared, name).unwrap_err();
            assert!(why.contains(needle), "{why}");
        }
    }

    #[test]
    fn only_jpeg_png_and_webp_are_decoded() {
        let decodable: Vec<_> = ALL.into_iter().filter(|k| k.is_decodable_image()).collect();
        assert_eq!(decodable, [AssetKind::Jpeg, AssetKind::Png, AssetKind::Webp]);
    }
}
