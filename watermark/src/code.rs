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

/// Fraction of coded bits whose hard decision (`soft > 0` = 1) disagrees with `info`
/// re-encoded.
fn coded_bit_errors(info: &[u8], soft: &[f64]) -> f64 {
    let errors = encode(info)
        .iter()
        .zip(soft)
        .filter(|(c, s)| (**c == 1) != (**s > 0.0))
        .count();
    errors as f64 / CODED_BITS as f64
}

/// The trellis step `t`'s gain for the branch whose register (newest bit lowest) is `full`:
/// the soft coded bits (positive = 1) agreeing with its two parities, less those disagreeing.
fn branch_gain(soft: &[f64], t: usize, full: u32) -> f64 {
    POLYS
        .iter()
        .enumerate()
        .map(|(j, &p)| {
            let v = soft[2 * t + j];
            if parity(full & p) == 1 {
                v
            } else {
                -v
            }
        })
        .sum()
}

/// The key id's bit at trellis step `t`, where `t` is one of its 8 steps.
fn key_id_bit(key_id: u8, t: usize) -> Option<u32> {
    (KEY_ID_AT..KEY_ID_AT + 8)
        .contains(&t)
        .then(|| u32::from((key_id >> (7 - (t - KEY_ID_AT))) & 1))
}

/// Paths the list Viterbi decoder keeps per state (see [`decode`]).
pub(crate) const LIST: usize = 16;
/// Paths tried when the key id is forced into the trellis (see [`decode`]).
pub(crate) const LIST_KNOWN_KEY: usize = 4;
/// Where the key id's 8 bits sit among the information bits (after the clip id).
const KEY_ID_AT: usize = 64;

/// The most likely info bits for these soft coded bits (positive = 1), zero-tailed trellis
/// (what [`decode`] tries first).
#[cfg(test)]
pub(crate) fn viterbi(soft: &[f64]) -> Vec<u8> {
    list_viterbi(soft, 1, None).swap_remove(0)
}

/// The `list` most likely info-bit sequences, best first (parallel list Viterbi: every
/// state keeps its `list` best paths; all end in state 0, the tail being zeros). With
/// `key_id`, only paths carrying that key id are considered.
pub(crate) fn list_viterbi(soft: &[f64], list: usize, key_id: Option<u8>) -> Vec<Vec<u8>> {
    let steps = soft.len() / 2;
    const NS: usize = 1 << (K - 1);
    let list = list.max(1);
    let mut metric: Vec<Vec<f64>> = vec![Vec::new(); NS];
    metric[0].push(0.0);
    // Per step and state, aligned with that state's metrics: (previous state, its rank).
    let mut back: Vec<Vec<Vec<(u8, u8)>>> = Vec::with_capacity(steps);
    let mut cand: Vec<Vec<(f64, u8, u8)>> = vec![Vec::new(); NS];
    for t in 0..steps {
        cand.iter_mut().for_each(Vec::clear);
        let forced = key_id.and_then(|id| key_id_bit(id, t));
        for (s, ms) in metric.iter().enumerate() {
            for b in 0..2u32 {
                if forced.is_some_and(|f| f != b) {
                    continue;
                }
                let full = ((s as u32) << 1) | b;
                let ns = (full & (NS as u32 - 1)) as usize;
                let gain = branch_gain(soft, t, full);
                for (r, &m) in ms.iter().enumerate() {
                    cand[ns].push((m + gain, s as u8, r as u8));
                }
            }
        }
        let mut step_back = Vec::with_capacity(NS);
        for (ns, c) in cand.iter_mut().enumerate() {
            c.sort_by(|a, b| b.0.total_cmp(&a.0));
            c.truncate(list);
            metric[ns] = c.iter().map(|x| x.0).collect();
            step_back.push(c.iter().map(|x| (x.1, x.2)).collect());
        }
        back.push(step_back);
    }
    (0..metric[0].len())
        .map(|rank| {
            let (mut state, mut r) = (0usize, rank);
            let mut bits = vec![0u8; steps];
            for t in (0..steps).rev() {
                bits[t] = (state & 1) as u8;
                let (ps, pr) = back[t][state][r];
                (state, r) = (ps as usize, pr as usize);
            }
            bits.truncate(steps.saturating_sub(TAIL));
            bits
        })
        .collect()
}

/// The chance that [`decode`] yields a payload from a reading of no mark at all (or of
/// another key's). The reading's chips carry the key's signs, independent fair coins, so
/// the reading is as likely as itself with the signs of any codeword's bits flipped, and
/// the decoder follows such a flip exactly (a path's metric under the flipped reading is
/// the metric of the path XOR the codeword's): every path it returns is uniform over the
/// information words. The best path passes the CRC with probability 2⁻¹⁶, each of the
/// [`LIST`] − 1 runners-up the CRC and the key id with 2⁻²⁴, each of the
/// [`LIST_KNOWN_KEY`] paths with the key id forced the CRC with 2⁻¹⁶: ≈ 7.7e-5 in all.
pub(crate) const CHANCE_DECODE_P: f64 =
    (1 + LIST_KNOWN_KEY) as f64 / 65536.0 + (LIST - 1) as f64 / 16_777_216.0;

/// Decodes a payload from soft coded bits: the most likely path if its CRC checks, else
/// the next of the [`LIST`] best paths whose CRC checks *and* whose key id is `key_id`
/// (the key that registered the mark), so a runner-up is accepted only past 16 + 8 check
/// bits (a wrong path passes with probability ≤ 15·2⁻²⁴ ≈ 1e-6).
///
/// If none does, a second chance: the key id is known (the key that registered the mark),
/// so its 8 bits are forced in the trellis and the first of the [`LIST_KNOWN_KEY`] best
/// such paths whose CRC checks is taken. Known bits in the middle of the trellis prune most
/// wrong paths near them (voice after Opus 32 kbit/s, 62 keys: payload 50 → 57), but
/// they check nothing any more, so here only the CRC does: a wrong path passes with
/// probability ≤ 4·2⁻¹⁶ ≈ 6e-5. A wrong payload thus comes out of a failed decode with
/// probability ≤ 2⁻¹⁶ + 15·2⁻²⁴ + 4·2⁻¹⁶ ≈ 8e-5 ([`CHANCE_DECODE_P`]), and a payload out
/// of no mark with the same.
///
/// Returns the payload and the coded-bit error estimate of the path it came from (the best
/// path when none checks).
pub(crate) fn decode(soft: &[f64], key_id: u8) -> (Option<Payload>, f64) {
    let paths = list_viterbi(soft, LIST, None);
    for (rank, info) in paths.iter().enumerate() {
        if let Some(p) = parse_info(info) {
            if rank == 0 || p.key_id == key_id {
                return (Some(p), coded_bit_errors(info, soft));
            }
        }
    }
    for info in list_viterbi(soft, LIST_KNOWN_KEY, Some(key_id)) {
        if let Some(p) = parse_info(&info) {
            return (Some(p), coded_bit_errors(&info, soft));
        }
    }
    let best = paths
        .first()
        .map_or(0.0, |info| coded_bit_errors(info, soft));
    (None, best)
}

/// The payload's coded bits as a detector read them (soft values, positive = 1) where the
/// blind decode found no payload: a candidate payload named from elsewhere (a clip the
/// manifest store holds content like) can still be tested against them.
#[derive(Debug, Clone, PartialEq)]
pub struct PayloadReading {
    soft: Vec<f64>,
}

/// Trellis steps the candidate test scores: the clip id's 64 information bits and the key
/// id's 8 after them (the CRC's and the tail's coded bits depend on the whole clip id, which
/// a 64-state trellis does not follow).
const TESTED_STEPS: usize = KEY_ID_AT + 8;
/// Bins of the candidate test's null distribution over the range of its score.
const NULL_BINS: f64 = 4000.0;

impl PayloadReading {
    pub(crate) fn new(soft: Vec<f64>) -> PayloadReading {
        PayloadReading { soft }
    }

    /// The blind decode ([`decode`]): the payload, if the CRC checks, and the coded-bit error
    /// estimate.
    pub(crate) fn decode(&self, key_id: u8) -> (Option<Payload>, f64) {
        decode(&self.soft, key_id)
    }

    /// The agreement of the reading with `candidate`'s coded bits over [`TESTED_STEPS`].
    fn score(&self, candidate: &Payload) -> f64 {
        let coded = encode(&info_bits(candidate));
        coded
            .iter()
            .zip(&self.soft)
            .take(2 * TESTED_STEPS)
            .map(|(&c, &s)| if c == 1 { s } else { -s })
            .sum()
    }

    /// For each candidate (carrying the key id of the key that registered the mark), an
    /// upper bound on the probability that a clip id *other than the one the mark carries*
    /// agrees with the reading at least as well: a p-value per candidate (multiply by the
    /// number of candidates tried for the family).
    ///
    /// Exact up to rounding, not a tail bound: clip ids are random (63 bits from the OS, the
    /// top bit the AI declaration), so the score of a clip id that is not the mark's is the
    /// score of a uniformly random path through the code's trellis, whose distribution a
    /// dynamic program over its 64 states gives; each step's gain is rounded up, so the
    /// tail is overestimated. The AI bit is not random: the larger tail of its two values
    /// is taken.
    pub fn p_values(&self, candidates: &[Payload]) -> Vec<f64> {
        let Some(key_id) = candidates.first().map(|c| c.key_id) else {
            return Vec::new();
        };
        let range: f64 = self.soft[..2 * TESTED_STEPS]
            .iter()
            .map(|v| v.abs())
            .sum::<f64>()
            .max(1e-12);
        let delta = range / NULL_BINS;
        // Scores in bins of `delta`, offset so that every reachable one is ≥ 0.
        let offset = (NULL_BINS as usize) + TESTED_STEPS + 1;
        let bins = 2 * offset + 1;
        const NS: usize = 1 << (K - 1);
        let tail_for = |first: u32| -> Vec<f64> {
            // dist[state][bin]: probability of the paths so far; span[state]: the bins
            // outside which its row is zero (rows start narrow and widen step by step, so
            // only the span is moved: the same additions in the same order as over the
            // whole row, which adds only zeros outside it).
            let mut dist = vec![0f64; NS * bins];
            let mut next = vec![0f64; NS * bins];
            let mut span = vec![(0usize, 0usize); NS];
            let mut next_span = vec![(0usize, 0usize); NS];
            dist[offset] = 1.0;
            span[0] = (offset, offset + 1);
            for t in 0..TESTED_STEPS {
                // `next` holds the step before last: zero what its spans cover.
                for (s, span) in next_span.iter_mut().enumerate() {
                    next[s * bins + span.0..s * bins + span.1].fill(0.0);
                    *span = (0, 0);
                }
                let forced = if t == 0 {
                    Some(first)
                } else {
                    key_id_bit(key_id, t)
                };
                let weight = if forced.is_some() { 1.0 } else { 0.5 };
                for s in 0..NS {
                    let (lo, hi) = span[s];
                    if lo == hi {
                        continue;
                    }
                    let row = &dist[s * bins + lo..s * bins + hi];
                    for b in 0..2u32 {
                        if forced.is_some_and(|f| f != b) {
                            continue;
                        }
                        let full = ((s as u32) << 1) | b;
                        let ns = (full & (NS as u32 - 1)) as usize;
                        // Rounded up: every path's binned score is at least its score.
                        let shift = (branch_gain(&self.soft, t, full) / delta).ceil() as isize;
                        let out = &mut next[ns * bins..(ns + 1) * bins];
                        let (to_lo, to_hi) = (lo as isize + shift, hi as isize + shift);
                        if to_lo >= 0 && to_hi <= bins as isize {
                            // The offset leaves room for every reachable score: no clamping.
                            let to = &mut out[to_lo as usize..to_hi as usize];
                            for (o, &x) in to.iter_mut().zip(row) {
                                *o += weight * x;
                            }
                        } else {
                            for (k, &x) in row.iter().enumerate() {
                                let to =
                                    (lo as isize + k as isize + shift).clamp(0, bins as isize - 1);
                                out[to as usize] += weight * x;
                            }
                        }
                        let (a, z) = (
                            to_lo.clamp(0, bins as isize - 1) as usize,
                            (to_hi.clamp(1, bins as isize)) as usize,
                        );
                        let merged = &mut next_span[ns];
                        *merged = if merged.0 == merged.1 {
                            (a, z)
                        } else {
                            (merged.0.min(a), merged.1.max(z))
                        };
                    }
                }
                std::mem::swap(&mut dist, &mut next);
                std::mem::swap(&mut span, &mut next_span);
            }
            // P(binned score ≥ bin k), summed over the end states, from the top down.
            let mut tail = vec![0f64; bins + 1];
            for k in (0..bins).rev() {
                let here: f64 = (0..NS).map(|s| dist[s * bins + k]).sum();
                tail[k] = tail[k + 1] + here;
            }
            tail
        };
        let tails = [tail_for(0), tail_for(1)];
        candidates
            .iter()
            .map(|c| {
                // The first bin whose scores are all ≥ the candidate's (its lower edge).
                let k = (self.score(c) / delta).floor() as isize + offset as isize;
                let k = k.clamp(0, bins as isize) as usize;
                tails[0][k].max(tails[1][k]).min(1.0)
            })
            .collect()
    }
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

    /// A seeded source of roughly N(0, 1) noise (the sum of 12 uniforms − 6: close enough
    /// for a test).
    fn gaussian(mut state: u64) -> impl FnMut() -> f64 {
        move || {
            (0..12)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 11) as f64 / (1u64 << 53) as f64
                })
                .sum::<f64>()
                - 6.0
        }
    }

    /// `coded` as ±1 soft bits with `sigma` times `noise` added to each.
    fn noisy(coded: &[u8], sigma: f64, noise: &mut impl FnMut() -> f64) -> Vec<f64> {
        coded
            .iter()
            .map(|&c| if c == 1 { 1.0 } else { -1.0 } + sigma * noise())
            .collect()
    }

    /// What `CHANCE_DECODE_P` rests on: a reading of no mark is as likely as itself with the
    /// signs of a codeword's bits flipped (the chips' keyed signs are fair coins), and the
    /// list decoder's every path then moves by that codeword's information word, so each
    /// is uniform and passes the checks by chance only. And on pure noise, payloads come
    /// out at about that rate.
    #[test]
    fn a_reading_of_no_mark_decodes_by_chance_only() {
        let mut gauss = gaussian(7);
        let mut bits = gaussian(8);
        for round in 0..20 {
            let soft: Vec<f64> = (0..CODED_BITS).map(|_| gauss()).collect();
            // A random information word; with the key id forced, one whose key id bits
            // are zero (so it keeps the forced paths' key id).
            let mut word: Vec<u8> = (0..INFO_BITS).map(|_| u8::from(bits() > 0.0)).collect();
            let forced = round % 2 == 1;
            if forced {
                word[KEY_ID_AT..KEY_ID_AT + 8]
                    .iter_mut()
                    .for_each(|b| *b = 0);
            }
            let flipped: Vec<f64> = soft
                .iter()
                .zip(encode(&word))
                .map(|(&s, c)| if c == 1 { -s } else { s })
                .collect();
            let (list, key) = if forced {
                (LIST_KNOWN_KEY, Some(0x5a))
            } else {
                (LIST, None)
            };
            let plain = list_viterbi(&soft, list, key);
            let moved = list_viterbi(&flipped, list, key);
            assert_eq!(plain.len(), moved.len());
            for (a, b) in plain.iter().zip(&moved) {
                let shifted: Vec<u8> = a.iter().zip(&word).map(|(x, w)| x ^ w).collect();
                assert_eq!(&shifted, b, "round {round}");
            }
        }
        // 6000 readings of pure noise: ≈ 0.46 payloads expected at CHANCE_DECODE_P
        // (7.7e-5); 5 or more has probability ≈ 1e-4 if the bound holds (20 000 readings,
        // 2026-12-05: 2 payloads, 1.5 expected).
        let trials = 6000;
        let decoded = (0..trials)
            .filter(|&i| {
                let soft: Vec<f64> = (0..CODED_BITS).map(|_| gauss()).collect();
                decode(&soft, (i % 256) as u8).0.is_some()
            })
            .count();
        println!(
            "{decoded} payloads from {trials} readings of noise (expected {:.1})",
            trials as f64 * CHANCE_DECODE_P
        );
        assert!(decoded <= 4, "{decoded} of {trials}");
    }

    /// At a noise level where the best path is often wrong, the list decoder recovers more
    /// payloads, never a wrong one, and takes a runner-up only with the right key id.
    #[test]
    fn list_decoding_recovers_more_and_checks_the_key_id() {
        let p = Payload {
            clip_id: 0x0123_4567_89ab_cdef,
            key_id: 7,
        };
        let coded = encode(&info_bits(&p));
        let mut gauss = gaussian(99);
        let (mut best_ok, mut list_ok, mut runner_up) = (0, 0, 0);
        for _ in 0..300 {
            let soft = noisy(&coded, 0.9, &mut gauss);
            let plain = parse_info(&viterbi(&soft));
            let (listed, _) = decode(&soft, p.key_id);
            let (other_key, _) = decode(&soft, p.key_id ^ 1);
            assert!(
                listed.is_none() || listed == Some(p),
                "wrong payload accepted"
            );
            assert!(plain.is_none() || plain == Some(p));
            // A runner-up needs the right key id; the best path does not.
            assert_eq!(
                other_key, plain,
                "a runner-up was taken for the wrong key id"
            );
            best_ok += usize::from(plain == Some(p));
            list_ok += usize::from(listed == Some(p));
            runner_up += usize::from(listed.is_some() && plain.is_none());
        }
        println!("best path {best_ok}/300, list {list_ok}/300");
        assert!(list_ok > best_ok, "best {best_ok}, list {list_ok}");
        assert!(runner_up > 0);
    }

    /// Forcing the known key id's bits into the trellis finds paths the free list misses,
    /// and those paths carry exactly that key id.
    #[test]
    fn forcing_the_key_id_recovers_more() {
        let p = Payload {
            clip_id: 0xfeed_0123_4567_89ab,
            key_id: 0xa5,
        };
        let coded = encode(&info_bits(&p));
        let mut gauss = gaussian(7);
        let (mut free, mut forced, mut decoded) = (0, 0, 0);
        for _ in 0..300 {
            let soft = noisy(&coded, 1.0, &mut gauss);
            let paths = list_viterbi(&soft, LIST_KNOWN_KEY, Some(p.key_id));
            assert!(paths
                .iter()
                .all(|i| i[KEY_ID_AT..KEY_ID_AT + 8] == info_bits(&p)[KEY_ID_AT..KEY_ID_AT + 8]));
            // What the free list alone accepts (the first stage of `decode`).
            free += usize::from(
                list_viterbi(&soft, LIST, None)
                    .iter()
                    .enumerate()
                    .find_map(|(r, i)| parse_info(i).filter(|q| r == 0 || q.key_id == p.key_id))
                    == Some(p),
            );
            forced += usize::from(paths.iter().any(|i| parse_info(i) == Some(p)));
            let (got, _) = decode(&soft, p.key_id);
            assert!(got.is_none() || got == Some(p), "wrong payload {got:?}");
            decoded += usize::from(got == Some(p));
        }
        println!("free list {free}/300, forced key id {forced}/300, decode {decoded}/300");
        assert!(
            decoded > free,
            "free list {free}, with the forced key id {decoded}"
        );
        assert!(decoded >= forced, "decode {decoded}, forced {forced}");
    }

    /// Clip ids as seals make them: 63 random bits and the AI declaration.
    fn random_payloads(n: usize, key_id: u8, seed: u64) -> Vec<Payload> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                Payload {
                    clip_id: (state ^ (state >> 29)) | Payload::AI_BIT,
                    key_id,
                }
            })
            .collect()
    }

    /// Where the blind decode finds nothing (bit SNR 0.67: coded BER ≈ 0.25), the mark's own
    /// clip id still stands out of the reading by ~1e-9, while clip ids it does not carry
    /// come out no better than chance would have them: at most a share α of 3000 at p ≤ α,
    /// with the mark present (they share its key id) and without one.
    #[test]
    fn a_candidate_payload_is_tested_against_a_reading_too_weak_to_decode() {
        let p = Payload {
            clip_id: 0x8123_4567_89ab_cdef,
            key_id: 7,
        };
        let coded = encode(&info_bits(&p));
        let mut gauss = gaussian(5);
        let mut true_p = Vec::new();
        for round in 0..6 {
            let soft = noisy(&coded, 1.5, &mut gauss);
            assert_eq!(decode(&soft, p.key_id).0, None, "round {round} decoded");
            let reading = PayloadReading::new(soft);
            true_p.push(reading.p_values(&[p])[0]);
        }
        true_p.sort_by(f64::total_cmp);
        assert!(true_p[3] < 1e-9, "{true_p:?}");
        for (what, sigma_mark) in [("marked", 1.5), ("unmarked", f64::INFINITY)] {
            let soft: Vec<f64> = if sigma_mark.is_finite() {
                noisy(&coded, sigma_mark, &mut gauss)
            } else {
                (0..CODED_BITS).map(|_| gauss()).collect()
            };
            let reading = PayloadReading::new(soft);
            let others = random_payloads(3000, p.key_id, 11 + what.len() as u64);
            let ps = reading.p_values(&others);
            for alpha in [0.01, 0.1, 0.5] {
                let share = ps.iter().filter(|&&x| x <= alpha).count() as f64 / ps.len() as f64;
                assert!(
                    share <= alpha * 1.15 + 0.004,
                    "{what}: {share} at p <= {alpha}"
                );
            }
            // Not absurdly conservative either: about half come out below 0.5.
            let half = ps.iter().filter(|&&x| x <= 0.5).count() as f64 / ps.len() as f64;
            assert!(half > 0.35, "{what}: {half}");
        }
    }

    /// The span-tracking dynamic program adds the same numbers in the same order as the
    /// reference: equal p-values, bit for bit, on marked and unmarked readings.
    #[test]
    fn p_values_equal_the_reference_bit_for_bit() {
        let p = Payload {
            clip_id: 0x8123_4567_89ab_cdef,
            key_id: 7,
        };
        let coded = encode(&info_bits(&p));
        let mut gauss = gaussian(9);
        for (round, sigma) in [0.5, 1.5, 3.0, f64::INFINITY].into_iter().enumerate() {
            let soft: Vec<f64> = if sigma.is_finite() {
                noisy(&coded, sigma, &mut gauss)
            } else {
                (0..CODED_BITS).map(|_| gauss()).collect()
            };
            let reading = PayloadReading::new(soft);
            let mut candidates = random_payloads(20, p.key_id, 3 + round as u64);
            candidates.push(p);
            let fast = reading.p_values(&candidates);
            let reference = p_values_reference(&reading, &candidates);
            assert_eq!(
                fast.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                reference.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "sigma {sigma}"
            );
        }
    }

    /// `PayloadReading::p_values` as first written: every bin of every row moved at every
    /// step. The faster form must give the same numbers, bit for bit.
    fn p_values_reference(reading: &PayloadReading, candidates: &[Payload]) -> Vec<f64> {
        let Some(key_id) = candidates.first().map(|c| c.key_id) else {
            return Vec::new();
        };
        let range: f64 = reading.soft[..2 * TESTED_STEPS]
            .iter()
            .map(|v| v.abs())
            .sum::<f64>()
            .max(1e-12);
        let delta = range / NULL_BINS;
        // Scores in bins of `delta`, offset so that every reachable one is ≥ 0.
        let offset = (NULL_BINS as usize) + TESTED_STEPS + 1;
        let bins = 2 * offset + 1;
        const NS: usize = 1 << (K - 1);
        let tail_for = |first: u32| -> Vec<f64> {
            // dist[state][bin]: probability of the paths so far.
            let mut dist = vec![0f64; NS * bins];
            let mut next = vec![0f64; NS * bins];
            dist[offset] = 1.0;
            for t in 0..TESTED_STEPS {
                next.iter_mut().for_each(|x| *x = 0.0);
                let forced = if t == 0 {
                    Some(first)
                } else {
                    key_id_bit(key_id, t)
                };
                let weight = if forced.is_some() { 1.0 } else { 0.5 };
                for s in 0..NS {
                    let row = &dist[s * bins..(s + 1) * bins];
                    if row.iter().all(|&x| x == 0.0) {
                        continue;
                    }
                    for b in 0..2u32 {
                        if forced.is_some_and(|f| f != b) {
                            continue;
                        }
                        let full = ((s as u32) << 1) | b;
                        let ns = (full & (NS as u32 - 1)) as usize;
                        // Rounded up: every path's binned score is at least its score.
                        let shift = (branch_gain(&reading.soft, t, full) / delta).ceil() as isize;
                        let out = &mut next[ns * bins..(ns + 1) * bins];
                        for (k, &x) in row.iter().enumerate() {
                            if x != 0.0 {
                                let to = (k as isize + shift).clamp(0, bins as isize - 1);
                                out[to as usize] += weight * x;
                            }
                        }
                    }
                }
                std::mem::swap(&mut dist, &mut next);
            }
            // P(binned score ≥ bin k), summed over the end states, from the top down.
            let mut tail = vec![0f64; bins + 1];
            for k in (0..bins).rev() {
                let here: f64 = (0..NS).map(|s| dist[s * bins + k]).sum();
                tail[k] = tail[k + 1] + here;
            }
            tail
        };
        let tails = [tail_for(0), tail_for(1)];
        candidates
            .iter()
            .map(|c| {
                // The first bin whose scores are all ≥ the candidate's (its lower edge).
                let k = (reading.score(c) / delta).floor() as isize + offset as isize;
                let k = k.clamp(0, bins as isize) as usize;
                tails[0][k].max(tails[1][k]).min(1.0)
            })
            .collect()
    }
}
