//! An RFC 6238 code generator independent of the server's (`totp-rs`):
//! RFC 4226 dynamic truncation over `ring`'s HMAC-SHA-1, with a hand-written
//! base32 decoder, checked against RFC 6238 Appendix B.

/// Decodes RFC 4648 base32 (padding optional, case-insensitive).
///
/// # Panics
/// On a character outside the alphabet.
pub fn base32_decode(s: &str) -> Vec<u8> {
    let mut bits: u64 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').chars() {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            other => panic!("not base32: {other:?}"),
        };
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

/// The 6-digit SHA-1 code of the 30-second step containing `unix`.
pub fn totp_at(secret: &[u8], unix: i64) -> String {
    use ring::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let counter = unix.div_euclid(30) as u64;
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    let offset = (mac[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    format!("{:06}", bin % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc6238_appendix_b() {
        let secret = b"12345678901234567890";
        for (t, code8) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(totp_at(secret, t), code8[2..], "t = {t}");
        }
        assert_eq!(
            base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            b"12345678901234567890"
        );
    }
}
