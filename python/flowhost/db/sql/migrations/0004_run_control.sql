-- 0006: run control. A step of a run that was canceled, or that ended failed while the step was
-- still queued, running or awaiting, ends `canceled`: it is over, and a retry of the run runs it
-- again.

ALTER TABLE flowhost.steps DROP CONSTRAINT steps_status_check;
ALTER TABLE flowhost.steps ADD CONSTRAINT steps_status_check
    CHECK (status IN ('queued', 'running', 'awaiting', 'completed', 'failed', 'skipped',
                      'canceled'));
