//! Audit tools over the archive. `verify` checks that it is complete and untampered: [`facts`]
//! reads what each file says about itself, [`verify`] checks it (pure), `cmd::verify` walks the
//! archive and reports. `docs/AUDIT.md` says what this proves and what it cannot.

pub mod facts;
pub mod history;
pub mod snapshot;
pub mod verify;
