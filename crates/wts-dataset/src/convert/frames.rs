//! Where a video's frames come from: the real file (decoded with ffmpeg by time, via
//! [`crate::video`]) or a folder of pre-extracted frames (`frame%d.jpg`, official
//! `script/frame_extraction.py`; wts.md §5).

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::error::DatasetError;
use crate::video::{self, FrameSource, VideoInfo};

/// Slack when checking a time against the duration; the same as `video.rs` uses, because
/// annotation times have millisecond precision (wts.md §1.3).
pub(crate) const TIME_TOLERANCE_S: f64 = 1e-3;

/// A video's frame source.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Frames {
    Video(PathBuf),
    Folder { dir: PathBuf, fps: f64 },
}

impl Frames {
    /// Probes the source: ffprobe for a video; for a folder, the frame files present and the
    /// size of the first frame (the fps is the annotation's, as the folder has none).
    pub(crate) fn probe(&self) -> Result<VideoInfo, DatasetError> {
        match self {
            Frames::Video(path) => video::probe(path),
            Frames::Folder { dir, fps } => folder_info(dir, *fps),
        }
    }

    /// Decodes the frames at `times` (in order).
    pub(crate) fn frames_at(
        &self,
        info: &VideoInfo,
        times: &[f64],
    ) -> Result<Vec<RgbImage>, DatasetError> {
        match self {
            Frames::Video(path) => video::frames_at(path, info, times),
            Frames::Folder { dir, fps } => {
                let src = FrameSource::Folder {
                    dir: dir.clone(),
                    fps: *fps,
                };
                times.iter().map(|&t| src.frame_at(t)).collect()
            }
        }
    }

    /// The file or folder the frames are read from.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Frames::Video(p) => p,
            Frames::Folder { dir, .. } => dir,
        }
    }
}

/// A [`VideoInfo`] for a frame folder: `frame_count` counts decoded frames (the official
/// script writes each frame twice for 59–61 fps videos: see [`video::folder_frame_name`]).
fn folder_info(dir: &Path, fps: f64) -> Result<VideoInfo, DatasetError> {
    if !dir.is_dir() {
        return Err(DatasetError::invalid(dir, "frame folder not found"));
    }
    let read = std::fs::read_dir(dir).map_err(|e| DatasetError::io(dir, e))?;
    let mut files = 0u64;
    for entry in read {
        let entry = entry.map_err(|e| DatasetError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("frame") && name.ends_with(".jpg") {
            files += 1;
        }
    }
    let doubled = fps > 59.0 && fps < 61.0;
    let frame_count = if doubled { files / 2 } else { files };
    if frame_count == 0 {
        return Err(DatasetError::invalid(
            dir,
            "frame folder holds no frame%d.jpg files",
        ));
    }
    let first = dir.join(video::folder_frame_name(fps, 0));
    let (width, height) = image::image_dimensions(&first).map_err(|e| DatasetError::Image {
        path: first.clone(),
        message: e.to_string(),
    })?;
    Ok(VideoInfo {
        width,
        height,
        fps,
        duration_s: frame_count as f64 / fps,
        frame_count,
        codec: "jpeg-frames".into(),
    })
}
