-- wrk: POSTs one limit order per request; prints its figures as one JSON line when done.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"type": "limit", "side": "buy", "instrument": "US0378331005", ' ..
  '"limit_price": 101.25, "quantity": 10}'

-- BENCH_TARGETS ("host:port,host:port"): thread i sends to target i (modulo their number), so
-- that one run spreads its connections over several API replicas.
local targets = {}
for target in string.gmatch(os.getenv("BENCH_TARGETS") or "", "[^,]+") do
  table.insert(targets, target)
end
local threads = 0

function setup(thread)
  if #targets > 0 then
    local host, port = string.match(targets[threads % #targets + 1], "^(.+):(%d+)$")
    thread.addr = wrk.lookup(host, port)[1]
  end
  threads = threads + 1
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3))
end
