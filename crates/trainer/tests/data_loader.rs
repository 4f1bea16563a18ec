//! The prefetching loader on a real dataset and the tiny checkpoint's processor: order
//! independent of the worker count, exact resume, bounded prefetch, errors that name the
//! record, clean shutdown, collation and the dry-run summary.

mod data_support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use data_support::{three_datasets, tiny_checkpoint};
use nvila_model::processor::IGNORE_INDEX;
use trainer::data::{
    BatchGeometry, DataCursor, DataError, DataSummary, Loader, LoaderOptions, OpenOptions,
    PrepareOptions, SamplePreparer, Sampler, TrainingSet,
};

struct Fixture {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    set: Arc<TrainingSet>,
    preparer: Arc<SamplePreparer>,
    sampler: Sampler,
}

fn fixture(geometry: BatchGeometry) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let reg = three_datasets(&root);
    let set = TrainingSet::open(&reg, "a+b+c", &OpenOptions::new(geometry, 42)).unwrap();
    let preparer =
        SamplePreparer::from_checkpoint(&tiny_checkpoint(), &PrepareOptions::default()).unwrap();
    let sampler = Sampler::new(&set.sample_lens(), geometry, 0, 42).unwrap();
    Fixture {
        _tmp: tmp,
        root,
        set: Arc::new(set),
        preparer: Arc::new(preparer),
        sampler,
    }
}

fn loader(f: &Fixture, workers: usize, start: DataCursor, total_steps: u64) -> Loader {
    let options = LoaderOptions {
        num_workers: workers,
        prefetch_micro_batches: 2,
        total_steps,
    };
    Loader::new(
        Arc::clone(&f.set),
        Arc::clone(&f.preparer),
        &f.sampler,
        start,
        options,
    )
    .unwrap()
}

/// (step, cursor, next cursor, per micro-batch (cursor, sample index, ids)) of every step.
type StepView = (
    u64,
    DataCursor,
    DataCursor,
    Vec<(DataCursor, Vec<(usize, Vec<u32>)>)>,
);

fn run(loader: &mut Loader) -> Vec<StepView> {
    let mut out = Vec::new();
    while let Some(step) = loader.next_step() {
        let step = step.unwrap();
        let total: usize = step
            .micro_batches
            .iter()
            .flat_map(|mb| &mb.samples)
            .map(|s| s.num_supervised_tokens)
            .sum();
        assert_eq!(step.num_supervised_tokens, total);
        let mbs = step
            .micro_batches
            .iter()
            .map(|mb| {
                (
                    mb.cursor,
                    mb.samples
                        .iter()
                        .map(|s| (s.index, s.input_ids.clone()))
                        .collect(),
                )
            })
            .collect();
        out.push((step.step, step.cursor, step.next_cursor, mbs));
    }
    out
}

#[test]
fn order_is_the_samplers_with_0_1_and_4_workers_and_resumes_exactly() {
    // a: 5 -> 6, b: 3 -> 4, c: 4 -> 4 at global batch 2: 14 samples, 7 micro-batches of 2?
    // per_device 1, grad_accum 2 -> 7 steps of 2 micro-batches per epoch.
    let g = BatchGeometry::new(1, 1, 2).unwrap();
    let f = fixture(g);
    assert_eq!(f.set.len(), 14);
    let steps = 2 * f.sampler.steps_per_epoch(); // two epochs
    let reference = run(&mut loader(&f, 0, DataCursor::default(), steps));
    assert_eq!(reference.len() as u64, steps);
    // The samples are the sampler's order, epoch after epoch.
    let from_loader: Vec<usize> = reference
        .iter()
        .flat_map(|s| &s.3)
        .flat_map(|mb| mb.1.iter().map(|(i, _)| *i))
        .collect();
    let mut want = f.sampler.epoch_order(0);
    want.extend(f.sampler.epoch_order(1));
    assert_eq!(from_loader, want);

    for workers in [1, 4] {
        assert_eq!(
            run(&mut loader(&f, workers, DataCursor::default(), steps)),
            reference
        );
    }

    // Resume after step k from the saved cursor: the suffix of the uninterrupted run.
    for k in [1u64, 6, 7, 10] {
        let saved = reference[k as usize - 1].2;
        assert_eq!(saved, f.sampler.cursor_at_step(k));
        let resumed = run(&mut loader(&f, 3, saved, steps));
        assert_eq!(resumed, reference[k as usize..], "resumed after step {k}");
    }
}

#[test]
fn prefetch_is_bounded() {
    let g = BatchGeometry::new(1, 2, 1).unwrap();
    let f = fixture(g);
    let mut l = loader(&f, 4, DataCursor::default(), 100);
    assert_eq!(l.capacity(), 4);
    let settle = |l: &Loader, want: usize| {
        let t = Instant::now();
        while l.stats().prepared < want && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    settle(&l, 4);
    assert_eq!(l.stats().prepared, 4, "{:?}", l.stats());
    for consumed in 1..=3 {
        let mb = l.next_micro_batch().unwrap().unwrap();
        assert_eq!(mb.samples.len(), 2);
        settle(&l, 4 + 2 * consumed);
        let stats = l.stats();
        assert_eq!(stats.handed_out, 2 * consumed);
        assert!(
            stats.prepared <= stats.handed_out + l.capacity(),
            "{stats:?}"
        );
    }
}

#[test]
fn a_corrupt_image_fails_naming_the_record_and_ends_the_stream() {
    let g = BatchGeometry::new(1, 1, 1).unwrap();
    let f = fixture(g);
    let image = f.root.join("b/images/b_1.jpg");
    std::fs::write(&image, b"not a jpeg at all").unwrap();
    let mut l = loader(&f, 2, DataCursor::default(), 1000);
    let mut seen = 0;
    let err = loop {
        match l.next_micro_batch() {
            Some(Ok(mb)) => seen += mb.samples.len(),
            Some(Err(e)) => break e,
            None => panic!("the corrupt image was never reported"),
        }
    };
    assert!(seen < f.set.len());
    match &err {
        DataError::Sample {
            dataset,
            record,
            id,
            file,
            ..
        } => {
            assert_eq!(
                (dataset.as_str(), *record, id.as_deref()),
                ("b", 1, Some("b-1"))
            );
            assert!(file.ends_with("b/dataset.json"));
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("record 1") && msg.contains("b_1.jpg"), "{msg}");
    assert!(l.next_micro_batch().is_none());
}

#[test]
fn dropping_the_loader_stops_its_workers() {
    let g = BatchGeometry::new(1, 2, 1).unwrap();
    let f = fixture(g);
    let mut l = loader(&f, 4, DataCursor::default(), 1000);
    let _ = l.next_micro_batch().unwrap().unwrap();
    let t = Instant::now();
    drop(l);
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn collation_pads_right_and_counts_supervised_tokens() {
    let g = BatchGeometry::new(1, 2, 1).unwrap();
    let f = fixture(g);
    let mut l = loader(&f, 2, DataCursor::default(), 1);
    let step = l.next_step().unwrap().unwrap();
    assert!(l.next_step().is_none(), "total_steps 1 ends the stream");
    let mb = &step.micro_batches[0];
    let pad = f.preparer.pad_token_id();
    let c = mb.collate(pad).unwrap();
    assert_eq!(c.batch, 2);
    assert_eq!(
        c.seq_len,
        mb.samples.iter().map(|s| s.input_ids.len()).max().unwrap()
    );
    for (row, s) in mb.samples.iter().enumerate() {
        let ids = &c.input_ids[row * c.seq_len..(row + 1) * c.seq_len];
        let labels = &c.labels[row * c.seq_len..(row + 1) * c.seq_len];
        let mask = &c.attention_mask[row * c.seq_len..(row + 1) * c.seq_len];
        let n = s.input_ids.len();
        assert_eq!(&ids[..n], s.input_ids.as_slice());
        assert!(ids[n..].iter().all(|&i| i == pad));
        assert_eq!(&labels[..n], s.labels.as_slice());
        assert!(labels[n..].iter().all(|&l| l == IGNORE_INDEX));
        assert!(mask[..n].iter().all(|&m| m) && mask[n..].iter().all(|&m| !m));
        // VILA's mask is `input_ids != pad_token_id`: the same here.
        assert!(ids.iter().zip(mask).all(|(&i, &m)| (i != pad) == m));
    }
    assert_eq!(
        c.pixel_values.n_tiles,
        mb.samples
            .iter()
            .map(|s| s.pixel_values.n_tiles)
            .sum::<usize>()
    );
    assert_eq!(c.num_supervised_tokens, step.num_supervised_tokens);
    assert_eq!(
        c.num_supervised_tokens,
        c.labels.iter().filter(|&&l| l != IGNORE_INDEX).count()
    );
}

#[test]
fn dry_run_summary() {
    let g = BatchGeometry::new(1, 1, 2).unwrap();
    let f = fixture(g);
    let mut summary = DataSummary::new(&f.set, &f.sampler, 1.0, None);
    assert_eq!(summary.padding.before, 12);
    assert_eq!(summary.padding.after, 14);
    assert_eq!((summary.steps_per_epoch, summary.total_steps), (7, 7));
    assert_eq!(
        DataSummary::new(&f.set, &f.sampler, 3.0, Some(5)).total_steps,
        5
    );
    assert_eq!(
        DataSummary::new(&f.set, &f.sampler, 1.5, None).total_steps,
        11
    );
    summary
        .count_supervised_tokens(&f.set, f.preparer.processor())
        .unwrap();
    // Equal to the prepared samples' counts (nothing is truncated here).
    let mut want = 0u64;
    for i in 0..f.set.len() {
        let s = f.preparer.prepare(&f.set.sample(i).unwrap()).unwrap();
        want += s.num_supervised_tokens as u64;
    }
    assert_eq!(summary.supervised_tokens_per_epoch, Some(want));
    let text = summary.to_string();
    assert!(
        text.contains("dataset padded from 12 to 14 samples"),
        "{text}"
    );
    assert!(text.contains("7 optimizer steps per epoch"), "{text}");
    let _ = Path::new(&f.root);
}
