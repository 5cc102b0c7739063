//! CSS colours for `background` and friends.

use image::Rgba;

/// Parses a CSS colour: `#rgb`, `#rgba`, `#rrggbb`, `#rrggbbaa`, `rgb(r,g,b)`, `rgba(r,g,b,a)`
/// and common names.
pub fn parse(s: &str) -> Option<Rgba<u8>> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix('#') {
        return parse_hex(hex);
    }
    let lower = s.to_ascii_lowercase();
    if let Some(args) = lower
        .strip_prefix("rgba(")
        .or_else(|| lower.strip_prefix("rgb("))
        .and_then(|r| r.strip_suffix(')'))
    {
        let v: Vec<&str> = args.split(',').map(str::trim).collect();
        if v.len() != 3 && v.len() != 4 {
            return None;
        }
        let c = |x: &str| -> Option<u8> {
            let n: f64 = x.parse().ok()?;
            (0.0..=255.0).contains(&n).then_some(n.round() as u8)
        };
        let a = match v.get(3) {
            Some(a) => {
                let a: f64 = a.parse().ok()?;
                if !(0.0..=1.0).contains(&a) {
                    return None;
                }
                (a * 255.0).round() as u8
            }
            None => 255,
        };
        return Some(Rgba([c(v[0])?, c(v[1])?, c(v[2])?, a]));
    }
    let named = match lower.as_str() {
        "white" => [255, 255, 255, 255],
        "black" => [0, 0, 0, 255],
        "red" => [255, 0, 0, 255],
        "green" => [0, 128, 0, 255],
        "lime" => [0, 255, 0, 255],
        "blue" => [0, 0, 255, 255],
        "yellow" => [255, 255, 0, 255],
        "cyan" | "aqua" => [0, 255, 255, 255],
        "magenta" | "fuchsia" => [255, 0, 255, 255],
        "gray" | "grey" => [128, 128, 128, 255],
        "silver" => [192, 192, 192, 255],
        "orange" => [255, 165, 0, 255],
        "purple" => [128, 0, 128, 255],
        "transparent" => [0, 0, 0, 0],
        _ => return None,
    };
    Some(Rgba(named))
}

fn parse_hex(hex: &str) -> Option<Rgba<u8>> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let d = |i: usize, n: usize| u8::from_str_radix(&hex[i..i + n], 16).ok();
    match hex.len() {
        3 | 4 => {
            let x = |i| d(i, 1).map(|v| v * 17);
            let a = if hex.len() == 4 { x(3)? } else { 255 };
            Some(Rgba([x(0)?, x(1)?, x(2)?, a]))
        }
        6 | 8 => {
            let a = if hex.len() == 8 { d(6, 2)? } else { 255 };
            Some(Rgba([d(0, 2)?, d(2, 2)?, d(4, 2)?, a]))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours() {
        assert_eq!(parse("#ff0000"), Some(Rgba([255, 0, 0, 255])));
        assert_eq!(parse("#fff"), Some(Rgba([255, 255, 255, 255])));
        assert_eq!(parse("rgb(0,0,0)"), Some(Rgba([0, 0, 0, 255])));
        assert_eq!(
            parse("rgba(10, 20, 30, 0.5)"),
            Some(Rgba([10, 20, 30, 128]))
        );
        assert_eq!(parse("White"), Some(Rgba([255, 255, 255, 255])));
        assert_eq!(parse("#ggg"), None);
        assert_eq!(parse("rgb(300,0,0)"), None);
    }
}
