//! Unit tests of one segment: appends, lookups, recovery of torn and corrupt tails, trusted
//! loads from index files.
use super::*;
use crate::format::batch::tests::make_batch;

mod basics {
    use super::*;

    fn append(seg: &mut Segment, offset: i64, n: i32, ts: i64) {
        let mut b = make_batch(0, n, 100, ts);
        batch::set_base_offset(&mut b, offset);
        let h = batch::validate(&b).expect("valid");
        // split anywhere: the two parts are written as one batch
        let cut = b.len() / 3;
        seg.append(&b[..cut], &b[cut..], &h, 512).expect("append");
    }

    /// Slack for what the file system itself allocates (extent blocks, block rounding).
    const FS_SLACK: u64 = 64 << 10;

    /// Disk the segment's data file takes (allocated blocks).
    fn allocated(seg: &Segment) -> u64 {
        use std::os::unix::fs::MetadataExt;
        seg.file().metadata().expect("stat").blocks() * 512
    }

    #[test]
    fn reserved_disk_grows_with_the_data_and_stays_within_a_mib_of_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 0, 0).expect("create");
        append(&mut seg, 0, 1, 0);
        // one small batch: a small reservation, not megabytes
        assert!(
            allocated(&seg) <= seg.len + RESERVE_MIN + FS_SLACK,
            "{} bytes allocated for {} of data",
            allocated(&seg),
            seg.len
        );
        let mut offset = 1;
        while seg.len < 6 << 20 {
            append(&mut seg, offset, 50, 0);
            offset += 50;
            assert!(
                allocated(&seg) <= seg.len + RESERVE_MAX + FS_SLACK,
                "{} bytes allocated for {} of data",
                allocated(&seg),
                seg.len
            );
        }
    }

    fn file_len(dir: &Path, base: i64) -> u64 {
        std::fs::metadata(dir.join(crate::format::segment_file(base, "log")))
            .expect("meta")
            .len()
    }

    #[test]
    fn zeros_written_ahead_never_cover_data_and_go_at_a_cut_or_a_walk() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 0, 0).expect("create");
        let mut offset = 0;
        let mut crossed = 0;
        while seg.len < 3 << 20 {
            let before = file_len(dir.path(), 0);
            append(&mut seg, offset, 20, 0);
            offset += 20;
            let after = file_len(dir.path(), 0);
            // the file runs past the data, with zeros only, and moves only now and then
            assert!(after > seg.len, "{after} <= {}", seg.len);
            assert!(zeros_only(&seg.file, seg.len, after));
            crossed += u64::from(after != before);
        }
        let appends = (offset / 20) as u64;
        assert!(
            crossed * 4 < appends,
            "the length moved at {crossed} of {appends} appends"
        );
        // every batch reads back whole
        let data_len = seg.len;
        assert_eq!(seg.next_offset, offset);

        // a stop without the cut: a walk (after a crash) drops the zeros quietly and keeps
        // every batch
        drop(seg);
        let seg = Segment::recover(dir.path(), 0, true, 512, 0, &mut |_, _| None).expect("open");
        assert_eq!((seg.len, seg.next_offset), (data_len, offset));
        assert_eq!(file_len(dir.path(), 0), data_len);

        // a trusted load over zeros past the data keeps them for the next appends
        let mut seg = seg;
        append(&mut seg, offset, 20, 0);
        offset += 20;
        seg.write_indexes().expect("indexes");
        let (data_len, with_zeros) = (seg.len, file_len(dir.path(), 0));
        assert!(with_zeros > data_len);
        drop(seg);
        let mut seg = Segment::load(dir.path(), 0, 0)
            .expect("io")
            .expect("indexes trusted over the zeros");
        assert_eq!((seg.len, seg.next_offset), (data_len, offset));
        append(&mut seg, offset, 20, 0);
        assert_eq!(
            file_len(dir.path(), 0),
            with_zeros,
            "appended into the zeros"
        );

        // the cut at a roll or a clean stop leaves the data alone
        seg.release_reserved().expect("cut");
        assert_eq!(file_len(dir.path(), 0), seg.len);
        let last = seg.next_offset;
        drop(seg);
        let seg = Segment::recover(dir.path(), 0, true, 512, 0, &mut |_, _| None).expect("open");
        assert_eq!(seg.next_offset, last);
    }

    #[test]
    fn large_appends_reserve_blocks_without_writing_zeros() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 0, 0).expect("create");
        append(&mut seg, 0, 1000, 0);
        assert!(seg.len >= FILL_BELOW, "a large batch: {}", seg.len);
        assert_eq!(
            file_len(dir.path(), 0),
            seg.len,
            "no zeros past a large append"
        );
        assert!(
            seg.reserved_to > seg.len,
            "blocks reserved ahead all the same"
        );
    }

    #[test]
    fn a_tail_that_is_not_all_zeros_is_not_taken_for_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 0, 0).expect("create");
        for i in 0..5 {
            append(&mut seg, i * 2, 2, 0);
        }
        seg.write_indexes().expect("indexes");
        let len = seg.len;
        let file = seg.file();
        assert!(file_len(dir.path(), 0) > len + 100);
        // one stray byte in the zeros: the trusted load refuses, the walk cuts it all
        file.write_all_at(&[7], len + 100).expect("write");
        assert!(!zeros_only(&file, len, file_len(dir.path(), 0)));
        drop((file, seg));
        assert!(Segment::load(dir.path(), 0, 0).expect("io").is_none());
        let seg = Segment::recover(dir.path(), 0, true, 512, 0, &mut |_, _| None).expect("open");
        assert_eq!((seg.len, seg.next_offset), (len, 10));
        assert_eq!(file_len(dir.path(), 0), len);
    }

    #[test]
    fn reservations_stop_at_the_budget_and_come_back() {
        let r = Reservations::new(3 << 20);
        assert_eq!(r.take(1 << 20), 1 << 20);
        assert_eq!(r.take(1 << 20), 1 << 20);
        assert_eq!(r.take(2 << 20), 1 << 20, "what is left");
        assert_eq!(r.take(64 << 10), 0, "nothing past the budget");
        r.give_back(1 << 20);
        assert_eq!(r.take(2 << 20), 1 << 20);
        // a segment counts only what it reserved past its data, and gives it back
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 0, 0).expect("create");
        append(&mut seg, 0, 3, 1000);
        assert!(seg.counted <= seg.reserved_to - seg.len);
        seg.release_reserved().expect("release");
        assert_eq!(seg.counted, 0);
    }

    #[test]
    fn a_slice_holds_the_batches_a_read_returns_and_stops_below_an_offset() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 100, 0).expect("create");
        for i in 0..20 {
            append(&mut seg, 100 + i * 3, 3, 1000 + i);
        }
        let file = seg.file();
        let batch_len = (seg.len / 20) as usize;
        let found = locate(&file, seg.index_position(131), seg.len, Target::Offset(131))
            .expect("io")
            .expect("found");
        let bytes_of = |s: &Sliced| s.slice.read().expect("reads");
        for (max, min_one) in [(1, true), (batch_len * 4 + 7, false), (1 << 20, false)] {
            let read = read_batches(&file, &found, seg.len, max, min_one).expect("read");
            let s = slice_batches(&file, &found, seg.len, (max, min_one), i64::MAX)
                .expect("io")
                .expect("batches");
            assert_eq!(bytes_of(&s), read, "max {max}");
            assert_eq!(s.records, 3 * (read.len() / batch_len) as u64);
            assert_eq!(s.last, 130 + 3 * (read.len() / batch_len) as i64 - 1);
        }
        // cut before the first batch starting at or after 139: batches 130, 133, 136
        let s = slice_batches(&file, &found, seg.len, (1 << 20, false), 139)
            .expect("io")
            .expect("batches");
        assert_eq!((s.slice.len, s.records, s.last), (3 * batch_len, 9, 138));
        // nothing starts below 130, and nothing fits in one byte without min_one
        assert!(slice_batches(&file, &found, seg.len, (1 << 20, false), 130)
            .expect("io")
            .is_none());
        assert!(slice_batches(&file, &found, seg.len, (1, false), i64::MAX)
            .expect("io")
            .is_none());
        assert!(s.slice.resident(), "just written: in the page cache");
    }

    #[test]
    fn append_read_and_recover_truncates_torn_tail() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 100, 0).expect("create");
        for i in 0..20 {
            append(&mut seg, 100 + i * 3, 3, 1000 + i);
        }
        assert_eq!(seg.next_offset, 160);
        let good_len = seg.len;
        let file = seg.file();
        // find and read the batch holding offset 131
        let found = locate(&file, seg.index_position(131), seg.len, Target::Offset(131))
            .expect("io")
            .expect("found");
        assert_eq!(found.header.base_offset, 130);
        let bytes = read_batches(&file, &found, seg.len, 1, true).expect("read");
        assert_eq!(
            batch::validate(&bytes)
                .expect("one whole batch")
                .base_offset,
            130
        );
        // by timestamp: first batch with max ts >= 1005 is the sixth (base 115)
        let found = locate(
            &file,
            seg.time_position(1005),
            seg.len,
            Target::Timestamp(1005),
        )
        .expect("io")
        .expect("found");
        assert_eq!(found.header.base_offset, 115);
        // tear the tail: garbage after the last whole batch, and a half-written batch
        let mut torn = make_batch(160, 2, 100, 5);
        torn.truncate(torn.len() / 2);
        file.write_all_at(&torn, good_len).expect("write");
        drop(file);
        drop(seg);
        let seg = Segment::recover(dir.path(), 100, true, 512, 0, &mut |_, _| None).expect("open");
        assert_eq!(seg.len, good_len);
        assert_eq!(seg.next_offset, 160);
        assert_eq!(
            std::fs::metadata(dir.path().join(crate::format::segment_file(100, "log")))
                .expect("meta")
                .len(),
            good_len
        );
    }

    #[test]
    fn corrupt_byte_in_middle_truncates_from_that_batch() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 0, 0).expect("create");
        for i in 0..10 {
            append(&mut seg, i, 1, 1);
        }
        let batch_len = seg.len / 10;
        let file = seg.file();
        // flip a byte inside the 5th batch's records
        file.write_all_at(&[0xAB], batch_len * 4 + 70)
            .expect("write");
        drop(file);
        drop(seg);
        let seg = Segment::recover(dir.path(), 0, true, 512, 0, &mut |_, _| None).expect("open");
        assert_eq!(seg.next_offset, 4);
        assert_eq!(seg.len, batch_len * 4);
    }

    #[test]
    fn indexes_persist_and_reload() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 0, 0).expect("create");
        for i in 0..50 {
            append(&mut seg, i * 2, 2, 10 + i);
        }
        seg.write_indexes().expect("write");
        let (idx, len, next, max) = (
            seg.index.clone(),
            seg.len,
            seg.next_offset,
            (seg.max_timestamp, seg.offset_of_max_timestamp),
        );
        drop(seg);
        let seg = Segment::load(dir.path(), 0, 0)
            .expect("io")
            .expect("indexes trusted");
        assert!(seg.indexes_on_disk);
        assert_eq!(seg.index, idx);
        assert_eq!((seg.len, seg.next_offset), (len, next));
        assert_eq!((seg.max_timestamp, seg.offset_of_max_timestamp), max);
        assert!(
            index::offset_entries(&seg.index) > 5,
            "sparse index has entries: {}",
            index::offset_entries(&seg.index)
        );
        // a damaged index is not trusted: the caller walks the segment instead
        std::fs::write(
            dir.path().join(crate::format::segment_file(0, "index")),
            [1u8; 7],
        )
        .expect("damage");
        assert!(Segment::load(dir.path(), 0, 0).expect("io").is_none());
    }

    #[test]
    fn a_loaded_segment_knows_its_last_batches_without_an_index_entry_for_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(dir.path(), 0, 0).expect("create");
        // the batches after the last index entry are found by walking the log
        for i in 0..30 {
            append(&mut seg, i * 3, 3, 500 - i);
        }
        seg.write_indexes().expect("write");
        let want = (
            seg.next_offset,
            seg.max_timestamp,
            seg.offset_of_max_timestamp,
        );
        drop(seg);
        let seg = Segment::load(dir.path(), 0, 0)
            .expect("io")
            .expect("trusted");
        assert_eq!(
            (
                seg.next_offset,
                seg.max_timestamp,
                seg.offset_of_max_timestamp
            ),
            want
        );
        assert_eq!(want, (90, 500, 2), "the largest timestamp came first");
    }
}

mod recovery_props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever happens to the bytes of a segment (flips, truncation, garbage appended),
        /// recovery never panics and keeps exactly a prefix of whole, valid batches.
        #[test]
        fn recovery_keeps_a_valid_prefix(
            batches in 1usize..12,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
            garbage in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let dir = tempfile::tempdir().expect("tmp");
            let mut data = Vec::new();
            let mut ends = vec![0usize];
            let mut off = 0i64;
            for i in 0..batches {
                let mut b = make_batch(0, (i % 3) as i32 + 1, 20 + i, 1000);
                batch::set_base_offset(&mut b, off);
                off += (i % 3) as i64 + 1;
                data.extend_from_slice(&b);
                ends.push(data.len());
            }
            let flipped = !flips.is_empty();
            for (pos, x) in flips {
                let n = data.len();
                data[pos % n] ^= x;
            }
            let cut = cut % (data.len() + 1);
            data.truncate(cut);
            data.extend(garbage);
            std::fs::write(dir.path().join(crate::format::segment_file(0, "log")), &data).expect("write");
            let seg = Segment::recover(dir.path(), 0, true, 512, 0, &mut |_, _| None).expect("open");
            let kept = seg.len as usize;
            prop_assert!(ends.contains(&kept), "kept {} is a batch boundary", kept);
            // every kept batch is whole and passes its CRC
            let mut pos = 0;
            while pos < kept {
                let (_, len) = batch::peek_frame(&data[pos..kept]).expect("frame");
                prop_assert!(batch::validate(&data[pos..pos + len]).is_ok());
                pos += len;
            }
            // with no corruption, exactly the whole batches before the cut survive
            if !flipped {
                let whole = ends.iter().copied().filter(|&e| e <= cut).max().unwrap_or(0);
                prop_assert_eq!(kept, whole);
            }
        }
    }
}
