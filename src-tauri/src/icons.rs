//! The tray icon's four looks, drawn in code: each differs from the others by colour
//! and by shape, so the state reads at a glance and also without colour vision.

use cpwatch::notify::tray::Look;

/// Icons are drawn at this size; panels scale them down.
pub const SIZE: u32 = 64;

/// Samples per pixel side, for smooth edges.
const SUPERSAMPLE: u32 = 4;

const WHITE: [u8; 3] = [255, 255, 255];

/// One look: a coloured silhouette with a white mark on it.
struct Design {
    colour: [u8; 3],
    silhouette: fn(f32, f32) -> bool,
    mark: fn(f32, f32) -> bool,
}

fn design(look: Look) -> Design {
    match look {
        // Green disc with a check mark.
        Look::AllGood => Design { colour: [0x2e, 0x8b, 0x4a], silhouette: disc, mark: check },
        // Red warning triangle with an exclamation mark.
        Look::NewFailures => Design { colour: [0xc6, 0x28, 0x28], silhouette: triangle, mark: exclamation },
        // Slate rounded square with the two bars of "pause".
        Look::Paused => Design { colour: [0x4f, 0x62, 0x7a], silhouette: rounded_square, mark: pause_bars },
        // Grey ring struck through: nothing can arrive. The mark is part of the outline.
        Look::NotListening => Design { colour: [0x6e, 0x6e, 0x6e], silhouette: struck_ring, mark: nothing },
    }
}

/// The look as straight (not premultiplied) RGBA rows, `SIZE` x `SIZE`.
pub fn rgba(look: Look) -> Vec<u8> {
    let design = design(look);
    let mut pixels = Vec::with_capacity((SIZE * SIZE * 4) as usize);
    let samples = (SUPERSAMPLE * SUPERSAMPLE) as f32;
    for py in 0..SIZE {
        for px in 0..SIZE {
            let (mut covered, mut marked) = (0.0f32, 0.0f32);
            for sy in 0..SUPERSAMPLE {
                for sx in 0..SUPERSAMPLE {
                    // Coordinates in 0..1 over the icon, at the sample's centre.
                    let x = (px as f32 + (sx as f32 + 0.5) / SUPERSAMPLE as f32) / SIZE as f32;
                    let y = (py as f32 + (sy as f32 + 0.5) / SUPERSAMPLE as f32) / SIZE as f32;
                    if (design.silhouette)(x, y) {
                        covered += 1.0;
                        if (design.mark)(x, y) {
                            marked += 1.0;
                        }
                    }
                }
            }
            let alpha = covered / samples;
            let white = if covered > 0.0 { marked / covered } else { 0.0 };
            for (base, mark) in design.colour.iter().zip(WHITE) {
                let value = f32::from(*base) * (1.0 - white) + f32::from(mark) * white;
                pixels.push(value.round() as u8);
            }
            pixels.push((alpha * 255.0).round() as u8);
        }
    }
    pixels
}

/// The look as a Tauri image.
pub fn image(look: Look) -> tauri::image::Image<'static> {
    tauri::image::Image::new_owned(rgba(look), SIZE, SIZE)
}

fn distance(x: f32, y: f32, cx: f32, cy: f32) -> f32 {
    ((x - cx).powi(2) + (y - cy).powi(2)).sqrt()
}

/// Whether (x, y) lies within `half_width` of the segment from a to b.
fn near_segment(x: f32, y: f32, a: (f32, f32), b: (f32, f32), half_width: f32) -> bool {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let t = (((x - a.0) * dx + (y - a.1) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
    distance(x, y, a.0 + t * dx, a.1 + t * dy) <= half_width
}

fn disc(x: f32, y: f32) -> bool {
    distance(x, y, 0.5, 0.5) <= 0.47
}

fn check(x: f32, y: f32) -> bool {
    near_segment(x, y, (0.27, 0.52), (0.43, 0.68), 0.065)
        || near_segment(x, y, (0.43, 0.68), (0.74, 0.34), 0.065)
}

fn triangle(x: f32, y: f32) -> bool {
    // Apex at the top centre, base along the bottom.
    let (top, bottom) = (0.05, 0.93);
    if !(top..=bottom).contains(&y) {
        return false;
    }
    let half = 0.5 * (y - top) / (bottom - top) * 0.96;
    (x - 0.5).abs() <= half
}

fn exclamation(x: f32, y: f32) -> bool {
    near_segment(x, y, (0.5, 0.38), (0.5, 0.64), 0.055) || distance(x, y, 0.5, 0.79) <= 0.06
}

fn rounded_square(x: f32, y: f32) -> bool {
    let (lo, hi, r) = (0.06, 0.94, 0.16);
    let cx = x.clamp(lo + r, hi - r);
    let cy = y.clamp(lo + r, hi - r);
    (lo..=hi).contains(&x) && (lo..=hi).contains(&y) && distance(x, y, cx, cy) <= r
}

fn pause_bars(x: f32, y: f32) -> bool {
    (0.27..=0.73).contains(&y) && ((0.31..=0.43).contains(&x) || (0.57..=0.69).contains(&x))
}

fn struck_ring(x: f32, y: f32) -> bool {
    let d = distance(x, y, 0.5, 0.5);
    (0.33..=0.47).contains(&d) || (d <= 0.47 && near_segment(x, y, (0.25, 0.25), (0.75, 0.75), 0.07))
}

fn nothing(_: f32, _: f32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOKS: [Look; 4] = [Look::AllGood, Look::NewFailures, Look::Paused, Look::NotListening];

    /// Which pixels are mostly opaque: the silhouette.
    fn shape(pixels: &[u8]) -> Vec<bool> {
        pixels.chunks(4).map(|p| p[3] >= 128).collect()
    }

    /// The average colour of the opaque pixels that are not the white mark.
    fn colour(pixels: &[u8]) -> [u32; 3] {
        let body: Vec<&[u8]> = pixels.chunks(4).filter(|p| p[3] == 255 && p[..3] != WHITE).collect();
        let mean = |c: usize| body.iter().map(|p| u32::from(p[c])).sum::<u32>() / body.len().max(1) as u32;
        [mean(0), mean(1), mean(2)]
    }

    #[test]
    fn every_look_differs_from_every_other_by_colour_and_by_shape() {
        let drawn: Vec<Vec<u8>> = LOOKS.iter().map(|l| rgba(*l)).collect();
        for (i, a) in drawn.iter().enumerate() {
            assert_eq!(a.len(), (SIZE * SIZE * 4) as usize);
            for (j, b) in drawn.iter().enumerate().skip(i + 1) {
                let (sa, sb) = (shape(a), shape(b));
                let differing = sa.iter().zip(&sb).filter(|(x, y)| x != y).count();
                assert!(
                    differing > (SIZE * SIZE / 20) as usize,
                    "{:?} and {:?} need different silhouettes ({differing} pixels differ)",
                    LOOKS[i],
                    LOOKS[j]
                );
                let (ca, cb) = (colour(a), colour(b));
                let gap: u32 = ca.iter().zip(&cb).map(|(x, y)| x.abs_diff(*y)).sum();
                assert!(gap > 40, "{:?} {ca:?} and {:?} {cb:?} need different colours", LOOKS[i], LOOKS[j]);
            }
        }
    }

    #[test]
    fn icons_have_transparent_corners_and_a_visible_mark() {
        for look in LOOKS {
            let pixels = rgba(look);
            assert_eq!(pixels[3], 0, "{look:?}: the corner is transparent");
            let marked = pixels.chunks(4).filter(|p| p[3] == 255 && p[..3] == WHITE).count();
            let wanted = if look == Look::NotListening { 0 } else { 30 };
            assert!(marked >= wanted, "{look:?}: {marked} white pixels");
        }
    }
}
