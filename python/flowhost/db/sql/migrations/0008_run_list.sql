-- 0008 (0009 once the trigger registry's 0008 is in): the run list filtered by flow and status
-- at once (the API's "failed runs of this flow"). With one index per column, a rare status of
-- a common flow scanned all of the flow's runs (60-130 ms with 1M runs); this index finds them
-- directly.
CREATE INDEX runs_flow_status_created_idx ON flowhost.runs (flow, status, created_at DESC);
