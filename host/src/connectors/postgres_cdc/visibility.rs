//! Which transactions a chunk of an incremental snapshot saw: its MVCC snapshot
//! (`txid_current_snapshot()`, `xmin:xmax:xip,...`), and the transactions the stream has
//! delivered recently.
//!
//! The stream delivers a transaction once its commit record is flushed; it becomes visible to
//! new snapshots a moment later, when the committing backend leaves the process array (much
//! later under synchronous replication: the backend waits for the standby in between). A
//! chunk read in that moment misses a change the stream has already delivered, and its older
//! row emitted after it would undo that change. So a chunk is only used when every transaction
//! the stream delivered is visible to it ([`Delivered::unseen_by`]).

use std::collections::VecDeque;

/// How many delivered transactions are remembered: far more than can be committed but not yet
/// visible at one time.
const REMEMBERED: usize = 1024;

/// A snapshot as `txid_current_snapshot()` prints it: transactions below `xmin` are settled,
/// those from `xmax` on had not started, those in `xip` were in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSnapshot {
    xmin: u64,
    xmax: u64,
    xip: Vec<u64>,
}

impl PgSnapshot {
    /// Parses `xmin:xmax:xip1,xip2,...` (the list may be empty).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let xip = match parts.next()? {
            "" => Vec::new(),
            list => list
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?,
        };
        Some(Self { xmin, xmax, xip })
    }

    /// Whether the effects of transaction `xid` (as the replication stream gives it: 32 bits,
    /// without the epoch) are visible in this snapshot.
    pub fn sees(&self, xid: u32) -> bool {
        let full = self.widen(xid);
        full < self.xmin || (full < self.xmax && !self.xip.contains(&full))
    }

    /// The 64-bit id of a 32-bit `xid`: the one nearest `xmax`, as PostgreSQL compares ids
    /// (modulo 2^32, within 2^31 of each other), so ids either side of a wraparound of the
    /// counter are placed in the right epoch.
    fn widen(&self, xid: u32) -> u64 {
        // Truncation intended: the low 32 bits of xmax, as the stream's ids have them.
        let distance = (self.xmax as u32).wrapping_sub(xid) as i32;
        self.xmax.saturating_add_signed(-i64::from(distance))
    }
}

/// The transactions the stream delivered lately, newest last; those a snapshot saw are
/// forgotten.
#[derive(Debug, Default)]
pub struct Delivered {
    xids: VecDeque<u32>,
}

impl Delivered {
    pub fn push(&mut self, xid: u32) {
        if self.xids.len() == REMEMBERED {
            self.xids.pop_front();
        }
        self.xids.push_back(xid);
    }

    /// Forgets the transactions `snapshot` sees and returns one it does not, if any.
    pub fn unseen_by(&mut self, snapshot: &PgSnapshot) -> Option<u32> {
        self.xids.retain(|&xid| !snapshot.sees(xid));
        self.xids.front().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_parsed_with_and_without_transactions_in_progress() {
        let s = PgSnapshot::parse("10:20:12,15").expect("valid");
        assert_eq!((s.xmin, s.xmax, s.xip.clone()), (10, 20, vec![12, 15]));
        let s = PgSnapshot::parse("748:748:").expect("valid");
        assert!(s.xip.is_empty());
        assert_eq!(PgSnapshot::parse("748"), None);
        assert_eq!(PgSnapshot::parse("a:b:"), None);
    }

    #[test]
    fn visibility_follows_xmin_xmax_and_the_in_progress_list() {
        let s = PgSnapshot::parse("10:20:12,15").expect("valid");
        assert!(s.sees(9));
        assert!(s.sees(11));
        assert!(!s.sees(12));
        assert!(!s.sees(15));
        assert!(s.sees(19));
        assert!(!s.sees(20));
        assert!(!s.sees(25));
    }

    #[test]
    fn a_32_bit_xid_is_placed_in_the_snapshots_epoch() {
        // Epoch 3, xmax just after the wrap: a 32-bit id near the top belongs to epoch 2.
        let epoch = 3u64 << 32;
        let s = PgSnapshot::parse(&format!("{}:{}:{}", epoch - 5, epoch + 10, epoch - 3))
            .expect("valid");
        assert!(s.sees(u32::MAX - 10));
        assert!(!s.sees(u32::MAX - 2));
        assert!(s.sees(5));
        assert!(!s.sees(12));
    }

    #[test]
    fn delivered_transactions_seen_by_a_snapshot_are_forgotten() {
        let mut d = Delivered::default();
        for xid in [10, 11, 12] {
            d.push(xid);
        }
        let s = PgSnapshot::parse("11:13:11").expect("valid");
        assert_eq!(d.unseen_by(&s), Some(11));
        let s = PgSnapshot::parse("13:13:").expect("valid");
        assert_eq!(d.unseen_by(&s), None);
        assert!(d.xids.is_empty());
    }
}
