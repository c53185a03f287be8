//! The public drag-and-drop verification page and its API (`hallmark serve`).
//!
//! Filled by the web issue; it will serve `hallmark-detector` reports over axum.
