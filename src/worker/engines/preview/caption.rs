//! What the preview engine writes into its frames, as text: the prompt wrapped into lines, the
//! seed and size, and the frame counter with its timecode. Pure string logic; how wide a string
//! is comes from the caller (`fits`), so it is tested without a font.

/// The ellipsis that ends a prompt or line cut short.
pub const ELLIPSIS: char = '…';

/// `seed 42 · 1280×720`
pub fn request_label(seed: u32, width: u32, height: u32) -> String {
    format!("seed {seed} · {width}×{height}")
}

/// The time of frame `index` (0-based) from the start of the clip, `mm:ss.cc`.
pub fn timecode(index: u32, fps: u32) -> String {
    let centis = u64::from(index) * 100 / u64::from(fps.max(1));
    format!("{:02}:{:02}.{:02}", centis / 6000, centis / 100 % 60, centis % 100)
}

/// The frame counter in the longest form that fits: small frames show less.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameLabel {
    /// `frame 13/121 · 00:00.50` (the counter counts from 1; the timecode is when the frame starts)
    Full,
    /// `13/121 · 00:00.50`
    Short,
    /// `00:00.50`
    Time,
}

impl FrameLabel {
    /// Longest first.
    pub const ALL: [FrameLabel; 3] = [FrameLabel::Full, FrameLabel::Short, FrameLabel::Time];

    pub fn text(self, index: u32, num_frames: u32, fps: u32) -> String {
        let time = timecode(index, fps);
        match self {
            FrameLabel::Full => format!("frame {}/{num_frames} · {time}", index + 1),
            FrameLabel::Short => format!("{}/{num_frames} · {time}", index + 1),
            FrameLabel::Time => time,
        }
    }
}

/// `line` itself when it fits, else its longest start that fits with an ellipsis after it
/// (just the ellipsis when nothing does).
pub fn ellipsize(line: &str, fits: impl Fn(&str) -> bool) -> String {
    if fits(line) {
        return line.to_owned();
    }
    let mut cut: String = line.to_owned();
    while cut.pop().is_some() {
        let candidate = format!("{}{ELLIPSIS}", cut.trim_end());
        if fits(&candidate) {
            return candidate;
        }
    }
    ELLIPSIS.to_string()
}

/// `text` in at most `max_lines` lines that each `fits`: broken between words (a word too long
/// for a line is broken between characters), runs of whitespace and control characters read
/// as one space. When the text needs more lines, the last line shown ends with an ellipsis.
pub fn wrap(text: &str, max_lines: usize, fits: impl Fn(&str) -> bool) -> Vec<String> {
    if max_lines == 0 {
        return Vec::new();
    }
    let clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut truncated = false;
    'words: for word in clean.split_whitespace() {
        let joined = if current.is_empty() { word.to_owned() } else { format!("{current} {word}") };
        if fits(&joined) {
            current = joined;
            continue;
        }
        if !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        // The word starts a new line; what does not fit there goes on the next ones.
        for c in word.chars() {
            if lines.len() == max_lines {
                truncated = true;
                break 'words;
            }
            current.push(c);
            if !fits(&current) && current.chars().count() > 1 {
                current.pop();
                lines.push(std::mem::replace(&mut current, c.to_string()));
            }
        }
        if lines.len() == max_lines {
            truncated = true;
            break;
        }
    }
    if !current.is_empty() {
        if lines.len() < max_lines {
            lines.push(current);
        } else {
            truncated = true;
        }
    }
    if truncated {
        if let Some(last) = lines.last_mut() {
            // Always visibly cut, even when the last line still had room.
            let marked = format!("{last}{ELLIPSIS}");
            *last = if fits(&marked) { marked } else { ellipsize(&format!("{last}  "), &fits) };
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A monospace stand-in for the font: at most `n` characters per line.
    fn chars(n: usize) -> impl Fn(&str) -> bool {
        move |s: &str| s.chars().count() <= n
    }

    #[test]
    fn a_short_prompt_is_one_line_as_written() {
        assert_eq!(wrap("a lighthouse at dusk", 3, chars(40)), ["a lighthouse at dusk"]);
    }

    #[test]
    fn wraps_between_words_and_reads_whitespace_as_one_space() {
        assert_eq!(wrap("a  lighthouse\nat\tdusk, waves", 3, chars(13)), ["a lighthouse", "at dusk,", "waves"]);
    }

    #[test]
    fn a_long_word_is_broken_between_characters() {
        let word = "x".repeat(25);
        assert_eq!(wrap(&word, 3, chars(10)), ["x".repeat(10), "x".repeat(10), "x".repeat(5)]);
        let ten = "x".repeat(10);
        assert_eq!(wrap(&format!("ab {word}"), 4, chars(10)), ["ab", ten.as_str(), ten.as_str(), "xxxxx"]);
    }

    #[test]
    fn a_very_long_prompt_is_cut_with_an_ellipsis_on_the_last_line() {
        let prompt = "a slow dolly shot of a lighthouse on a cliff at dusk ".repeat(40);
        let lines = wrap(&prompt, 3, chars(20));
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.chars().count() <= 20), "{lines:?}");
        assert_eq!(lines[..2], ["a slow dolly shot of", "a lighthouse on a"]);
        assert!(lines[2].ends_with(ELLIPSIS) && lines[2].starts_with("cliff at dusk"), "{lines:?}");
        let long_word = wrap(&"y".repeat(1000), 2, chars(8));
        assert_eq!(long_word, ["y".repeat(8), format!("{}{ELLIPSIS}", "y".repeat(7))]);
    }

    #[test]
    fn a_full_last_line_still_shows_the_cut() {
        // "one two" fills the line exactly; the ellipsis replaces its end rather than overflowing.
        assert_eq!(wrap("one two three", 1, chars(7)), [format!("one tw{ELLIPSIS}")]);
        assert_eq!(wrap("one two three", 1, chars(8)), [format!("one two{ELLIPSIS}")]);
    }

    #[test]
    fn nothing_to_draw_gives_no_lines() {
        assert!(wrap("  \n ", 3, chars(10)).is_empty());
        assert!(wrap("some prompt", 0, chars(10)).is_empty());
    }

    #[test]
    fn ellipsize_keeps_what_fits() {
        assert_eq!(ellipsize("seed 7 · 64×32", chars(20)), "seed 7 · 64×32");
        assert_eq!(ellipsize("seed 7 · 64×32", chars(9)), format!("seed 7 ·{ELLIPSIS}"));
        assert_eq!(ellipsize("seed", chars(0)), ELLIPSIS.to_string());
    }

    #[test]
    fn timecodes_count_minutes_seconds_and_hundredths() {
        assert_eq!(timecode(0, 24), "00:00.00");
        assert_eq!(timecode(12, 24), "00:00.50");
        assert_eq!(timecode(120, 24), "00:05.00");
        assert_eq!(timecode(1500, 24), "01:02.50");
        assert_eq!(timecode(1, 30), "00:00.03");
    }

    #[test]
    fn frame_labels_shrink_for_small_frames() {
        assert_eq!(FrameLabel::Full.text(12, 121, 24), "frame 13/121 · 00:00.50");
        assert_eq!(FrameLabel::Short.text(12, 121, 24), "13/121 · 00:00.50");
        assert_eq!(FrameLabel::Time.text(12, 121, 24), "00:00.50");
        assert_eq!(request_label(42, 1280, 720), "seed 42 · 1280×720");
    }
}
