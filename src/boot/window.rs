//! The size of a real-mode guest's window of RAM: one number for minikvm (which gives each
//! real-mode vCPU this much) and for build.rs (which refuses a built-in flat guest larger than
//! it), which includes this file.

/// Bytes of RAM each real-mode vCPU owns (256 KiB), and the largest flat guest.
pub const WINDOW: usize = 0x40000;
