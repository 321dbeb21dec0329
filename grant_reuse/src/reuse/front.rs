//! Frontend side: which of a queue's granted buffer pages to register with
//! the backend, the gref lists that carry them, and what to make of the
//! backend's answers.
//!
//! netfront_opt grants every ring slot's page once for the life of the
//! connection (receive buffers writable, transmit bounce pages read-only):
//! that is the pool. Registering it costs one `ADD` per list page; the
//! pages go back with one `DEL`, whose per-entry statuses say which the
//! backend let go. An entry the backend did not confirm stays granted
//! until the grant layer sees it unmapped (the page is never reused while
//! the backend may hold it).

use super::super::netif::{CtrlStatus, Gref, GrefFlags, GREFS_PER_PAGE};

/// How many receive and transmit pages to register when the backend holds
/// `size` entries per queue: receive first (the backend writes those for
/// every packet the guest gets), then transmit, and at most one list page.
pub fn plan(size: u32, rx_pages: usize, tx_pages: usize) -> (usize, usize) {
    let room = (size as usize).min(GREFS_PER_PAGE);
    let rx = rx_pages.min(room);
    let tx = tx_pages.min(room - rx);
    (rx, tx)
}

/// Status written into each entry before a request: a `DEL` answer must
/// overwrite it, so an entry the backend skipped is not read as success.
pub const STATUS_UNANSWERED: u16 = u16::MAX;

/// Fills `list` with the entries for `rx` (writable) then `tx` (read-only)
/// grants, their status [`STATUS_UNANSWERED`]; returns the count.
pub fn fill_list(list: &mut [Gref], rx: &[u32], tx: &[u32]) -> usize {
    let entries = rx.iter().map(|&g| (g, GrefFlags(0))).chain(tx.iter().map(|&g| (g, GrefFlags::READONLY)));
    let mut n = 0;
    for (slot, (g, f)) in list.iter_mut().zip(entries) {
        *slot = Gref::new(g, f, STATUS_UNANSWERED);
        n += 1;
    }
    n
}

/// What a `DEL` answer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DelOutcome {
    /// Entries the backend reports unmapped.
    pub removed: usize,
    /// Entries it reports still mapped or unknown.
    pub refused: usize,
    /// The answer contradicts itself: its count differs from the entries
    /// marked `SUCCESS`, an entry's grant was changed, or an entry was left
    /// unanswered or given a status that does not exist.
    pub inconsistent: bool,
}

/// Reads a `DEL` answer: `sent` is what the list held before the request,
/// `answered` the list read back afterwards, `count` the response's data.
pub fn check_del(sent: &[Gref], answered: &[Gref], count: u32) -> DelOutcome {
    let mut out = DelOutcome::default();
    for (s, a) in sent.iter().zip(answered) {
        if a.gref() != s.gref() || u32::from(a.status()) > CtrlStatus::BUFFER_OVERFLOW.0 {
            out.inconsistent = true;
        }
        if u32::from(a.status()) == CtrlStatus::SUCCESS.0 {
            out.removed += 1;
        } else {
            out.refused += 1;
        }
    }
    if answered.len() != sent.len() || out.removed as u32 != count {
        out.inconsistent = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_prefers_receive_and_fits_one_page() {
        assert_eq!(plan(512, 256, 256), (256, 256));
        assert_eq!(plan(300, 256, 256), (256, 44));
        assert_eq!(plan(100, 256, 256), (100, 0));
        assert_eq!(plan(0, 256, 256), (0, 0));
        assert_eq!(plan(u32::MAX, 1024, 1024), (512, 0));
    }

    #[test]
    fn list_marks_transmit_pages_readonly() {
        let mut l = [Gref::new(0, GrefFlags(0), 0); 4];
        assert_eq!(fill_list(&mut l, &[10, 11], &[20, 21, 22]), 4);
        assert_eq!(l.map(|e| (e.gref(), e.flags().contains(GrefFlags::READONLY))), [(10, false), (11, false), (20, true), (21, true)]);
        assert!(l.iter().all(|e| e.status() == STATUS_UNANSWERED));
    }

    #[test]
    fn del_answers_are_cross_checked() {
        let sent = [Gref::new(1, GrefFlags(0), 0), Gref::new(2, GrefFlags(0), 0)];
        let ok = [Gref::new(1, GrefFlags(0), 0), Gref::new(2, GrefFlags(0), 0)];
        assert_eq!(check_del(&sent, &ok, 2), DelOutcome { removed: 2, refused: 0, inconsistent: false });
        let one = [Gref::new(1, GrefFlags(0), 0), Gref::new(2, GrefFlags(0), 2)];
        assert_eq!(check_del(&sent, &one, 1), DelOutcome { removed: 1, refused: 1, inconsistent: false });
        assert!(check_del(&sent, &one, 2).inconsistent, "count disagrees with the statuses");
        let moved = [Gref::new(1, GrefFlags(0), 0), Gref::new(7, GrefFlags(0), 0)];
        assert!(check_del(&sent, &moved, 2).inconsistent, "a grant was rewritten");
        let skipped = [Gref::new(1, GrefFlags(0), 0), Gref::new(2, GrefFlags(0), STATUS_UNANSWERED)];
        let o = check_del(&sent, &skipped, 1);
        assert!(o.inconsistent && o.removed == 1, "an entry left unanswered");
    }
}
