//! AND-join readiness of the steps of one run.
//!
//! A non-entry step subscribes to event names and runs once every one of them has been emitted in
//! the run (the AND-join of the seed spec, §3.5). Entry steps subscribe to nothing: the run's input
//! starts them, so they are never reported here.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hash};

/// The steps that can be scheduled now, sorted by name (byte order, which is also Python's `str`
/// order).
///
/// `subscriptions` yields each step with the event names it subscribes to: a
/// `&HashMap<String, Vec<String>>`, a `BTreeMap`, or any iterator of `(step, events)` pairs. A step
/// is ready when it is not in `scheduled`, subscribes to at least one name, and every name it
/// subscribes to is in `emitted`. Subscribing to a name twice is the same as subscribing once.
///
/// Step names should be unique, as they are in a map. If a plain iterator lists a step more than
/// once, which listing decides is unspecified, but the step is returned at most once.
///
/// Returns the caller's own step values (for a `&HashMap<String, _>`, `&String`s), so nothing is
/// copied.
///
/// ```
/// use std::collections::{BTreeMap, HashSet};
/// use flowhost_core::readiness::ready_steps;
///
/// let subscriptions = BTreeMap::from([
///     ("fetch", vec![]),                      // entry step
///     ("resize", vec!["fetched"]),
///     ("publish", vec!["resized", "approved"]), // AND-join
/// ]);
/// let emitted = HashSet::from(["fetched", "resized"]);
/// let scheduled = HashSet::from(["fetch"]);
/// assert_eq!(ready_steps(&subscriptions, &emitted, &scheduled), [&"resize"]);
/// ```
pub fn ready_steps<Step, Events, Emitted, Scheduled, EmittedHasher, ScheduledHasher>(
    subscriptions: impl IntoIterator<Item = (Step, Events)>,
    emitted: &HashSet<Emitted, EmittedHasher>,
    scheduled: &HashSet<Scheduled, ScheduledHasher>,
) -> Vec<Step>
where
    Step: AsRef<str>,
    Events: IntoIterator,
    Events::Item: AsRef<str>,
    Emitted: Borrow<str> + Hash + Eq,
    Scheduled: Borrow<str> + Hash + Eq,
    EmittedHasher: BuildHasher,
    ScheduledHasher: BuildHasher,
{
    let mut ready: Vec<Step> = subscriptions
        .into_iter()
        .filter(|(step, _)| !scheduled.contains(step.as_ref()))
        .filter_map(|(step, events)| {
            let mut events = events.into_iter().peekable();
            // No subscriptions: an entry step.
            let ready =
                events.peek().is_some() && events.all(|event| emitted.contains(event.as_ref()));
            ready.then_some(step)
        })
        .collect();
    ready.sort_unstable_by(|left, right| left.as_ref().cmp(right.as_ref()));
    ready.dedup_by(|left, right| left.as_ref() == right.as_ref());
    ready
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};

    use super::ready_steps;

    /// `ready_steps` over `(step, events)` pairs, with `emitted` and `scheduled` as slices.
    fn ready<'flow>(
        subscriptions: &[(&'flow str, &[&str])],
        emitted: &[&str],
        scheduled: &[&str],
    ) -> Vec<&'flow str> {
        let emitted: HashSet<&str> = emitted.iter().copied().collect();
        let scheduled: HashSet<&str> = scheduled.iter().copied().collect();
        ready_steps(subscriptions.iter().copied(), &emitted, &scheduled)
    }

    const FAN_IN: &[(&str, &[&str])] = &[
        ("start", &[]),
        ("left", &["started"]),
        ("right", &["started"]),
        ("join", &["left.done", "right.done"]),
    ];

    #[test]
    fn empty_flow_has_no_ready_steps() {
        assert!(ready(&[], &[], &[]).is_empty());
        assert!(ready(&[], &["started"], &["start"]).is_empty());
    }

    #[test]
    fn nothing_emitted_means_nothing_ready() {
        assert!(ready(FAN_IN, &[], &[]).is_empty());
    }

    #[test]
    fn entry_steps_are_never_ready() {
        let everything = ["started", "left.done", "right.done"];
        assert_eq!(ready(FAN_IN, &everything, &[]), ["join", "left", "right"]);
        assert!(ready(&[("start", &[])], &everything, &[]).is_empty());
    }

    #[test]
    fn one_emitted_event_readies_its_subscribers_in_name_order() {
        assert_eq!(ready(FAN_IN, &["started"], &["start"]), ["left", "right"]);
    }

    #[test]
    fn partial_and_join_is_not_ready() {
        let scheduled = ["start", "left", "right"];
        assert!(ready(FAN_IN, &["started", "left.done"], &scheduled).is_empty());
        assert!(ready(FAN_IN, &["started", "right.done"], &scheduled).is_empty());
    }

    #[test]
    fn complete_and_join_is_ready() {
        let emitted = ["started", "left.done", "right.done"];
        assert_eq!(
            ready(FAN_IN, &emitted, &["start", "left", "right"]),
            ["join"]
        );
    }

    #[test]
    fn scheduled_steps_are_excluded() {
        let emitted = ["started", "left.done", "right.done"];
        assert_eq!(ready(FAN_IN, &emitted, &["left", "join"]), ["right"]);
        assert!(ready(FAN_IN, &emitted, &["start", "left", "right", "join"]).is_empty());
    }

    #[test]
    fn scheduled_names_outside_the_flow_are_ignored() {
        assert_eq!(
            ready(FAN_IN, &["started"], &["elsewhere"]),
            ["left", "right"]
        );
    }

    #[test]
    fn emitted_names_nobody_subscribes_to_are_ignored() {
        assert!(ready(FAN_IN, &["unrelated", "left.done"], &[]).is_empty());
    }

    #[test]
    fn duplicate_subscriptions_count_once() {
        let flow: &[(&str, &[&str])] = &[("twice", &["a", "a"]), ("mixed", &["a", "b", "a"])];
        assert_eq!(ready(flow, &["a"], &[]), ["twice"]);
        assert_eq!(ready(flow, &["a", "b"], &[]), ["mixed", "twice"]);
        assert!(ready(flow, &["b"], &[]).is_empty());
    }

    #[test]
    fn a_step_listed_twice_is_returned_once() {
        let flow: &[(&str, &[&str])] = &[("twice", &["a"]), ("other", &["a"]), ("twice", &["a"])];
        assert_eq!(ready(flow, &["a"], &[]), ["other", "twice"]);
        assert!(ready(flow, &["a"], &["twice", "other"]).is_empty());
    }

    #[test]
    fn names_sort_by_bytes() {
        let flow: &[(&str, &[&str])] =
            &[("b", &["e"]), ("B", &["e"]), ("é", &["e"]), ("a", &["e"])];
        assert_eq!(ready(flow, &["e"], &[]), ["B", "a", "b", "é"]);
    }

    #[test]
    fn accepts_owned_maps_and_sets() {
        let subscriptions: HashMap<String, Vec<String>> = HashMap::from([
            ("b".to_owned(), vec!["x".to_owned()]),
            ("a".to_owned(), vec!["x".to_owned(), "y".to_owned()]),
        ]);
        let emitted: HashSet<String> = HashSet::from(["x".to_owned()]);
        let scheduled: HashSet<String> = HashSet::new();
        assert_eq!(ready_steps(&subscriptions, &emitted, &scheduled), ["b"]);
        assert!(std::ptr::eq(
            ready_steps(&subscriptions, &emitted, &scheduled)[0],
            subscriptions.keys().find(|step| *step == "b").unwrap(),
        ));

        let ordered: BTreeMap<&str, Vec<&str>> =
            BTreeMap::from([("a", vec!["x"]), ("b", vec!["x"])]);
        assert_eq!(ready_steps(&ordered, &emitted, &scheduled), [&"a", &"b"]);
        assert_eq!(ready_steps(ordered, &emitted, &HashSet::from(["a"])), ["b"]);
    }
}
