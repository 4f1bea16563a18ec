//! VILA's `dynamic` tiling (`llava/mm_utils.py::dynamic_preprocess`, from InternVL): pick a grid
//! of `cols × rows` tiles whose aspect ratio is closest to the image's, resize the whole image to
//! `(size·cols, size·rows)`, crop row-major, and append a whole-image thumbnail when there is more
//! than one tile.
//!
//! The candidate grids come out of a Python **set** comprehension sorted (stably) by `i·j`, so the
//! order among equal products is CPython's set iteration order, and exact aspect-ratio ties are
//! decided by that order (the later candidate wins when the image area is large enough). To be
//! exact for any `min_tiles`/`max_tiles`, [`candidate_grids`] replays CPython 3.10/3.11's set
//! insertion (`Objects/setobject.c`) with CPython's tuple hash (`Objects/tupleobject.c`, the
//! xxHash-based one of 3.8+); the result is checked against CPython 3.11 in the golden tests.

use image::RgbImage;

use super::resize::{PillowVersion, resize_bicubic_as};

/// A tile grid: `cols` tiles across (VILA's `ratio[0]`, `i`) and `rows` down (`ratio[1]`, `j`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub cols: u32,
    pub rows: u32,
}

impl Grid {
    /// Number of tiles in the grid (without the thumbnail).
    pub fn tiles(self) -> u32 {
        self.cols * self.rows
    }
}

/// CPython's `hash((a, b))` for two small non-negative ints (whose hash is the int itself), on a
/// 64-bit build: `tuplehash` with the xxHash primes.
fn py_tuple_hash(a: u64, b: u64) -> u64 {
    const P1: u64 = 11_400_714_785_074_694_791;
    const P2: u64 = 14_029_467_366_897_019_727;
    const P5: u64 = 2_870_177_450_012_600_261;
    let mut acc = P5;
    for lane in [a, b] {
        acc = acc.wrapping_add(lane.wrapping_mul(P2));
        acc = acc.rotate_left(31);
        acc = acc.wrapping_mul(P1);
    }
    acc = acc.wrapping_add(2 ^ (P5 ^ 3_527_539));
    if acc == u64::MAX { 1_546_275_796 } else { acc }
}

/// Just enough of CPython's `set` (`setobject.c`: open addressing, 9 linear probes, perturbed
/// probing, resize at 3/5 fill to the smallest power of two above 4·used) to reproduce the
/// iteration order of a set built by `add` without deletions.
struct PySet {
    table: Vec<Option<(u64, (u32, u32))>>,
    fill: usize,
}

impl PySet {
    const LINEAR_PROBES: usize = 9;
    const PERTURB_SHIFT: u32 = 5;

    fn new() -> Self {
        Self {
            table: vec![None; 8],
            fill: 0,
        }
    }

    /// `set_add_entry`.
    fn add(&mut self, key: (u32, u32), hash: u64) {
        let mask = self.table.len() - 1;
        let mut i = (hash as usize) & mask;
        let mut perturb = hash;
        loop {
            let probes = if i + Self::LINEAR_PROBES <= mask {
                Self::LINEAR_PROBES
            } else {
                0
            };
            for j in i..=i + probes {
                match self.table[j] {
                    None => {
                        self.table[j] = Some((hash, key));
                        self.fill += 1;
                        if self.fill * 5 >= mask * 3 {
                            // `used > 50000 ? used*2 : used*4`; no deletions, so used == fill.
                            let minused = if self.fill > 50_000 {
                                self.fill * 2
                            } else {
                                self.fill * 4
                            };
                            self.resize(minused);
                        }
                        return;
                    }
                    Some((h, k)) if h == hash && k == key => return,
                    Some(_) => {}
                }
            }
            perturb >>= Self::PERTURB_SHIFT;
            i = (i
                .wrapping_mul(5)
                .wrapping_add(1)
                .wrapping_add(perturb as usize))
                & mask;
        }
    }

    /// `set_table_resize` + `set_insert_clean`, re-inserting in old table order.
    fn resize(&mut self, minused: usize) {
        let mut newsize = 8;
        while newsize <= minused {
            newsize <<= 1;
        }
        let old = std::mem::replace(&mut self.table, vec![None; newsize]);
        let mask = newsize - 1;
        for (hash, key) in old.into_iter().flatten() {
            let mut i = (hash as usize) & mask;
            let mut perturb = hash;
            'probe: loop {
                let probes = if i + Self::LINEAR_PROBES <= mask {
                    Self::LINEAR_PROBES
                } else {
                    0
                };
                for j in i..=i + probes {
                    if self.table[j].is_none() {
                        self.table[j] = Some((hash, key));
                        break 'probe;
                    }
                }
                perturb >>= Self::PERTURB_SHIFT;
                i = (i
                    .wrapping_mul(5)
                    .wrapping_add(1)
                    .wrapping_add(perturb as usize))
                    & mask;
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.table.iter().flatten().map(|&(_, k)| k)
    }
}

/// The candidate grids of `dynamic_preprocess(min_num=min_tiles, max_num=max_tiles)` in VILA's
/// order: `sorted({(i, j) for n in range(min, max+1) for i in 1..=n for j in 1..=n
/// if min <= i*j <= max}, key=i*j)` under CPython 3.10/3.11.
///
/// For (1, 12) this is the 35-grid list in `nvila.md` §2. Callers validate
/// `1 <= min_tiles <= max_tiles`.
pub fn candidate_grids(min_tiles: u32, max_tiles: u32) -> Vec<Grid> {
    let mut set = PySet::new();
    for n in min_tiles..=max_tiles {
        for i in 1..=n {
            for j in 1..=n {
                let p = i * j;
                if p <= max_tiles && p >= min_tiles {
                    set.add((i, j), py_tuple_hash(u64::from(i), u64::from(j)));
                }
            }
        }
    }
    let mut grids: Vec<Grid> = set.iter().map(|(cols, rows)| Grid { cols, rows }).collect();
    // Rust's sort_by_key is stable, like Python's sorted.
    grids.sort_by_key(|g| g.tiles());
    grids
}

/// `find_closest_aspect_ratio`: minimise `|W/H − i/j|` in candidate order; on an exact tie the
/// later candidate wins when `W·H > 0.5·size²·i·j`. Falls back to 1×1 when `grids` is empty.
pub fn find_closest_grid(width: u32, height: u32, grids: &[Grid], image_size: u32) -> Grid {
    let aspect = f64::from(width) / f64::from(height);
    let area = f64::from(width) * f64::from(height);
    let mut best_diff = f64::INFINITY;
    let mut best = Grid { cols: 1, rows: 1 };
    let size = f64::from(image_size);
    for &g in grids {
        let diff = (aspect - f64::from(g.cols) / f64::from(g.rows)).abs();
        if diff < best_diff {
            best_diff = diff;
            best = g;
        } else if diff == best_diff
            // Python evaluates `0.5 * image_size * image_size * ratio[0] * ratio[1]` left to right.
            && area > 0.5 * size * size * f64::from(g.cols) * f64::from(g.rows)
        {
            best = g;
        }
    }
    best
}

/// `dynamic_preprocess(image, min_tiles, max_tiles, image_size, use_thumbnail=True)` on 8-bit
/// RGB: the grid and the tiles (row-major, then the thumbnail when the grid has more than one
/// tile), resized as the given Pillow version does. Callers validate sizes and tile counts.
pub fn dynamic_tiles(
    image: &RgbImage,
    image_size: u32,
    min_tiles: u32,
    max_tiles: u32,
    pillow: PillowVersion,
) -> (Grid, Vec<RgbImage>) {
    let grids = candidate_grids(min_tiles, max_tiles);
    let grid = find_closest_grid(image.width(), image.height(), &grids, image_size);
    let resized = resize_bicubic_as(
        image,
        image_size * grid.cols,
        image_size * grid.rows,
        pillow,
    );
    let mut tiles = Vec::with_capacity(grid.tiles() as usize + 1);
    for r in 0..grid.rows {
        for c in 0..grid.cols {
            tiles.push(
                image::imageops::crop_imm(
                    &resized,
                    c * image_size,
                    r * image_size,
                    image_size,
                    image_size,
                )
                .to_image(),
            );
        }
    }
    if tiles.len() != 1 {
        tiles.push(resize_bicubic_as(image, image_size, image_size, pillow));
    }
    (grid, tiles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvila_order_for_1_to_12() {
        // nvila.md §2, read off CPython 3.10/3.11.
        let expected = [
            (1, 1),
            (1, 2),
            (2, 1),
            (3, 1),
            (1, 3),
            (2, 2),
            (4, 1),
            (1, 4),
            (5, 1),
            (1, 5),
            (1, 6),
            (6, 1),
            (3, 2),
            (2, 3),
            (7, 1),
            (1, 7),
            (4, 2),
            (2, 4),
            (1, 8),
            (8, 1),
            (1, 9),
            (3, 3),
            (9, 1),
            (2, 5),
            (5, 2),
            (10, 1),
            (1, 10),
            (11, 1),
            (1, 11),
            (12, 1),
            (3, 4),
            (4, 3),
            (1, 12),
            (6, 2),
            (2, 6),
        ];
        let got: Vec<(u32, u32)> = candidate_grids(1, 12)
            .iter()
            .map(|g| (g.cols, g.rows))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn square_tie_rule() {
        let grids = candidate_grids(1, 12);
        let g = |w, h| find_closest_grid(w, h, &grids, 448);
        assert_eq!(g(633, 633), Grid { cols: 1, rows: 1 }); // 400,689 <= 401,408
        assert_eq!(g(634, 634), Grid { cols: 2, rows: 2 }); // 401,956 > 401,408
        assert_eq!(g(951, 951), Grid { cols: 3, rows: 3 }); // 904,401 > 903,168
    }
}
