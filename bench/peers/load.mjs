// One autocannon run, in its own process (pinned to its own core by the bench); prints the result
// as one JSON line. Arguments: a JSON object { url, headers, body, connections, duration }.
import autocannon from 'autocannon';

const { url, headers, body, connections, duration } = JSON.parse(process.argv[2]);
const result = await autocannon({ url, method: 'POST', headers, body, connections, duration, pipelining: 1 });
process.stdout.write(
  `${JSON.stringify({
    requests: result.requests.total,
    perSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
  })}\n`,
);
