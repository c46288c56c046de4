use super::*;

const LIMITS: Limits = Limits {
    lock_ms: 1000,
    delivery_limit: 3,
    max_locks: 10,
};

fn acquire(p: &mut SharePartition, member: &str, hw: i64, max: usize, now: i64) -> Acquired {
    let from = p
        .next_fetch_offset(hw, &LIMITS)
        .expect("something to acquire");
    p.acquire(
        member,
        (from, hw - 1),
        max,
        now,
        &LIMITS,
        &mut Moves::default(),
    )
}

fn ack(p: &mut SharePartition, member: &str, first: i64, last: i64, t: i8) -> Result<(), AckError> {
    p.acknowledge(
        member,
        &[(first, last, vec![t])],
        &LIMITS,
        &mut Moves::default(),
    )
}

#[test]
fn records_go_to_one_member_at_a_time_and_the_start_follows_acknowledgements() {
    let mut p = SharePartition::new(0);
    assert_eq!(acquire(&mut p, "a", 5, 3, 0), vec![(0, 2, 1)]);
    assert_eq!(acquire(&mut p, "b", 5, 10, 0), vec![(3, 4, 1)]);
    assert_eq!(p.next_fetch_offset(5, &LIMITS), None);
    // b acknowledges first: the start waits for a's records
    ack(&mut p, "b", 3, 4, 1).unwrap();
    assert_eq!(p.start(), 0);
    assert_eq!(ack(&mut p, "b", 0, 0, 1), Err(AckError::InvalidRecordState));
    ack(&mut p, "a", 0, 2, 1).unwrap();
    assert_eq!((p.start(), p.end(), p.in_flight()), (5, 5, 0));
}

#[test]
fn released_and_expired_records_are_delivered_again_until_the_limit() {
    let mut p = SharePartition::new(0);
    acquire(&mut p, "a", 2, 10, 0);
    ack(&mut p, "a", 0, 0, 2).unwrap(); // release
    assert_eq!(acquire(&mut p, "b", 2, 10, 0), vec![(0, 0, 2)]);
    // a's lock on 1 and b's on 0 expire
    let mut moves = Moves::default();
    assert!(p.expire(1000, &LIMITS, &mut moves));
    assert_eq!(moves.timed_out, 2);
    assert_eq!(
        acquire(&mut p, "c", 2, 10, 1000),
        vec![(0, 0, 3), (1, 1, 2)]
    );
    // the third delivery of 0 is its last: released again, it is archived
    ack(&mut p, "c", 0, 1, 2).unwrap();
    assert_eq!(p.start(), 1);
    assert_eq!(acquire(&mut p, "c", 2, 10, 1000), vec![(1, 1, 3)]);
    ack(&mut p, "c", 1, 1, 3).unwrap(); // reject
    assert_eq!((p.start(), p.in_flight()), (2, 0));
}

#[test]
fn bad_acknowledgements_change_nothing() {
    let mut p = SharePartition::new(10);
    acquire(&mut p, "a", 15, 10, 0);
    let before = p.runs();
    let m = &mut Moves::default();
    // unsorted, overlapping, reversed, past the end, bad type, bad type count
    for batches in [
        vec![(12, 13, vec![1]), (10, 11, vec![1])],
        vec![(10, 12, vec![1]), (12, 13, vec![1])],
        vec![(13, 12, vec![1])],
        vec![(10, 20, vec![1])],
        vec![(10, 10, vec![7])],
        vec![(10, 12, vec![1, 1])],
        vec![(10, 10, vec![])],
    ] {
        assert_eq!(
            p.acknowledge("a", &batches, &LIMITS, m),
            Err(AckError::InvalidRequest)
        );
    }
    // another member's records, below the start, and a good batch next to a bad one
    assert_eq!(
        ack(&mut p, "b", 10, 10, 1),
        Err(AckError::InvalidRecordState)
    );
    assert_eq!(
        ack(&mut p, "a", 5, 10, 1),
        Err(AckError::InvalidRecordState)
    );
    let mixed = [(10, 11, vec![1]), (12, 12, vec![9])];
    assert!(p.acknowledge("a", &mixed, &LIMITS, m).is_err());
    assert_eq!(p.runs(), before);
    // per-offset types
    p.acknowledge("a", &[(10, 14, vec![1, 0, 3, 1, 2])], &LIMITS, m)
        .unwrap();
    assert_eq!((p.start(), p.end()), (14, 15));
    assert_eq!(
        ack(&mut p, "a", 13, 13, 1),
        Err(AckError::InvalidRecordState)
    );
}

#[test]
fn the_window_bounds_what_is_in_flight() {
    let mut p = SharePartition::new(0);
    assert_eq!(acquire(&mut p, "a", 100, 100, 0), vec![(0, 9, 1)]);
    assert_eq!(p.next_fetch_offset(100, &LIMITS), None);
    ack(&mut p, "a", 0, 3, 1).unwrap();
    assert_eq!(acquire(&mut p, "b", 100, 100, 0), vec![(10, 13, 1)]);
}

#[test]
fn the_durable_form_restores_everything_but_the_locks() {
    let mut p = SharePartition::new(0);
    acquire(&mut p, "a", 6, 10, 0);
    ack(&mut p, "a", 1, 1, 1).unwrap();
    ack(&mut p, "a", 3, 3, 3).unwrap();
    ack(&mut p, "a", 4, 4, 2).unwrap();
    let q = SharePartition::restore(p.start(), &p.runs());
    assert_eq!((q.start(), q.end(), q.in_flight()), (0, 6, 6));
    let mut q = q;
    // 0, 2, 4, 5 are delivered again (4 for the second time); 1 and 3 never
    assert_eq!(
        acquire(&mut q, "b", 6, 10, 0),
        vec![(0, 0, 2), (2, 2, 2), (4, 5, 2)]
    );
    q.acknowledge(
        "b",
        &[(0, 0, vec![1]), (2, 2, vec![1]), (4, 5, vec![1])],
        &LIMITS,
        &mut Moves::default(),
    )
    .unwrap();
    assert_eq!((q.start(), q.in_flight()), (6, 0));
}

#[test]
fn a_closed_session_gives_its_records_back_uncounted() {
    let mut p = SharePartition::new(0);
    acquire(&mut p, "a", 3, 10, 0);
    assert!(p.release_member("a", &LIMITS, &mut Moves::default()));
    assert_eq!(acquire(&mut p, "b", 3, 10, 0), vec![(0, 2, 1)]);
    assert!(!p.release_member("a", &LIMITS, &mut Moves::default()));
}

#[test]
fn a_log_start_past_the_start_drops_what_is_gone() {
    let mut p = SharePartition::new(0);
    acquire(&mut p, "a", 5, 10, 0);
    assert!(p.skip_to(3));
    assert_eq!((p.start(), p.end(), p.in_flight()), (3, 5, 2));
    assert!(p.skip_to(50));
    assert_eq!((p.start(), p.end(), p.in_flight()), (50, 50, 0));
}

#[test]
fn acquisition_stays_within_what_was_read() {
    let mut p = SharePartition::new(0);
    let m = &mut Moves::default();
    assert_eq!(p.acquire("a", (0, 2), 100, 0, &LIMITS, m), vec![(0, 2, 1)]);
    assert_eq!(p.acquire("a", (3, 4), 100, 0, &LIMITS, m), vec![(3, 4, 1)]);
    assert_eq!(p.end(), 5);
}
