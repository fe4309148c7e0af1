-- wrk script: one single-use credential per request, read from WRK_LINES;
-- thread k of n takes lines k, k+n, k+2n, … so no value is sent twice.
-- WRK_TEMPLATE is the form body with {} where the value goes.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  lines = {}
  for line in io.lines(os.getenv("WRK_LINES")) do
    table.insert(lines, line)
  end
  nthreads = tonumber(os.getenv("WRK_THREADS"))
  index = id + 1
  template = os.getenv("WRK_TEMPLATE")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  local basic = os.getenv("WRK_BASIC")
  if basic then
    wrk.headers["Authorization"] = "Basic " .. basic
  end
end

function request()
  local value = lines[index] or "exhausted"
  index = index + nthreads
  local body = template:gsub("{}", value)
  return wrk.format(nil, nil, nil, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.status + e.timeout))
end
