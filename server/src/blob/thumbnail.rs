//! Server-made previews of PNG, JPEG, GIF and WebP images: decoded with
//! bounds ([`ThumbnailLimits`]: the source's dimensions are read from its
//! header and refused before any pixel is decoded, and the decoder's
//! allocations are capped, so a decompression bomb costs nothing), scaled
//! to fit a square of `max_px`, and encoded as JPEG (PNG when the image has
//! transparency). Sans-IO and blocking: callers run it off the shards
//! (`spawn_blocking`) and store the result as a blob of its own
//! ([`store_thumbnail`]).

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};

use super::content::FileKind;
use super::contract::{BlobError, BlobMeta, BlobStore, BlobWriter};

/// The bounds of one thumbnail's work (from `[blobs]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThumbnailLimits {
    /// Longest side of the thumbnail, pixels.
    pub max_px: u32,
    /// Widest and tallest source decoded, pixels.
    pub max_source_px: u32,
    /// Most bytes the decoder may allocate.
    pub max_decode_bytes: u64,
}

impl ThumbnailLimits {
    /// The limits `[blobs]` sets.
    pub fn from_config(c: &crate::config::BlobsConfig) -> Self {
        Self {
            max_px: c.thumbnail_max_px,
            max_source_px: c.thumbnail_max_source_px,
            max_decode_bytes: c.thumbnail_max_decode_bytes,
        }
    }
}

impl Default for ThumbnailLimits {
    fn default() -> Self {
        Self::from_config(&crate::config::BlobsConfig::default())
    }
}

/// A made thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    /// The encoded image.
    pub bytes: Vec<u8>,
    /// Its type (JPEG or PNG).
    pub kind: FileKind,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
}

/// Why no thumbnail was made (the attachment itself is still fine to keep).
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// Only PNG, JPEG, GIF and WebP get one.
    #[error("no thumbnails of {0:?}")]
    NotAnImage(FileKind),
    /// The source is larger than `thumbnail_max_source_px`.
    #[error("image of {width}x{height} pixels is larger than {limit}x{limit}")]
    TooLarge {
        /// Source width.
        width: u32,
        /// Source height.
        height: u32,
        /// The limit per side.
        limit: u32,
    },
    /// Decoding would allocate more than `thumbnail_max_decode_bytes`.
    #[error("decoding the image would take more than {limit} bytes")]
    DecodeTooBig {
        /// The cap.
        limit: u64,
    },
    /// The image does not decode (truncated or malformed) or encode.
    #[error("image cannot be read: {0}")]
    Image(#[source] image::ImageError),
}

/// Makes the thumbnail of `source`, an image of `kind`; see the module docs.
pub fn make(source: &[u8], kind: FileKind, limits: &ThumbnailLimits) -> Result<Thumbnail, ThumbnailError> {
    let format = match kind {
        FileKind::Png => ImageFormat::Png,
        FileKind::Jpeg => ImageFormat::Jpeg,
        FileKind::Gif => ImageFormat::Gif,
        FileKind::Webp => ImageFormat::WebP,
        other => return Err(ThumbnailError::NotAnImage(other)),
    };
    let mut bounds = Limits::default();
    bounds.max_image_width = Some(limits.max_source_px);
    bounds.max_image_height = Some(limits.max_source_px);
    bounds.max_alloc = Some(limits.max_decode_bytes);
    let reader = |l: Limits| {
        let mut r = ImageReader::with_format(Cursor::new(source), format);
        r.limits(l);
        r
    };
    // The header alone first, to name the dimensions when they are refused.
    let (width, height) = reader(Limits::no_limits()).into_dimensions().map_err(ThumbnailError::Image)?;
    if width > limits.max_source_px || height > limits.max_source_px {
        return Err(ThumbnailError::TooLarge { width, height, limit: limits.max_source_px });
    }
    let img = reader(bounds).decode().map_err(|e| match e {
        image::ImageError::Limits(_) => ThumbnailError::DecodeTooBig { limit: limits.max_decode_bytes },
        e => ThumbnailError::Image(e),
    })?;
    let small = if width <= limits.max_px && height <= limits.max_px {
        img
    } else {
        img.thumbnail(limits.max_px, limits.max_px)
    };
    let (kind, format, small) = if small.color().has_alpha() {
        (FileKind::Png, ImageFormat::Png, image::DynamicImage::ImageRgba8(small.into_rgba8()))
    } else {
        (FileKind::Jpeg, ImageFormat::Jpeg, image::DynamicImage::ImageRgb8(small.into_rgb8()))
    };
    let mut out = Cursor::new(Vec::new());
    small.write_to(&mut out, format).map_err(ThumbnailError::Image)?;
    Ok(Thumbnail { bytes: out.into_inner(), kind, width: small.width(), height: small.height() })
}

/// Stores a made thumbnail as a blob of its own.
pub async fn store_thumbnail<S: BlobStore>(store: &S, thumb: &Thumbnail) -> Result<BlobMeta, BlobError> {
    let mut w = store.begin(thumb.bytes.len() as u64).await?;
    w.write(&thumb.bytes).await?;
    w.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, Rgb, RgbImage, Rgba, RgbaImage};

    fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn photo(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 90])))
    }

    #[test]
    fn each_image_kind_gets_a_bounded_thumbnail() {
        let limits = ThumbnailLimits::default();
        let img = photo(1000, 500);
        for (kind, format) in [
            (FileKind::Png, ImageFormat::Png),
            (FileKind::Jpeg, ImageFormat::Jpeg),
            (FileKind::Gif, ImageFormat::Gif),
            (FileKind::Webp, ImageFormat::WebP),
        ] {
            let src = if format == ImageFormat::Gif {
                encode(&DynamicImage::ImageRgba8(img.to_rgba8()), format)
            } else {
                encode(&img, format)
            };
            let t = make(&src, kind, &limits).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!((t.width, t.height), (320, 160), "{kind:?}: the longest side is max_px, aspect kept");
            assert!(matches!(t.kind, FileKind::Jpeg | FileKind::Png));
            assert_eq!(super::super::content::sniff(&t.bytes, true).unwrap(), t.kind, "{kind:?}");
        }
        // Transparency stays: a PNG thumbnail.
        let clear = DynamicImage::ImageRgba8(RgbaImage::from_pixel(64, 64, Rgba([0, 0, 0, 0])));
        let t = make(&encode(&clear, ImageFormat::Png), FileKind::Png, &limits).unwrap();
        assert_eq!((t.kind, t.width), (FileKind::Png, 64), "a small image is not enlarged");
    }

    #[test]
    fn huge_dimensions_are_refused_before_decoding() {
        // A 20000 x 20000 PNG header: 1.6 GB of pixels if decoded.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&20_000u32.to_be_bytes());
        png.extend_from_slice(&20_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = crc32(&png[12..]);
        png.extend_from_slice(&crc.to_be_bytes());
        png.extend_from_slice(b"\0\0\0\0IDAT");
        png.extend_from_slice(&crc32(b"IDAT").to_be_bytes());
        let e = make(&png, FileKind::Png, &ThumbnailLimits::default()).unwrap_err();
        assert!(matches!(e, ThumbnailError::TooLarge { width: 20_000, height: 20_000, limit: 16_384 }), "{e}");
    }

    #[test]
    fn a_decode_past_the_memory_cap_is_refused() {
        let src = encode(&photo(1200, 1200), ImageFormat::Png);
        let limits = ThumbnailLimits { max_decode_bytes: 1024 * 1024, ..ThumbnailLimits::default() };
        let e = make(&src, FileKind::Png, &limits).unwrap_err();
        assert!(matches!(e, ThumbnailError::DecodeTooBig { limit: 1_048_576 }), "{e}");
    }

    #[test]
    fn broken_and_non_images_get_an_error_not_a_panic() {
        let src = encode(&photo(100, 100), ImageFormat::Jpeg);
        let e = make(&src[..src.len() / 3], FileKind::Jpeg, &ThumbnailLimits::default());
        assert!(e.is_err(), "a cut-off JPEG");
        assert!(matches!(
            make(b"%PDF-1.7", FileKind::Pdf, &ThumbnailLimits::default()),
            Err(ThumbnailError::NotAnImage(_))
        ));
        assert!(matches!(
            make(b"\x89PNG\r\n\x1a\nxx", FileKind::Png, &ThumbnailLimits::default()),
            Err(ThumbnailError::Image(_))
        ));
    }

    /// CRC-32 (IEEE) of a PNG chunk's type and data.
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for b in data {
            c ^= u32::from(*b);
            for _ in 0..8 {
                c = if c & 1 == 1 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
}
