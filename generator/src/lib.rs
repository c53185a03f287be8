//! Prompt → frames + sound → a clip handed to the signer, so that it leaves sealed.
//!
//! Filled by the generator issue (`hallmark generate`).
