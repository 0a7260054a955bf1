// Reads [{expression, tz, start, count}] as JSON on stdin (start: an ISO instant) and prints, for
// each case, the next `count` fire times from cron-parser and from croner as ISO UTC instants,
// or {"error": message} where a library refuses the expression.
import { readFileSync } from "node:fs";
import { CronExpressionParser } from "cron-parser";
import { Cron } from "croner";

function attempt(compute) {
  try {
    return compute();
  } catch (error) {
    return { error: String(error && error.message ? error.message : error) };
  }
}

const cases = JSON.parse(readFileSync(0, "utf8"));
const results = cases.map(({ expression, tz, start, count }) => ({
  cronParser: attempt(() => {
    const iterator = CronExpressionParser.parse(expression, { currentDate: new Date(start), tz });
    return Array.from({ length: count }, () => iterator.next().toISOString());
  }),
  croner: attempt(() =>
    new Cron(expression, { timezone: tz })
      .nextRuns(count, new Date(start))
      .map((date) => date.toISOString()),
  ),
}));
process.stdout.write(JSON.stringify(results));
