//! Switchboard's log in the browser console: a small `tracing` subscriber
//! that prints the library's own events at or above a level (JS option
//! `log`, or [`log_to_console`]). Nothing is logged unless asked.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Prints Switchboard's events at `level` and above to the browser console
/// (`console.log`). The first call wins; later ones change nothing.
pub fn log_to_console(level: Level) {
    let _ = tracing::subscriber::set_global_default(Console { max: level });
}

struct Console {
    max: Level,
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl Subscriber for Console {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= self.max && meta.target().starts_with("switchboard")
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut line = format!("{} {}:", meta.level(), meta.target());
        event.record(&mut Fields(&mut line));
        web_sys::console::log_1(&line.into());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
