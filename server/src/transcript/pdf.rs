//! A transcript as a PDF (krilla): a title block with the conversation,
//! its participants and roles and the export's header (time, who, time
//! zone, the audit chain's head), then every message with its sender, time,
//! marks and files, each conversation of a case on new pages, and on every
//! page a running head and "Page n of N". Set in DejaVu Serif, embedded
//! (subset) so the text is searchable and copies out as it reads.

use super::layout::{Face, Line, MARGIN, Measure, PAGE_H, PAGE_W, Placed, paginate, wrap};
use super::model::{Entry, Header, Transcript};
use krilla::Document;
use krilla::geom::Point;
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::text::{Font, TextDirection};
use std::sync::LazyLock;

static REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSerif.ttf");
static BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSerif-Bold.ttf");

/// Body text size, points.
const BODY: f32 = 10.0;
/// Small print (files, marks, the running head).
const SMALL: f32 = 8.0;
/// Text indent under a message's heading line.
const INDENT: f32 = 14.0;

/// Why a PDF could not be made.
#[derive(Debug, thiserror::Error)]
#[error("the PDF could not be made: {0}")]
pub struct PdfError(String);

impl PdfError {
    /// Why.
    pub fn new(why: String) -> Self {
        PdfError(why)
    }
}

/// The fonts' advances, for wrapping.
struct Metrics {
    regular: ttf_parser::Face<'static>,
    bold: ttf_parser::Face<'static>,
}

static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| {
    Some(Metrics { regular: ttf_parser::Face::parse(REGULAR, 0).ok()?, bold: ttf_parser::Face::parse(BOLD, 0).ok()? })
});

impl Measure for Metrics {
    fn width(&self, face: Face, size: f32, text: &str) -> f32 {
        let f = match face {
            Face::Regular => &self.regular,
            Face::Bold => &self.bold,
        };
        let units: u32 = text
            .chars()
            .map(|c| u32::from(f.glyph_index(c).and_then(|g| f.glyph_hor_advance(g)).unwrap_or(f.units_per_em() / 2)))
            .sum();
        units as f32 * size / f32::from(f.units_per_em())
    }
}

/// The width text may take.
const WIDTH: f32 = PAGE_W - 2.0 * MARGIN;

/// Lines of one block of text, wrapped; bold ones (headings) stay with what follows.
fn block(out: &mut Vec<Line>, m: &Metrics, face: Face, size: f32, indent: f32, gap: f32, text: &str) {
    for (i, t) in wrap(m, face, size, WIDTH - indent, text).into_iter().enumerate() {
        let gap = if i == 0 { gap } else { 0.0 };
        out.push(Line { face, size, indent, text: t, gap, page_break: false, keep_with_next: face == Face::Bold });
    }
}

fn title_block(out: &mut Vec<Line>, m: &Metrics, t: &Transcript, h: &Header) {
    let top = Line {
        face: Face::Bold,
        size: 16.0,
        indent: 0.0,
        text: "Transcript".into(),
        gap: 0.0,
        page_break: true,
        keep_with_next: true,
    };
    out.push(top);
    let title = if t.title.is_empty() { format!("Conversation {}", t.conversation_id) } else { t.title.clone() };
    block(out, m, Face::Bold, 12.0, 0.0, 4.0, &title);
    let mut facts = vec![format!("Conversation #{} · {}", t.conversation_id, t.kind)];
    if !t.case_id.is_empty() {
        facts.push(format!("Case {}", t.case_id));
    }
    facts.push(format!("Created {}", t.created_at));
    if let Some(a) = &t.archived_at {
        facts.push(format!("Archived {a}"));
    }
    if t.purged_through > 0 {
        facts.push(format!("Messages 1-{} were removed by the retention policy before this export", t.purged_through));
    }
    facts.push(format!("Exported {} by {} (times in {})", h.exported_at, h.exported_by, h.time_zone));
    facts.push(format!("Audit chain {} at entry {}, hash {}", h.audit_chain, h.audit_head_seq, h.audit_head_hash));
    for (i, f) in facts.iter().enumerate() {
        block(out, m, Face::Regular, BODY, 0.0, if i == 0 { 8.0 } else { 0.0 }, f);
    }
    block(out, m, Face::Bold, BODY, 0.0, 10.0, &format!("Participants ({})", t.participants.len()));
    for p in &t.participants {
        let line = format!("{} ({}) — {}, {} of the conversation", p.name, p.user_id, p.role, p.conversation_role);
        block(out, m, Face::Regular, BODY, INDENT, 0.0, &line);
    }
    block(out, m, Face::Bold, BODY, 0.0, 10.0, &format!("Messages ({})", t.entries.len()));
}

fn entry_lines(out: &mut Vec<Line>, m: &Metrics, e: &Entry) {
    let mut head = format!("#{}  {}  {} ({})", e.seq, e.time, e.sender_name, e.sender_id);
    if e.system {
        head.push_str("  · system message");
    }
    if e.reply_to != 0 {
        head.push_str(&format!("  · in reply to #{}", e.reply_to));
    }
    block(out, m, Face::Bold, BODY, 0.0, 6.0, &head);
    match (&e.text, &e.deleted_by, e.encrypted) {
        (_, Some(by), _) => block(out, m, Face::Regular, BODY, INDENT, 0.0, &format!("[message deleted by {by}]")),
        (_, None, true) => {
            block(out, m, Face::Regular, BODY, INDENT, 0.0, "[end-to-end encrypted: not readable by the server]")
        }
        (Some(text), None, false) => block(out, m, Face::Regular, BODY, INDENT, 0.0, text),
        (None, None, false) => {}
    }
    if let Some(at) = &e.edited_at {
        block(out, m, Face::Regular, SMALL, INDENT, 0.0, &format!("(edited {at}; the text shown is the last version)"));
    }
    for f in &e.files {
        let line = format!("Attachment: {} ({} bytes, {}) SHA-256 {}", f.name, f.size, f.media_type, f.sha256);
        block(out, m, Face::Regular, SMALL, INDENT, 0.0, &line);
    }
}

/// The PDF of `transcripts` (one conversation, or a case's) under `header`.
pub fn render(transcripts: &[Transcript], header: &Header, doc_title: &str) -> Result<Vec<u8>, PdfError> {
    let m = METRICS.as_ref().ok_or_else(|| PdfError("the bundled fonts do not parse".into()))?;
    let mut lines = Vec::new();
    for t in transcripts {
        title_block(&mut lines, m, t, header);
        for e in &t.entries {
            entry_lines(&mut lines, m, e);
        }
    }
    let pages = paginate(&lines, MARGIN + 14.0, PAGE_H - MARGIN);
    let font =
        |data: &'static [u8]| Font::new(data.into(), 0).ok_or_else(|| PdfError("a bundled font does not load".into()));
    let (regular, bold) = (font(REGULAR)?, font(BOLD)?);
    let mut doc = Document::new();
    doc.set_metadata(
        Metadata::new().title(doc_title.to_string()).creator(format!("chatd {}", env!("CARGO_PKG_VERSION"))),
    );
    let n = pages.len();
    let running = format!("{doc_title} — exported {}", header.exported_at);
    for (i, page) in pages.iter().enumerate() {
        let settings = PageSettings::from_wh(PAGE_W, PAGE_H).ok_or_else(|| PdfError("page size".into()))?;
        let mut p = doc.start_page_with(settings);
        let mut s = p.surface();
        let mut draw = |l: &Placed| {
            let f = if l.face == Face::Bold { bold.clone() } else { regular.clone() };
            s.draw_text(Point::from_xy(l.x, l.y), f, l.size, &l.text, false, TextDirection::Auto);
        };
        let head = wrap(m, Face::Regular, SMALL, WIDTH, &running).into_iter().next().unwrap_or_default();
        draw(&Placed { face: Face::Regular, size: SMALL, x: MARGIN, y: MARGIN - 4.0, text: head });
        for l in page {
            draw(l);
        }
        let footer = format!("Page {} of {n}", i + 1);
        let x = (PAGE_W - m.width(Face::Regular, SMALL, &footer)) / 2.0;
        draw(&Placed { face: Face::Regular, size: SMALL, x, y: PAGE_H - MARGIN / 2.0, text: footer });
        s.finish();
        p.finish();
    }
    doc.finish().map_err(|e| PdfError(format!("{e:?}")))
}
