//! Redis Cluster's key slots (CRC16-XMODEM of the key or of its `{hash tag}`, modulo 16384),
//! to say which key of a cross-slot request lives on which slot.

/// The slot Redis Cluster assigns `key` to.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) & 0x3fff
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The error for keys that span slots: Redis's CROSSSLOT text, then where each key lives and
/// what to do about it.
pub fn cross_slot_error(keys: &[&[u8]]) -> Option<String> {
    let first = key_slot(keys.first()?);
    if keys.iter().all(|k| key_slot(k) == first) {
        return None;
    }
    let mut places: Vec<String> = Vec::new();
    for k in keys {
        let place = format!(
            "'{}' is in slot {}",
            String::from_utf8_lossy(k),
            key_slot(k)
        );
        if !places.contains(&place) {
            places.push(place);
        }
    }
    Some(format!(
        "CROSSSLOT Keys in request don't hash to the same slot ({}); give the model and its tensors one hash tag, e.g. {{user1}}model and {{user1}}in",
        places.join(", ")
    ))
}
