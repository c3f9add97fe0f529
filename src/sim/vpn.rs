//! vpn simulator
