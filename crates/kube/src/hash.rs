//! Stable, dependency-free hashes: revision fingerprints and the values
//! Flagger draws at random (the pod template's `flagger-id`, session
//! cookies), derived here so the same input gives the same objects.

/// FNV-1a, 64 bits.
pub fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64 ^ seed;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A 16-hex-digit fingerprint of `text`.
pub fn fingerprint(text: &str) -> String {
    format!("{:016x}", fnv1a(text.as_bytes(), 0))
}

/// A version-4-shaped UUID derived from `text` (Flagger's `flagger-id`
/// format).
pub fn uuid(text: &str) -> String {
    let high = fnv1a(text.as_bytes(), 0).to_be_bytes();
    let low = fnv1a(text.as_bytes(), 0x9e37_79b9_7f4a_7c15).to_be_bytes();
    let mut bytes = [0_u8; 16];
    bytes[..8].copy_from_slice(&high);
    bytes[8..].copy_from_slice(&low);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Ten ASCII letters derived from `text` (Flagger's cookie value shape).
pub fn letters(text: &str) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut state = fnv1a(text.as_bytes(), 0);
    (0..10)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // The index is taken modulo the table's length, so it is in bounds.
            let index = usize::try_from((state >> 33) % LETTERS.len() as u64).unwrap_or(0);
            char::from(LETTERS.get(index).copied().unwrap_or(b'a'))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_the_version_4_shape() {
        let id = uuid("podinfo");
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(id, uuid("podinfo"));
        assert_ne!(id, uuid("podinfo2"));
    }

    #[test]
    fn letters_are_ten_letters() {
        let value = letters("test/podinfo");
        assert_eq!(value.len(), 10);
        assert!(value.chars().all(|c| c.is_ascii_alphabetic()));
        assert_ne!(value, letters("test/other"));
    }
}
