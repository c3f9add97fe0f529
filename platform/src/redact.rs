//! The thread that masks the secrets of finished commands in the database
//! (`db/redact.rs`), every `EVERY`: until then the API already serves them
//! masked (`http/api.rs`), and answers are masked before they are stored
//! (`ingest.rs`).

use crate::Shared;
use std::sync::Arc;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(2);
const BATCH: i64 = 500;

/// One pass: how many commands were marked.
pub fn pass(sh: &Shared) -> Result<usize, String> {
    let mut n = 0;
    loop {
        let rows = sh.db.commands_unredacted(BATCH)?;
        // The pass's commands in one transaction (not one disk sync each).
        let masked: Vec<(u64, Option<String>)> = rows.iter().map(|(id, body)| (*id, crate::secrets::mask_text(body))).collect();
        n += sh.db.commands_redact(&masked)?;
        if (rows.len() as i64) < BATCH {
            return Ok(n);
        }
    }
}

pub fn start(sh: Arc<Shared>) -> Result<(), String> {
    std::thread::Builder::new()
        .name("redact".into())
        .spawn(move || loop {
            if let Err(e) = pass(&sh) {
                log::error!("masking finished commands: {e}");
            }
            std::thread::sleep(EVERY);
        })
        .map(|_| ())
        .map_err(|e| format!("redact thread: {e}"))
}
