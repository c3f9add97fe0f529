//! Remote commands: parsing, the journal that makes their effects happen
//! once, the engine that schedules them, and one handler per command.

pub mod envelope;
pub mod journal;
