//! AND-join readiness of the steps of one run, and the steps that can never run.
//!
//! A non-entry step subscribes to event names and runs once every one of them has been emitted in
//! the run (the AND-join of the seed spec, §3.5). Entry steps subscribe to nothing: the run's input
//! starts them, so they are never reported here.
//!
//! [`step_progress`] also finds the steps a run will never reach (a branch not taken), so they are
//! skipped as soon as that is known rather than when the run has nothing left in flight.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::str::FromStr;

use crate::CoreError;

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

/// The status of a step scheduled in a run (the `status` column of `flowhost.steps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepStatus {
    /// Waiting for a worker, or for its next attempt.
    Queued,
    /// An attempt is running.
    Running,
    /// Waiting on an await: before it runs, or after it ran and before its emits count.
    Awaiting,
    /// Finished; what it emitted is in the run's emitted events.
    Completed,
    /// Failed for good; it emits nothing more.
    Failed,
    /// Never ran, and never will.
    Skipped,
}

impl StepStatus {
    /// The name stored in the database and passed from Python, e.g. `"queued"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Awaiting => "awaiting",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    /// Queued, running or awaiting: the step may still emit the events it declares.
    #[must_use]
    pub const fn is_in_flight(self) -> bool {
        matches!(self, Self::Queued | Self::Running | Self::Awaiting)
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for StepStatus {
    type Err = CoreError;

    fn from_str(status: &str) -> Result<Self, Self::Err> {
        match status {
            "queued" => Ok(Self::Queued),
            "running" => Ok(Self::Running),
            "awaiting" => Ok(Self::Awaiting),
            "completed" => Ok(Self::Completed),
            "failed" => Ok(Self::Failed),
            "skipped" => Ok(Self::Skipped),
            _ => Err(CoreError::InvalidArgument(format!(
                "a step status must be one of 'queued', 'running', 'awaiting', 'completed', \
                 'failed', 'skipped', not {status:?}"
            ))),
        }
    }
}

/// What one step of a flow declares: the events it waits for and those it may emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowStep<'flow, Name> {
    /// The step's name, unique in its flow.
    pub name: &'flow Name,
    /// The event names it subscribes to (AND-join); none for the entry step.
    pub subscribes: &'flow [Name],
    /// The event names it may emit (`emits=`); a step emits no other name.
    pub emits: &'flow [Name],
}

/// What a run should do next, from [`step_progress`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepProgress<'flow, Name> {
    /// The unscheduled steps whose subscriptions are all emitted: schedule them. Sorted by name.
    pub ready: Vec<&'flow Name>,
    /// The unscheduled steps that can never run: mark them skipped. Sorted by name.
    pub skipped: Vec<&'flow Name>,
    /// Nothing is in flight, nothing is ready and no entry step waits to start: the run is over.
    pub finished: bool,
}

/// The steps of a run that can be scheduled now, those that never can, and whether the run is over.
///
/// `statuses` holds every scheduled step of the run. The other steps of `steps` are unscheduled,
/// and each of them is either:
///
/// - *ready*: it subscribes to at least one event and every one of them is in `emitted`;
/// - *skipped*: some event it subscribes to is not emitted and no step that can still run may
///   emit it. The steps that can still run are those in flight (queued, running or awaiting), unscheduled
///   entry steps (the run's input starts them), and, recursively, the unscheduled steps all of
///   whose missing events can come from steps that can still run. This is a least fixed point
///   from the steps in flight, so steps in a cycle that only they could feed are skipped rather
///   than kept waiting on each other;
/// - or neither: it waits for events that a step in flight or a step still able to run may emit.
///
/// Completed steps count by what is in `emitted` (they emit nothing more), failed and skipped
/// steps emit nothing. A status for a name that is not in `steps` still counts for `finished`.
///
/// `finished` is true when no status is in flight, nothing is ready and no entry step is
/// unscheduled; then every unscheduled non-entry step is skipped.
///
/// Step names should be unique. If a name is listed twice, which listing decides is unspecified,
/// but it appears at most once in each of `ready` and `skipped`.
///
/// ```
/// use std::collections::{HashMap, HashSet};
/// use flowhost_core::readiness::{step_progress, FlowStep, StepStatus};
///
/// let none: &[&str] = &[];
/// let steps = [
///     FlowStep { name: &"decide", subscribes: none, emits: &["left", "right"] },
///     FlowStep { name: &"go_left", subscribes: &["left"], emits: &["left.done"] },
///     FlowStep { name: &"go_right", subscribes: &["right"], emits: none },
///     FlowStep { name: &"report", subscribes: &["left.done"], emits: none },
/// ];
/// // `decide` completed and emitted only "left": `go_right` can never run; `report` still can.
/// let emitted = HashSet::from(["left"]);
/// let statuses = HashMap::from([("decide", StepStatus::Completed)]);
/// let progress = step_progress(&steps, &emitted, &statuses);
/// assert_eq!(progress.ready, [&"go_left"]);
/// assert_eq!(progress.skipped, [&"go_right"]);
/// assert!(!progress.finished);
/// ```
pub fn step_progress<'flow, Name, Emitted, Scheduled, EmittedHasher, StatusHasher>(
    steps: &[FlowStep<'flow, Name>],
    emitted: &HashSet<Emitted, EmittedHasher>,
    statuses: &HashMap<Scheduled, StepStatus, StatusHasher>,
) -> StepProgress<'flow, Name>
where
    Name: AsRef<str>,
    Emitted: Borrow<str> + Hash + Eq,
    Scheduled: Borrow<str> + Hash + Eq,
    EmittedHasher: BuildHasher,
    StatusHasher: BuildHasher,
{
    // For each unscheduled non-entry step, how many of its (distinct) events are neither emitted
    // nor yet known to be emittable; and for each such event, the steps waiting on it.
    let mut missing: Vec<usize> = vec![0; steps.len()];
    let mut unscheduled: Vec<usize> = Vec::new();
    let mut waiting: HashMap<&str, Vec<usize>, foldhash::fast::RandomState> = HashMap::default();
    // Events that steps able to run may still emit, to propagate to the steps waiting on them.
    let mut emittable: Vec<&str> = Vec::new();
    let mut ready: Vec<&'flow Name> = Vec::new();
    let mut entry_waiting = false;

    for (index, step) in steps.iter().enumerate() {
        match statuses.get(step.name.as_ref()) {
            Some(status) if status.is_in_flight() => {
                emittable.extend(step.emits.iter().map(AsRef::as_ref));
            }
            Some(_) => {}
            None if step.subscribes.is_empty() => {
                entry_waiting = true;
                emittable.extend(step.emits.iter().map(AsRef::as_ref));
            }
            None => {
                unscheduled.push(index);
                for event in step.subscribes.iter().map(AsRef::as_ref) {
                    if emitted.contains(event) {
                        continue;
                    }
                    let waiters = waiting.entry(event).or_default();
                    // A step's own pushes are consecutive: this skips duplicate subscriptions.
                    if waiters.last() != Some(&index) {
                        waiters.push(index);
                        missing[index] += 1;
                    }
                }
                if missing[index] == 0 {
                    ready.push(step.name);
                    emittable.extend(step.emits.iter().map(AsRef::as_ref));
                }
            }
        }
    }

    // Each event is propagated once: removing its waiters marks it done.
    while let Some(event) = emittable.pop() {
        for index in waiting.remove(event).unwrap_or_default() {
            missing[index] -= 1;
            if missing[index] == 0 {
                emittable.extend(steps[index].emits.iter().map(AsRef::as_ref));
            }
        }
    }

    let mut skipped: Vec<&'flow Name> = unscheduled
        .into_iter()
        .filter(|index| missing[*index] > 0)
        .map(|index| steps[index].name)
        .collect();
    for names in [&mut ready, &mut skipped] {
        names.sort_unstable_by(|left, right| left.as_ref().cmp(right.as_ref()));
        names.dedup_by(|left, right| left.as_ref() == right.as_ref());
    }
    let finished = ready.is_empty()
        && !entry_waiting
        && !statuses.values().any(|status| status.is_in_flight());
    StepProgress {
        ready,
        skipped,
        finished,
    }
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

#[cfg(test)]
mod progress_tests {
    use std::collections::{HashMap, HashSet};

    use super::{step_progress, FlowStep, StepStatus};

    /// A step as `(name, subscribes, emits)`.
    type Step = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    );

    /// `step_progress` over `Step`s, as `(ready, skipped, finished)`.
    fn progress(
        flow: &[Step],
        emitted: &[&str],
        statuses: &[(&str, StepStatus)],
    ) -> (Vec<&'static str>, Vec<&'static str>, bool) {
        let steps: Vec<FlowStep<'_, &str>> = flow
            .iter()
            .map(|(name, subscribes, emits)| FlowStep {
                name,
                subscribes,
                emits,
            })
            .collect();
        let emitted: HashSet<&str> = emitted.iter().copied().collect();
        let statuses: HashMap<&str, StepStatus> = statuses.iter().copied().collect();
        let progress = step_progress(&steps, &emitted, &statuses);
        (
            progress.ready.into_iter().copied().collect(),
            progress.skipped.into_iter().copied().collect(),
            progress.finished,
        )
    }

    use StepStatus::{Completed, Failed, Queued, Running, Skipped};

    /// `decide` emits one of two branches; `left` feeds `report`, `right` feeds nothing.
    const BRANCH: &[Step] = &[
        ("decide", &[], &["go.left", "go.right"]),
        ("left", &["go.left"], &["left.done"]),
        ("right", &["go.right"], &[]),
        ("report", &["left.done"], &[]),
    ];

    #[test]
    fn a_branch_not_taken_is_skipped_while_the_other_runs() {
        assert_eq!(
            progress(BRANCH, &["go.left"], &[("decide", Completed)]),
            (vec!["left"], vec!["right"], false)
        );
        assert_eq!(
            progress(
                BRANCH,
                &["go.left"],
                &[("decide", Completed), ("left", Running), ("right", Skipped)]
            ),
            (vec![], vec![], false)
        );
        assert_eq!(
            progress(
                BRANCH,
                &["go.left", "left.done"],
                &[
                    ("decide", Completed),
                    ("left", Completed),
                    ("right", Skipped)
                ]
            ),
            (vec!["report"], vec![], false)
        );
    }

    #[test]
    fn steps_downstream_of_a_skipped_branch_are_skipped_too() {
        assert_eq!(
            progress(BRANCH, &["go.right"], &[("decide", Completed)]),
            (vec!["right"], vec!["left", "report"], false)
        );
    }

    #[test]
    fn steps_in_flight_keep_their_subscribers_waiting() {
        // `decide` may still emit either branch.
        for status in [Queued, Running] {
            assert_eq!(
                progress(BRANCH, &[], &[("decide", status)]),
                (vec![], vec![], false)
            );
        }
    }

    #[test]
    fn failed_and_skipped_steps_emit_nothing() {
        for status in [Failed, Skipped] {
            assert_eq!(
                progress(BRANCH, &[], &[("decide", status)]),
                (vec![], vec!["left", "report", "right"], true)
            );
        }
    }

    #[test]
    fn an_unscheduled_entry_step_may_still_emit_and_keeps_the_run_open() {
        assert_eq!(progress(BRANCH, &[], &[]), (vec![], vec![], false));
    }

    #[test]
    fn a_run_with_nothing_left_is_finished() {
        let statuses = [
            ("decide", Completed),
            ("left", Completed),
            ("right", Skipped),
            ("report", Completed),
        ];
        assert_eq!(
            progress(BRANCH, &["go.left", "left.done"], &statuses),
            (vec![], vec![], true)
        );
    }

    #[test]
    fn a_cycle_nobody_outside_feeds_is_skipped() {
        let flow: &[Step] = &[
            ("start", &[], &["started"]),
            ("ping", &["started", "pong"], &["ping"]),
            ("pong", &["ping"], &["pong"]),
            ("after", &["ping"], &[]),
        ];
        assert_eq!(
            progress(flow, &["started"], &[("start", Completed)]),
            (vec![], vec!["after", "ping", "pong"], true)
        );
    }

    #[test]
    fn a_cycle_fed_from_outside_waits() {
        let flow: &[Step] = &[
            ("start", &[], &["started"]),
            ("feeder", &["started"], &["pong"]),
            ("ping", &["started", "pong"], &["ping"]),
            ("pong", &["ping"], &["pong"]),
        ];
        assert_eq!(
            progress(flow, &["started"], &[("start", Completed)]),
            (vec!["feeder"], vec![], false)
        );
        assert_eq!(
            progress(
                flow,
                &["started"],
                &[("start", Completed), ("feeder", Failed)]
            ),
            (vec![], vec!["ping", "pong"], true)
        );
    }

    #[test]
    fn an_and_join_is_skipped_as_soon_as_one_input_is_lost() {
        let flow: &[Step] = &[
            ("start", &[], &["a", "b"]),
            ("slow", &["a"], &["slow.done"]),
            ("never", &["b"], &["never.done"]),
            ("join", &["slow.done", "never.done", "slow.done"], &[]),
        ];
        // `never` is still possible while `start` runs; once `start` completed without "b",
        // `never` and the join are skipped even though `slow` is still running.
        assert_eq!(
            progress(flow, &["a"], &[("start", Running)]),
            (vec!["slow"], vec![], false)
        );
        assert_eq!(
            progress(flow, &["a"], &[("start", Completed), ("slow", Running)]),
            (vec![], vec!["join", "never"], false)
        );
    }

    #[test]
    fn statuses_outside_the_flow_count_only_for_finished() {
        assert_eq!(
            progress(BRANCH, &[], &[("decide", Failed), ("ghost", Running)]),
            (vec![], vec!["left", "report", "right"], false)
        );
    }

    #[test]
    fn empty_flow_is_finished() {
        assert_eq!(progress(&[], &[], &[]), (vec![], vec![], true));
    }

    #[test]
    fn statuses_parse_from_their_names() {
        for status in [Queued, Running, Completed, Failed, Skipped] {
            assert_eq!(status.as_str().parse::<StepStatus>().unwrap(), status);
            assert_eq!(status.to_string(), status.as_str());
        }
        assert!("done".parse::<StepStatus>().is_err());
    }

    /// The definition, computed the slow way: grow the set of steps that can still run until it
    /// stops growing.
    fn reference(
        flow: &[(String, Vec<String>, Vec<String>)],
        emitted: &HashSet<String>,
        statuses: &HashMap<String, StepStatus>,
    ) -> (Vec<String>, Vec<String>, bool) {
        let mut possible: HashSet<&String> = emitted.iter().collect();
        let mut live: HashSet<&String> = HashSet::new();
        for (name, subscribes, emits) in flow {
            let can_emit = match statuses.get(name) {
                Some(status) => status.is_in_flight(),
                None => subscribes.is_empty(),
            };
            if can_emit {
                possible.extend(emits);
            }
        }
        let mut changed = true;
        while changed {
            changed = false;
            for (name, subscribes, emits) in flow {
                let unscheduled = !statuses.contains_key(name) && !subscribes.is_empty();
                if unscheduled
                    && !live.contains(name)
                    && subscribes.iter().all(|e| possible.contains(e))
                {
                    live.insert(name);
                    possible.extend(emits);
                    changed = true;
                }
            }
        }
        let unscheduled = flow
            .iter()
            .filter(|(name, subscribes, _)| !statuses.contains_key(name) && !subscribes.is_empty());
        let mut ready: Vec<String> = unscheduled
            .clone()
            .filter(|(_, subscribes, _)| subscribes.iter().all(|e| emitted.contains(e)))
            .map(|(name, _, _)| name.clone())
            .collect();
        let mut skipped: Vec<String> = unscheduled
            .filter(|(name, _, _)| !live.contains(name))
            .map(|(name, _, _)| name.clone())
            .collect();
        ready.sort();
        skipped.sort();
        let entry_waiting = flow
            .iter()
            .any(|(name, subscribes, _)| subscribes.is_empty() && !statuses.contains_key(name));
        let finished = ready.is_empty()
            && !entry_waiting
            && !statuses.values().any(|status| status.is_in_flight());
        (ready, skipped, finished)
    }

    #[test]
    fn random_flows_agree_with_the_reference() {
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut below = |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % (bound as u64)).unwrap()
        };
        let events = ["e0", "e1", "e2", "e3", "e4", "e5", "e6"];
        let all_statuses = [Queued, Running, Completed, Failed, Skipped];
        for _ in 0..2000 {
            let flow: Vec<(String, Vec<String>, Vec<String>)> = (0..below(7))
                .map(|step| {
                    let subscribes = (0..below(3)).map(|_| events[below(7)].to_owned()).collect();
                    let emits = (0..below(3)).map(|_| events[below(7)].to_owned()).collect();
                    (format!("s{step}"), subscribes, emits)
                })
                .collect();
            let emitted: HashSet<String> =
                (0..below(4)).map(|_| events[below(7)].to_owned()).collect();
            let statuses: HashMap<String, StepStatus> = flow
                .iter()
                .filter_map(|(name, _, _)| {
                    let status = below(all_statuses.len() * 2);
                    all_statuses
                        .get(status)
                        .map(|status| (name.clone(), *status))
                })
                .collect();
            let steps: Vec<FlowStep<'_, String>> = flow
                .iter()
                .map(|(name, subscribes, emits)| FlowStep {
                    name,
                    subscribes,
                    emits,
                })
                .collect();
            let actual = step_progress(&steps, &emitted, &statuses);
            let actual = (
                actual.ready.into_iter().cloned().collect(),
                actual.skipped.into_iter().cloned().collect(),
                actual.finished,
            );
            assert_eq!(
                actual,
                reference(&flow, &emitted, &statuses),
                "{flow:?} {emitted:?} {statuses:?}"
            );
        }
    }
}
