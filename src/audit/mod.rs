//! Audit tools over the archive. `verify` checks that it is complete and untampered: [`facts`]
//! reads what each file says about itself, [`verify`] checks it (pure), `cmd::verify` walks the
//! archive and reports. `snapshot --as-of` and `restore` share the table's state at an instant:
//! [`state`] computes it in bounded memory with the rule of [`snapshot`], [`coverage`] says from
//! when the archive can answer, [`snapshot_out`] writes it. `docs/AUDIT.md` says what this proves
//! and what it cannot.

pub mod coverage;
pub mod facts;
pub mod history;
pub mod snapshot;
pub mod snapshot_out;
pub mod state;
pub mod verify;
