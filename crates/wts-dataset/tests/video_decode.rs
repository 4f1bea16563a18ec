//! Frame extraction by time from real H.264 files (the synthetic tree's videos carry their own
//! frame index, see `synth::decode_frame_index`), frame folders, and bad input.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use wts_dataset::DatasetError;
use wts_dataset::synth::{self, SynthSummary, decode_frame_index};
use wts_dataset::video::{self, FrameSource, VideoInfo};

/// One synthetic tree per test binary, under Cargo's per-target temporary folder.
fn tree() -> &'static SynthSummary {
    static TREE: OnceLock<SynthSummary> = OnceLock::new();
    TREE.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wts-dataset-video-decode-tree");
        synth::write_synthetic_tree(&root).expect("synthetic tree")
    })
}

/// (video, exact fps as num/den, frame count)
fn videos() -> Vec<(PathBuf, f64, f64, u64)> {
    let s = tree();
    let a = synth::SCENARIO_CAMERA_STYLE;
    vec![
        (
            s.wts_root
                .join(format!("videos/train/{a}/overhead_view/{a}_Camera1_0.mp4")),
            30.0,
            1.0,
            240,
        ),
        (
            s.bdd_root.join("videos/train/video1004.mp4"),
            30000.0,
            1001.0,
            180,
        ),
        (
            s.bdd_root.join("videos/train/video1005.mp4"),
            60000.0,
            1001.0,
            300,
        ),
    ]
}

fn index_of(img: &image::RgbImage, what: &str) -> u64 {
    decode_frame_index(img).unwrap_or_else(|| panic!("{what}: frame index blocks unreadable"))
}

#[test]
fn probe_reports_dims_rate_duration_codec() {
    for (path, num, den, frames) in videos() {
        let info = video::probe(&path).expect("probe");
        let fps = num / den;
        assert!(
            (info.fps - fps).abs() < 1e-9,
            "{}: fps {}",
            path.display(),
            info.fps
        );
        assert_eq!(info.frame_count, frames);
        assert!(
            (info.duration_s - frames as f64 / fps).abs() < 1e-3,
            "duration {}",
            info.duration_s
        );
        assert_eq!(info.codec, "h264");
        let (w, h) = if path.to_string_lossy().contains("BDD") {
            (256, 144)
        } else {
            (320, 180)
        };
        assert_eq!((info.width, info.height), (w, h));
    }
}

#[test]
fn frame_at_returns_the_exact_frame_incl_boundaries() {
    for (path, num, den, frames) in videos() {
        let info = video::probe(&path).expect("probe");
        let mut picks: Vec<u64> = vec![
            0,
            1,
            2,
            15,
            29,
            30,
            31,
            59,
            60,
            61,
            89,
            90,
            91,
            frames - 2,
            frames - 1,
        ];
        picks.retain(|&n| n < frames);
        for n in picks {
            let boundary = n as f64 * den / num; // exact start of frame n
            let mid = (n as f64 + 0.5) * den / num;
            let just_before_next = (n as f64 + 1.0) * den / num - 1e-4;
            for t in [boundary, mid, just_before_next] {
                assert_eq!(
                    video::frame_index_at(&info, t),
                    n,
                    "{} t={t}",
                    path.display()
                );
                let img = video::frame_at(&path, &info, t).expect("frame");
                assert_eq!((img.width(), img.height()), (info.width, info.height));
                assert_eq!(
                    index_of(&img, &path.display().to_string()),
                    n,
                    "{} t={t}",
                    path.display()
                );
            }
        }
        // Millisecond-rounded annotation times at exact boundaries: 1.001 s is frame 60 at
        // 59.94 fps and frame 30 at 29.97 fps; 1.0 s is frame 30 at 30 fps.
        let expected_1001 = ((1.001 * num / den) + 1e-6).floor() as u64;
        let img = video::frame_at(&path, &info, 1.001).expect("frame");
        assert_eq!(index_of(&img, "1.001"), expected_1001);
        // The stated duration itself is the last frame.
        let img = video::frame_at(&path, &info, info.duration_s).expect("frame at end");
        assert_eq!(index_of(&img, "end"), frames - 1);
    }
}

#[test]
fn frames_at_equals_repeated_frame_at() {
    for (path, num, den, _) in videos() {
        let info = video::probe(&path).expect("probe");
        // Unsorted, with a duplicate, spanning more than one decode group (> 2 s apart).
        let times = [4.5, 0.0, 0.5, 1.001, 4.5, 0.7341, info.duration_s, 2.9];
        let batch = video::frames_at(&path, &info, &times).expect("frames_at");
        assert_eq!(batch.len(), times.len());
        for (t, img) in times.iter().zip(&batch) {
            let single = video::frame_at(&path, &info, *t).expect("frame_at");
            assert!(
                img == &single,
                "{} t={t}: batch and single decode differ",
                path.display()
            );
            let want = ((t * num / den) + 1e-6).floor() as u64;
            assert_eq!(
                index_of(img, "batch"),
                want.min(info.frame_count - 1),
                "t={t}"
            );
        }
        assert!(
            video::frames_at(&path, &info, &[])
                .expect("empty")
                .is_empty()
        );
    }
}

/// Writes a frame folder with the official `script/frame_extraction.py` naming: `frame%d.jpg`
/// from 0, every frame written twice when 59 < fps < 61.
fn official_frame_folder(video: &Path, info: &VideoInfo, dir: &Path) {
    let staging = dir.join("staging");
    std::fs::create_dir_all(&staging).expect("mkdir");
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(video)
        // Constant-rate synthetic files: the default frame-rate mode neither drops nor
        // duplicates (checked below by the frame count).
        .args(["-q:v", "2", "-start_number", "0"])
        .arg(staging.join("f%d.jpg"))
        .status()
        .expect("ffmpeg");
    assert!(st.success());
    assert!(!staging.join(format!("f{}.jpg", info.frame_count)).exists());
    let double = info.fps > 59.0 && info.fps < 61.0;
    let mut count = 0u64;
    for k in 0..info.frame_count {
        let src = staging.join(format!("f{k}.jpg"));
        std::fs::copy(&src, dir.join(format!("frame{count}.jpg"))).expect("copy");
        if double {
            count += 1;
            std::fs::copy(&src, dir.join(format!("frame{count}.jpg"))).expect("copy");
        }
        count += 1;
    }
}

#[test]
fn frame_folder_gives_the_same_frames_as_the_video() {
    for (path, _, _, _) in videos() {
        let info = video::probe(&path).expect("probe");
        let dir = tempfile::tempdir().expect("tempdir");
        official_frame_folder(&path, &info, dir.path());
        let folder = FrameSource::Folder {
            dir: dir.path().to_path_buf(),
            fps: info.fps,
        };
        let source = FrameSource::Video(path.clone());
        for t in [0.0, 0.4, 1.001, 2.5, 3.3367, info.duration_s - 0.01] {
            let from_folder = folder.frame_at(t).expect("folder frame");
            let from_video = source.frame_at(t).expect("video frame");
            let n = video::frame_index_at(&info, t);
            assert_eq!(
                index_of(&from_folder, "folder"),
                n,
                "{} t={t}",
                path.display()
            );
            assert_eq!(
                index_of(&from_video, "video"),
                n,
                "{} t={t}",
                path.display()
            );
        }
        // Past the last extracted frame: a clear error naming the missing file.
        let err = folder.frame_at(info.duration_s + 5.0).unwrap_err();
        assert!(matches!(err, DatasetError::Invalid { .. }), "{err}");
        assert!(
            err.to_string().contains("frame") && err.to_string().contains("missing"),
            "{err}"
        );
        assert!(folder.frame_at(-0.5).is_err());
    }
    let bad = FrameSource::Folder {
        dir: PathBuf::from("/nonexistent"),
        fps: 0.0,
    };
    assert!(matches!(bad.frame_at(1.0), Err(DatasetError::Config(_))));
}

fn encode(dir: &Path, name: &str, codec_args: &[&str], faststart: bool) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-v",
        "error",
        "-nostdin",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x90:rate=30:duration=4",
    ])
    .args(codec_args);
    if faststart {
        cmd.args(["-movflags", "+faststart"]);
    }
    let st = cmd.arg(&out).status().expect("ffmpeg");
    assert!(st.success(), "encoding {name}");
    out
}

fn cut_in_half(path: &Path, out: &Path) {
    let bytes = std::fs::read(path).expect("read");
    std::fs::write(out, &bytes[..bytes.len() / 2]).expect("write");
}

#[test]
fn bad_input_gives_clear_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");

    // Not H.264.
    let mpeg4 = encode(dir.path(), "mpeg4.mp4", &["-c:v", "mpeg4"], false);
    let err = video::probe(&mpeg4).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DatasetError::Video { .. }), "{msg}");
    assert!(
        msg.contains("not H.264 (codec mpeg4)") && msg.contains("mpeg4.mp4"),
        "{msg}"
    );

    // Truncated, index (moov) at the end: the index itself is lost.
    let h264 = encode(
        dir.path(),
        "full.mp4",
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
        false,
    );
    let cut = dir.path().join("cut_moov_end.mp4");
    cut_in_half(&h264, &cut);
    let msg = video::probe(&cut).unwrap_err().to_string();
    assert!(
        msg.contains("cut_moov_end.mp4") && msg.contains("truncated"),
        "{msg}"
    );

    // Truncated, index up front (faststart): streams still list, the data is missing.
    let synth_mp4 = videos()[0].0.clone();
    let cut = dir.path().join("cut_synth.mp4");
    cut_in_half(&synth_mp4, &cut);
    let err = video::probe(&cut).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DatasetError::Video { .. }), "{msg}");
    assert!(
        msg.contains("cut_synth.mp4") && msg.contains("truncated"),
        "{msg}"
    );
    // Decoding from it with the intact file's info fails cleanly too (ffmpeg's reason kept).
    let info = video::probe(&synth_mp4).expect("probe intact");
    let msg = video::frame_at(&cut, &info, info.duration_s - 0.1)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cut_synth.mp4") && msg.contains("could not decode"),
        "{msg}"
    );

    // Not a video at all.
    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, b"this is not an mp4 file").expect("write");
    let msg = video::probe(&junk).unwrap_err().to_string();
    assert!(msg.contains("junk.mp4"), "{msg}");

    // Missing file.
    let missing = dir.path().join("missing.mp4");
    let err = video::probe(&missing).unwrap_err();
    assert!(matches!(err, DatasetError::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing.mp4"), "{err}");
    assert!(FrameSource::Video(missing).frame_at(0.0).is_err());

    // Times outside the video (a phase time past the end).
    let err = video::frame_at(&synth_mp4, &info, info.duration_s + 0.5).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DatasetError::Invalid { .. }), "{msg}");
    assert!(
        msg.contains("past the end") && msg.contains("Camera1_0.mp4"),
        "{msg}"
    );
    assert!(video::frame_at(&synth_mp4, &info, -0.1).is_err());
    assert!(video::frame_at(&synth_mp4, &info, f64::NAN).is_err());
    assert!(video::frames_at(&synth_mp4, &info, &[1.0, 99.0]).is_err());
}
