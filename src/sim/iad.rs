//! iad simulator
