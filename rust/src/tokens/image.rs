//! Image parts: the pixel size of a `data:` URL (PNG, JPEG, GIF or WebP header, read from
//! a decoded prefix only) and the documented per-provider rule that turns a size and a
//! `detail` level into prompt tokens.
//!
//! OpenAI (tile models: gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1, o3, …): `low` costs the base
//! tokens; `high` (and `auto`, counted as `high` so a reservation never comes out short)
//! fits the image into 2048×2048, scales its shortest side down to 768, and adds the tile
//! tokens for each 512-px tile. Patch models (gpt-4.1-mini/nano, gpt-5-mini/nano, o4-mini)
//! count 32-px patches (at most 1536) times a model multiplier. Anthropic: `w·h/750` after
//! fitting into 1568 px and 1.15 megapixels. Gemini: 258 per image up to 384×384, else 258
//! per crop tile. When the size is unknown (an `https:` URL, an unreadable header) the
//! image is counted as a 1024×1024 picture for OpenAI, at Anthropic's cap (1600) and as
//! one Gemini image (258).

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

/// The size assumed for an image whose size cannot be read (OpenAI rules).
pub const DEFAULT_SIZE: (u32, u32) = (1024, 1024);
/// Anthropic's documented ceiling for one image.
const ANTHROPIC_MAX: usize = 1600;
const GEMINI_TILE: usize = 258;
/// Enough base64 to reach a JPEG frame header behind a large EXIF block.
const MAX_PREFIX_CHARS: usize = 192 * 1024;

/// The `detail` field of an OpenAI image part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    Low,
    High,
    Auto,
}

impl Detail {
    pub fn parse(s: Option<&str>) -> Detail {
        match s {
            Some(d) if d.eq_ignore_ascii_case("low") => Detail::Low,
            Some(d) if d.eq_ignore_ascii_case("high") => Detail::High,
            _ => Detail::Auto,
        }
    }
}

/// How a model counts an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageRule {
    /// OpenAI tile rule: `base + tile × tiles` (detail low: `base`).
    Tiles {
        base: usize,
        tile: usize,
    },
    /// OpenAI patch rule: `ceil(patches × milli / 1000)`.
    Patches {
        milli: usize,
    },
    Anthropic,
    Gemini,
}

impl ImageRule {
    /// The rule of a model (provider prefixes are looked through).
    pub fn for_model(model: &str) -> ImageRule {
        let lower = model.trim().to_ascii_lowercase();
        let m = lower.rsplit('/').next().unwrap_or(&lower);
        if m.contains("claude") {
            ImageRule::Anthropic
        } else if m.starts_with("gemini") || m.contains(".gemini") {
            ImageRule::Gemini
        } else if m.starts_with("gpt-4o-mini") {
            ImageRule::Tiles {
                base: 2833,
                tile: 5667,
            }
        } else if m.starts_with("gpt-4.1-mini") || m.starts_with("gpt-5-mini") {
            ImageRule::Patches { milli: 1620 }
        } else if m.starts_with("gpt-4.1-nano") || m.starts_with("gpt-5-nano") {
            ImageRule::Patches { milli: 2460 }
        } else if m.starts_with("o4-mini") {
            ImageRule::Patches { milli: 1720 }
        } else if m.starts_with("o1") || m.starts_with("o3") {
            ImageRule::Tiles {
                base: 75,
                tile: 150,
            }
        } else if m.starts_with("computer-use") {
            ImageRule::Tiles {
                base: 65,
                tile: 129,
            }
        } else {
            ImageRule::Tiles {
                base: 85,
                tile: 170,
            }
        }
    }

    /// Tokens of one image of `size` (None: unknown) at `detail`.
    pub fn tokens(self, size: Option<(u32, u32)>, detail: Detail) -> usize {
        match self {
            ImageRule::Tiles { base, tile } => {
                if detail == Detail::Low {
                    return base;
                }
                let (w, h) = size.unwrap_or(DEFAULT_SIZE);
                base + tile * openai_tiles(w, h)
            }
            ImageRule::Patches { milli } => {
                let (w, h) = size.unwrap_or(DEFAULT_SIZE);
                (openai_patches(w, h) * milli).div_ceil(1000)
            }
            ImageRule::Anthropic => size.map_or(ANTHROPIC_MAX, |(w, h)| anthropic(w, h)),
            ImageRule::Gemini => size.map_or(GEMINI_TILE, |(w, h)| gemini(w, h)),
        }
    }
}

fn openai_tiles(w: u32, h: u32) -> usize {
    if w == 0 || h == 0 {
        return 0;
    }
    let (mut w, mut h) = (f64::from(w), f64::from(h));
    let longest = w.max(h);
    if longest > 2048.0 {
        let s = 2048.0 / longest;
        (w, h) = (w * s, h * s);
    }
    let shortest = w.min(h);
    if shortest > 768.0 {
        let s = 768.0 / shortest;
        (w, h) = (w * s, h * s);
    }
    ((w / 512.0).ceil() as usize) * ((h / 512.0).ceil() as usize)
}

fn openai_patches(w: u32, h: u32) -> usize {
    const PATCH: f64 = 32.0;
    const CAP: f64 = 1536.0;
    if w == 0 || h == 0 {
        return 0;
    }
    let (w, h) = (f64::from(w), f64::from(h));
    let raw = (w / PATCH).ceil() * (h / PATCH).ceil();
    if raw <= CAP {
        return raw as usize;
    }
    let shrink = (PATCH * PATCH * CAP / (w * h)).sqrt();
    let fit_w = (w * shrink / PATCH).floor() / (w * shrink / PATCH);
    let fit_h = (h * shrink / PATCH).floor() / (h * shrink / PATCH);
    let s = shrink * fit_w.min(fit_h);
    let patches = ((w * s).floor() / PATCH).ceil() * ((h * s).floor() / PATCH).ceil();
    patches.min(CAP) as usize
}

fn anthropic(w: u32, h: u32) -> usize {
    if w == 0 || h == 0 {
        return 0;
    }
    let (mut w, mut h) = (f64::from(w), f64::from(h));
    let longest = w.max(h);
    if longest > 1568.0 {
        let s = 1568.0 / longest;
        (w, h) = (w * s, h * s);
    }
    if w * h > 1_150_000.0 {
        let s = (1_150_000.0 / (w * h)).sqrt();
        (w, h) = (w * s, h * s);
    }
    ((w * h / 750.0).ceil() as usize).min(ANTHROPIC_MAX)
}

fn gemini(w: u32, h: u32) -> usize {
    if w <= 384 && h <= 384 {
        return GEMINI_TILE;
    }
    let unit = (f64::from(w.min(h)) / 1.5).floor().clamp(256.0, 768.0);
    let tiles = (f64::from(w) / unit).ceil() * (f64::from(h) / unit).ceil();
    tiles as usize * GEMINI_TILE
}

/// The pixel size of a base64 `data:` URL holding a PNG, JPEG, GIF or WebP image.
pub fn image_size_from_data_url(url: &str) -> Option<(u32, u32)> {
    let rest = url.trim_start().strip_prefix("data:")?;
    let (header, payload) = rest.split_once(',')?;
    if !header.to_ascii_lowercase().contains(";base64") {
        return None;
    }
    image_size_from_base64(payload)
}

/// The pixel size of base64 image bytes (only a prefix is decoded).
pub fn image_size_from_base64(payload: &str) -> Option<(u32, u32)> {
    let payload = payload.trim();
    let mut end = payload.len().min(MAX_PREFIX_CHARS);
    if end < payload.len() {
        end -= end % 4;
    }
    let prefix = payload.get(..end)?;
    let config = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    let bytes = GeneralPurpose::new(&alphabet::STANDARD, config)
        .decode(prefix)
        .or_else(|_| GeneralPurpose::new(&alphabet::URL_SAFE, config).decode(prefix))
        .ok()?;
    image_size(&bytes)
}

/// The pixel size from the first bytes of a PNG, JPEG, GIF or WebP file.
pub fn image_size(b: &[u8]) -> Option<(u32, u32)> {
    let be16 = |i: usize| Some(u32::from(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?])));
    let le16 = |i: usize| Some(u32::from(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?])));
    let le24 = |i: usize| {
        Some(u32::from_le_bytes([
            *b.get(i)?,
            *b.get(i + 1)?,
            *b.get(i + 2)?,
            0,
        ]))
    };
    if b.starts_with(b"\x89PNG\r\n\x1a\n") && b.get(12..16) == Some(b"IHDR") {
        let w = u32::from_be_bytes(b.get(16..20)?.try_into().ok()?);
        let h = u32::from_be_bytes(b.get(20..24)?.try_into().ok()?);
        return Some((w, h));
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return Some((le16(6)?, le16(8)?));
    }
    if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        return match b.get(12..16)? {
            b"VP8 " => Some((le16(26)? & 0x3fff, le16(28)? & 0x3fff)),
            b"VP8L" => {
                let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
                Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
            }
            b"VP8X" => Some((le24(24)? + 1, le24(27)? + 1)),
            _ => None,
        };
    }
    if b.starts_with(&[0xff, 0xd8]) {
        let mut i = 2;
        while i + 1 < b.len() {
            if b[i] != 0xff {
                return None;
            }
            let marker = b[i + 1];
            if marker == 0xff {
                i += 1; // fill byte
                continue;
            }
            if marker == 0x01 || (0xd0..=0xd9).contains(&marker) {
                i += 2;
                continue;
            }
            let len = be16(i + 2)? as usize;
            let is_frame = matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc);
            if is_frame {
                return Some((be16(i + 7)?, be16(i + 5)?));
            }
            if len < 2 {
                return None;
            }
            i += 2 + len;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend(w.to_be_bytes());
        b.extend(h.to_be_bytes());
        b.extend([8, 6, 0, 0, 0]);
        b
    }

    fn jpeg(w: u16, h: u16) -> Vec<u8> {
        let mut b = vec![0xff, 0xd8, 0xff, 0xe0, 0, 16];
        b.extend(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        b.extend([0xff, 0xdb, 0, 4, 0, 0]); // a (short) quantisation table
        b.extend([0xff, 0xc2, 0, 17, 8]);
        b.extend(h.to_be_bytes());
        b.extend(w.to_be_bytes());
        b.extend([3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        b
    }

    fn data_url(mime: &str, bytes: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        format!("data:{mime};base64,{b64}")
    }

    #[test]
    fn reads_headers() {
        assert_eq!(image_size(&png(640, 480)), Some((640, 480)));
        assert_eq!(image_size(&jpeg(1920, 1080)), Some((1920, 1080)));
        assert_eq!(image_size(b"GIF89a\x20\x03\x58\x02rest"), Some((800, 600)));
        assert_eq!(image_size(b"not an image"), None);
        assert_eq!(image_size(&[0xff, 0xd8, 0xff]), None);
        let url = data_url("image/png", &png(4096, 2048));
        assert_eq!(image_size_from_data_url(&url), Some((4096, 2048)));
        let url = data_url("image/jpeg", &jpeg(300, 200));
        assert_eq!(image_size_from_data_url(&url), Some((300, 200)));
        assert_eq!(image_size_from_data_url("https://x/y.png"), None);
        assert_eq!(image_size_from_data_url("data:image/png;base64,!!!"), None);
        assert_eq!(image_size_from_data_url("data:text/plain,hello"), None);
    }

    #[test]
    fn openai_tile_rule() {
        let rule = ImageRule::for_model("gpt-4o");
        // OpenAI's documented examples.
        assert_eq!(rule.tokens(Some((1024, 1024)), Detail::High), 765);
        assert_eq!(rule.tokens(Some((2048, 4096)), Detail::High), 1105);
        assert_eq!(rule.tokens(Some((4096, 8192)), Detail::Low), 85);
        assert_eq!(rule.tokens(Some((512, 512)), Detail::Auto), 255);
        assert_eq!(rule.tokens(None, Detail::Auto), 765);
        let mini = ImageRule::for_model("gpt-4o-mini");
        assert_eq!(
            mini.tokens(Some((1024, 1024)), Detail::High),
            2833 + 4 * 5667
        );
        assert_eq!(mini.tokens(None, Detail::Low), 2833);
    }

    #[test]
    fn openai_patch_rule() {
        let rule = ImageRule::for_model("gpt-4.1-mini");
        // 1024×1024: 32×32 = 1024 patches; 1800×2400 is shrunk to 1452 patches (docs).
        assert_eq!(
            rule.tokens(Some((1024, 1024)), Detail::High),
            (1024 * 1620usize).div_ceil(1000)
        );
        assert_eq!(openai_patches(1800, 2400), 1452);
        assert_eq!(openai_patches(1024, 1024), 1024);
    }

    #[test]
    fn other_providers() {
        let a = ImageRule::for_model("claude-3-5-sonnet");
        assert_eq!(a.tokens(Some((1000, 1000)), Detail::Auto), 1334);
        assert_eq!(a.tokens(Some((8000, 8000)), Detail::Auto), 1534);
        assert_eq!(a.tokens(None, Detail::Auto), 1600);
        let g = ImageRule::for_model("gemini-2.0-flash");
        assert_eq!(g.tokens(Some((300, 300)), Detail::Auto), 258);
        assert_eq!(g.tokens(Some((960, 540)), Detail::Auto), 6 * 258);
    }
}
