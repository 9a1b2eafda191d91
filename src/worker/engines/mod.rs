pub mod ltx;
pub mod preview;
