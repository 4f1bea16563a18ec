//! What to convert and how: [`ConvertConfig`] and its option types.

use std::path::PathBuf;

use serde::Serialize;

use crate::error::DatasetError;
use crate::layout::{Split, View};

/// Which frame(s) of each phase become images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FramePick {
    /// The phase's `start_time`.
    Start,
    /// The middle of `[start_time, end_time]` (tsda's "mid" frame; wts.md §3).
    Middle,
    /// The phase's `end_time` (clamped to the last frame).
    End,
    /// The `bbox_annotated` frame of the phase, i.e. its first frame (CityLLaVA, AIO_ISC,
    /// TrafficInternVL; wts.md §5). Pedestrian box first, else vehicle; falls back to
    /// `start_time` (noted in the manifest) when the video has no annotated box for the phase.
    BboxAnnotated,
    /// `n` frames at the centres of `n` equal parts of the phase (never the exact end, which
    /// may coincide with the end of the file).
    Evenly(u32),
}

/// Which WTS views to use. BDD_PC_5K has a single ego view and is always used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewFilter {
    Overhead,
    Vehicle,
    Both,
}

impl ViewFilter {
    /// True if videos of `view` are used.
    pub fn accepts(self, view: View) -> bool {
        matches!(
            (self, view),
            (ViewFilter::Both, _)
                | (ViewFilter::Overhead, View::Overhead)
                | (ViewFilter::Vehicle, View::Vehicle)
        )
    }
}

/// Prompt templates. Placeholders: `{phase}` (e.g. `prerecognition`), `{subject}`
/// (`pedestrian` / `vehicle`), and for VQA `{question}` and `{options}` (`a. …` lines).
/// `<image>` tokens are not part of the templates: one `<image>\n` per image is prepended,
/// which is where VILA puts media anyway (nvila.md §4: it strips the tokens and puts all
/// images before the first human message).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PromptTemplates {
    /// One image. Default: the seed team's single-image prompt (wts.md §4).
    pub caption: String,
    /// Full frame + crop. Default: the seed team's wording with the close-up named.
    pub caption_multi: String,
    /// A phase question. Default: the phase sentence, the question, the options and
    /// TrafficInternVL's instruction (wts.md §3).
    pub vqa_phase: String,
    /// A scenario-level (environment) question.
    pub vqa_environment: String,
}

impl Default for PromptTemplates {
    fn default() -> Self {
        PromptTemplates {
            caption:
                "This image is from the {phase} phase of a traffic scene. Describe the {subject}."
                    .into(),
            caption_multi: "The first image is from the {phase} phase of a traffic scene; the \
                            second image is a close-up of the same moment. Describe the {subject}."
                .into(),
            vqa_phase: "This image is from the {phase} phase of a traffic scene.\n{question}\n\
                        {options}\nAnswer with the option's letter and its corresponding text."
                .into(),
            vqa_environment: "{question}\n{options}\nAnswer with the option's letter and its \
                              corresponding text."
                .into(),
        }
    }
}

/// Everything [`convert`](super::convert) needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvertConfig {
    /// WTS root (`videos/`, `annotations/`), e.g. `data/WTS` or
    /// `test_part/WTS_DATASET_PUBLIC_TEST`.
    pub wts_root: Option<PathBuf>,
    /// BDD_PC_5K root (`videos/`, `annotations/`).
    pub bdd_root: Option<PathBuf>,
    pub split: Split,
    /// The dataset goes to `<out_dir>/<name>_dataset/` (the seed team's registry layout).
    pub out_dir: PathBuf,
    pub name: String,
    pub frames: FramePick,
    pub views: ViewFilter,
    /// `view_used_as_main_reference_for_multiview_scenario.csv`: when given, only the listed
    /// overhead videos of a listed scenario are used (CityLLaVA; wts.md §3).
    pub main_view_csv: Option<PathBuf>,
    /// Draw the pedestrian / vehicle boxes on the images.
    pub draw_boxes: bool,
    /// Pedestrian box colour (CityLLaVA: green).
    pub pedestrian_color: [u8; 3],
    /// Vehicle box colour (CityLLaVA: blue).
    pub vehicle_color: [u8; 3],
    /// Box line width in pixels (CityLLaVA: 4).
    pub box_thickness: u32,
    /// Use a crop around the boxes instead of the full frame (falls back to the full frame,
    /// noted in the manifest, when the frame has no box).
    pub crop: bool,
    /// Crop enlargement around the union of the boxes (CityLLaVA: 1.5).
    pub crop_scale: f64,
    /// Two images per sample: the full frame and the crop (implies a crop). The sidecar
    /// `dataset_info.json` then says `image_aspect_ratio: resize` (seed team notes).
    pub multi_image: bool,
    /// Add VQA samples (2025 data).
    pub include_vqa: bool,
    pub prompts: PromptTemplates,
    /// JPEG quality 1..=100.
    pub jpeg_quality: u8,
    /// Fail (writing nothing) if any item would be skipped.
    pub strict: bool,
    /// Pre-extracted frames instead of videos: `<frame_folders>/<video stem>/frame%d.jpg`, as
    /// the official `script/frame_extraction.py` writes them (wts.md §5).
    pub frame_folders: Option<PathBuf>,
}

impl ConvertConfig {
    /// Defaults: train split, both views, the bbox_annotated frame, boxes drawn green/blue with
    /// thickness 4, no crop (scale 1.5 when enabled), single image, no VQA, JPEG quality 95,
    /// not strict.
    pub fn new(out_dir: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        ConvertConfig {
            wts_root: None,
            bdd_root: None,
            split: Split::Train,
            out_dir: out_dir.into(),
            name: name.into(),
            frames: FramePick::BboxAnnotated,
            views: ViewFilter::Both,
            main_view_csv: None,
            draw_boxes: true,
            pedestrian_color: [0, 255, 0],
            vehicle_color: [0, 0, 255],
            box_thickness: 4,
            crop: false,
            crop_scale: 1.5,
            multi_image: false,
            include_vqa: false,
            prompts: PromptTemplates::default(),
            jpeg_quality: 95,
            strict: false,
            frame_folders: None,
        }
    }

    /// `<out_dir>/<name>_dataset`.
    pub fn dataset_dir(&self) -> PathBuf {
        self.out_dir.join(format!("{}_dataset", self.name))
    }

    /// True if frames get a crop image (`crop`, or `multi_image` which implies it).
    pub fn wants_crop(&self) -> bool {
        self.crop || self.multi_image
    }

    /// Rejects values that cannot work.
    pub fn validate(&self) -> Result<(), DatasetError> {
        let bad = |m: String| Err(DatasetError::Config(m));
        if self.wts_root.is_none() && self.bdd_root.is_none() {
            return bad("give a WTS root, a BDD_PC_5K root, or both".into());
        }
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return bad(format!(
                "dataset name {:?} must be non-empty ASCII letters, digits, '_', '-' or '.'",
                self.name
            ));
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return bad(format!(
                "jpeg_quality {} is not in 1..=100",
                self.jpeg_quality
            ));
        }
        if !self.crop_scale.is_finite() || self.crop_scale < 1.0 {
            return bad(format!("crop_scale {} must be >= 1", self.crop_scale));
        }
        if self.draw_boxes && self.box_thickness == 0 {
            return bad("box_thickness must be at least 1".into());
        }
        if let FramePick::Evenly(n) = self.frames
            && n == 0
        {
            return bad("FramePick::Evenly needs at least one frame".into());
        }
        Ok(())
    }
}
