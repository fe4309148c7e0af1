-- wrk script: optional POST body/headers from the environment, and one
-- machine-readable RESULT line at the end.
local body = os.getenv("WRK_BODY")
local basic = os.getenv("WRK_BASIC")
if body then
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
if basic then
  wrk.headers["Authorization"] = "Basic " .. basic
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.status + e.timeout))
end
