//! Lines onto pages (sans-IO): text wrapped to a width by the font's
//! advances ([`Measure`]), explicit line breaks kept, words longer than a
//! line broken, and lines placed top to bottom on A4 pages with a margin,
//! a page break where one is asked for or the page is full.

/// A4 in points.
pub const PAGE_W: f32 = 595.0;
/// A4 in points.
pub const PAGE_H: f32 = 842.0;
/// The margin on every side (2 cm).
pub const MARGIN: f32 = 56.7;
/// A line's height over its font size.
const LEADING: f32 = 1.3;

/// Which font a line is set in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    /// Body text.
    Regular,
    /// Headings and senders.
    Bold,
}

/// How wide text is set in a face and size, in points.
pub trait Measure {
    /// The width of `text`.
    fn width(&self, face: Face, size: f32, text: &str) -> f32;
}

/// One line to place.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Its face.
    pub face: Face,
    /// Its size, points.
    pub size: f32,
    /// Indent from the left margin, points.
    pub indent: f32,
    /// Its text (already wrapped).
    pub text: String,
    /// Space before it, points (dropped at the top of a page).
    pub gap: f32,
    /// Starts a new page.
    pub page_break: bool,
    /// Stays on the page of the line after it (a heading).
    pub keep_with_next: bool,
}

/// A line placed on a page: `x` and the baseline `y` from the top left.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    /// Its face.
    pub face: Face,
    /// Its size.
    pub size: f32,
    /// Left edge.
    pub x: f32,
    /// Baseline, from the top.
    pub y: f32,
    /// Its text.
    pub text: String,
}

/// The lines of `text` set in `face` at `size` within `width` points.
pub fn wrap(m: &impl Measure, face: Face, size: f32, width: f32, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split(' ') {
            let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
            if m.width(face, size, &candidate) <= width {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            // A word wider than the line is broken where it must be.
            let mut piece = String::new();
            for c in word.chars() {
                piece.push(c);
                if m.width(face, size, &piece) > width && piece.chars().count() > 1 {
                    piece.pop();
                    out.push(std::mem::take(&mut piece));
                    piece.push(c);
                }
            }
            line = piece;
        }
        out.push(line);
    }
    out
}

/// Places `lines` on pages between `top` and `bottom` (from the page's top).
pub fn paginate(lines: &[Line], top: f32, bottom: f32) -> Vec<Vec<Placed>> {
    let mut pages: Vec<Vec<Placed>> = vec![Vec::new()];
    let mut y = top;
    for (i, l) in lines.iter().enumerate() {
        let height = l.size * LEADING;
        let fresh = pages.last().is_some_and(Vec::is_empty);
        let next = lines.get(i + 1).filter(|_| l.keep_with_next).map_or(0.0, |n| n.gap + n.size * LEADING);
        // A fresh page takes any line; another breaks when asked or full.
        if !fresh && (l.page_break || y + l.gap + height + next > bottom) {
            pages.push(Vec::new());
            y = top;
        }
        let at_top = pages.last().is_some_and(Vec::is_empty);
        y += if at_top { 0.0 } else { l.gap } + height;
        let placed =
            Placed { face: l.face, size: l.size, x: MARGIN + l.indent, y: y - (height - l.size), text: l.text.clone() };
        if let Some(p) = pages.last_mut() {
            p.push(placed);
        }
    }
    pages
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character 1 point wide per point of size / 2.
    struct Mono;
    impl Measure for Mono {
        fn width(&self, _: Face, size: f32, text: &str) -> f32 {
            text.chars().count() as f32 * size / 2.0
        }
    }

    #[test]
    fn text_wraps_at_words_keeps_breaks_and_breaks_long_words() {
        // 10 pt: 5 pt a character; 50 pt: 10 characters a line.
        let w = |t: &str| wrap(&Mono, Face::Regular, 10.0, 50.0, t);
        assert_eq!(w("the hearing is moved"), ["the", "hearing is", "moved"]);
        assert_eq!(w("one\ntwo"), ["one", "two"]);
        assert_eq!(w("abcdefghijklmnopqrstuvwxyz"), ["abcdefghij", "klmnopqrst", "uvwxyz"]);
        assert_eq!(w(""), [""]);
    }

    #[test]
    fn lines_fill_pages_and_breaks_start_new_ones() {
        let line = |gap, page_break| Line {
            face: Face::Regular,
            size: 10.0,
            indent: 0.0,
            text: "x".into(),
            gap,
            page_break,
            keep_with_next: false,
        };
        // 13 pt a line; 100 pt of room: 7 lines a page.
        let lines: Vec<Line> = (0..10).map(|_| line(0.0, false)).collect();
        let pages = paginate(&lines, 0.0, 100.0);
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [7, 3]);
        assert!(pages[0].windows(2).all(|p| p[1].y > p[0].y), "top to bottom");
        let mut lines = vec![line(0.0, false), line(0.0, true), line(50.0, false)];
        lines.push(line(0.0, true));
        let pages = paginate(&lines, 0.0, 100.0);
        assert_eq!(pages.len(), 3, "a page break starts a page");
        assert_eq!(pages[1][1].y - pages[1][0].y, 63.0, "the gap is kept inside a page");
        assert_eq!(pages[2][0].y, pages[0][0].y, "and dropped at a page's top");
        // A heading as the seventh line would end the page alone: it goes with its text.
        let mut lines: Vec<Line> = (0..6).map(|_| line(0.0, false)).collect();
        lines.push(Line { keep_with_next: true, ..line(0.0, false) });
        lines.push(line(0.0, false));
        assert_eq!(paginate(&lines, 0.0, 100.0).iter().map(Vec::len).collect::<Vec<_>>(), [6, 2]);
    }
}
