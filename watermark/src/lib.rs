//! The keyed invisible watermark: embed a clip identifier in picture and sound, and extract it.
//!
//! Filled by the watermark issue; the sealing pipeline (`hallmark-signer`) already has the
//! place where every decoded frame passes through before encoding.
