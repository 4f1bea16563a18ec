//! Box drawing, clipping and CityLLaVA crop arithmetic on hand-computed examples.

use image::{Rgb, RgbImage};
use wts_dataset::draw::{self, PEDESTRIAN_GREEN, VEHICLE_BLUE};
use wts_dataset::geometry::BBox;

fn b(x: f64, y: f64, w: f64, h: f64) -> BBox {
    BBox { x, y, w, h }
}

const GREY: Rgb<u8> = Rgb([128, 128, 128]);

/// Coordinates of pixels that differ from the background.
fn painted(img: &RgbImage) -> Vec<(u32, u32)> {
    img.enumerate_pixels()
        .filter(|(_, _, p)| **p != GREY)
        .map(|(x, y, _)| (x, y))
        .collect()
}

#[test]
fn crop_region_matches_hand_computed_cityllava_examples() {
    // One box well inside a 1920x1080 frame: x1.2 -> (996,492)-(1044,588), 48x96;
    // square of side max(48,96)*1.5 = 144 about (1020,540) -> (948,468,144,144).
    assert_eq!(
        draw::crop_region(&[b(1000.0, 500.0, 40.0, 80.0)], 1920, 1080, 1.5),
        Some((948, 468, 144, 144))
    );

    // Pedestrian + vehicle: ped x1.2 -> (95,190)-(155,310); vehicle (300,250,200,100) x1.2 ->
    // (280,240)-(520,360); union (95,190)-(520,360) = 425x170, centre (307.5,275);
    // side 425*1.5 = 637.5 -> xmin -11.25, ymin -43.75, xmax int(626.25)=626,
    // ymax int(593.75)=593, clamped xmin=ymin=0 -> (0,0,626,593).
    let ped = b(100.0, 200.0, 50.0, 100.0);
    let veh = b(300.0, 250.0, 200.0, 100.0);
    assert_eq!(
        draw::crop_region(&[ped, veh], 1920, 1080, 1.5),
        Some((0, 0, 626, 593))
    );
    // Order does not matter.
    assert_eq!(
        draw::crop_region(&[veh, ped], 1920, 1080, 1.5),
        Some((0, 0, 626, 593))
    );

    // Fractional box, truncation at every step: (10.7,20.3,30.1,40.9) x1.2 ->
    // (7.69,16.21)-(43.81,65.29) -> int (7,16)-(43,65) = 36x49, centre (25,40.5);
    // side 49*1.5 = 73.5 -> xmin -11.75, ymin 3.75, xmax int(61.75)=61, ymax int(77.25)=77,
    // xmin int(-11.75)=-11 -> 0 -> (0,3,61,74).
    assert_eq!(
        draw::crop_region(&[b(10.7, 20.3, 30.1, 40.9)], 1920, 1080, 1.5),
        Some((0, 3, 61, 74))
    );

    // Near the bottom-right corner the square is clipped by the frame:
    // (1880,1040,30,30) x1.2 -> (1877,1037)-(1913,1073), side 54 about (1895,1055) ->
    // (1868,1028)-(1922,1082) -> clamp to (1920,1080) -> (1868,1028,52,52).
    assert_eq!(
        draw::crop_region(&[b(1880.0, 1040.0, 30.0, 30.0)], 1920, 1080, 1.5),
        Some((1868, 1028, 52, 52))
    );

    // Box partly outside on the left: (-20,100,40,40) x1.2 -> (-24,96)-(24,144) -> clamp
    // (0,96)-(24,144) = 24x48, centre (12,120), side 72 -> (-24,84)-(48,156) -> (0,84,48,72).
    assert_eq!(
        draw::crop_region(&[b(-20.0, 100.0, 40.0, 40.0)], 1920, 1080, 1.5),
        Some((0, 84, 48, 72))
    );

    // A box entirely outside is ignored; with nothing left there is no region.
    let outside = b(5000.0, 100.0, 40.0, 40.0);
    assert_eq!(draw::crop_region(&[outside], 1920, 1080, 1.5), None);
    assert_eq!(
        draw::crop_region(&[outside, b(1000.0, 500.0, 40.0, 80.0)], 1920, 1080, 1.5),
        Some((948, 468, 144, 144))
    );
    assert_eq!(draw::crop_region(&[], 1920, 1080, 1.5), None);
    assert_eq!(
        draw::crop_region(&[b(10.0, 10.0, 0.0, 5.0)], 1920, 1080, 1.5),
        None
    );
    assert_eq!(
        draw::crop_region(&[b(f64::NAN, 10.0, 5.0, 5.0)], 1920, 1080, 1.5),
        None
    );
    // Scale 1.0: just the squared union.
    assert_eq!(
        draw::crop_region(&[b(1000.0, 500.0, 40.0, 80.0)], 1920, 1080, 1.0),
        Some((972, 492, 96, 96))
    );
}

#[test]
fn clip_to_frame_cases() {
    assert_eq!(
        draw::clip_to_frame(&b(10.0, 20.0, 30.0, 40.0), 100, 100),
        Some(b(10.0, 20.0, 30.0, 40.0))
    );
    assert_eq!(
        draw::clip_to_frame(&b(-10.0, 90.0, 30.0, 40.0), 100, 100),
        Some(b(0.0, 90.0, 20.0, 10.0))
    );
    assert_eq!(
        draw::clip_to_frame(&b(95.5, 0.0, 10.0, 10.0), 100, 50),
        Some(b(95.5, 0.0, 4.5, 10.0))
    );
    // Entirely outside, touching the edge only, empty, or not finite.
    assert_eq!(
        draw::clip_to_frame(&b(100.0, 10.0, 10.0, 10.0), 100, 100),
        None
    );
    assert_eq!(
        draw::clip_to_frame(&b(-30.0, 10.0, 30.0, 10.0), 100, 100),
        None
    );
    assert_eq!(
        draw::clip_to_frame(&b(10.0, 200.0, 10.0, 10.0), 100, 100),
        None
    );
    assert_eq!(
        draw::clip_to_frame(&b(10.0, 10.0, 0.0, 10.0), 100, 100),
        None
    );
    assert_eq!(
        draw::clip_to_frame(&b(10.0, 10.0, f64::INFINITY, 10.0), 100, 100),
        None
    );
}

#[test]
fn draw_box_thickness_and_position() {
    // Thickness 1: exactly the rectangle (int(x),int(y))-(int(x+w),int(y+h)).
    let mut img = RgbImage::from_pixel(20, 20, GREY);
    draw::draw_box(&mut img, &b(2.7, 3.2, 5.0, 4.0), PEDESTRIAN_GREEN, 1);
    // corners (2,3) and (7,7): perimeter of a 6x5 rectangle = 2*6 + 2*3 = 18 pixels.
    let px = painted(&img);
    assert_eq!(px.len(), 18);
    assert!(
        px.iter()
            .all(|&(x, y)| (x == 2 || x == 7 || y == 3 || y == 7)
                && (2..=7).contains(&x)
                && (3..=7).contains(&y))
    );
    assert_eq!(*img.get_pixel(2, 3), PEDESTRIAN_GREEN);
    assert_eq!(*img.get_pixel(7, 7), PEDESTRIAN_GREEN);
    assert_eq!(*img.get_pixel(4, 5), GREY); // inside stays untouched

    // Thickness 4, centred on the edges: rows/cols edge-2 ..= edge+1.
    let mut img = RgbImage::from_pixel(40, 40, GREY);
    draw::draw_box(&mut img, &b(10.0, 10.0, 20.0, 10.0), VEHICLE_BLUE, 4);
    for (x, y) in [
        (8, 8),
        (11, 11),
        (31, 21),
        (8, 15),
        (20, 9),
        (20, 21),
        (29, 15),
    ] {
        assert_eq!(*img.get_pixel(x, y), VEHICLE_BLUE, "({x},{y})");
    }
    for (x, y) in [
        (7, 15),
        (12, 15),
        (32, 15),
        (27, 15),
        (20, 12),
        (20, 7),
        (20, 22),
        (20, 17),
    ] {
        assert_eq!(*img.get_pixel(x, y), GREY, "({x},{y})");
    }
    // Outer 24x14 minus inner 16x6 hole.
    assert_eq!(painted(&img).len(), 24 * 14 - 16 * 6);
}

#[test]
fn draw_box_partly_and_entirely_outside() {
    // Partly outside: only the visible edges are drawn, no panic.
    let mut img = RgbImage::from_pixel(20, 20, GREY);
    draw::draw_box(&mut img, &b(-5.0, -5.0, 10.0, 30.0), PEDESTRIAN_GREEN, 2);
    // Right edge at x=5 (cols 4..=5), visible for all rows; top edge y=-5 is off-frame,
    // bottom y=25 off-frame, left x=-5 off-frame.
    let px = painted(&img);
    assert_eq!(px.len(), 2 * 20);
    assert!(px.iter().all(|&(x, _)| x == 4 || x == 5));
    // Entirely outside: nothing drawn.
    let mut img = RgbImage::from_pixel(20, 20, GREY);
    draw::draw_box(&mut img, &b(30.0, 30.0, 10.0, 10.0), VEHICLE_BLUE, 4);
    draw::draw_box(&mut img, &b(-100.0, 5.0, 10.0, 10.0), VEHICLE_BLUE, 4);
    draw::draw_box(&mut img, &b(f64::NAN, 5.0, 10.0, 10.0), VEHICLE_BLUE, 4);
    draw::draw_box(&mut img, &b(1.0, 1.0, 5.0, 5.0), VEHICLE_BLUE, 0);
    assert!(painted(&img).is_empty());
    // Global prompt: both colours present.
    let mut img = RgbImage::from_pixel(64, 64, GREY);
    draw::draw_subjects(
        &mut img,
        Some(&b(5.0, 5.0, 10.0, 20.0)),
        Some(&b(30.0, 30.0, 20.0, 10.0)),
    );
    assert_eq!(*img.get_pixel(5, 10), PEDESTRIAN_GREEN);
    assert_eq!(*img.get_pixel(40, 30), VEHICLE_BLUE);
}

#[test]
fn crop_and_jpeg() {
    let img = RgbImage::from_fn(100, 50, |x, y| Rgb([x as u8, y as u8, 7]));
    let c = draw::crop(&img, (10, 20, 30, 15));
    assert_eq!(c.dimensions(), (30, 15));
    assert_eq!(*c.get_pixel(0, 0), Rgb([10, 20, 7]));
    assert_eq!(*c.get_pixel(29, 14), Rgb([39, 34, 7]));
    // Regions past the border are clamped.
    assert_eq!(draw::crop(&img, (90, 40, 30, 30)).dimensions(), (10, 10));
    assert_eq!(draw::crop(&img, (200, 40, 30, 30)).dimensions(), (0, 10));
    // The crop region feeds crop() directly.
    let region = draw::crop_region(&[b(40.0, 10.0, 10.0, 10.0)], 100, 50, 1.5).expect("region");
    assert_eq!(region, (36, 6, 18, 18));
    assert_eq!(draw::crop(&img, region).dimensions(), (18, 18));

    let a = draw::encode_jpeg(&img, 90).expect("jpeg");
    let again = draw::encode_jpeg(&img, 90).expect("jpeg");
    assert_eq!(a, again, "JPEG bytes must be deterministic");
    assert_eq!(&a[..2], &[0xFF, 0xD8]);
    let back = image::load_from_memory(&a).expect("decode").to_rgb8();
    assert_eq!(back.dimensions(), (100, 50));
    let low = draw::encode_jpeg(&img, 10).expect("jpeg");
    assert!(low.len() < a.len());
    assert!(draw::encode_jpeg(&img, 0).is_ok()); // clamped to 1
}
