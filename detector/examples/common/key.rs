//! The watermark key in a hex key file, as the lab probes take it.

use hallmark_watermark::WatermarkKey;

/// The key in `path` (hex, such as `$HALLMARK_HOME/keys/watermark.key`).
pub fn key_file(path: &str) -> WatermarkKey {
    let hex = std::fs::read_to_string(path).expect("key file");
    let hex = hex.trim();
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    WatermarkKey::from_bytes(&bytes).expect("key")
}
