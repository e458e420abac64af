//! The content rules, one case per kind and per refusal.

use super::*;

/// A ZIP whose first entry is `name` (a local file header, then the name).
fn zip_with_first(name: &str, rest: &[u8]) -> Vec<u8> {
    let mut b = b"PK\x03\x04".to_vec();
    b.extend_from_slice(&[0u8; 26]);
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(rest);
    b.resize(b.len() + 64, 0);
    b
}

fn samples() -> Vec<(FileKind, Vec<u8>)> {
    let mut heic = vec![0, 0, 0, 0x18];
    heic.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
    heic.extend_from_slice(&[0u8; 32]);
    vec![
        (FileKind::Pdf, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj".to_vec()),
        (FileKind::Png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01".to_vec()),
        (FileKind::Jpeg, b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01".to_vec()),
        (FileKind::Gif, b"GIF89a\x01\0\x01\0\x80\0\0".to_vec()),
        (FileKind::Webp, b"RIFF\x24\0\0\0WEBPVP8 \x18\0\0\0".to_vec()),
        (FileKind::Heic, heic),
        (FileKind::Docx, zip_with_first("word/document.xml", b"")),
        (FileKind::Xlsx, zip_with_first("xl/workbook.xml", b"")),
        (FileKind::Pptx, zip_with_first("ppt/presentation.xml", b"")),
        (FileKind::Odt, zip_with_first("mimetype", b"application/vnd.oasis.opendocument.text")),
        (FileKind::Rtf, b"{\\rtf1\\ansi\\deff0 {\\fonttbl}".to_vec()),
        (FileKind::Txt, "Mandant: Müller\r\nAkte 12/2026\tfrist\n".as_bytes().to_vec()),
        (
            FileKind::Eml,
            b"Received: from mx.firm.example\r\nFrom: Ann <ann@firm.example>\r\nTo: bob@client.example\r\n\
              Subject: Settlement\r\n =?utf-8?q?draft?=\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\n\r\nBody \xe9t\xe9\r\n"
                .to_vec(),
        ),
    ]
}

fn check(claimed: &str, bytes: &[u8], chunk: usize) -> Result<FileKind, ContentError> {
    let mut c = ContentCheck::new(claimed)?;
    for part in bytes.chunks(chunk.max(1)) {
        c.feed(part)?;
    }
    c.finish()
}

#[test]
fn every_allowed_kind_is_recognised_by_its_bytes() {
    for (kind, bytes) in samples() {
        assert_eq!(sniff(&bytes, true), Ok(kind), "{kind:?}");
        for chunk in [1, 7, bytes.len()] {
            assert_eq!(check(kind.mime(), &bytes, chunk), Ok(kind), "{kind:?} in chunks of {chunk}");
        }
    }
    assert_eq!(samples().len(), ALLOWED.len());
}

#[test]
fn zip_documents_are_told_apart_and_other_zips_refused() {
    let kinds: Vec<_> =
        samples().into_iter().filter(|(_, b)| b.starts_with(b"PK")).map(|(k, b)| (k, sniff(&b, true))).collect();
    assert_eq!(kinds.len(), 4);
    assert!(kinds.iter().all(|(k, s)| s == &Ok(*k)), "{kinds:?}");
    let plain = zip_with_first("notes/readme.txt", b"");
    let e = check("application/vnd.openxmlformats-officedocument.wordprocessingml.document", &plain, 100).unwrap_err();
    assert_eq!(
        e,
        ContentError::NotAllowed { found: "a ZIP archive that is not a DOCX, XLSX, PPTX or ODT document".into() }
    );
    // An ODS is an OpenDocument too, but not on the list.
    let ods = zip_with_first("mimetype", b"application/vnd.oasis.opendocument.spreadsheet");
    assert!(matches!(sniff(&ods, true), Err(ContentError::NotAllowed { .. })));
}

#[test]
fn disallowed_types_are_named() {
    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
    elf.resize(64, 0);
    let cases: [(&[u8], &str); 4] = [
        (&elf, "application/x-executable"),
        (b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff", "application/vnd.microsoft.portable-executable"),
        (b"<!DOCTYPE html><html><script>alert(1)</script>", "text/html"),
        (b"\x1f\x8b\x08\0\0\0\0\0\0\x03", "application/gzip"),
    ];
    for (bytes, found) in cases {
        assert_eq!(check("text/plain", bytes, 64), Err(ContentError::NotAllowed { found: found.into() }), "{found}");
    }
    let e = ContentCheck::new("application/x-msdownload").unwrap_err();
    assert_eq!(e, ContentError::ClaimedNotAllowed { claimed: "application/x-msdownload".into() });
    assert!(e.to_string().contains("not allowed"), "{e}");
    assert_eq!(check("text/plain", b"", 10), Err(ContentError::Empty));
}

#[test]
fn a_declared_type_that_is_not_the_content_is_a_mismatch() {
    let png = &samples()[1].1;
    let e = check("application/pdf", png, 5).unwrap_err();
    assert_eq!(e, ContentError::Mismatch { claimed: "application/pdf", sniffed: "image/png" });
    assert_eq!(e.to_string(), "content is image/png but was declared as application/pdf");
    // Aliases and parameters are the same type.
    assert_eq!(check("IMAGE/JPG", &samples()[2].1, 3), Ok(FileKind::Jpeg));
    assert_eq!(check("text/plain; charset=utf-8", b"hello", 3), Ok(FileKind::Txt));
    // Plain text declared as an e-mail is not one; an e-mail declared as text is text.
    let e = check("message/rfc822", b"just some notes\n", 4).unwrap_err();
    assert_eq!(e, ContentError::Mismatch { claimed: "message/rfc822", sniffed: "text/plain" });
    let eml = b"From: a@b.example\nSubject: x\n\nhi\n";
    assert_eq!(check("text/plain", eml, 4), Ok(FileKind::Txt));
}

#[test]
fn text_is_checked_to_the_end_across_chunks() {
    // A multi-byte character split between chunks, past the sniffed head.
    let mut long = "a".repeat(SNIFF_BYTES + 3).into_bytes();
    long.extend_from_slice("§ Frist: 14 Tage — ok\n".as_bytes());
    for chunk in [1, 2, 3, 1000, SNIFF_BYTES + 4] {
        assert_eq!(check("text/plain", &long, chunk), Ok(FileKind::Txt), "chunks of {chunk}");
    }
    let mut bad = long.clone();
    bad.extend_from_slice(b"\xff tail");
    let at = long.len() as u64;
    assert_eq!(check("text/plain", &bad, 777), Err(ContentError::NotText { offset: at, detail: "invalid UTF-8" }));
    let mut ctl = long.clone();
    ctl.push(0);
    assert_eq!(
        check("text/plain", &ctl, 500),
        Err(ContentError::NotText { offset: at, detail: "a control character" })
    );
    let mut cut = long.clone();
    cut.extend_from_slice(&"€".as_bytes()[..2]);
    let e = check("text/plain", &cut, 64).unwrap_err();
    assert_eq!(e, ContentError::NotText { offset: at, detail: "a UTF-8 sequence cut off at the end" });
    // Latin-1 is not UTF-8 text.
    assert!(matches!(check("text/plain", b"Gr\xfc\xdfe", 64), Err(ContentError::NotText { offset: 2, .. })));
}

#[test]
fn email_needs_a_header_block() {
    assert!(looks_like_email(b"From: a@b\r\nDate: today\r\n\r\nx"));
    assert!(looks_like_email(b"Return-Path: <a@b>\nFrom: a@b\nMessage-ID: <1@b>\n"));
    assert!(!looks_like_email(b"From: a@b\n\nno date or subject"), "From alone is not enough");
    assert!(!looks_like_email(b"Dear Bob,\nFrom: me\nSubject: x\n"), "not a header line first");
    assert!(!looks_like_email(b"From me to you: Subject: x\n"), "a field name has no spaces");
    // NUL bytes are refused in an e-mail, also after the head.
    let mut eml = b"From: a@b\nSubject: x\n\n".to_vec();
    eml.resize(SNIFF_BYTES + 10, b'x');
    eml.push(0);
    let at = eml.len() as u64 - 1;
    assert_eq!(check("message/rfc822", &eml, 4096), Err(ContentError::NotText { offset: at, detail: "a NUL byte" }));
}

#[test]
fn a_webp_needs_its_riff_container() {
    assert!(matches!(sniff(b"12345678WEBPxxxx", true), Err(ContentError::NotAllowed { .. })));
    assert!(FileKind::Png.is_previewable_image() && !FileKind::Heic.is_previewable_image());
}
