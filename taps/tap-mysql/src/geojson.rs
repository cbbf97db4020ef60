//! MySQL's internal geometry format (a 4-byte SRID followed by WKB) to GeoJSON.

use std::io::Write as _;

struct Wkb<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Wkb<'_> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let end = self.pos + N;
        let slice = self
            .data
            .get(self.pos..end)
            .ok_or_else(|| "truncated geometry".to_string())?;
        self.pos = end;
        let mut a = [0u8; N];
        a.copy_from_slice(slice);
        Ok(a)
    }
    fn u32(&mut self, le: bool) -> Result<u32, String> {
        let b = self.bytes::<4>()?;
        Ok(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }
    fn f64(&mut self, le: bool) -> Result<f64, String> {
        let b = self.bytes::<8>()?;
        let v = if le {
            f64::from_le_bytes(b)
        } else {
            f64::from_be_bytes(b)
        };
        if v.is_finite() {
            Ok(v)
        } else {
            Err("non-finite coordinate".into())
        }
    }
}

/// Writes the GeoJSON geometry of a MySQL geometry value.
pub(crate) fn write_geometry(out: &mut Vec<u8>, value: &[u8]) -> Result<(), String> {
    let wkb = value
        .get(4..)
        .ok_or_else(|| "geometry shorter than its SRID".to_string())?;
    let mut r = Wkb { data: wkb, pos: 0 };
    write_wkb(out, &mut r, 0)
}

fn write_wkb(out: &mut Vec<u8>, r: &mut Wkb<'_>, depth: u32) -> Result<(), String> {
    if depth > 32 {
        return Err("geometry nested too deeply".into());
    }
    let le = r.bytes::<1>()?[0] == 1;
    let ty = r.u32(le)?;
    let name = match ty {
        1 => "Point",
        2 => "LineString",
        3 => "Polygon",
        4 => "MultiPoint",
        5 => "MultiLineString",
        6 => "MultiPolygon",
        7 => "GeometryCollection",
        t => return Err(format!("unknown WKB geometry type {t}")),
    };
    let _ = write!(out, "{{\"type\":\"{name}\",");
    if ty == 7 {
        out.extend_from_slice(b"\"geometries\":[");
        let n = r.u32(le)?;
        for i in 0..n {
            if i > 0 {
                out.push(b',');
            }
            write_wkb(out, r, depth + 1)?;
        }
        out.extend_from_slice(b"]}");
        return Ok(());
    }
    out.extend_from_slice(b"\"coordinates\":");
    match ty {
        1 => write_point(out, r, le)?,
        2 => write_points(out, r, le)?,
        3 => write_rings(out, r, le)?,
        _ => {
            let n = r.u32(le)?;
            out.push(b'[');
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                let inner_le = r.bytes::<1>()?[0] == 1;
                let _inner_ty = r.u32(inner_le)?;
                match ty {
                    4 => write_point(out, r, inner_le)?,
                    5 => write_points(out, r, inner_le)?,
                    _ => write_rings(out, r, inner_le)?,
                }
            }
            out.push(b']');
        }
    }
    out.push(b'}');
    Ok(())
}

fn write_point(out: &mut Vec<u8>, r: &mut Wkb<'_>, le: bool) -> Result<(), String> {
    let x = r.f64(le)?;
    let y = r.f64(le)?;
    let _ = write!(out, "[{x:?},{y:?}]");
    Ok(())
}

fn write_points(out: &mut Vec<u8>, r: &mut Wkb<'_>, le: bool) -> Result<(), String> {
    let n = r.u32(le)?;
    out.push(b'[');
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        write_point(out, r, le)?;
    }
    out.push(b']');
    Ok(())
}

fn write_rings(out: &mut Vec<u8>, r: &mut Wkb<'_>, le: bool) -> Result<(), String> {
    let n = r.u32(le)?;
    out.push(b'[');
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        write_points(out, r, le)?;
    }
    out.push(b']');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_and_linestring() {
        let mut v = vec![0, 0, 0, 0, 1, 1, 0, 0, 0];
        v.extend_from_slice(&1.5f64.to_le_bytes());
        v.extend_from_slice(&(-2.0f64).to_le_bytes());
        let mut out = Vec::new();
        write_geometry(&mut out, &v).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"type":"Point","coordinates":[1.5,-2.0]}"#
        );
        assert!(write_geometry(&mut Vec::new(), &v[..10]).is_err());
    }
}
