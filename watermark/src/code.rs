//! Payload channel code: 64-bit clip id + key id + CRC-16, convolutional K=7 rate 1/2
//! (the NASA/Voyager polynomials 171/133 octal), soft-decision Viterbi decoding.

use crate::key::Payload;

/// Information bits: 64 clip id + 8 key id + 16 CRC.
pub(crate) const INFO_BITS: usize = 88;
const K: usize = 7;
const TAIL: usize = K - 1;
/// Coded bits carried by the picture.
pub(crate) const CODED_BITS: usize = 2 * (INFO_BITS + TAIL);
const POLYS: [u32; 2] = [0o171, 0o133];

fn crc16(bytes: &[u8]) -> u16 {
    // CRC-16/CCITT-FALSE.
    let mut crc: u16 = 0xffff;
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

fn payload_bytes(p: &Payload) -> [u8; 9] {
    let mut b = [0u8; 9];
    b[..8].copy_from_slice(&p.clip_id.to_be_bytes());
    b[8] = p.key_id;
    b
}

pub(crate) fn info_bits(p: &Payload) -> Vec<u8> {
    let bytes = payload_bytes(p);
    let crc = crc16(&bytes);
    let mut all = bytes.to_vec();
    all.extend_from_slice(&crc.to_be_bytes());
    let mut bits = Vec::with_capacity(INFO_BITS);
    for byte in all {
        for i in (0..8).rev() {
            bits.push((byte >> i) & 1);
        }
    }
    bits
}

/// Parses information bits; `None` if the CRC does not match.
pub(crate) fn parse_info(bits: &[u8]) -> Option<Payload> {
    let mut bytes = [0u8; 11];
    for (i, chunk) in bits.chunks(8).take(11).enumerate() {
        bytes[i] = chunk.iter().fold(0u8, |acc, &b| (acc << 1) | b);
    }
    let crc = u16::from_be_bytes([bytes[9], bytes[10]]);
    if crc16(&bytes[..9]) != crc {
        return None;
    }
    Some(Payload {
        clip_id: u64::from_be_bytes(bytes[..8].try_into().ok()?),
        key_id: bytes[8],
    })
}

fn parity(x: u32) -> u8 {
    (x.count_ones() & 1) as u8
}

/// Convolutional encoding with a zero tail.
pub(crate) fn encode(info: &[u8]) -> Vec<u8> {
    let mut state: u32 = 0;
    let mut out = Vec::with_capacity(2 * (info.len() + TAIL));
    for &b in info.iter().chain(std::iter::repeat_n(&0u8, TAIL)) {
        state = ((state << 1) | b as u32) & 0x7f;
        for p in POLYS {
            out.push(parity(state & p));
        }
    }
    out
}

/// Soft-decision Viterbi. `soft[i] > 0` means coded bit i is more likely 1.
pub(crate) fn viterbi(soft: &[f64]) -> Vec<u8> {
    let steps = soft.len() / 2;
    const NS: usize = 1 << (K - 1);
    let mut metric = [f64::NEG_INFINITY; NS];
    metric[0] = 0.0;
    let mut back: Vec<[u8; NS]> = Vec::with_capacity(steps);
    for t in 0..steps {
        let mut next = [f64::NEG_INFINITY; NS];
        let mut choice = [0u8; NS];
        for (s, &m) in metric.iter().enumerate() {
            if m == f64::NEG_INFINITY {
                continue;
            }
            for b in 0..2u32 {
                let full = ((s as u32) << 1) | b;
                let ns = (full & (NS as u32 - 1)) as usize;
                let mut gain = 0.0;
                for (j, p) in POLYS.iter().enumerate() {
                    let c = parity(full & p);
                    let v = soft[2 * t + j];
                    gain += if c == 1 { v } else { -v };
                }
                let cand = m + gain;
                if cand > next[ns] {
                    next[ns] = cand;
                    // Remember the dropped (oldest) state bit to walk back.
                    choice[ns] = ((s >> (K - 2)) & 1) as u8;
                }
            }
        }
        metric = next;
        back.push(choice);
    }
    // Zero tail: end in state 0.
    let mut state = 0usize;
    let mut bits = vec![0u8; steps];
    for t in (0..steps).rev() {
        bits[t] = (state & 1) as u8;
        let old = back[t][state] as usize;
        state = (state >> 1) | (old << (K - 2));
    }
    bits.truncate(steps.saturating_sub(TAIL));
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_errors() {
        let p = Payload {
            clip_id: 0xdead_beef_0123_4567,
            key_id: 42,
        };
        let info = info_bits(&p);
        assert_eq!(info.len(), INFO_BITS);
        let coded = encode(&info);
        assert_eq!(coded.len(), CODED_BITS);
        let mut soft: Vec<f64> = coded
            .iter()
            .map(|&c| if c == 1 { 1.0 } else { -1.0 })
            .collect();
        // Flip a scattered 8% of coded bits.
        for i in (0..soft.len()).step_by(13) {
            soft[i] = -soft[i];
        }
        let dec = viterbi(&soft);
        assert_eq!(dec, info);
        assert_eq!(parse_info(&dec), Some(p));
        let mut bad = dec.clone();
        bad[3] ^= 1;
        assert_eq!(parse_info(&bad), None);
    }
}
