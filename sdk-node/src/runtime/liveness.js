/**
 * Heartbeats both ways (docs/protocol.md, "Heartbeats and disappearing peers"): the child beats
 * every interval, from a timer, so a handler that yields keeps it beating; and it watches the
 * host, which is gone when nothing arrived for 3 intervals or the child's parent changed.
 */

/**
 * The process whose end means the host is gone: the host names itself in FLOWHOST_PARENT_PID,
 * since a host that died before this child looked would leave `process.ppid` pointing at init.
 */
export const EXPECTED_PARENT = Number(process.env.FLOWHOST_PARENT_PID) || process.ppid

/** Intervals of silence after which the host counts as gone. */
export const SILENT_INTERVALS = 3

/**
 * @param {object} options
 * @param {number} options.intervalMs the host's `heartbeat_interval`, in ms
 * @param {() => void} options.beat sends one `heartbeat`
 * @param {() => number} options.lastHeard `performance.now()` of the host's last message
 * @param {(reason: string) => void} options.onHostGone called once; the child exits 70
 * @returns {() => void} stops both timers
 */
export function startLiveness({ intervalMs, beat, lastHeard, onHostGone }) {
  const parent = EXPECTED_PARENT
  const silenceLimit = SILENT_INTERVALS * intervalMs
  // Checked a few times per interval so the child leaves soon after the limit, not an interval late.
  const checkEveryMs = Math.max(10, Math.min(intervalMs / 4, 1000))
  let lastCheck = performance.now()
  let listeningSince = lastCheck

  const watchdog = setInterval(() => {
    const now = performance.now()
    // A handler that blocked the event loop kept the host's frames unread: silence counts only
    // while the child was listening, or a busy child would take its own stall for a dead host.
    if (now - lastCheck > 2 * checkEveryMs) listeningSince = now
    lastCheck = now
    if (process.ppid !== parent) {
      stop()
      onHostGone(`the parent process changed (${parent} → ${process.ppid})`)
    } else if (now - Math.max(lastHeard(), listeningSince) > silenceLimit) {
      stop()
      onHostGone(`nothing heard from the host for ${SILENT_INTERVALS} heartbeat intervals (${silenceLimit / 1000} s)`)
    }
  }, checkEveryMs)
  const heartbeat = setInterval(beat, intervalMs)

  function stop() {
    clearInterval(watchdog)
    clearInterval(heartbeat)
  }
  return stop
}
