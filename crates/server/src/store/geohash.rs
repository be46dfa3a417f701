//! The numeric core of the geo commands (GEOADD, GEOPOS, GEOHASH, GEODIST, GEOSEARCH,
//! GEORADIUS…), ported from Redis 7.0.15's `geo.c`, `geohash.c` and `geohash_helper.c`.
//!
//! Every function here performs the same `f64` operations, in the same order, as the C code, so
//! that scores, coordinates, distances, and the sorted-set ranges a search scans are
//! bit-for-bit those of Redis (on x86-64 Linux, whose glibc `sin`/`cos`/`asin` the Rust standard
//! library also calls). Where the C code relies on behaviour that C leaves undefined but that
//! Redis's users can observe (casting an arbitrary sorted-set score to `uint64_t`), the x86-64
//! behaviour is reproduced and documented; where it cannot be observed through a command (a NaN
//! longitude reaching the encoder), the function refuses the input instead.
//!
//! Reply formatting that is part of the observable numbers (`%.17Lf` for coordinates, four
//! fixed decimals for distances, `%f` in the GEOADD error) lives here too, for the same reason.

use std::f64::consts::PI;

/// Geohash precision of a stored point: 26 steps per axis, 52 interleaved bits.
pub const GEO_STEP_MAX: u8 = 26;
/// Southernmost latitude that can be stored (EPSG:900913 limits: no geocoding at the poles).
pub const GEO_LAT_MIN: f64 = -85.05112878;
/// Northernmost latitude that can be stored.
pub const GEO_LAT_MAX: f64 = 85.05112878;
/// Westernmost longitude that can be stored.
pub const GEO_LONG_MIN: f64 = -180.0;
/// Easternmost longitude that can be stored.
pub const GEO_LONG_MAX: f64 = 180.0;
/// Alias of [`GEO_LONG_MIN`].
pub const LON_MIN: f64 = GEO_LONG_MIN;
/// Alias of [`GEO_LONG_MAX`].
pub const LON_MAX: f64 = GEO_LONG_MAX;
/// Alias of [`GEO_LAT_MIN`].
pub const LAT_MIN: f64 = GEO_LAT_MIN;
/// Alias of [`GEO_LAT_MAX`].
pub const LAT_MAX: f64 = GEO_LAT_MAX;
/// The earth radius (quadratic mean, WGS-84) that Redis's haversine uses.
pub const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;

/// printf template of GEOADD's (and FROMLONLAT's) range error; [`invalid_lonlat_error`] fills it.
pub const INVALID_LONLAT_ERR_FMT: &str = "ERR invalid longitude,latitude pair %f,%f";
/// The error a bad unit argument gets (see [`unit_factor`]).
pub const UNSUPPORTED_UNIT_ERR: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";

/// Half the length of the equator in the Mercator projection: the step estimation doubles the
/// radius until it reaches this.
const MERCATOR_MAX: f64 = 20037726.37;
/// Degrees to radians, computed as `M_PI / 180.0` like the C macro `D_R`.
const D_R: f64 = PI / 180.0;

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// Encodes a position into the 52-bit score GEOADD stores, or `None` when it is outside
/// [`GEO_LONG_MIN`]..=[`GEO_LONG_MAX`] × [`GEO_LAT_MIN`]..=[`GEO_LAT_MAX`] (or NaN).
///
/// The sorted set holds the score as an `f64` (`bits as f64`, which is what parsing the decimal
/// string GEOADD hands to ZADD yields). At exactly longitude 180 or latitude 85.05112878 the
/// C encoder carries into bit 52 or 53, so the value can exceed 2^53 and round when stored;
/// use [`encode_score`] for the stored value.
pub fn encode(lon: f64, lat: f64) -> Option<u64> {
    geohash_encode(WGS84_LONG, WGS84_LAT, lon, lat, GEO_STEP_MAX).map(align_52_bits)
}

/// The score exactly as the sorted set stores it after GEOADD: [`encode`] converted to `f64`.
pub fn encode_score(lon: f64, lat: f64) -> Option<f64> {
    encode(lon, lat).map(|bits| bits as f64)
}

/// The text of the error GEOADD / FROMLONLAT / GEORADIUS reply for an out-of-range pair,
/// formatting both numbers like C's `%f`.
pub fn invalid_lonlat_error(lon: f64, lat: f64) -> String {
    format!(
        "ERR invalid longitude,latitude pair {},{}",
        c_format_f(lon),
        c_format_f(lat)
    )
}

/// Decodes a 52-bit score into the (longitude, latitude) GEOPOS returns: the centre of the
/// step-26 cell, clamped to the storable limits (which matters only for scores that no GEOADD
/// produces).
pub fn decode(score: u64) -> (f64, f64) {
    let hash = HashBits {
        bits: score,
        step: GEO_STEP_MAX,
    };
    // A step-26 hash is never "zero" and the WGS84 ranges are constant, so decoding succeeds.
    geohash_decode(WGS84_LONG, WGS84_LAT, hash).map_or((0.0, 0.0), area_center_clamped)
}

/// Decodes a sorted-set score as Redis's `decodeGeohash` does: `(uint64_t)score` first, then
/// [`decode`]. Any member of any sorted set can be asked for with GEOPOS, so scores that GEOADD
/// never writes (negative, huge, infinite) are converted as [`score_to_bits`] describes.
pub fn decode_score(score: f64) -> (f64, f64) {
    decode(score_to_bits(score))
}

/// The C cast `(uint64_t)score` as gcc compiles it on x86-64, which Redis applies to every
/// score it decodes. Out-of-range values are undefined in C; the machine gives: truncation
/// toward zero for |x| < 2^63 (negatives wrap to two's complement), `x - 2^63` plus the top bit
/// for 2^63 <= x < 2^64, and 0x8000_0000_0000_0000 ("integer indefinite") for NaN and values
/// below -2^63, 0 for values of 2^64 and above.
pub fn score_to_bits(score: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if score >= TWO_63 {
        (cvttsd2si(score - TWO_63) as u64) ^ (1u64 << 63)
    } else {
        cvttsd2si(score) as u64
    }
}

/// GEOHASH's 11-character geohash of a decoded position (as [`decode`] returns it).
///
/// Redis stores positions with the latitude range ±85.05112878, while standard geohashes use
/// ±90, so it re-encodes the decoded position with the standard ranges at step 26 and emits
/// ten 5-bit characters plus a final '0' (52 bits do not fill 55). A position that cannot be
/// encoded (outside the storable limits, which GEOHASH never sees) yields the all-zero hash.
pub fn geohash_string(lon: f64, lat: f64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let bits =
        geohash_encode(STANDARD_LONG, STANDARD_LAT, lon, lat, GEO_STEP_MAX).map_or(0, |h| h.bits);
    (0..11u32)
        .map(|i| {
            let idx = if i == 10 {
                0
            } else {
                (bits >> (52 - (i + 1) * 5)) & 0x1f
            };
            char::from(ALPHABET[idx as usize])
        })
        .collect()
}

/// GEOHASH of a sorted-set score: [`decode_score`] then [`geohash_string`].
pub fn geohash_of_score(score: f64) -> String {
    let (lon, lat) = decode_score(score);
    geohash_string(lon, lat)
}

/// Great-circle distance in meters between two positions (degrees), with Redis's haversine
/// (`geohashGetDistance`), including its shortcut for identical longitudes.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = deg_rad(lon1);
    let lon2r = deg_rad(lon2);
    let v = ((lon2r - lon1r) / 2.0).sin();
    // When the longitudes coincide the haversine reduces to the latitude difference.
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let lat1r = deg_rad(lat1);
    let lat2r = deg_rad(lat2);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

/// Meters per unit for the unit argument of GEODIST / GEOSEARCH / GEORADIUS: m, km, ft, mi,
/// ASCII case-insensitively; `None` means reply [`UNSUPPORTED_UNIT_ERR`]. Like the C
/// `strcasecmp`, the comparison stops at the first NUL byte, so `b"km\0junk"` is `km`.
pub fn unit_factor(unit: &[u8]) -> Option<f64> {
    let unit = unit.split(|&b| b == 0).next().unwrap_or_default();
    let is = |name: &[u8]| unit.eq_ignore_ascii_case(name);
    if is(b"m") {
        Some(1.0)
    } else if is(b"km") {
        Some(1000.0)
    } else if is(b"ft") {
        Some(0.3048)
    } else if is(b"mi") {
        Some(1609.34)
    } else {
        None
    }
}

/// A search area around a centre.
///
/// Redis keeps the user's sizes and unit apart and multiplies by the unit inside each
/// computation. For a radius every use is the same product `radius * unit`, so meters are
/// exact. For a box, the half-diagonal that picks the geohash step is
/// `sqrt((w/2)^2 + (h/2)^2) * unit`, which can round differently from the same formula on
/// converted sizes; [`Shape::BoxInUnit`] keeps the unit so that even this is bit-exact, while
/// [`Shape::Box`] (meters) equals `BoxInUnit` with unit 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// BYRADIUS / GEORADIUS: points no farther than this many meters (`radius * unit`).
    Radius(f64),
    /// BYBOX in meters (`width * unit`, `height * unit`): points within half the width east-west
    /// and half the height north-south of the centre.
    Box {
        /// East-west size, in meters.
        width: f64,
        /// North-south size, in meters.
        height: f64,
    },
    /// BYBOX as given: sizes in the unit, plus that unit's [`unit_factor`].
    BoxInUnit {
        /// East-west size, in units.
        width: f64,
        /// North-south size, in units.
        height: f64,
        /// Meters per unit.
        unit: f64,
    },
}

/// A [`Shape`] as the C `GeoShape` holds it: a circle in meters, or a box in units with the
/// unit's factor (a meter box having factor 1).
#[derive(Clone, Copy)]
enum GeoShape {
    Circle { radius_m: f64 },
    Rect { width: f64, height: f64, unit: f64 },
}

impl Shape {
    /// The C view of the shape, so each computation has one radius case and one box case.
    fn geo(&self) -> GeoShape {
        match *self {
            Shape::Radius(radius_m) => GeoShape::Circle { radius_m },
            Shape::Box { width, height } => GeoShape::Rect {
                width,
                height,
                unit: 1.0,
            },
            Shape::BoxInUnit {
                width,
                height,
                unit,
            } => GeoShape::Rect {
                width,
                height,
                unit,
            },
        }
    }
}

/// The sorted-set score ranges `[min, max)` a search around (`lon`, `lat`) scans, in the order
/// Redis scans them (`membersOfAllNeighbors`): the centre cell, then north, south, east, west,
/// north-east, north-west, south-east, south-west, leaving out the neighbours 7.0 prunes as
/// outside the bounding box and any neighbour equal to the previously scanned one.
///
/// Compare scores as Redis does, in `f64`: `min as f64 <= score && score < max as f64` (see
/// [`range_contains`]); the bounds can exceed 2^53 for centres exactly on the east or north
/// limit. Within a range, members come in sorted-set order (score, then member bytes); the
/// unsorted reply is the matches in that order, and `ANY` with `COUNT n` keeps the first `n`.
/// Ranges may repeat when equal neighbours are not adjacent in that order, as in Redis.
///
/// An invalid centre (outside the storable limits or NaN, which Redis rejects before searching)
/// gives no ranges.
pub fn search_ranges(lon: f64, lat: f64, shape: &Shape) -> Vec<(u64, u64)> {
    let Some(areas) = calculate_areas_by_shape(lon, lat, shape) else {
        return Vec::new();
    };
    let n = areas.neighbors;
    let boxes = [
        areas.hash,
        n.north,
        n.south,
        n.east,
        n.west,
        n.north_east,
        n.north_west,
        n.south_east,
        n.south_west,
    ];
    let mut ranges = Vec::with_capacity(boxes.len());
    // Index 0 doubles as "nothing scanned yet", so the first neighbour is never compared with
    // the centre cell: a quirk of the C loop that decides which boxes are scanned.
    let mut last_processed = 0usize;
    for (i, cell) in boxes.iter().enumerate() {
        if cell.is_zero() {
            continue;
        }
        if last_processed != 0 && *cell == boxes[last_processed] {
            continue;
        }
        ranges.push(scores_of_box(*cell));
        last_processed = i;
    }
    ranges
}

/// Whether a stored score falls in a range from [`search_ranges`], comparing in `f64` with the
/// minimum included and the maximum excluded, as Redis's `zrangespec` does.
pub fn range_contains(range: (u64, u64), score: f64) -> bool {
    let (min, max) = (range.0 as f64, range.1 as f64);
    min <= score && score < max
}

/// Whether the point (`point_lon`, `point_lat`) belongs to the search area around `center`
/// (longitude, latitude): `Some(distance in meters from the centre)` when it does (WITHDIST
/// divides it by the unit's factor and prints it with [`format_distance`]).
///
/// A radius keeps points whose haversine distance is not greater than the radius (a NaN
/// distance is therefore kept, as in Redis); a box keeps points whose latitude distance and
/// longitude distance (measured along the point's parallel) are within half the height and
/// half the width.
pub fn in_shape(shape: &Shape, center: (f64, f64), point_lon: f64, point_lat: f64) -> Option<f64> {
    let (x1, y1) = center;
    match shape.geo() {
        GeoShape::Circle { radius_m } => {
            let d = distance(x1, y1, point_lon, point_lat);
            if d > radius_m {
                None
            } else {
                Some(d)
            }
        }
        GeoShape::Rect {
            width,
            height,
            unit,
        } => distance_if_in_rectangle(width * unit, height * unit, x1, y1, point_lon, point_lat),
    }
}

/// `geoWithinShape`: decodes a sorted-set score and tests it against the search area, giving
/// (longitude, latitude, distance in meters) for a match.
pub fn score_in_shape(shape: &Shape, center: (f64, f64), score: f64) -> Option<(f64, f64, f64)> {
    let (lon, lat) = decode_score(score);
    in_shape(shape, center, lon, lat).map(|d| (lon, lat, d))
}

/// Formats a distance (already divided by the unit) as GEODIST and WITHDIST reply it:
/// `fixedpoint_d2string(d, 4)`, i.e. `llrint(d * 10000)` split into four decimals. As on
/// x86-64, a NaN or out-of-range product becomes `i64::MIN` ("-922337203685477.5808").
pub fn format_distance(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".to_string();
    }
    let scaled = llrint(d * 10000.0);
    let sign = if scaled < 0 { "-" } else { "" };
    let value = scaled.unsigned_abs();
    format!("{sign}{}.{:04}", value / 10000, value % 10000)
}

/// Formats a coordinate as GEOPOS and WITHCOORD reply it (RESP2 bulk string or RESP3 double
/// text): `%.17Lf` with trailing zeros and a trailing dot removed, and "-0" shown as "0".
/// This is not always the shortest round-trip form, so replies must use it to match.
pub fn format_coord(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    let mut s = format!("{x:.17}");
    if s.contains('.') {
        let trimmed = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(trimmed);
    }
    if s == "-0" {
        s = "0".to_string();
    }
    s
}

/// Geohash step (bits per axis) Redis picks for the nine search cells of a radius in meters at
/// latitude `lat`: the coarsest cells that still usually cover the radius, one or two steps
/// coarser near the poles, framed to 1..=26.
pub fn estimate_steps_by_radius(range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut range = range_meters;
    let mut step: i32 = 1;
    // The C loop never ends for a negative radius (rejected before it gets here); stopping at
    // 31 changes nothing else, since any step above 30 still frames to 26 below.
    while range < MERCATOR_MAX && step <= 30 {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    // `abs() > x` is the C `lat > x || lat < -x`, NaN included.
    if lat.abs() > 66.0 {
        step -= 1;
        if lat.abs() > 80.0 {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

// ---------------------------------------------------------------------------------------------
// geohash.c
// ---------------------------------------------------------------------------------------------

/// A geohash: `step` bits per axis, interleaved in `bits` (latitude in the even bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HashBits {
    bits: u64,
    step: u8,
}

impl HashBits {
    /// The cleared hash (`GZERO`) marking a pruned neighbour.
    const ZERO: HashBits = HashBits { bits: 0, step: 0 };

    /// `HASHISZERO`: only a cleared hash has step 0.
    fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }
}

/// A coordinate interval, in degrees.
#[derive(Clone, Copy, Debug)]
struct CoordRange {
    min: f64,
    max: f64,
}

impl CoordRange {
    /// `RANGEISZERO`: the C guard against uninitialised ranges, kept for fidelity.
    fn is_zero(&self) -> bool {
        self.max == 0.0 && self.min == 0.0
    }
}

/// The longitude range of stored points.
const WGS84_LONG: CoordRange = CoordRange {
    min: GEO_LONG_MIN,
    max: GEO_LONG_MAX,
};
/// The latitude range of stored points.
const WGS84_LAT: CoordRange = CoordRange {
    min: GEO_LAT_MIN,
    max: GEO_LAT_MAX,
};
/// The longitude range of standard geohashes (the same as the stored one).
const STANDARD_LONG: CoordRange = CoordRange {
    min: -180.0,
    max: 180.0,
};
/// The latitude range of standard geohashes.
const STANDARD_LAT: CoordRange = CoordRange {
    min: -90.0,
    max: 90.0,
};

/// The cell a geohash stands for.
#[derive(Clone, Copy, Debug)]
struct Area {
    longitude: CoordRange,
    latitude: CoordRange,
}

/// The eight cells around a geohash, at the same step.
#[derive(Clone, Copy, Debug)]
struct Neighbors {
    north: HashBits,
    east: HashBits,
    west: HashBits,
    south: HashBits,
    north_east: HashBits,
    south_east: HashBits,
    north_west: HashBits,
    south_west: HashBits,
}

/// Interleaves the low 32 bits of `x` (even positions) and `y` (odd positions).
fn interleave64(xlo: u32, ylo: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let mut x = u64::from(xlo);
    let mut y = u64::from(ylo);
    for (&s, &b) in S.iter().zip(B.iter()).rev() {
        x = (x | (x << s)) & b;
        y = (y | (y << s)) & b;
    }
    x | (y << 1)
}

/// Reverses [`interleave64`]: even bits to the low half, odd bits to the high half.
fn deinterleave64(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
        0x00000000FFFFFFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let mut x = interleaved;
    let mut y = interleaved >> 1;
    for (&s, &b) in S.iter().zip(B.iter()) {
        x = (x | (x >> s)) & b;
        y = (y | (y >> s)) & b;
    }
    x | (y << 32)
}

/// `2^step` as a double, the fixed-point scale of a step.
fn step_scale(step: u8) -> f64 {
    (1u64 << step.min(63)) as f64
}

/// `geohashEncode`: the cell of `step` bits per axis holding the position, with both offsets
/// truncated like C's `double` to `uint32_t` conversion. `None` where C returns 0, and for NaN
/// (undefined behaviour in C, rejected by every command before it gets here).
fn geohash_encode(
    long_range: CoordRange,
    lat_range: CoordRange,
    longitude: f64,
    latitude: f64,
    step: u8,
) -> Option<HashBits> {
    if step > 32 || step == 0 || lat_range.is_zero() || long_range.is_zero() {
        return None;
    }
    // `contains` is false for NaN, so NaN is refused here too.
    if !(GEO_LONG_MIN..=GEO_LONG_MAX).contains(&longitude)
        || !(GEO_LAT_MIN..=GEO_LAT_MAX).contains(&latitude)
    {
        return None;
    }
    if !(lat_range.min..=lat_range.max).contains(&latitude)
        || !(long_range.min..=long_range.max).contains(&longitude)
    {
        return None;
    }
    let mut lat_offset = (latitude - lat_range.min) / (lat_range.max - lat_range.min);
    let mut long_offset = (longitude - long_range.min) / (long_range.max - long_range.min);
    lat_offset *= step_scale(step);
    long_offset *= step_scale(step);
    Some(HashBits {
        bits: interleave64(double_to_u32(lat_offset), double_to_u32(long_offset)),
        step,
    })
}

/// C's `(uint32_t)x` as x86-64 gcc emits it (a 64-bit truncating conversion, low half kept),
/// for the non-negative offsets the encoder produces (at most 2^32).
fn double_to_u32(x: f64) -> u32 {
    cvttsd2si(x) as u32
}

/// x86-64 `cvttsd2si` (64-bit): truncation toward zero, or `i64::MIN` for NaN and anything
/// outside the `i64` range.
fn cvttsd2si(x: f64) -> i64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if x.is_nan() || !(-TWO_63..TWO_63).contains(&x) {
        i64::MIN
    } else {
        x as i64
    }
}

/// glibc `llrint` on x86-64: round half to even, `i64::MIN` for NaN or out-of-range results.
fn llrint(x: f64) -> i64 {
    cvttsd2si(x.round_ties_even())
}

/// `geohashDecode`: the cell a hash stands for. The `+ 1` wraps in 32 bits as in C, which
/// matters only for the all-ones halves of arbitrary scores.
fn geohash_decode(long_range: CoordRange, lat_range: CoordRange, hash: HashBits) -> Option<Area> {
    if hash.is_zero() || lat_range.is_zero() || long_range.is_zero() {
        return None;
    }
    let hash_sep = deinterleave64(hash.bits);
    let lat_scale = lat_range.max - lat_range.min;
    let long_scale = long_range.max - long_range.min;
    let ilato = hash_sep as u32;
    let ilono = (hash_sep >> 32) as u32;
    let scale = step_scale(hash.step);
    let corner =
        |range: CoordRange, cell: u32, size: f64| range.min + (f64::from(cell) / scale) * size;
    Some(Area {
        latitude: CoordRange {
            min: corner(lat_range, ilato, lat_scale),
            max: corner(lat_range, ilato.wrapping_add(1), lat_scale),
        },
        longitude: CoordRange {
            min: corner(long_range, ilono, long_scale),
            max: corner(long_range, ilono.wrapping_add(1), long_scale),
        },
    })
}

/// `geohashDecodeAreaToLongLat`: the centre of a cell, clamped to the storable limits.
fn area_center_clamped(area: Area) -> (f64, f64) {
    let lon = ((area.longitude.min + area.longitude.max) / 2.0).clamp(GEO_LONG_MIN, GEO_LONG_MAX);
    let lat = ((area.latitude.min + area.latitude.max) / 2.0).clamp(GEO_LAT_MIN, GEO_LAT_MAX);
    (lon, lat)
}

/// `0x5555…` or `0xaaaa…` shifted right by `64 - 2 * step`: the mask of one axis' bits.
fn axis_mask(pattern: u64, step: u8) -> u64 {
    let shift = 64u32.saturating_sub(2 * u32::from(step));
    pattern.checked_shr(shift).unwrap_or(0)
}

/// `geohash_move_x`: the cell `d` (+1 east, -1 west) steps along the longitude bits (odd
/// positions), wrapping around the antimeridian.
fn move_x(hash: HashBits, d: i8) -> HashBits {
    move_axis(hash, d, 0xaaaaaaaaaaaaaaaa, 0x5555555555555555)
}

/// `geohash_move_y`: the cell `d` (+1 north, -1 south) steps along the latitude bits (even
/// positions), wrapping from one latitude limit to the other.
fn move_y(hash: HashBits, d: i8) -> HashBits {
    move_axis(hash, d, 0x5555555555555555, 0xaaaaaaaaaaaaaaaa)
}

/// Adds ±1 to the bits selected by `moving`, carrying through the `other` axis' positions by
/// filling them with ones first (the C trick), and keeps the other axis as it was.
fn move_axis(hash: HashBits, d: i8, moving: u64, other: u64) -> HashBits {
    if d == 0 {
        return hash;
    }
    let mut x = hash.bits & moving;
    let y = hash.bits & other;
    let zz = axis_mask(other, hash.step);
    if d > 0 {
        x = x.wrapping_add(zz.wrapping_add(1));
    } else {
        x |= zz;
        x = x.wrapping_sub(zz.wrapping_add(1));
    }
    x &= axis_mask(moving, hash.step);
    HashBits {
        bits: x | y,
        step: hash.step,
    }
}

/// `geohashNeighbors`: the eight surrounding cells.
fn neighbors(hash: HashBits) -> Neighbors {
    let at = |dx: i8, dy: i8| move_y(move_x(hash, dx), dy);
    Neighbors {
        north: at(0, 1),
        east: at(1, 0),
        west: at(-1, 0),
        south: at(0, -1),
        north_east: at(1, 1),
        south_east: at(1, -1),
        north_west: at(-1, 1),
        south_west: at(-1, -1),
    }
}

// ---------------------------------------------------------------------------------------------
// geohash_helper.c
// ---------------------------------------------------------------------------------------------

/// Degrees to radians as the C `deg_rad` (a multiplication, not `to_radians`).
fn deg_rad(ang: f64) -> f64 {
    ang * D_R
}

/// Radians to degrees as the C `rad_deg` (a division by `D_R`).
fn rad_deg(ang: f64) -> f64 {
    ang / D_R
}

/// `geohashGetLatDistance`: the meters between two latitudes on a meridian.
fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// `geohashAlign52Bits`: a hash shifted to the 52-bit score scale.
fn align_52_bits(hash: HashBits) -> u64 {
    let shift = 52u32.saturating_sub(2 * u32::from(hash.step));
    hash.bits.checked_shl(shift).unwrap_or(0)
}

/// `scoresOfGeoHashBox`: every score whose top `2 * step` bits are the hash's, as
/// `[hash, hash + 1)` aligned to 52 bits.
fn scores_of_box(hash: HashBits) -> (u64, u64) {
    let min = align_52_bits(hash);
    let max = align_52_bits(HashBits {
        bits: hash.bits.wrapping_add(1),
        step: hash.step,
    });
    (min, max)
}

/// The search area's meters north-south and east-west of the centre (`height`, `width` in
/// `geohashBoundingBox`).
fn half_extents_m(shape: &Shape) -> (f64, f64) {
    match shape.geo() {
        GeoShape::Circle { radius_m } => (radius_m, radius_m),
        GeoShape::Rect {
            width,
            height,
            unit,
        } => (unit * (height / 2.0), unit * (width / 2.0)),
    }
}

/// `geohashBoundingBox`: `[min_lon, min_lat, max_lon, max_lat]` of the search area, taking the
/// longitude span at the latitude edge nearer the pole (the wider one).
fn bounding_box(lon: f64, lat: f64, shape: &Shape) -> [f64; 4] {
    let (height, width) = half_extents_m(shape);
    let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
    let long_delta_top = rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat + lat_delta).cos());
    let long_delta_bottom =
        rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat - lat_delta).cos());
    let long_delta = if lat < 0.0 {
        long_delta_bottom
    } else {
        long_delta_top
    };
    [
        lon - long_delta,
        lat - lat_delta,
        lon + long_delta,
        lat + lat_delta,
    ]
}

/// The radius the step is estimated from: the radius, or a box's half diagonal, in meters
/// (the unit applied last, as in C).
fn covering_radius_m(shape: &Shape) -> f64 {
    match shape.geo() {
        GeoShape::Circle { radius_m } => radius_m,
        GeoShape::Rect {
            width,
            height,
            unit,
        } => ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt() * unit,
    }
}

/// The centre cell and neighbours a search scans (`GeoHashRadius`).
struct SearchAreas {
    hash: HashBits,
    neighbors: Neighbors,
}

/// Encodes the centre at `step` and returns its cell, neighbours and area.
fn cells_at(lon: f64, lat: f64, step: u8) -> Option<(HashBits, Neighbors, Area)> {
    let hash = geohash_encode(WGS84_LONG, WGS84_LAT, lon, lat, step)?;
    let area = geohash_decode(WGS84_LONG, WGS84_LAT, hash)?;
    Some((hash, neighbors(hash), area))
}

/// Whether the estimated step leaves part of the bounding box beyond the direct neighbours, in
/// which case Redis goes one step coarser.
fn neighbours_too_small(neighbors: &Neighbors, bounds: &[f64; 4]) -> bool {
    let [min_lon, min_lat, max_lon, max_lat] = *bounds;
    let cell = |h: HashBits| geohash_decode(WGS84_LONG, WGS84_LAT, h);
    let (Some(north), Some(south), Some(east), Some(west)) = (
        cell(neighbors.north),
        cell(neighbors.south),
        cell(neighbors.east),
        cell(neighbors.west),
    ) else {
        return false;
    };
    north.latitude.max < max_lat
        || south.latitude.min > min_lat
        || east.longitude.max < max_lon
        || west.longitude.min > min_lon
}

/// Clears (`GZERO`) the neighbours on each side where the centre cell already reaches past the
/// bounding box, so they are not scanned (the 7.0 pruning; only from step 2 on).
fn prune_neighbours(neighbors: &mut Neighbors, area: &Area, bounds: &[f64; 4]) {
    let [min_lon, min_lat, max_lon, max_lat] = *bounds;
    let n = neighbors;
    if area.latitude.min < min_lat {
        n.south = HashBits::ZERO;
        n.south_west = HashBits::ZERO;
        n.south_east = HashBits::ZERO;
    }
    if area.latitude.max > max_lat {
        n.north = HashBits::ZERO;
        n.north_east = HashBits::ZERO;
        n.north_west = HashBits::ZERO;
    }
    if area.longitude.min < min_lon {
        n.west = HashBits::ZERO;
        n.south_west = HashBits::ZERO;
        n.north_west = HashBits::ZERO;
    }
    if area.longitude.max > max_lon {
        n.east = HashBits::ZERO;
        n.south_east = HashBits::ZERO;
        n.north_east = HashBits::ZERO;
    }
}

/// `geohashCalculateAreasByShapeWGS84`: the nine (or fewer) cells covering the search area.
fn calculate_areas_by_shape(lon: f64, lat: f64, shape: &Shape) -> Option<SearchAreas> {
    let bounds = bounding_box(lon, lat, shape);
    let mut steps = estimate_steps_by_radius(covering_radius_m(shape), lat);
    let (mut hash, mut nb, mut area) = cells_at(lon, lat, steps)?;
    if steps > 1 && neighbours_too_small(&nb, &bounds) {
        steps -= 1;
        (hash, nb, area) = cells_at(lon, lat, steps)?;
    }
    if steps >= 2 {
        prune_neighbours(&mut nb, &area, &bounds);
    }
    Some(SearchAreas {
        hash,
        neighbors: nb,
    })
}

/// `geohashGetDistanceIfInRectangle`: the distance to a point within half the width east-west
/// (measured along the point's parallel) and half the height north-south of the centre.
fn distance_if_in_rectangle(
    width_m: f64,
    height_m: f64,
    x1: f64,
    y1: f64,
    x2: f64,
    y2: f64,
) -> Option<f64> {
    // The latitude test is the cheaper one, so it goes first (as in C; the result is the same).
    if lat_distance(y2, y1) > height_m / 2.0 {
        return None;
    }
    if distance(x2, y2, x1, y2) > width_m / 2.0 {
        return None;
    }
    Some(distance(x1, y1, x2, y2))
}

/// C's `%f`: six decimals, exact decimal expansion rounded half to even (as glibc does).
fn c_format_f(x: f64) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    format!("{x:.6}")
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis's documentation example (GEOADD Sicily …), values checked against redis-server
    /// 7.0.15.
    const PALERMO: (f64, f64) = (13.361389, 38.115556);
    const CATANIA: (f64, f64) = (15.087269, 37.502669);

    #[test]
    fn encodes_known_scores() {
        assert_eq!(encode(PALERMO.0, PALERMO.1), Some(3479099956230698));
        assert_eq!(encode(CATANIA.0, CATANIA.1), Some(3479447370796909));
    }

    #[test]
    fn refuses_out_of_range_and_nan() {
        assert_eq!(encode(180.0000001, 0.0), None);
        assert_eq!(encode(0.0, 85.05112879), None);
        assert_eq!(encode(f64::NAN, 0.0), None);
        assert_eq!(encode(0.0, f64::INFINITY), None);
        assert!(encode(180.0, GEO_LAT_MAX).is_some());
        assert!(encode(-180.0, GEO_LAT_MIN).is_some());
    }

    #[test]
    fn limits_carry_past_52_bits() {
        // At exactly 180 the longitude offset is 2^26, which lands in bit 53.
        let bits = encode(180.0, 0.0).unwrap_or(0);
        assert!(bits >= 1 << 53);
    }

    #[test]
    fn decodes_known_positions() {
        let (lon, lat) = decode(3479099956230698);
        assert_eq!(format_coord(lon), "13.36138933897018433");
        assert_eq!(format_coord(lat), "38.11555639549629859");
    }

    /// The corners and the antimeridian, as redis-server 7.0.15 stores and reports them.
    #[test]
    fn limits_match_redis() {
        let cases = [
            (
                180.0,
                GEO_LAT_MAX,
                13510798882111488u64,
                "180",
                "85.0511287799999991",
                "bp05b5048p0",
            ),
            (
                -180.0,
                GEO_LAT_MIN,
                0,
                "-179.99999731779098511",
                "-85.05112751263942528",
                "00bh0hbj200",
            ),
            (
                180.0,
                0.0,
                10133099161583616,
                "180",
                "0.00000126736058093",
                "80000000000",
            ),
        ];
        for (lon, lat, score, plon, plat, hash) in cases {
            assert_eq!(encode(lon, lat), Some(score));
            let (dlon, dlat) = decode_score(score as f64);
            assert_eq!(
                (format_coord(dlon).as_str(), format_coord(dlat).as_str()),
                (plon, plat)
            );
            assert_eq!(geohash_string(dlon, dlat), hash);
        }
    }

    #[test]
    fn decode_round_trips_within_a_cell() {
        let (lon, lat) = decode(encode(-122.27652, 37.805186).unwrap_or(0));
        assert!((lon + 122.27652).abs() < 1e-5 && (lat - 37.805186).abs() < 1e-5);
    }

    #[test]
    fn decodes_arbitrary_scores_without_panicking() {
        for s in [
            -1.0,
            -1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1e19,
            1.8446744073709552e19,
            u64::MAX as f64,
        ] {
            let (lon, lat) = decode_score(s);
            assert!((GEO_LONG_MIN..=GEO_LONG_MAX).contains(&lon));
            assert!((GEO_LAT_MIN..=GEO_LAT_MAX).contains(&lat));
            assert_eq!(geohash_of_score(s).len(), 11);
        }
        assert_eq!(score_to_bits(-1.0), u64::MAX);
        assert_eq!(score_to_bits(f64::NAN), 1 << 63);
        assert_eq!(score_to_bits(f64::INFINITY), 0);
        assert_eq!(score_to_bits(1e19), 10_000_000_000_000_000_000);
    }

    #[test]
    fn geohash_strings() {
        let (lon, lat) = decode(3479099956230698);
        assert_eq!(geohash_string(lon, lat), "sqc8b49rny0");
        let (lon, lat) = decode(3479447370796909);
        assert_eq!(geohash_string(lon, lat), "sqdtr74hyu0");
        assert_eq!(geohash_string(f64::NAN, 0.0), "00000000000");
    }

    #[test]
    fn distances() {
        let p = decode(3479099956230698);
        let c = decode(3479447370796909);
        let d = distance(p.0, p.1, c.0, c.1);
        assert_eq!(format_distance(d), "166274.1516");
        assert_eq!(format_distance(d / 1000.0), "166.2742");
        assert_eq!(format_distance(d / 1609.34), "103.3182");
        assert_eq!(format_distance(0.0), "0.0000");
        assert_eq!(format_distance(f64::NAN), "-922337203685477.5808");
        // Same longitude: the meridian shortcut.
        assert_eq!(distance(10.0, 0.0, 10.0, 1.0), EARTH_RADIUS_IN_METERS * D_R);
    }

    #[test]
    fn units() {
        assert_eq!(unit_factor(b"M"), Some(1.0));
        assert_eq!(unit_factor(b"kM"), Some(1000.0));
        assert_eq!(unit_factor(b"ft"), Some(0.3048));
        assert_eq!(unit_factor(b"MI"), Some(1609.34));
        assert_eq!(unit_factor(b"km\0x"), Some(1000.0));
        assert_eq!(unit_factor(b"kms"), None);
        assert_eq!(unit_factor(b""), None);
    }

    #[test]
    fn error_text() {
        assert_eq!(
            invalid_lonlat_error(200.0, -91.5),
            "ERR invalid longitude,latitude pair 200.000000,-91.500000"
        );
        assert_eq!(
            invalid_lonlat_error(f64::INFINITY, 0.1234565),
            "ERR invalid longitude,latitude pair inf,0.123456"
        );
    }

    #[test]
    fn coordinate_formatting() {
        assert_eq!(format_coord(1.5), "1.5");
        assert_eq!(format_coord(-0.0), "0");
        assert_eq!(format_coord(-1e-20), "0");
        assert_eq!(format_coord(180.0), "180");
        assert_eq!(format_coord(3.0 * 2f64.powi(-18)), "0.00001144409179688");
    }

    #[test]
    fn step_estimation() {
        assert_eq!(estimate_steps_by_radius(0.0, 0.0), 26);
        assert_eq!(estimate_steps_by_radius(1.0, 0.0), 24);
        assert_eq!(estimate_steps_by_radius(1.0, 70.0), 23);
        assert_eq!(estimate_steps_by_radius(1.0, -85.0), 22);
        assert_eq!(estimate_steps_by_radius(5_000_000.0, 0.0), 2);
        assert_eq!(estimate_steps_by_radius(1e10, 0.0), 1);
        assert_eq!(estimate_steps_by_radius(-1.0, 0.0), 26);
        assert_eq!(estimate_steps_by_radius(f64::NAN, 0.0), 1);
        assert_eq!(estimate_steps_by_radius(f64::INFINITY, 0.0), 1);
        assert_eq!(estimate_steps_by_radius(5e-324, 0.0), 26);
    }

    /// Sicily: GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km finds both cities.
    #[test]
    fn radius_search_finds_the_documented_points() {
        let shape = Shape::Radius(200.0 * 1000.0);
        let ranges = search_ranges(15.0, 37.0, &shape);
        assert!(!ranges.is_empty() && ranges.len() <= 9);
        let mut found = Vec::new();
        for (name, score) in [
            ("Palermo", 3479099956230698u64),
            ("Catania", 3479447370796909),
        ] {
            let s = score as f64;
            if ranges.iter().any(|&r| range_contains(r, s)) {
                if let Some((_, _, d)) = score_in_shape(&shape, (15.0, 37.0), s) {
                    found.push((name, format_distance(d / 1000.0)));
                }
            }
        }
        found.sort();
        assert_eq!(
            found,
            vec![
                ("Catania", "56.4413".to_string()),
                ("Palermo", "190.4424".to_string())
            ]
        );
    }

    #[test]
    fn box_search_matches() {
        let shape = Shape::BoxInUnit {
            width: 400.0,
            height: 400.0,
            unit: 1000.0,
        };
        let p = decode(3479099956230698);
        let c = decode(3479447370796909);
        assert!(in_shape(&shape, (15.0, 37.0), p.0, p.1).is_some());
        assert!(in_shape(&shape, (15.0, 37.0), c.0, c.1).is_some());
        assert!(in_shape(
            &Shape::Box {
                width: 1000.0,
                height: 1000.0
            },
            (15.0, 37.0),
            c.0,
            c.1
        )
        .is_none());
    }

    #[test]
    fn ranges_are_well_formed_and_deduplicated() {
        for (lon, lat) in [
            (0.0, 0.0),
            (180.0, GEO_LAT_MAX),
            (-180.0, GEO_LAT_MIN),
            (-0.0, 85.0),
        ] {
            for r in [0.0, 1.0, 1e3, 1e6, 5e6, 2e7, 1e12, f64::INFINITY] {
                for shape in [
                    Shape::Radius(r),
                    Shape::Box {
                        width: r,
                        height: r / 3.0,
                    },
                ] {
                    let ranges = search_ranges(lon, lat, &shape);
                    assert!(!ranges.is_empty() && ranges.len() <= 9);
                    assert!(ranges.iter().all(|&(a, b)| a < b));
                    assert!(ranges.windows(2).all(|w| w[0] != w[1]));
                }
            }
        }
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let odd = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            0.0,
            1e308,
            -0.0,
            5e-324,
        ];
        for &a in &odd {
            for &b in &odd {
                for shape in [
                    Shape::Radius(a),
                    Shape::Box {
                        width: a,
                        height: b,
                    },
                    Shape::BoxInUnit {
                        width: b,
                        height: a,
                        unit: a,
                    },
                ] {
                    let _ = search_ranges(a, b, &shape);
                    let _ = search_ranges(10.0, 20.0, &shape);
                    let _ = in_shape(&shape, (a, b), b, a);
                }
                let _ = distance(a, b, b, a);
                let _ = format_distance(a * b);
                let _ = format_coord(a / b);
                let _ = geohash_string(a, b);
                let _ = invalid_lonlat_error(a, b);
            }
        }
        assert!(search_ranges(f64::NAN, 0.0, &Shape::Radius(1.0)).is_empty());
    }

    #[test]
    fn interleave_round_trip() {
        for (x, y) in [
            (0u32, 0u32),
            (1, 0),
            (0, 1),
            (0x3ffffff, 0x2aaaaaa),
            (u32::MAX, 7),
        ] {
            let v = deinterleave64(interleave64(x, y));
            assert_eq!((v as u32, (v >> 32) as u32), (x, y));
        }
    }

    #[test]
    fn neighbours_wrap_around_the_antimeridian() {
        let h = geohash_encode(WGS84_LONG, WGS84_LAT, 179.9, 0.0, 4).unwrap_or(HashBits::ZERO);
        let east = move_x(h, 1);
        let area = geohash_decode(WGS84_LONG, WGS84_LAT, east).map(|a| a.longitude.min);
        assert_eq!(area, Some(-180.0));
        assert_eq!(move_x(move_x(h, 1), -1), h);
        assert_eq!(move_y(move_y(h, -1), 1), h);
    }
}
