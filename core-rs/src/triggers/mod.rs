//! The trigger index: which registered patterns match an event name or MQTT topic.
//!
//! Patterns come in two syntaxes, chosen per index ([`Syntax`]):
//!
//! - [`Syntax::Event`]: dot-separated event names, AMQP-topic style. `*` matches exactly one
//!   segment, `#` zero or more (`order.#` matches `order`, `order.paid` and `order.paid.late`).
//! - [`Syntax::Mqtt`]: `/`-separated topics, MQTT 3.1.1/5 style. `+` matches one level (possibly
//!   empty), `#` the rest, only as the last level (`sport/#` also matches `sport`); topics whose
//!   first level starts with `$` are not matched by a leading wildcard.
//!
//! The index is a trie over segments, so matching a name costs time proportional to its segments
//! (and to the wildcards met on the way), not to the number of patterns.

mod index;
mod pattern;

pub use index::TriggerIndex;
pub use pattern::{check_name, parse_pattern, Segment, Syntax};
