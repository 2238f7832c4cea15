//! The client config as a QR code, for phones: in the terminal with Unicode half blocks (two
//! module rows per text line, as `qrencode -t UTF8` prints) and as a PNG file. The `qrcode`
//! crate builds the symbol; the `png` crate writes the file.

use std::io::Write;

use qrcode::render::unicode::Dense1x2;
use qrcode::{Color, EcLevel, QrCode};

/// Pixels per QR module in the PNG.
pub const PNG_SCALE: u32 = 8;
/// Light modules around the symbol (ISO/IEC 18004 asks for four).
pub const QUIET_ZONE: u32 = 4;

/// Encodes `text` with medium error correction (a wg-quick file fits comfortably).
pub fn encode(text: &str) -> Result<QrCode, String> {
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| format!("cannot encode the client config as a QR code: {e}"))
}

/// The symbol as text for a dark terminal: light modules are drawn, dark ones left blank.
pub fn to_terminal(code: &QrCode) -> String {
    code.render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build()
}

/// Writes the symbol as an 8-bit greyscale PNG (black on white, quiet zone included).
pub fn write_png(code: &QrCode, out: impl Write) -> Result<(), String> {
    let modules = code.width() as u32;
    let side = (modules + 2 * QUIET_ZONE) * PNG_SCALE;
    let colors = code.to_colors();
    let mut pixels = vec![255u8; (side * side) as usize];
    for (i, c) in colors.iter().enumerate() {
        if *c != Color::Dark {
            continue;
        }
        let (mx, my) = (i as u32 % modules, i as u32 / modules);
        for dy in 0..PNG_SCALE {
            let y = (my + QUIET_ZONE) * PNG_SCALE + dy;
            let row = (y * side) as usize;
            let x0 = ((mx + QUIET_ZONE) * PNG_SCALE) as usize;
            pixels[row + x0..row + x0 + PNG_SCALE as usize].fill(0);
        }
    }
    let mut enc = png::Encoder::new(out, side, side);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(|e| e.to_string())?;
    w.write_image_data(&pixels).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_rendering_uses_half_blocks_and_two_rows_per_line() {
        let code = encode("hello").unwrap();
        let text = to_terminal(&code);
        let lines: Vec<&str> = text.lines().collect();
        let rows = code.width() as u32 + 2 * QUIET_ZONE;
        assert_eq!(lines.len() as u32, rows.div_ceil(2));
        assert!(text.contains('\u{2580}') || text.contains('\u{2584}'));
        assert!(lines.iter().all(|l| l.chars().count() as u32 == rows));
    }

    #[test]
    fn png_has_the_expected_size_and_signature() {
        let code = encode("hello").unwrap();
        let mut buf = Vec::new();
        write_png(&code, &mut buf).unwrap();
        assert_eq!(&buf[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(&buf));
        let reader = decoder.read_info().unwrap();
        let side = (code.width() as u32 + 2 * QUIET_ZONE) * PNG_SCALE;
        assert_eq!(reader.info().width, side);
        assert_eq!(reader.info().height, side);
    }
}
