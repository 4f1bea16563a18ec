//! Video probing and frame decoding **by time in the real file**, through the `ffprobe` and
//! `ffmpeg` programs (no FFI), plus folders of pre-extracted frames.
//!
//! Why time and not the annotation's frame number: wts.md §5 ("Safest rule") shows that bbox
//! `image_id`s and caption times only agree when an annotation frame is first turned into
//! seconds and then looked up in the actual file; teams that indexed frames directly had to
//! special-case 59.94 fps BDD files (`image_id // 2` in CityLLaVA `draw_bbox_on_frame.py`).
//!
//! Frame convention used everywhere in this module: frame `n` (0-based, in decode order of
//! presentation) is on screen during `[n / fps, (n + 1) / fps)` seconds after the stream start,
//! so the frame at time `t` is `floor(t * fps + 1e-6)` ([`frame_index_at`]); the `1e-6` makes
//! exact boundaries such as `t = 1.001` at 59.94 fps (`60 * 1001 / 60000`) land on frame 60
//! despite floating-point error.
//!
//! Exactness: `-ss` before `-i` makes ffmpeg seek to the previous key frame and then decode and
//! drop every frame whose timestamp is before the requested time. Asking for the frame's own
//! timestamp `n / fps` is fragile (container time bases round timestamps, e.g. 1/15360 or
//! 1/60000), so we seek to `(n - 0.5) / fps`: the first frame at or after that point is frame
//! `n` for any constant-frame-rate file, whatever the rounding. The tests check this at exact
//! frame boundaries for 30, 29.97 and 59.94 fps.
//!
//! Frames come back as raw `rgb24` over a pipe (`-f rawvideo -pix_fmt rgb24 -`), one ffmpeg
//! process per group of nearby frames ([`frames_at`] picks them with a `select` filter).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use image::RgbImage;
use serde_json::Value;

use crate::error::DatasetError;

/// What [`probe`] learns about a video file (first video stream).
#[derive(Clone, Debug, PartialEq)]
pub struct VideoInfo {
    /// Coded width in pixels (what bbox coordinates refer to).
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// Frames per second, e.g. `30.0`, `29.97002997…` (30000/1001) or `59.94005994…`.
    pub fps: f64,
    /// Duration of the video stream in seconds.
    pub duration_s: f64,
    /// Number of frames (container's count, else `round(duration_s * fps)`).
    pub frame_count: u64,
    /// ffprobe's codec name, always `"h264"` for a successfully probed file.
    pub codec: String,
}

/// Tolerance when checking a requested time against the video's duration: annotation times
/// have millisecond precision (wts.md §1.3, e.g. `"44.663"`), ffprobe durations microsecond.
const TIME_TOLERANCE_S: f64 = 1e-3;

/// Frames this close (in seconds) are decoded by one ffmpeg process: decoding forward through
/// ~2 s is cheaper than a new process plus a seek back to the previous key frame.
const GROUP_SPAN_S: f64 = 2.0;

/// Probes `path` with `ffprobe -of json`.
///
/// Errors: [`DatasetError::ProgramMissing`] if `ffprobe` is not on PATH;
/// [`DatasetError::Io`] if the file does not exist; [`DatasetError::Video`] if the file is
/// unreadable or truncated, has no video stream, or is not H.264 (`"not H.264 (codec mpeg4)"`).
pub fn probe(path: &Path) -> Result<VideoInfo, DatasetError> {
    probe_with("ffprobe", path)
}

/// [`probe`] with an explicit program name (so tests can exercise the missing-program path).
fn probe_with(program: &str, path: &Path) -> Result<VideoInfo, DatasetError> {
    // Check existence ourselves: ffprobe's "No such file or directory" would otherwise be
    // reported as a video error.
    std::fs::metadata(path).map_err(|e| DatasetError::io(path, e))?;
    // `-read_intervals 999999%` seeks past the end (the demuxer lands on the last key frame)
    // and lists the last few packets in the same call. An MP4 whose index (`moov`) sits at the
    // front but whose data was cut off lists its streams fine but yields no packets there.
    let mut cmd = Command::new(program);
    cmd.args([
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-read_intervals",
        "999999%",
        "-show_entries",
        "stream=codec_name,profile,width,height,r_frame_rate,avg_frame_rate,nb_frames,duration\
         :format=duration:packet=pts_time",
        "-of",
        "json",
    ])
    .arg(path);
    let out = run_program(program, cmd)?;
    if !out.status.success() {
        return Err(video_err(
            path,
            format!(
                "ffprobe cannot read it (truncated or not a video?): {}",
                last_line(&out.stderr)
            ),
        ));
    }
    let json: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        video_err(
            path,
            format!("ffprobe printed output that is not JSON: {e}"),
        )
    })?;
    parse_probe(path, &json)
}

/// Turns ffprobe's JSON into a [`VideoInfo`], validating codec and completeness.
fn parse_probe(path: &Path, json: &Value) -> Result<VideoInfo, DatasetError> {
    let stream = json
        .get("streams")
        .and_then(Value::as_array)
        .and_then(|s| s.first())
        .ok_or_else(|| video_err(path, "no video stream"))?;
    let codec = stream
        .get("codec_name")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    if codec != "h264" {
        return Err(video_err(path, format!("not H.264 (codec {codec})")));
    }
    let dim = |key: &str| -> Result<u32, DatasetError> {
        stream
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .filter(|&v| v > 0)
            .ok_or_else(|| video_err(path, format!("ffprobe reports no valid {key}")))
    };
    let width = dim("width")?;
    let height = dim("height")?;

    let r_rate = stream
        .get("r_frame_rate")
        .and_then(Value::as_str)
        .and_then(parse_rate);
    let avg_rate = stream
        .get("avg_frame_rate")
        .and_then(Value::as_str)
        .and_then(parse_rate);
    // Constant-rate files report the same exact fraction twice; prefer `r_frame_rate` then.
    // When they disagree (variable frame rate, odd time bases) the average is the better guess.
    let fps = match (r_rate, avg_rate) {
        (Some(r), Some(a)) if (r - a).abs() <= 0.005 * a => r,
        (_, Some(a)) => a,
        (Some(r), None) => r,
        (None, None) => return Err(video_err(path, "ffprobe reports no frame rate")),
    };

    let duration_s = stream
        .get("duration")
        .and_then(str_f64)
        .or_else(|| {
            json.get("format")
                .and_then(|f| f.get("duration"))
                .and_then(str_f64)
        })
        .filter(|d| d.is_finite() && *d > 0.0)
        .ok_or_else(|| video_err(path, "ffprobe reports no duration (truncated?)"))?;
    let frame_count = stream
        .get("nb_frames")
        .and_then(str_f64)
        .filter(|n| *n >= 1.0)
        .map(|n| n as u64)
        .unwrap_or_else(|| (duration_s * fps).round().max(1.0) as u64);

    // Completeness: the packets near the end must exist and reach the stated duration.
    let last_pts = json
        .get("packets")
        .and_then(Value::as_array)
        .map(|p| {
            p.iter()
                .filter_map(|pk| pk.get("pts_time").and_then(str_f64))
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .unwrap_or(f64::NEG_INFINITY);
    if !last_pts.is_finite() {
        return Err(video_err(
            path,
            format!("truncated: no video data near the stated end ({duration_s:.3} s)"),
        ));
    }
    // Slack of two frames or 0.5 s, whichever is larger: variable-rate phone videos (BDD) can
    // end on a long frame, and a valid file must never be rejected. A file cut short by less
    // than that still fails cleanly in `frame_at` when a missing frame is asked for.
    if last_pts + 1.0 / fps < duration_s - (2.0 / fps).max(0.5) {
        return Err(video_err(
            path,
            format!(
                "truncated: video data stops at {:.3} s but the header says {duration_s:.3} s",
                last_pts + 1.0 / fps
            ),
        ));
    }

    Ok(VideoInfo {
        width,
        height,
        fps,
        duration_s,
        frame_count,
        codec,
    })
}

/// The frame on screen at time `t` (seconds from the start of the file):
/// `floor(t * fps + 1e-6)`, clamped to `[0, frame_count - 1]`.
pub fn frame_index_at(info: &VideoInfo, t: f64) -> u64 {
    let last = info.frame_count.saturating_sub(1);
    index_at(info.fps, t).min(last)
}

/// Unclamped `floor(t * fps + 1e-6)`; 0 for negative or non-finite input.
fn index_at(fps: f64, t: f64) -> u64 {
    let v = (t * fps + 1e-6).floor();
    if v.is_finite() && v > 0.0 {
        v as u64
    } else {
        0
    }
}

/// Decodes the frame on screen at time `t` ([`frame_index_at`]) from the real file.
///
/// Errors ([`DatasetError::Invalid`]) if `t` is negative, not finite or past the video's end
/// (a phase time outside the video); [`DatasetError::Video`] with ffmpeg's last stderr line if
/// decoding fails.
pub fn frame_at(path: &Path, info: &VideoInfo, t: f64) -> Result<RgbImage, DatasetError> {
    let mut frames = frames_at(path, info, &[t])?;
    frames
        .pop()
        .ok_or_else(|| video_err(path, "ffmpeg returned no frame"))
}

/// Decodes the frames at several times, in the order given (duplicates allowed). Nearby frames
/// (within ~2 s) share one ffmpeg process; distant ones get their own seek.
pub fn frames_at(
    path: &Path,
    info: &VideoInfo,
    times: &[f64],
) -> Result<Vec<RgbImage>, DatasetError> {
    let mut indices = Vec::with_capacity(times.len());
    for &t in times {
        check_time(path, info, t)?;
        indices.push(frame_index_at(info, t));
    }
    let mut unique = indices.clone();
    unique.sort_unstable();
    unique.dedup();

    let span = ((GROUP_SPAN_S * info.fps).ceil() as u64).max(1);
    let mut decoded: Vec<(u64, RgbImage)> = Vec::with_capacity(unique.len());
    let mut group: Vec<u64> = Vec::new();
    for &n in &unique {
        if let Some(&first) = group.first()
            && n - first > span
        {
            decoded.extend(decode_group(path, info, &group)?);
            group.clear();
        }
        group.push(n);
    }
    if !group.is_empty() {
        decoded.extend(decode_group(path, info, &group)?);
    }

    indices
        .iter()
        .map(|n| {
            decoded
                .binary_search_by_key(n, |(k, _)| *k)
                .map(|i| decoded[i].1.clone())
                .map_err(|_| video_err(path, format!("frame {n} was not decoded")))
        })
        .collect()
}

/// Rejects times outside `[0, duration]` (with [`TIME_TOLERANCE_S`] slack at the end).
fn check_time(path: &Path, info: &VideoInfo, t: f64) -> Result<(), DatasetError> {
    if !t.is_finite() || t < 0.0 {
        return Err(DatasetError::invalid(
            path,
            format!("time {t} s is not a valid position in the video"),
        ));
    }
    if t > info.duration_s + TIME_TOLERANCE_S {
        return Err(DatasetError::invalid(
            path,
            format!(
                "time {t:.3} s is past the end of the video ({:.3} s)",
                info.duration_s
            ),
        ));
    }
    Ok(())
}

/// Decodes the frames `group` (sorted, unique, close together) with one ffmpeg process.
fn decode_group(
    path: &Path,
    info: &VideoInfo,
    group: &[u64],
) -> Result<Vec<(u64, RgbImage)>, DatasetError> {
    let (Some(&first), Some(&last)) = (group.first(), group.last()) else {
        return Ok(Vec::new());
    };
    // Half a frame before frame `first`: see the module docs for why not `first / fps`.
    let seek = ((first as f64 - 0.5) / info.fps).max(0.0);
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-noautorotate",
        "-ss",
    ])
    .arg(format!("{seek:.6}"))
    .arg("-i")
    .arg(path);
    if group.len() > 1 || last != first {
        // After the accurate seek the first output frame is `first`; `n` counts from there.
        let expr = group
            .iter()
            .map(|k| format!("eq(n\\,{})", k - first))
            .collect::<Vec<_>>()
            .join("+");
        cmd.arg("-vf").arg(format!("select='{expr}'"));
    }
    // Passthrough frame-rate mode: never duplicate or drop frames to fit a constant output
    // rate (rawvideo output would otherwise default to CFR and pad the gaps `select` leaves).
    cmd.args([
        sync_option(),
        "passthrough",
        "-an",
        "-sn",
        "-dn",
        "-frames:v",
    ])
    .arg(group.len().to_string())
    .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
    let out = run_program("ffmpeg", cmd)?;

    let frame_bytes = info.width as usize * info.height as usize * 3;
    let expected = frame_bytes * group.len();
    if !out.status.success() || out.stdout.len() != expected {
        let why = last_line(&out.stderr);
        return Err(video_err(
            path,
            format!(
                "ffmpeg could not decode frame(s) {first}..={last} (got {} of {} bytes){}",
                out.stdout.len(),
                expected,
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            ),
        ));
    }
    let mut result = Vec::with_capacity(group.len());
    for (k, chunk) in group.iter().zip(out.stdout.chunks_exact(frame_bytes)) {
        let img = RgbImage::from_raw(info.width, info.height, chunk.to_vec())
            .ok_or_else(|| video_err(path, "decoded frame has the wrong size"))?;
        result.push((*k, img));
    }
    Ok(result)
}

/// The option that sets the frame-rate mode: `-fps_mode` (ffmpeg ≥ 5.1; ffmpeg 9 removed the
/// old `-vsync`) or `-vsync` (ffmpeg 4.x, e.g. Ubuntu 22.04's apt package, lacks `-fps_mode`).
/// Asked once per process from `ffmpeg -h long`; if that fails, assume a modern ffmpeg.
fn sync_option() -> &'static str {
    static OPTION: OnceLock<&'static str> = OnceLock::new();
    OPTION.get_or_init(|| {
        let help = Command::new("ffmpeg")
            .args(["-hide_banner", "-h", "long"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        match help {
            Ok(out) if !String::from_utf8_lossy(&out.stdout).contains("-fps_mode") => "-vsync",
            _ => "-fps_mode",
        }
    })
}

/// Where frames come from: a real video, or a folder of frames extracted beforehand with the
/// official script's naming.
#[derive(Clone, Debug, PartialEq)]
pub enum FrameSource {
    /// A video file, decoded with ffmpeg (probed on each call).
    Video(PathBuf),
    /// A folder written by `script/frame_extraction.py` of woven-visionai/wts-dataset (or
    /// anything with the same naming): `frame0.jpg`, `frame1.jpg`, …; `fps` is the frame rate
    /// of the video the folder was extracted from.
    Folder { dir: PathBuf, fps: f64 },
}

impl FrameSource {
    /// The frame on screen at time `t` seconds; for folders see [`folder_frame_name`].
    pub fn frame_at(&self, t: f64) -> Result<RgbImage, DatasetError> {
        match self {
            FrameSource::Video(path) => {
                let info = probe(path)?;
                frame_at(path, &info, t)
            }
            FrameSource::Folder { dir, fps } => {
                if !fps.is_finite() || *fps <= 0.0 {
                    return Err(DatasetError::Config(format!(
                        "{}: frame folder needs a positive fps, got {fps}",
                        dir.display()
                    )));
                }
                if !t.is_finite() || t < 0.0 {
                    return Err(DatasetError::invalid(
                        dir,
                        format!("time {t} s is not a valid position in the video"),
                    ));
                }
                let file = dir.join(folder_frame_name(*fps, index_at(*fps, t)));
                if !file.is_file() {
                    return Err(DatasetError::invalid(
                        &file,
                        format!(
                            "frame file missing (time {t:.3} s past the end of the extracted \
                             frames, or the folder is incomplete)"
                        ),
                    ));
                }
                let img = image::open(&file).map_err(|e| DatasetError::Image {
                    path: file.clone(),
                    message: e.to_string(),
                })?;
                Ok(img.to_rgb8())
            }
        }
    }
}

/// File name of decoded frame `n` in a folder written by the official
/// `script/frame_extraction.py` (woven-visionai/wts-dataset): it counts from 0 and writes
/// `frame%d.jpg`, but for a video reporting `59 < fps < 61` it writes **every frame twice**
/// (the counter advances by two per decoded frame). So decoded frame `n` is `frame{n}.jpg`
/// normally and `frame{2n}.jpg` (identical to `frame{2n+1}.jpg`) for 59.94/60 fps videos.
/// This keeps a folder source showing the same picture as the video source at any time `t`.
pub fn folder_frame_name(fps: f64, n: u64) -> String {
    let file_index = if fps > 59.0 && fps < 61.0 { 2 * n } else { n };
    format!("frame{file_index}.jpg")
}

/// Parses an ffprobe rate such as `"30000/1001"` or `"30"`; `None` for `"0/0"`.
fn parse_rate(s: &str) -> Option<f64> {
    let v = match s.split_once('/') {
        Some((n, d)) => n.trim().parse::<f64>().ok()? / d.trim().parse::<f64>().ok()?,
        None => s.trim().parse::<f64>().ok()?,
    };
    (v.is_finite() && v > 0.0).then_some(v)
}

/// ffprobe prints numbers as JSON strings (`"6.000000"`); accept plain numbers too.
fn str_f64(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Runs a prepared command, capturing stdout and stderr; a missing program becomes
/// [`DatasetError::ProgramMissing`].
fn run_program(program: &str, mut cmd: Command) -> Result<Output, DatasetError> {
    cmd.stdin(Stdio::null());
    cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DatasetError::ProgramMissing {
                program: program.to_string(),
            }
        } else {
            DatasetError::io(program, e)
        }
    })
}

/// The last non-empty line of a program's stderr (ffmpeg puts the reason there).
fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

fn video_err(path: &Path, message: impl Into<String>) -> DatasetError {
    DatasetError::Video {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(fps: f64, frames: u64) -> VideoInfo {
        VideoInfo {
            width: 16,
            height: 16,
            fps,
            duration_s: frames as f64 / fps,
            frame_count: frames,
            codec: "h264".into(),
        }
    }

    #[test]
    fn index_at_exact_boundaries() {
        let ntsc60 = info(60000.0 / 1001.0, 300);
        // 60 * 1001 / 60000 = 1.001 s is exactly the start of frame 60.
        assert_eq!(frame_index_at(&ntsc60, 1.001), 60);
        assert_eq!(frame_index_at(&ntsc60, 1.0009), 59);
        let ntsc30 = info(30000.0 / 1001.0, 300);
        assert_eq!(frame_index_at(&ntsc30, 3.003), 90);
        assert_eq!(frame_index_at(&ntsc30, 3.0029), 89);
        let p30 = info(30.0, 180);
        assert_eq!(frame_index_at(&p30, 0.1), 3);
        assert_eq!(frame_index_at(&p30, 0.0), 0);
        assert_eq!(frame_index_at(&p30, -1.0), 0);
        // Past the end clamps to the last frame.
        assert_eq!(frame_index_at(&p30, 6.0), 179);
        assert_eq!(frame_index_at(&p30, 100.0), 179);
    }

    #[test]
    fn folder_names_follow_official_script() {
        assert_eq!(folder_frame_name(30.0, 0), "frame0.jpg");
        assert_eq!(folder_frame_name(30.0, 17), "frame17.jpg");
        assert_eq!(folder_frame_name(29.97, 17), "frame17.jpg");
        assert_eq!(folder_frame_name(59.94, 17), "frame34.jpg");
        assert_eq!(folder_frame_name(60.0, 0), "frame0.jpg");
    }

    #[test]
    fn sync_option_matches_installed_ffmpeg() {
        // Debian 12 / Ubuntu 24.04 ship ffmpeg >= 5.1, which has -fps_mode.
        let help = Command::new("ffmpeg")
            .args(["-hide_banner", "-h", "long"])
            .output();
        let has_fps_mode =
            help.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("-fps_mode"));
        let want = if has_fps_mode { "-fps_mode" } else { "-vsync" };
        assert_eq!(sync_option(), want);
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("30/1"), Some(30.0));
        assert_eq!(parse_rate("0/0"), None);
        assert!((parse_rate("60000/1001").unwrap_or(0.0) - 59.94006).abs() < 1e-4);
        assert_eq!(parse_rate("garbage"), None);
    }

    #[test]
    fn missing_program_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("x.mp4");
        std::fs::write(&f, b"not a video").expect("write");
        let err = probe_with("ffprobe-definitely-not-installed-xyz", &f).unwrap_err();
        assert!(matches!(err, DatasetError::ProgramMissing { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("ffprobe-definitely-not-installed-xyz")
        );
    }

    #[test]
    fn probe_json_without_video_stream_or_wrong_codec() {
        let p = Path::new("v.mp4");
        let e = parse_probe(p, &serde_json::json!({"streams": []})).unwrap_err();
        assert!(e.to_string().contains("no video stream"), "{e}");
        let e =
            parse_probe(p, &serde_json::json!({"streams": [{"codec_name": "hevc"}]})).unwrap_err();
        assert_eq!(e.to_string(), "v.mp4: video: not H.264 (codec hevc)");
    }
}
