//! s20 simulator
