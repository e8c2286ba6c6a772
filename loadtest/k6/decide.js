// Decide driven by k6: N virtual users in a loop (constant-vus: N calls in flight),
// each call the next request of a JSON file (SharedArray), every call's gRPC status checked.
// Env: TARGET host:port, PROTO_ROOT (the repository's proto/), REQUESTS (JSON file), VUS, DURATION,
// DISCARD=1 to skip decoding the answer (the echo answers with the request's own bytes).
import grpc from 'k6/net/grpc';
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import exec from 'k6/execution';

const requests = new SharedArray('requests', () => JSON.parse(open(__ENV.REQUESTS)));
const client = new grpc.Client();
client.load([__ENV.PROTO_ROOT], 'decision/v1/decision.proto');

export const options = {
  scenarios: {
    decide: { executor: 'constant-vus', vus: Number(__ENV.VUS), duration: __ENV.DURATION },
  },
  summaryTrendStats: ['med', 'p(99)', 'count'],
};

let connected = false;

export default function () {
  if (!connected) {
    client.connect(__ENV.TARGET, { plaintext: true });
    connected = true;
  }
  const body = requests[exec.scenario.iterationInTest % requests.length];
  const response = client.invoke('decision.v1.DecisionService/Decide', body, {
    discardResponseMessage: __ENV.DISCARD === '1',
  });
  check(response, { 'status is OK': (r) => r && r.status === grpc.StatusOK });
}
