-- 0003: the statuses of the full run lifecycle, and child runs linked to their parent.
-- Runs: `queued` (a delayed start, or waiting for a concurrency slot), `awaiting` (an await of
-- the run is pending), `stalled` (nothing moved within the flow's stall timeout).
-- Steps: `awaiting` (an await before the step runs, or after it ran and before its emits count).

ALTER TABLE flowhost.runs DROP CONSTRAINT runs_status_check;
ALTER TABLE flowhost.runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('queued', 'running', 'awaiting', 'completed', 'failed', 'canceled',
                      'stalled'));
ALTER TABLE flowhost.runs ADD COLUMN parent_run_id uuid;
CREATE INDEX runs_parent_idx ON flowhost.runs (parent_run_id) WHERE parent_run_id IS NOT NULL;

ALTER TABLE flowhost.steps DROP CONSTRAINT steps_status_check;
ALTER TABLE flowhost.steps ADD CONSTRAINT steps_status_check
    CHECK (status IN ('queued', 'running', 'awaiting', 'completed', 'failed', 'skipped'));

ALTER TABLE flowhost.flow_stats
    ADD COLUMN queued bigint NOT NULL DEFAULT 0,
    ADD COLUMN awaiting bigint NOT NULL DEFAULT 0,
    ADD COLUMN stalled bigint NOT NULL DEFAULT 0;
