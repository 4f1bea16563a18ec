//! A small synthetic WTS + BDD_PC_5k raw tree with **real H.264 MP4 files**, for fixtures,
//! demos and tests of the whole pipeline without the (licensed, ~100 GB) real data.
//!
//! Layout and file names follow wts.md §1.2; JSON schemas follow §1.3 (captions), §1.4 (bbox)
//! and §1.5 (VQA, 2025 schema). The tree deliberately contains the irregularities real data
//! has (wts.md §1.2–§1.4): digit and name phase labels (incl. `pre-recognition`, `judgment`),
//! times as strings in one file and numbers in another, phases in reverse order, adjacent
//! phases overlapping by ~33 ms, a vehicle-view caption file with its own (smaller) times, a
//! normal scenario without vehicle view, one camera without any bbox file, IP-style and
//! Camera-style video names, both VQA overhead file names, BDD `fps` as strings and BDD bbox
//! `phase_number` as int, and one 59.94 fps BDD video.
//!
//! Every frame shows its own frame index as a row of 12 black/white blocks (binary, most
//! significant bit left) on a mid-grey background, so a test can decode any extracted frame
//! with [`decode_frame_index`] and check it is the frame it asked for. Filled rectangles mark
//! the "pedestrian" (green) and the "vehicle" (blue); they move slowly and the bbox JSON
//! records exactly where they are drawn. bbox `image_id`s are `round(start_time * fps)`, as
//! observed on real data (wts.md §1.4).
//!
//! Videos are encoded by the `ffmpeg` program with libx264 (High profile, yuv420p, GOP 30) in
//! one thread with bit-exact muxing, so repeated runs produce identical bytes with the same
//! ffmpeg/x264 build.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use image::{Rgb, RgbImage};
use rayon::prelude::*;
use serde_json::{Value, json};

use crate::error::DatasetError;
use crate::geometry::BBox;

/// What [`write_synthetic_tree`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthSummary {
    /// `root/WTS`.
    pub wts_root: PathBuf,
    /// `root/BDD_PC_5k`.
    pub bdd_root: PathBuf,
    /// `root/test_part/view_used_as_main_reference_for_multiview_scenario.csv`.
    pub main_view_csv: PathBuf,
    /// Number of MP4 files in the tree (all splits, WTS test part included).
    pub videos: usize,
    /// Scenario / video keys, as they appear in submissions: WTS scenario names (normal ones
    /// without the `normal_trimmed/` prefix) and BDD video stems.
    pub scenarios: Vec<String>,
}

/// Background grey of every synthetic frame.
const BACKGROUND: [u8; 3] = [128, 128, 128];
/// Filled colour of the "pedestrian" rectangle (green-ish, like the CityLLaVA box colour).
pub const PEDESTRIAN_COLOR: [u8; 3] = [40, 170, 60];
/// Filled colour of the "vehicle" rectangle (blue-ish).
pub const VEHICLE_COLOR: [u8; 3] = [40, 70, 200];
/// Number of index blocks in the top row (frame indices up to 4095).
const INDEX_BITS: u32 = 12;

/// Side of one index block for a frame `width` pixels wide (20 px at 320, 16 px at 256).
fn block_size(width: u32) -> u32 {
    width / 16
}

/// Paints the frame index into the top row of `img` (12 blocks, MSB left).
fn draw_index(img: &mut RgbImage, index: u64) {
    let s = block_size(img.width());
    let x0 = (img.width() - INDEX_BITS * s) / 2;
    let y0 = s / 2;
    for bit in 0..INDEX_BITS {
        let on = (index >> (INDEX_BITS - 1 - bit)) & 1 == 1;
        let v = if on { 255 } else { 0 };
        fill(img, x0 + bit * s, y0, s, s, [v, v, v]);
    }
}

/// Reads back the frame index painted by the synthetic generator; `None` if the top row does
/// not look like index blocks (a block that is neither clearly dark nor clearly bright).
pub fn decode_frame_index(img: &RgbImage) -> Option<u64> {
    let s = block_size(img.width());
    if s < 8 || img.height() < 2 * s {
        return None;
    }
    let x0 = (img.width() - INDEX_BITS * s) / 2;
    let y0 = s / 2;
    let mut value = 0u64;
    for bit in 0..INDEX_BITS {
        // Average the central half of the block: the edges carry compression ringing.
        let (bx, by) = (x0 + bit * s + s / 4, y0 + s / 4);
        let mut sum = 0u64;
        let mut count = 0u64;
        for y in by..by + s / 2 {
            for x in bx..bx + s / 2 {
                let p = img.get_pixel(x, y).0;
                sum += u64::from(p[0]) + u64::from(p[1]) + u64::from(p[2]);
                count += 3;
            }
        }
        let mean = sum / count.max(1);
        let on = match mean {
            0..=70 => false,
            185..=255 => true,
            _ => return None,
        };
        value = (value << 1) | u64::from(on);
    }
    Some(value)
}

/// Fills a rectangle, clipped to the image (row slices: thousands of frames are rendered per
/// tree, and tests run unoptimised).
fn fill(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, color: [u8; 3]) {
    let width = img.width() as usize;
    let x1 = x.saturating_add(w).min(img.width()) as usize;
    let y1 = y.saturating_add(h).min(img.height()) as usize;
    let (x0, y0) = ((x as usize).min(x1), (y as usize).min(y1));
    let buf: &mut [u8] = img;
    for row in y0..y1 {
        let start = (row * width + x0) * 3;
        let end = (row * width + x1) * 3;
        for px in buf[start..end].chunks_exact_mut(3) {
            px.copy_from_slice(&color);
        }
    }
}

/// A rectangle moving at constant velocity: its box at frame `k` is
/// `(x0 + vx·k, y0 + vy·k, w, h)`, rounded to 0.01 px (WTS) or 1 px (BDD, integer boxes).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Track {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    vx: f64,
    vy: f64,
}

impl Track {
    fn at(&self, frame: u64, integer: bool) -> BBox {
        let r = |v: f64| {
            if integer {
                v.round()
            } else {
                (v * 100.0).round() / 100.0
            }
        };
        let k = frame as f64;
        BBox {
            x: r(self.x0 + self.vx * k),
            y: r(self.y0 + self.vy * k),
            w: r(self.w),
            h: r(self.h),
        }
    }
}

/// Draws a box as a filled rectangle covering the pixels `[round(x), round(x + w))`.
fn fill_box(img: &mut RgbImage, b: &BBox, color: [u8; 3]) {
    let x0 = b.x.round().max(0.0) as u32;
    let y0 = b.y.round().max(0.0) as u32;
    let x1 = b.x_max().round().max(0.0) as u32;
    let y1 = b.y_max().round().max(0.0) as u32;
    fill(
        img,
        x0,
        y0,
        x1.saturating_sub(x0),
        y1.saturating_sub(y0),
        color,
    );
}

/// One synthetic video and what moves in it.
#[derive(Clone, Debug)]
struct VideoSpec {
    /// Path relative to the tree root.
    rel: PathBuf,
    width: u32,
    height: u32,
    /// Frame rate as the exact fraction given to ffmpeg (`30/1`, `30000/1001`, `60000/1001`).
    rate: (u32, u32),
    frames: u64,
    ped: Option<Track>,
    veh: Option<Track>,
    /// BDD stores integer boxes, WTS floats (wts.md §1.4).
    integer_boxes: bool,
}

impl VideoSpec {
    fn fps(&self) -> f64 {
        f64::from(self.rate.0) / f64::from(self.rate.1)
    }

    fn duration(&self) -> f64 {
        self.frames as f64 / self.fps()
    }

    /// Frame `k`: `background` (a grey frame of the right size, cloned rather than rebuilt
    /// pixel by pixel) with the shapes and the index row painted on.
    fn render(&self, background: &RgbImage, k: u64) -> RgbImage {
        let mut img = background.clone();
        if let Some(t) = self.veh {
            fill_box(&mut img, &t.at(k, self.integer_boxes), VEHICLE_COLOR);
        }
        if let Some(t) = self.ped {
            fill_box(&mut img, &t.at(k, self.integer_boxes), PEDESTRIAN_COLOR);
        }
        draw_index(&mut img, k);
        img
    }
}

/// One phase (segment) of a scenario's caption file.
#[derive(Clone, Debug)]
struct Phase {
    label: u8,
    start: f64,
    end: f64,
    ped: String,
    veh: String,
}

/// How a caption file spells things (real files differ, wts.md §1.3).
#[derive(Clone, Copy, Debug, PartialEq)]
enum LabelStyle {
    Digits,
    /// `prerecognition, recognition, judgement, action, avoidance`.
    Names,
    /// `pre-recognition`, `judgment`: variant spellings seen in the wild.
    VariantNames,
}

fn label_text(label: u8, style: LabelStyle) -> String {
    let names = [
        "prerecognition",
        "recognition",
        "judgement",
        "action",
        "avoidance",
    ];
    let variants = [
        "pre-recognition",
        "recognition",
        "judgment",
        "action",
        "avoidance",
    ];
    let i = usize::from(label.min(4));
    match style {
        LabelStyle::Digits => label.to_string(),
        LabelStyle::Names => names[i].to_string(),
        LabelStyle::VariantNames => variants[i].to_string(),
    }
}

/// Formats a time like the official files (`"39.395"`).
fn time_str(t: f64) -> String {
    format!("{t:.3}")
}

fn time_value(t: f64, as_string: bool) -> Value {
    if as_string {
        Value::String(time_str(t))
    } else {
        json!((t * 1000.0).round() / 1000.0)
    }
}

/// Per-scenario wording for the captions.
struct Persona {
    person: &'static str,
    clothes: &'static str,
    pron: &'static str,
    poss: &'static str,
    side: &'static str,
    road: &'static str,
    speeds: [u32; 5],
    dists: [&'static str; 5],
}

/// Realistic WTS-style captions (wts.md §1.3): one to three sentences, different per phase.
fn captions(p: &Persona, label: u8, normal: bool) -> (String, String) {
    let cap = |s: &str| {
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    };
    let (pr, po) = (p.pron, p.poss);
    let i = usize::from(label.min(4));
    let (speed, dist) = (p.speeds[i], p.dists[i]);
    let ped = match (label, normal) {
        (0, _) => format!(
            "The pedestrian, {person} wearing {clothes}, is standing on the {side} side of the \
             road. {Pr} is looking ahead and has not noticed the vehicle yet.",
            person = p.person,
            clothes = p.clothes,
            side = p.side,
            Pr = cap(pr)
        ),
        (1, _) => format!(
            "The pedestrian notices the vehicle approaching from behind. {} turns {po} head \
             toward it while standing near the edge of the road.",
            cap(pr)
        ),
        (2, false) => format!(
            "The pedestrian judges that there is enough time to cross and steps onto the road. \
             {} keeps watching the vehicle, which is {dist} away.",
            cap(pr)
        ),
        (2, true) => format!(
            "The pedestrian waits at the curb and lets the vehicle pass first. {} stands still \
             with {po} arms by {po} sides.",
            cap(pr)
        ),
        (3, false) => format!(
            "The pedestrian is crossing the road diagonally in front of the vehicle at a slow \
             walk. {} is unaware that the vehicle has not slowed down enough.",
            cap(pr)
        ),
        (3, true) => format!(
            "The pedestrian walks along the {} side of the road at a normal pace, keeping a \
             safe distance from the passing vehicle.",
            p.side
        ),
        (_, false) => format!(
            "The pedestrian stops abruptly and steps back to avoid the vehicle. {} is now \
             standing in front of the vehicle, about {dist} away, looking at the driver.",
            cap(pr)
        ),
        (_, true) => format!(
            "The pedestrian continues walking and moves away from the vehicle. {} does not \
             look back.",
            cap(pr)
        ),
    };
    let veh = match (label, normal) {
        (0, _) => format!(
            "The vehicle is moving straight at {speed} km/h on a dry asphalt {road}. The \
             pedestrian is in front of the vehicle on the {side}, about {dist} away, and is \
             clearly visible.",
            road = p.road,
            side = p.side
        ),
        (1, _) => format!(
            "The vehicle keeps going straight at {speed} km/h. The pedestrian is diagonally to \
             the {} in front of it, {dist} away.",
            p.side
        ),
        (2, false) => format!(
            "The vehicle is going straight at {speed} km/h and the driver has not yet reacted \
             to the pedestrian, who is {dist} ahead."
        ),
        (2, true) => format!(
            "The vehicle passes the pedestrian at {speed} km/h, leaving a wide gap of {dist}."
        ),
        (3, false) => format!(
            "The vehicle starts braking and slows down to {speed} km/h. The pedestrian is \
             directly in front of it, only {dist} away."
        ),
        (3, true) => format!(
            "The vehicle continues at a steady {speed} km/h in its lane. The pedestrian is \
             behind it on the {}.",
            p.side
        ),
        (_, false) => format!(
            "The vehicle comes to a stop {dist} from the pedestrian. Its speed is {speed} km/h \
             and no collision occurs."
        ),
        (_, true) => format!(
            "The vehicle moves away at {speed} km/h. The pedestrian is far behind it, {dist} \
             away."
        ),
    };
    (ped, veh)
}

/// Builds the five phases of a scenario from overlapping time ranges.
fn phases(p: &Persona, ranges: &[(f64, f64); 5], normal: bool) -> Vec<Phase> {
    ranges
        .iter()
        .enumerate()
        .map(|(i, &(start, end))| {
            let label = i as u8;
            let (ped, veh) = captions(p, label, normal);
            Phase {
                label,
                start,
                end,
                ped,
                veh,
            }
        })
        .collect()
}

/// Shifts phase times (the vehicle camera starts later, wts.md §1.3).
fn shifted(phases: &[Phase], by: f64) -> Vec<Phase> {
    phases
        .iter()
        .map(|p| Phase {
            start: ((p.start - by) * 1000.0).round() / 1000.0,
            end: ((p.end - by) * 1000.0).round() / 1000.0,
            ..p.clone()
        })
        .collect()
}

/// Guards the invariant the tree promises: every phase lies inside its video.
fn check_phases_inside(spec: &VideoSpec, phases: &[Phase]) -> Result<(), DatasetError> {
    match phases
        .iter()
        .find(|p| p.start < 0.0 || p.end > spec.duration() || p.start >= p.end)
    {
        Some(p) => Err(DatasetError::invalid(
            &spec.rel,
            format!(
                "synthetic phase {} ({:.3}-{:.3} s) outside the {:.3} s video",
                p.label,
                p.start,
                p.end,
                spec.duration()
            ),
        )),
        None => Ok(()),
    }
}

/// How a caption JSON is written.
#[derive(Clone, Copy, Debug)]
struct CaptionStyle {
    labels: LabelStyle,
    times_as_strings: bool,
    reverse: bool,
    /// Test split: times and labels but no captions.
    with_captions: bool,
}

fn event_phase_json(phases: &[Phase], style: CaptionStyle) -> Value {
    let mut list: Vec<Value> = phases
        .iter()
        .map(|p| {
            let mut m = serde_json::Map::new();
            m.insert("labels".into(), json!([label_text(p.label, style.labels)]));
            if style.with_captions {
                m.insert("caption_pedestrian".into(), json!(p.ped));
                m.insert("caption_vehicle".into(), json!(p.veh));
            }
            m.insert(
                "start_time".into(),
                time_value(p.start, style.times_as_strings),
            );
            m.insert("end_time".into(), time_value(p.end, style.times_as_strings));
            Value::Object(m)
        })
        .collect();
    if style.reverse {
        list.reverse();
    }
    Value::Array(list)
}

/// bbox JSON for one track: `bbox_annotated` holds the first frame of each phase
/// (`image_id = round(start_time * fps)`), `bbox_generated` every frame of each phase, the
/// first human-annotated and the rest `auto-generated` (wts.md §1.4).
fn bbox_json(
    spec: &VideoSpec,
    track: &Track,
    phases: &[Phase],
    generated: bool,
    fps_annotation: f64,
    phase_as_int: bool,
    skip_generated_phase: Option<u8>,
) -> Value {
    let last = spec.frames.saturating_sub(1);
    let mut anns = Vec::new();
    let mut sorted: Vec<&Phase> = phases.iter().collect();
    sorted.sort_by_key(|p| p.label);
    for p in sorted {
        let first = ((p.start * fps_annotation).round().max(0.0) as u64).min(last);
        let end = if generated {
            if skip_generated_phase == Some(p.label) {
                continue;
            }
            ((p.end * fps_annotation).round().max(0.0) as u64).min(last)
        } else {
            first
        };
        for k in first..=end.max(first) {
            let b = track.at(k, spec.integer_boxes);
            let bbox = if spec.integer_boxes {
                json!([b.x as i64, b.y as i64, b.w as i64, b.h as i64])
            } else {
                json!([b.x, b.y, b.w, b.h])
            };
            let phase = if phase_as_int {
                json!(p.label)
            } else {
                json!(p.label.to_string())
            };
            anns.push(json!({
                "image_id": k,
                "bbox": bbox,
                "auto-generated": k != first,
                "phase_number": phase,
            }));
        }
    }
    json!({ "annotations": anns })
}

fn vqa_conversations(label: u8) -> Value {
    let sets = [
        (
            "Is the pedestrian aware of the vehicle?",
            ["Yes", "No", "Unclear", "Partially"],
            "b",
        ),
        (
            "Where is the vehicle relative to the pedestrian?",
            ["Front", "Behind", "Left", "Right"],
            "b",
        ),
        (
            "What is the pedestrian doing?",
            [
                "Crossing",
                "Standing still",
                "Running",
                "Waiting at the curb",
            ],
            "a",
        ),
        (
            "Where is the pedestrian relative to the vehicle?",
            ["Left front", "Right front", "Behind", "Directly in front"],
            "d",
        ),
        (
            "What action does the pedestrian take?",
            ["Steps back", "Keeps walking", "Runs across", "Sits down"],
            "a",
        ),
    ];
    let (q, opts, correct) = sets[usize::from(label.min(4))];
    json!([
        {"question": q, "a": opts[0], "b": opts[1], "c": opts[2], "d": opts[3], "correct": correct},
        {"question": "What is the speed of the vehicle?", "a": "0 km/h", "b": "10 km/h", "c": "20 km/h", "d": "30 km/h", "correct": "b"}
    ])
}

/// VQA phase file (2025 schema, wts.md §1.5): a list of one element; labels are names.
fn vqa_phase_json(id: Option<u64>, videos_key: &str, videos: Value, phases: &[Phase]) -> Value {
    let mut m = serde_json::Map::new();
    if let Some(id) = id {
        m.insert("id".into(), json!(id));
    }
    m.insert(videos_key.into(), videos);
    let ev: Vec<Value> = phases
        .iter()
        .map(|p| {
            json!({
                "start_time": time_str(p.start),
                "end_time": time_str(p.end),
                "labels": [label_text(p.label, LabelStyle::Names)],
                "conversations": vqa_conversations(p.label),
            })
        })
        .collect();
    m.insert("event_phase".into(), Value::Array(ev));
    json!([Value::Object(m)])
}

fn vqa_environment_json(id: u64, videos: Value) -> Value {
    // The number of options varies in real files (code sorts the single-letter keys).
    json!([{
        "id": id,
        "overhead_videos": videos,
        "environment": [
            {"question": "What is the road surface condition?", "a": "Wet", "b": "Dry", "c": "Snowy", "d": "Icy", "correct": "b"},
            {"question": "What is the weather?", "a": "Cloudy", "b": "Sunny", "c": "Rainy", "correct": "a"},
            {"question": "How many lanes does the road have?", "a": "One", "b": "Two", "c": "Three", "d": "Four", "correct": "b"}
        ]
    }])
}

/// Everything to write: files with their bytes, and videos to encode.
#[derive(Default)]
struct Plan {
    files: BTreeMap<PathBuf, Vec<u8>>,
    videos: Vec<VideoSpec>,
}

impl Plan {
    fn json(&mut self, rel: impl Into<PathBuf>, v: &Value) -> Result<(), DatasetError> {
        let rel = rel.into();
        let mut bytes = serde_json::to_vec_pretty(v).map_err(|e| DatasetError::Json {
            path: rel.clone(),
            source: e,
        })?;
        bytes.push(b'\n');
        self.files.insert(rel, bytes);
        Ok(())
    }
}

const WTS_W: u32 = 320;
const WTS_H: u32 = 180;
const BDD_W: u32 = 256;
const BDD_H: u32 = 144;

/// A WTS video in the plan (30 fps, 320×180).
fn wts_video(rel: PathBuf, seconds: u64, ped: Option<Track>, veh: Option<Track>) -> VideoSpec {
    VideoSpec {
        rel,
        width: WTS_W,
        height: WTS_H,
        rate: (30, 1),
        frames: seconds * 30,
        ped,
        veh,
        integer_boxes: false,
    }
}

/// Overhead pedestrian / vehicle tracks, varied per camera so views differ in box size.
fn overhead_tracks(cam: u32) -> (Track, Track) {
    let c = f64::from(cam);
    let ped = Track {
        x0: 50.0 + 10.0 * c,
        y0: 52.0 + 4.0 * c,
        w: 16.5 + 2.0 * c,
        h: 33.25 + 4.0 * c,
        vx: 0.4,
        vy: 0.05,
    };
    let veh = Track {
        x0: 240.0 - 8.0 * c,
        y0: 112.0 + 2.0 * c,
        w: 60.0 + 6.0 * c,
        h: 34.5 + 3.0 * c,
        vx: -0.55,
        vy: 0.0,
    };
    (ped, veh)
}

/// Vehicle (ego) camera: the pedestrian grows as the car approaches; no vehicle box.
fn ego_track() -> Track {
    Track {
        x0: 150.0,
        y0: 70.0,
        w: 24.0,
        h: 48.0,
        vx: -0.2,
        vy: 0.1,
    }
}

/// Where a WTS scenario lives and what it contains.
struct WtsScenario<'a> {
    /// `train`, `val` or (test part) `test`.
    split: &'a str,
    /// `<scenario>` or `normal_trimmed/<scenario>`.
    dir: String,
    name: &'a str,
    id: u64,
    overhead: Vec<(String, u32)>,
    vehicle: bool,
    overhead_phases: Vec<Phase>,
    vehicle_shift: f64,
    seconds: u64,
    vehicle_seconds: u64,
    style: CaptionStyle,
    vehicle_style: CaptionStyle,
    /// Camera stems that get no bbox file at all.
    no_bbox: Vec<String>,
    /// Overhead vehicle phase without a `bbox_generated` track (real data: a first-frame box
    /// too small to track, wts.md §1.4).
    skip_generated_vehicle_phase: Option<u8>,
    /// VQA overhead file name: `<scenario>.json` (false) or `<scenario>_overhead_view.json`.
    vqa_overhead_suffix: Option<bool>,
    /// Root prefixes (test part differs from train/val).
    video_root: PathBuf,
    caption_root: PathBuf,
    bbox_root: PathBuf,
    vqa_root: Option<PathBuf>,
}

fn add_wts_scenario(plan: &mut Plan, s: &WtsScenario<'_>) -> Result<(), DatasetError> {
    let split_dir = |root: &Path| root.join(s.split).join(&s.dir);
    let overhead_names: Vec<String> = s.overhead.iter().map(|(n, _)| format!("{n}.mp4")).collect();

    // Captions (wts.md §1.3).
    let mut cap = serde_json::Map::new();
    cap.insert("id".into(), json!(s.id));
    cap.insert("overhead_videos".into(), json!(overhead_names));
    cap.insert(
        "event_phase".into(),
        event_phase_json(&s.overhead_phases, s.style),
    );
    let caption_split = if s.split == "test" {
        s.caption_root.join("test/public_challenge").join(&s.dir)
    } else {
        split_dir(&s.caption_root)
    };
    plan.json(
        caption_split
            .join("overhead_view")
            .join(format!("{}_caption.json", s.name)),
        &Value::Object(cap),
    )?;
    let vehicle_phases = shifted(&s.overhead_phases, s.vehicle_shift);
    let vehicle_stem = format!("{}_vehicle_view", s.name);
    if s.vehicle {
        plan.json(
            caption_split
                .join("vehicle_view")
                .join(format!("{}_caption.json", s.name)),
            &json!({
                "vehicle_view": format!("{vehicle_stem}.mp4"),
                "event_phase": event_phase_json(&vehicle_phases, s.vehicle_style),
            }),
        )?;
    }

    // Videos and bbox files.
    let video_dir = if s.split == "test" {
        s.video_root.join("test/public").join(&s.dir)
    } else {
        split_dir(&s.video_root)
    };
    let bbox_split = if s.split == "test" {
        "test/public"
    } else {
        s.split
    };
    let mut views: Vec<(String, &str, VideoSpec, &[Phase])> = Vec::new();
    for (stem, cam) in &s.overhead {
        let (ped, veh) = overhead_tracks(*cam);
        let spec = wts_video(
            video_dir.join("overhead_view").join(format!("{stem}.mp4")),
            s.seconds,
            Some(ped),
            Some(veh),
        );
        views.push((stem.clone(), "overhead_view", spec, &s.overhead_phases));
    }
    if s.vehicle {
        let spec = wts_video(
            video_dir
                .join("vehicle_view")
                .join(format!("{vehicle_stem}.mp4")),
            s.vehicle_seconds,
            Some(ego_track()),
            None,
        );
        views.push((vehicle_stem.clone(), "vehicle_view", spec, &vehicle_phases));
    }
    for (stem, view, spec, phases) in views {
        check_phases_inside(&spec, phases)?;
        if !s.no_bbox.contains(&stem) {
            for (kind, generated) in [("bbox_annotated", false), ("bbox_generated", true)] {
                for (who, track) in [("pedestrian", spec.ped), ("vehicle", spec.veh)] {
                    let Some(track) = track else { continue };
                    let skip = if who == "vehicle" && view == "overhead_view" {
                        s.skip_generated_vehicle_phase
                    } else {
                        None
                    };
                    let v = bbox_json(&spec, &track, phases, generated, spec.fps(), false, skip);
                    let rel = s
                        .bbox_root
                        .join(kind)
                        .join(who)
                        .join(bbox_split)
                        .join(&s.dir)
                        .join(view)
                        .join(format!("{stem}_bbox.json"));
                    plan.json(rel, &v)?;
                }
            }
        }
        plan.videos.push(spec);
    }

    // VQA (2025, wts.md §1.5).
    if let (Some(vqa_root), Some(suffixed)) = (&s.vqa_root, s.vqa_overhead_suffix) {
        let base = vqa_root.join(s.split).join(&s.dir);
        plan.json(
            base.join("environment").join(format!("{}.json", s.name)),
            &vqa_environment_json(s.id, json!(overhead_names)),
        )?;
        let overhead_file = if suffixed {
            format!("{}_overhead_view.json", s.name)
        } else {
            format!("{}.json", s.name)
        };
        plan.json(
            base.join("overhead_view").join(overhead_file),
            &vqa_phase_json(
                Some(s.id),
                "overhead_videos",
                json!(overhead_names),
                &s.overhead_phases,
            ),
        )?;
        if s.vehicle {
            plan.json(
                base.join("vehicle_view").join(format!("{}.json", s.name)),
                &vqa_phase_json(
                    Some(s.id),
                    "vehicle_view",
                    json!(format!("{vehicle_stem}.mp4")),
                    &vehicle_phases,
                ),
            )?;
        }
    }
    Ok(())
}

/// Adds one BDD_PC_5k video with caption, bbox (pedestrian only) and VQA files.
fn add_bdd_video(
    plan: &mut Plan,
    id: u64,
    rate: (u32, u32),
    fps_str: &str,
    seconds_frames: u64,
    persona: &Persona,
    ranges: &[(f64, f64); 5],
) -> Result<(), DatasetError> {
    let name = format!("video{id}");
    let spec = VideoSpec {
        rel: PathBuf::from(format!("BDD_PC_5k/videos/train/{name}.mp4")),
        width: BDD_W,
        height: BDD_H,
        rate,
        frames: seconds_frames,
        ped: Some(Track {
            x0: 100.0,
            y0: 50.0,
            w: 18.0,
            h: 40.0,
            vx: 0.12,
            vy: 0.04,
        }),
        veh: None,
        integer_boxes: true,
    };
    let ph = phases(persona, ranges, false);
    check_phases_inside(&spec, &ph)?;
    let style = CaptionStyle {
        labels: LabelStyle::Names,
        times_as_strings: true,
        reverse: false,
        with_captions: true,
    };
    plan.json(
        format!("BDD_PC_5k/annotations/caption/train/{name}_caption.json"),
        &json!({
            "id": id,
            "video_name": format!("{name}.mp4"),
            "fps": fps_str,
            "event_phase": event_phase_json(&ph, style),
        }),
    )?;
    // image_id = round(start_time * fps) with fps from the caption JSON (wts.md §1.4).
    let fps_annotation: f64 = fps_str.parse().unwrap_or(spec.fps());
    if let Some(track) = spec.ped {
        for (kind, generated) in [("bbox_annotated", false), ("bbox_generated", true)] {
            plan.json(
                format!("BDD_PC_5k/annotations/{kind}/train/{name}_bbox.json"),
                &bbox_json(&spec, &track, &ph, generated, fps_annotation, true, None),
            )?;
        }
    }
    plan.json(
        format!("BDD_PC_5k/annotations/vqa/train/{name}/vehicle_view/{name}.json"),
        &vqa_phase_json(None, "videos", json!([format!("{name}.mp4")]), &ph),
    )?;
    plan.videos.push(spec);
    Ok(())
}

/// The scenario names used in the tree.
pub const SCENARIO_CAMERA_STYLE: &str = "20230707_12_SN17_T1";
/// Scenario with IP-style overhead names.
pub const SCENARIO_IP_STYLE: &str = "20230929_24_SY8_T1";
/// Normal (no incident) scenario under `normal_trimmed/`, without vehicle view.
pub const SCENARIO_NORMAL: &str = "20231013_114328_normal_192.168.0.12_4_event_2";
/// Validation-split scenario.
pub const SCENARIO_VAL: &str = "20230922_3_CN22_T1";
/// Public-test scenario (caption file with times only).
pub const SCENARIO_TEST: &str = "20231006_21_CN5_T1";

fn build_plan() -> Result<Plan, DatasetError> {
    let mut plan = Plan::default();
    let wts = PathBuf::from("WTS");
    let video_root = wts.join("videos");
    let caption_root = wts.join("annotations/caption");
    let bbox_root = wts.join("annotations");
    let vqa_root = wts.join("annotations/vqa");

    let woman = Persona {
        person: "a woman in her 20s",
        clothes: "a gray coat and black slacks",
        pron: "she",
        poss: "her",
        side: "right",
        road: "residential road",
        speeds: [10, 10, 10, 5, 0],
        dists: ["15 m", "10 m", "7 m", "3 m", "1 m"],
    };
    let man = Persona {
        person: "a man in his 40s",
        clothes: "a white T-shirt and blue jeans",
        pron: "he",
        poss: "his",
        side: "left",
        road: "urban main road",
        speeds: [20, 20, 15, 10, 0],
        dists: ["20 m", "12 m", "8 m", "4 m", "2 m"],
    };
    let elderly = Persona {
        person: "an elderly man in his 70s",
        clothes: "a black jacket and a cap",
        pron: "he",
        poss: "his",
        side: "right",
        road: "quiet street",
        speeds: [15, 15, 15, 15, 20],
        dists: ["25 m", "15 m", "5 m", "10 m", "20 m"],
    };
    let student = Persona {
        person: "a young woman in her teens",
        clothes: "a navy school uniform",
        pron: "she",
        poss: "her",
        side: "left",
        road: "two-lane road",
        speeds: [25, 20, 15, 5, 0],
        dists: ["30 m", "18 m", "9 m", "4 m", "2 m"],
    };

    // Overlapping by one frame (~33 ms) like real data (wts.md §1.3).
    let ranges_a = [
        (2.5, 3.633),
        (3.6, 4.7),
        (4.667, 5.533),
        (5.5, 6.4),
        (6.367, 7.5),
    ];
    let common = |split, dir: String, name, id| WtsScenario {
        split,
        dir,
        name,
        id,
        overhead: Vec::new(),
        vehicle: false,
        overhead_phases: Vec::new(),
        vehicle_shift: 0.0,
        seconds: 8,
        vehicle_seconds: 6,
        style: CaptionStyle {
            labels: LabelStyle::Digits,
            times_as_strings: true,
            reverse: false,
            with_captions: true,
        },
        vehicle_style: CaptionStyle {
            labels: LabelStyle::Digits,
            times_as_strings: true,
            reverse: false,
            with_captions: true,
        },
        no_bbox: Vec::new(),
        skip_generated_vehicle_phase: None,
        vqa_overhead_suffix: None,
        video_root: video_root.clone(),
        caption_root: caption_root.clone(),
        bbox_root: bbox_root.clone(),
        vqa_root: Some(vqa_root.clone()),
    };

    // A: Camera-style names, two cameras + vehicle view; digit labels, string times, phases
    // in reverse order (as in the official sample); Camera2 has no bbox file.
    let a = SCENARIO_CAMERA_STYLE;
    let mut sa = common("train", a.to_string(), a, 101);
    sa.overhead = vec![(format!("{a}_Camera1_0"), 1), (format!("{a}_Camera2_3"), 2)];
    sa.vehicle = true;
    sa.overhead_phases = phases(&woman, &ranges_a, false);
    sa.vehicle_shift = 2.0;
    sa.style.reverse = true;
    sa.vehicle_style.reverse = true;
    sa.no_bbox = vec![format!("{a}_Camera2_3")];
    sa.vqa_overhead_suffix = Some(false);
    add_wts_scenario(&mut plan, &sa)?;

    // B: IP-style names; variant label names and numeric times.
    let b = SCENARIO_IP_STYLE;
    let ranges_b = [
        (1.2, 2.367),
        (2.333, 3.4),
        (3.367, 4.2),
        (4.167, 5.1),
        (5.067, 6.3),
    ];
    let mut sb = common("train", b.to_string(), b, 202);
    sb.overhead = vec![
        (format!("{b}_192.168.0.14_1"), 1),
        (format!("{b}_192.168.0.16_3"), 3),
    ];
    sb.vehicle = true;
    sb.overhead_phases = phases(&man, &ranges_b, false);
    sb.seconds = 7;
    sb.vehicle_seconds = 6;
    sb.vehicle_shift = 1.0;
    sb.style.labels = LabelStyle::VariantNames;
    sb.style.times_as_strings = false;
    sb.vehicle_style.labels = LabelStyle::Names;
    sb.vehicle_style.times_as_strings = false;
    sb.vqa_overhead_suffix = Some(true);
    sb.skip_generated_vehicle_phase = Some(0);
    add_wts_scenario(&mut plan, &sb)?;

    // Normal scenario: one overhead video named after the scenario, no vehicle view, no VQA.
    let n = SCENARIO_NORMAL;
    let ranges_n = [
        (0.5, 1.3),
        (1.267, 2.1),
        (2.067, 2.9),
        (2.867, 3.7),
        (3.667, 4.6),
    ];
    let mut sn = common("train", format!("normal_trimmed/{n}"), n, 303);
    sn.overhead = vec![(n.to_string(), 1)];
    sn.overhead_phases = phases(&elderly, &ranges_n, true);
    sn.seconds = 5;
    add_wts_scenario(&mut plan, &sn)?;

    // Validation scenario: one overhead camera + vehicle view.
    let v = SCENARIO_VAL;
    let ranges_v = [
        (0.9, 1.833),
        (1.8, 2.9),
        (2.867, 3.8),
        (3.767, 4.633),
        (4.6, 5.7),
    ];
    let mut sv = common("val", v.to_string(), v, 404);
    sv.overhead = vec![(format!("{v}_Camera1_1"), 2)];
    sv.vehicle = true;
    sv.overhead_phases = phases(&student, &ranges_v, false);
    sv.seconds = 6;
    sv.vehicle_seconds = 6;
    sv.vehicle_shift = 0.5;
    sv.vqa_overhead_suffix = Some(false);
    add_wts_scenario(&mut plan, &sv)?;

    // Public test scenario: times and labels, no captions; its own roots (wts.md §1.2).
    let t = SCENARIO_TEST;
    let ranges_t = [
        (0.6, 1.5),
        (1.467, 2.4),
        (2.367, 3.3),
        (3.267, 4.2),
        (4.167, 5.4),
    ];
    let mut st = common("test", t.to_string(), t, 505);
    st.overhead = vec![(format!("{t}_Camera1_0"), 1)];
    st.overhead_phases = phases(&man, &ranges_t, false);
    st.seconds = 6;
    st.style.with_captions = false;
    st.video_root = PathBuf::from("test_part/WTS_DATASET_PUBLIC_TEST/videos");
    st.caption_root = PathBuf::from("test_part/WTS_DATASET_PUBLIC_TEST/annotations/caption");
    st.bbox_root = PathBuf::from("test_part/WTS_DATASET_PUBLIC_TEST_BBOX/annotations");
    st.vqa_root = None;
    add_wts_scenario(&mut plan, &st)?;

    // BDD_PC_5k: 29.97 fps (6.006 s) and 59.94 fps (5.005 s), fps as strings.
    add_bdd_video(
        &mut plan,
        1004,
        (30000, 1001),
        "29.970",
        180,
        &woman,
        &[
            (0.801, 1.935),
            (1.902, 3.003),
            (2.970, 3.904),
            (3.870, 4.805),
            (4.771, 5.906),
        ],
    )?;
    add_bdd_video(
        &mut plan,
        1005,
        (60000, 1001),
        "59.940",
        300,
        &student,
        &[
            (0.4, 1.201),
            (1.168, 2.102),
            (2.069, 3.003),
            (2.970, 3.904),
            (3.870, 4.905),
        ],
    )?;

    // Main-view CSV: header row, then scenario + the overhead videos annotators used most
    // (rows of different lengths, up to 4 views; wts.md §1.2). Camera2 of A is not listed.
    let csv = format!(
        "Scene,Viewpoint1,Viewpoint2,Viewpoint3,Viewpoint4\n\
         {a},{a}_Camera1_0.mp4\n\
         {b},{b}_192.168.0.14_1.mp4,{b}_192.168.0.16_3.mp4\n\
         {n},{n}.mp4\n\
         {v},{v}_Camera1_1.mp4\n\
         {t},{t}_Camera1_0.mp4\n"
    );
    plan.files.insert(
        PathBuf::from("test_part/view_used_as_main_reference_for_multiview_scenario.csv"),
        csv.into_bytes(),
    );
    Ok(plan)
}

/// Writes the synthetic raw tree under `root` (created if needed):
/// `root/WTS`, `root/BDD_PC_5k`, `root/test_part/...` (see the module docs and wts.md §1.2).
///
/// Idempotent: files whose content is already identical are left untouched; everything else is
/// written atomically (temporary file in the same folder, then rename). Needs the `ffmpeg`
/// program with libx264.
pub fn write_synthetic_tree(root: &Path) -> Result<SynthSummary, DatasetError> {
    let plan = build_plan()?;
    for (rel, bytes) in &plan.files {
        write_if_changed(&root.join(rel), bytes)?;
    }
    plan.videos
        .par_iter()
        .map(|spec| encode_video(root, spec))
        .collect::<Result<Vec<()>, DatasetError>>()?;
    Ok(SynthSummary {
        wts_root: root.join("WTS"),
        bdd_root: root.join("BDD_PC_5k"),
        main_view_csv: root
            .join("test_part/view_used_as_main_reference_for_multiview_scenario.csv"),
        videos: plan.videos.len(),
        scenarios: vec![
            SCENARIO_CAMERA_STYLE.to_string(),
            SCENARIO_IP_STYLE.to_string(),
            SCENARIO_NORMAL.to_string(),
            SCENARIO_VAL.to_string(),
            SCENARIO_TEST.to_string(),
            "video1004".to_string(),
            "video1005".to_string(),
        ],
    })
}

/// A temporary sibling of `path` (same folder, so the rename is atomic).
fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically unless the file already holds exactly these bytes.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), DatasetError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| DatasetError::io(dir, e))?;
    }
    let tmp = temp_sibling(path);
    std::fs::write(&tmp, bytes).map_err(|e| DatasetError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DatasetError::io(path, e)
    })
}

/// Encodes one video with libx264 into a temporary file, then keeps the existing file if it is
/// byte-identical or renames the new one into place.
fn encode_video(root: &Path, spec: &VideoSpec) -> Result<(), DatasetError> {
    let path = root.join(&spec.rel);
    let dir = path.parent().unwrap_or(root);
    std::fs::create_dir_all(dir).map_err(|e| DatasetError::io(dir, e))?;
    let tmp = temp_sibling(&path);
    let result = encode_to(&tmp, spec).and_then(|()| {
        let new = std::fs::read(&tmp).map_err(|e| DatasetError::io(&tmp, e))?;
        if std::fs::read(&path).is_ok_and(|old| old == new) {
            std::fs::remove_file(&tmp).map_err(|e| DatasetError::io(&tmp, e))
        } else {
            std::fs::rename(&tmp, &path).map_err(|e| DatasetError::io(&path, e))
        }
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Pipes the rendered frames into `ffmpeg … -c:v libx264 -profile:v high …`.
fn encode_to(out: &Path, spec: &VideoSpec) -> Result<(), DatasetError> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-v",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
    ])
    .arg(format!("{}x{}", spec.width, spec.height))
    .arg("-r")
    .arg(format!("{}/{}", spec.rate.0, spec.rate.1))
    .args([
        "-i",
        "-",
        "-c:v",
        "libx264",
        "-profile:v",
        "high",
        "-preset",
        "veryfast",
    ])
    // One thread and bit-exact flags: identical bytes on every run (same ffmpeg build);
    // `-map_metadata -1` drops the creation time; faststart puts the index up front.
    .args(["-pix_fmt", "yuv420p", "-g", "30", "-threads", "1"])
    .args([
        "-fflags",
        "+bitexact",
        "-flags:v",
        "+bitexact",
        "-map_metadata",
        "-1",
    ])
    .args(["-movflags", "+faststart", "-f", "mp4"])
    .arg(out)
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DatasetError::ProgramMissing {
                program: "ffmpeg".into(),
            }
        } else {
            DatasetError::io("ffmpeg", e)
        }
    })?;
    let write_result = match child.stdin.take() {
        Some(mut stdin) => {
            let background = RgbImage::from_pixel(spec.width, spec.height, Rgb(BACKGROUND));
            (0..spec.frames).try_for_each(|k| stdin.write_all(spec.render(&background, k).as_raw()))
        }
        None => Ok(()),
    };
    // stdin is dropped here (end of input), so ffmpeg finishes.
    let output = child
        .wait_with_output()
        .map_err(|e| DatasetError::io("ffmpeg", e))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if !output.status.success() || write_result.is_err() {
        return Err(DatasetError::Video {
            path: spec.rel.clone(),
            message: format!("ffmpeg/libx264 encoding failed: {last}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_blocks_round_trip_without_compression() {
        for (w, h) in [(WTS_W, WTS_H), (BDD_W, BDD_H)] {
            for k in [0u64, 1, 2, 59, 60, 255, 479, 4095] {
                let mut img = RgbImage::from_pixel(w, h, Rgb(BACKGROUND));
                draw_index(&mut img, k);
                assert_eq!(decode_frame_index(&img), Some(k), "{w}x{h} frame {k}");
            }
        }
        let grey = RgbImage::from_pixel(WTS_W, WTS_H, Rgb(BACKGROUND));
        assert_eq!(decode_frame_index(&grey), None);
    }

    #[test]
    fn phases_lie_inside_videos_and_ids_match_start_times() {
        let plan = build_plan().expect("plan");
        for spec in &plan.videos {
            // Shapes stay inside the frame and away from the index row.
            for k in [0, spec.frames - 1] {
                for b in [spec.ped, spec.veh]
                    .iter()
                    .flatten()
                    .map(|t| t.at(k, spec.integer_boxes))
                {
                    assert!(
                        b.x >= 0.0 && b.x_max() <= f64::from(spec.width),
                        "{:?}",
                        spec.rel
                    );
                    let row_bottom = f64::from(block_size(spec.width) * 3 / 2);
                    assert!(
                        b.y > row_bottom && b.y_max() <= f64::from(spec.height),
                        "{:?}",
                        spec.rel
                    );
                }
            }
        }
        let key = PathBuf::from(format!(
            "WTS/annotations/bbox_annotated/pedestrian/train/{a}/overhead_view/{a}_Camera1_0_bbox.json",
            a = SCENARIO_CAMERA_STYLE
        ));
        let v: Value = serde_json::from_slice(&plan.files[&key]).expect("json");
        let ids: Vec<u64> = v["annotations"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|a| a["image_id"].as_u64())
            .collect();
        // round(2.5*30), round(3.6*30), round(4.667*30), round(5.5*30), round(6.367*30)
        assert_eq!(ids, vec![75, 108, 140, 165, 191]);
    }
}
