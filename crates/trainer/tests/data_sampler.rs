//! The sampler's order: reproducible from seed and epoch, resumable from a cursor, sharded
//! over ranks like VILA's `VILADistributedSampler`.

use std::collections::BTreeSet;

use trainer::data::{BatchGeometry, DataCursor, Sampler};

const LENS: [usize; 3] = [24, 16, 8];

fn all_micro_batches(
    sampler: &Sampler,
    start: DataCursor,
    n: usize,
) -> Vec<(DataCursor, Vec<usize>)> {
    sampler
        .plan(start)
        .unwrap()
        .take(n)
        .map(|mb| (mb.cursor, mb.indices))
        .collect()
}

#[test]
fn same_seed_same_order_different_seed_or_epoch_differs() {
    let g = BatchGeometry::new(1, 2, 2).unwrap();
    let a = Sampler::new(&LENS, g, 0, 42).unwrap();
    let b = Sampler::new(&LENS, g, 0, 42).unwrap();
    let c = Sampler::new(&LENS, g, 0, 43).unwrap();
    assert_eq!(a.epoch_order(0), b.epoch_order(0));
    assert_ne!(a.epoch_order(0), c.epoch_order(0));
    assert_ne!(a.epoch_order(0), a.epoch_order(1));
    // Every epoch is a permutation of the whole set.
    let mut sorted = a.epoch_order(1);
    sorted.sort_unstable();
    assert_eq!(sorted, (0..48).collect::<Vec<_>>());
    // seed + epoch is the shuffle seed, as `random.seed(self.seed + self.epoch)`.
    assert_eq!(a.epoch_order(1), c.epoch_order(0));
}

#[test]
fn steps_and_cursors() {
    let g = BatchGeometry::new(1, 2, 3).unwrap(); // global batch 6
    let s = Sampler::new(&[24, 18, 6], g, 0, 42).unwrap();
    assert_eq!(s.num_samples(), 48);
    assert_eq!(s.micro_batches_per_epoch(), 24);
    assert_eq!(s.steps_per_epoch(), 8);
    assert_eq!(
        s.cursor_at_step(0),
        DataCursor {
            epoch: 0,
            micro_batch: 0
        }
    );
    assert_eq!(
        s.cursor_at_step(3),
        DataCursor {
            epoch: 0,
            micro_batch: 9
        }
    );
    assert_eq!(
        s.cursor_at_step(9),
        DataCursor {
            epoch: 1,
            micro_batch: 3
        }
    );
    assert_eq!(
        s.step_of(DataCursor {
            epoch: 1,
            micro_batch: 3
        }),
        9
    );
    assert!(
        s.plan(DataCursor {
            epoch: 0,
            micro_batch: 24
        })
        .is_err()
    );
    // Drop-last: with 24, 16, 8 only 24 + 12 + 6 samples fill whole global batches.
    let trimmed = Sampler::new(&LENS, g, 0, 42).unwrap();
    assert_eq!((trimmed.num_samples(), trimmed.dropped()), (42, 6));
}

#[test]
fn resume_from_a_cursor_gives_the_suffix_of_the_uninterrupted_order() {
    let g = BatchGeometry::new(1, 2, 2).unwrap();
    let s = Sampler::new(&LENS, g, 0, 42).unwrap();
    let per_epoch = s.micro_batches_per_epoch() as usize;
    // Three epochs without interruption.
    let full = all_micro_batches(&s, DataCursor::default(), 3 * per_epoch);
    assert_eq!(
        full[per_epoch].0,
        DataCursor {
            epoch: 1,
            micro_batch: 0
        }
    );
    for k in [
        0usize,
        1,
        5,
        per_epoch - 1,
        per_epoch,
        per_epoch + 7,
        2 * per_epoch + 3,
    ] {
        // A resumed run builds a fresh sampler from the same numbers and the saved cursor.
        let resumed = Sampler::new(&LENS, g, 0, 42).unwrap();
        let cursor = full[k].0;
        let rest = all_micro_batches(&resumed, cursor, 3 * per_epoch - k);
        assert_eq!(rest, full[k..], "resumed at micro-batch {k}");
    }
    // At a step boundary the cursor comes from the global step alone.
    for step in 0..s.steps_per_epoch() * 3 {
        let c = s.cursor_at_step(step);
        assert_eq!(c, full[(step * 2) as usize].0);
    }
}

#[test]
fn ranks_get_disjoint_shards_that_cover_each_global_batch() {
    let g = BatchGeometry::new(2, 2, 2).unwrap(); // global batch 8
    let lens = [24, 16, 8, 13]; // the last one is trimmed to 8 by drop-last
    let ranks: Vec<Sampler> = (0..2)
        .map(|r| Sampler::new(&lens, g, r, 42).unwrap())
        .collect();
    assert_eq!(ranks[0].num_samples(), 28);
    assert_eq!(ranks[0].dropped(), 61 - 56);
    assert_eq!(ranks[0].steps_per_epoch(), 7);
    for epoch in 0..3 {
        let orders: Vec<Vec<usize>> = ranks.iter().map(|s| s.epoch_order(epoch)).collect();
        let sets: Vec<BTreeSet<usize>> =
            orders.iter().map(|o| o.iter().copied().collect()).collect();
        assert_eq!(sets[0].len(), 28);
        assert!(sets[0].is_disjoint(&sets[1]));
        // Together the ranks train every sample the drop-last keeps: the first
        // 24, 16, 8 and 8 of each dataset.
        let union: BTreeSet<usize> = sets[0].union(&sets[1]).copied().collect();
        let kept: BTreeSet<usize> = (0..24).chain(24..40).chain(40..48).chain(48..56).collect();
        assert_eq!(union, kept);
        // Rank r owns a contiguous block of each dataset, the same in every epoch (VILA).
        assert!(sets[0].contains(&0) && sets[1].contains(&12) && !sets[1].contains(&11));
        // Each global batch is the ranks' step slices: disjoint, 8 samples.
        let per_rank_step = g.samples_per_rank_step();
        for step in 0..7 {
            let slice =
                |r: usize| orders[r][step * per_rank_step..(step + 1) * per_rank_step].to_vec();
            let batch: BTreeSet<usize> = slice(0).into_iter().chain(slice(1)).collect();
            assert_eq!(batch.len(), g.global_batch());
        }
    }
    let bad = Sampler::new(&lens, g, 2, 42).unwrap_err();
    assert!(bad.to_string().contains("rank 2"), "{bad}");
}

#[test]
fn datasets_are_interleaved_proportionally() {
    let g = BatchGeometry::new(1, 1, 1).unwrap();
    let s = Sampler::new(&[30, 10], g, 0, 1).unwrap();
    let order = s.epoch_order(0);
    // Every window of 4 holds exactly one sample of the smaller dataset.
    for window in order.chunks(4) {
        assert_eq!(window.iter().filter(|&&i| i >= 30).count(), 1, "{order:?}");
    }
}
