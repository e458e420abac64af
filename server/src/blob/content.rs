//! What an upload is, judged by its bytes, not by the name or type the
//! client gives: the allow-list ([`FileKind`]), the sniffing rules, and
//! [`ContentCheck`], a sans-IO check fed the upload's chunks as they stream.
//!
//! Binary formats are recognised by their magic bytes with `infer`'s
//! matchers. ZIP-based documents are told apart by the entries at the front
//! of the archive: DOCX/XLSX/PPTX by their `word/`, `xl/`, `ppt/` parts,
//! ODT by its uncompressed `mimetype` entry; any other ZIP is refused. What
//! no binary matcher claims is text when it is valid UTF-8 without control
//! characters other than tab, line feed, form feed and carriage return (the
//! whole upload is checked, not just its head); text that opens with an
//! RFC 5322 header block (field lines, a `From:` and one of `Date:`,
//! `Message-ID:`, `Subject:`, `MIME-Version:`, `Received:`) is an e-mail,
//! whose body may be in any 8-bit charset but holds no NUL byte.

/// Bytes looked at before the type is decided (the OOXML parts can sit a
/// few kilobytes into the archive).
pub const SNIFF_BYTES: usize = 16 * 1024;

/// An allowed type of attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// PDF document.
    Pdf,
    /// PNG image.
    Png,
    /// JPEG image.
    Jpeg,
    /// GIF image.
    Gif,
    /// WebP image.
    Webp,
    /// HEIC image (HEIF with HEVC).
    Heic,
    /// Word document (OOXML).
    Docx,
    /// Excel workbook (OOXML).
    Xlsx,
    /// PowerPoint presentation (OOXML).
    Pptx,
    /// OpenDocument text.
    Odt,
    /// Rich Text Format.
    Rtf,
    /// Plain UTF-8 text.
    Txt,
    /// An e-mail message (RFC 5322).
    Eml,
    /// A file of an end-to-end encrypted conversation, encrypted on the
    /// device (only there; not in [`ALLOWED`]): the server cannot look inside.
    E2eEncrypted,
}

/// The media type of a file encrypted on the device for an E2E conversation.
pub use chat_protocol::limits::E2E_MEDIA_TYPE as E2E_MIME;

/// Every allowed kind, for listing and tests.
pub const ALLOWED: [FileKind; 13] = [
    FileKind::Pdf,
    FileKind::Png,
    FileKind::Jpeg,
    FileKind::Gif,
    FileKind::Webp,
    FileKind::Heic,
    FileKind::Docx,
    FileKind::Xlsx,
    FileKind::Pptx,
    FileKind::Odt,
    FileKind::Rtf,
    FileKind::Txt,
    FileKind::Eml,
];

impl FileKind {
    /// The media type stored and sent with the attachment.
    pub fn mime(self) -> &'static str {
        match self {
            FileKind::Pdf => "application/pdf",
            FileKind::Png => "image/png",
            FileKind::Jpeg => "image/jpeg",
            FileKind::Gif => "image/gif",
            FileKind::Webp => "image/webp",
            FileKind::Heic => "image/heic",
            FileKind::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            FileKind::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            FileKind::Pptx => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            FileKind::Odt => "application/vnd.oasis.opendocument.text",
            FileKind::Rtf => "application/rtf",
            FileKind::Txt => "text/plain",
            FileKind::Eml => "message/rfc822",
            FileKind::E2eEncrypted => E2E_MIME,
        }
    }

    /// The kind a client's media type names (parameters and case ignored;
    /// common aliases accepted), or None when it is not on the allow-list.
    pub fn from_mime(mime: &str) -> Option<Self> {
        let base = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let alias = match base.as_str() {
            "image/jpg" | "image/pjpeg" => Some(FileKind::Jpeg),
            "image/heif" => Some(FileKind::Heic),
            "text/rtf" => Some(FileKind::Rtf),
            _ => None,
        };
        alias.or_else(|| ALLOWED.into_iter().find(|k| k.mime() == base))
    }

    /// Whether the server makes a thumbnail of it.
    pub fn is_previewable_image(self) -> bool {
        matches!(self, FileKind::Png | FileKind::Jpeg | FileKind::Gif | FileKind::Webp)
    }
}

/// Why an upload's content is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// The client's media type is not on the allow-list.
    #[error(
        "type {claimed:?} is not allowed (allowed: PDF, PNG, JPEG, GIF, WebP, HEIC, DOCX, XLSX, PPTX, ODT, RTF, TXT, EML)"
    )]
    ClaimedNotAllowed {
        /// What the client said (at most 100 characters).
        claimed: String,
    },
    /// The bytes are of a type not on the allow-list.
    #[error("content is {found}, which is not allowed")]
    NotAllowed {
        /// What the bytes look like.
        found: String,
    },
    /// The bytes are an allowed type, but not the one claimed.
    #[error("content is {sniffed} but was declared as {claimed}")]
    Mismatch {
        /// The declared type.
        claimed: &'static str,
        /// The type of the bytes.
        sniffed: &'static str,
    },
    /// Text that is not valid UTF-8 text.
    #[error("not plain UTF-8 text: {detail} at byte {offset}")]
    NotText {
        /// Offset of the first offending byte.
        offset: u64,
        /// What is wrong there.
        detail: &'static str,
    },
    /// An empty upload.
    #[error("the file is empty")]
    Empty,
}

/// An `infer` matcher: whether bytes are of one type.
type Matcher = fn(&[u8]) -> bool;

/// The kind of the bytes `head` (an upload's first [`SNIFF_BYTES`], or all
/// of it when shorter), by the rules of the module docs. `complete` says
/// `head` is the whole file (else a UTF-8 sequence cut at its end is fine).
pub fn sniff(head: &[u8], complete: bool) -> Result<FileKind, ContentError> {
    use infer::{archive, doc, image, odf};
    if head.is_empty() {
        return Err(ContentError::Empty);
    }
    let binary: [(Matcher, FileKind); 11] = [
        (archive::is_pdf, FileKind::Pdf),
        (image::is_png, FileKind::Png),
        (image::is_jpeg, FileKind::Jpeg),
        (image::is_gif, FileKind::Gif),
        (is_webp, FileKind::Webp),
        (image::is_heif, FileKind::Heic),
        (doc::is_docx, FileKind::Docx),
        (doc::is_xlsx, FileKind::Xlsx),
        (doc::is_pptx, FileKind::Pptx),
        (odf::is_odt, FileKind::Odt),
        (archive::is_rtf, FileKind::Rtf),
    ];
    if let Some((_, kind)) = binary.iter().find(|(is, _)| is(head)) {
        return Ok(*kind);
    }
    if archive::is_zip(head) {
        return Err(ContentError::NotAllowed {
            found: "a ZIP archive that is not a DOCX, XLSX, PPTX or ODT document".into(),
        });
    }
    // Everything else `infer` knows, HTML and scripts included, is refused by name.
    if let Some(t) = infer::get(head) {
        return Err(ContentError::NotAllowed { found: t.mime_type().to_string() });
    }
    if looks_like_email(head) {
        if let Some(at) = head.iter().position(|b| *b == 0) {
            return Err(ContentError::NotText { offset: at as u64, detail: "a NUL byte" });
        }
        return Ok(FileKind::Eml);
    }
    let mut text = TextCheck::default();
    text.feed(head)?;
    if complete {
        text.finish()?;
    }
    Ok(FileKind::Txt)
}

/// WebP: `infer` looks only at the `WEBP` at byte 8; the RIFF container too.
fn is_webp(head: &[u8]) -> bool {
    head.starts_with(b"RIFF") && infer::image::is_webp(head)
}

/// An RFC 5322 header block at the start: field lines (and folded
/// continuations) up to a blank line or the end of `head`, with `From:` and
/// at least one of the fields every mail client writes.
fn looks_like_email(head: &[u8]) -> bool {
    let block =
        match head.windows(2).position(|w| w == b"\n\n").or_else(|| head.windows(4).position(|w| w == b"\r\n\r\n")) {
            Some(end) => &head[..end],
            None => head,
        };
    let mut names = Vec::new();
    for (i, line) in block.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if i > 0 && (line[0] == b' ' || line[0] == b'\t') {
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else { return false };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|b| (33..=126).contains(b)) {
            return false;
        }
        names.push(name.to_ascii_lowercase());
    }
    let has = |n: &[u8]| names.iter().any(|x| x == n);
    has(b"from") && [&b"date"[..], b"message-id", b"subject", b"mime-version", b"received"].iter().any(|n| has(n))
}

/// Streaming validation of UTF-8 text without control characters.
#[derive(Debug, Default)]
struct TextCheck {
    /// Bytes of a sequence cut by a chunk's end (at most 3).
    carry: Vec<u8>,
    /// Bytes validated before `carry`.
    offset: u64,
}

impl TextCheck {
    fn feed(&mut self, mut chunk: &[u8]) -> Result<(), ContentError> {
        if !self.carry.is_empty() {
            let want = utf8_width(self.carry[0]).saturating_sub(self.carry.len());
            let take = want.min(chunk.len());
            self.carry.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if take < want {
                return Ok(());
            }
            let carried = std::mem::take(&mut self.carry);
            self.check(&carried)?;
        }
        self.check(chunk)
    }

    /// Checks `bytes` (which follow what was checked), keeping a cut sequence.
    fn check(&mut self, bytes: &[u8]) -> Result<(), ContentError> {
        let (valid, rest) = match std::str::from_utf8(bytes) {
            Ok(s) => (s, &[][..]),
            Err(e) if e.error_len().is_none() => {
                let (v, r) = bytes.split_at(e.valid_up_to());
                (std::str::from_utf8(v).unwrap_or_default(), r)
            }
            Err(e) => {
                return Err(ContentError::NotText {
                    offset: self.offset + e.valid_up_to() as u64,
                    detail: "invalid UTF-8",
                });
            }
        };
        if let Some(at) =
            valid.bytes().position(|b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r')) || b == 0x7f)
        {
            return Err(ContentError::NotText { offset: self.offset + at as u64, detail: "a control character" });
        }
        self.offset += valid.len() as u64;
        self.carry.extend_from_slice(rest);
        Ok(())
    }

    fn finish(&self) -> Result<(), ContentError> {
        if self.carry.is_empty() {
            Ok(())
        } else {
            Err(ContentError::NotText { offset: self.offset, detail: "a UTF-8 sequence cut off at the end" })
        }
    }
}

/// The length of the UTF-8 sequence a lead byte starts (1 for anything else).
fn utf8_width(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// The content check of one upload, fed its chunks in order: decides the
/// kind from the first [`SNIFF_BYTES`] (or the whole file, if shorter),
/// compares it with the declared one, and goes on checking text to the end.
/// Holds at most [`SNIFF_BYTES`] of the upload.
#[derive(Debug)]
pub struct ContentCheck {
    claimed: FileKind,
    head: Vec<u8>,
    kind: Option<FileKind>,
    /// For text: the check of what follows the head.
    text: Option<TextCheck>,
    /// For e-mail: bytes seen, to place a NUL.
    seen: u64,
}

impl ContentCheck {
    /// A check of an upload the client declares as `claimed_mime`; refused
    /// at once when that type is not allowed.
    pub fn new(claimed_mime: &str) -> Result<Self, ContentError> {
        let claimed = FileKind::from_mime(claimed_mime)
            .ok_or_else(|| ContentError::ClaimedNotAllowed { claimed: claimed_mime.chars().take(100).collect() })?;
        Ok(Self { claimed, head: Vec::new(), kind: None, text: None, seen: 0 })
    }

    /// The check of a file encrypted on the device (an E2E conversation's):
    /// any bytes, kept as [`FileKind::E2eEncrypted`].
    pub fn opaque() -> Self {
        let kind = FileKind::E2eEncrypted;
        Self { claimed: kind, head: Vec::new(), kind: Some(kind), text: None, seen: 0 }
    }

    /// The kind, once decided.
    pub fn kind(&self) -> Option<FileKind> {
        self.kind
    }

    /// Takes the next chunk; returns the kind once it is known. An error
    /// means the upload must be refused (and what was stored of it dropped).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Option<FileKind>, ContentError> {
        if self.kind.is_none() {
            let take = (SNIFF_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            if self.head.len() < SNIFF_BYTES {
                return Ok(None);
            }
            self.decide(false)?;
            return self.feed_rest(&chunk[take..]).map(|()| self.kind);
        }
        self.feed_rest(chunk).map(|()| self.kind)
    }

    /// The upload ended: the kind, or why it is refused.
    pub fn finish(mut self) -> Result<FileKind, ContentError> {
        if self.kind.is_none() {
            self.decide(true)?;
        }
        if let Some(text) = &self.text {
            text.finish()?;
        }
        self.kind.ok_or(ContentError::Empty)
    }

    fn decide(&mut self, complete: bool) -> Result<(), ContentError> {
        let sniffed = sniff(&self.head, complete)?;
        // E-mail is text too: declared as text/plain it is stored as such.
        let kind = match (self.claimed, sniffed) {
            (FileKind::Txt, FileKind::Eml) => FileKind::Txt,
            (c, s) if c == s => s,
            (c, s) => return Err(ContentError::Mismatch { claimed: c.mime(), sniffed: s.mime() }),
        };
        if kind == FileKind::Txt {
            let mut text = TextCheck::default();
            text.feed(&self.head)?;
            self.text = Some(text);
        }
        self.seen = self.head.len() as u64;
        self.kind = Some(kind);
        self.head = Vec::new();
        Ok(())
    }

    fn feed_rest(&mut self, chunk: &[u8]) -> Result<(), ContentError> {
        if let Some(text) = &mut self.text {
            text.feed(chunk)?;
        } else if self.kind == Some(FileKind::Eml)
            && let Some(at) = chunk.iter().position(|b| *b == 0)
        {
            return Err(ContentError::NotText { offset: self.seen + at as u64, detail: "a NUL byte" });
        }
        self.seen += chunk.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
