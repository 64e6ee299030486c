-- Shared by the bench scripts: per-thread counters and one JSON line at the end, which
-- bench/wrk.py reads (wrk's own text summary is printed too, for a person).
local threads = {}

function setup(thread)
  thread:set("number", #threads + 1) -- each thread learns its number (1, 2, ...)
  table.insert(threads, thread)
end

counts = {}

function count(kind)
  counts[kind] = (counts[kind] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for kind, n in pairs(thread:get("counts")) do totals[kind] = (totals[kind] or 0) + n end
  end
  local parts = {}
  for kind, n in pairs(totals) do parts[#parts + 1] = string.format('"%s":%d', kind, n) end
  io.write(string.format(
    'WRK_JSON {"requests":%d,"seconds":%.3f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,' ..
    '"max_ms":%.3f,"socket_errors":%d,"non_2xx":%d,"counts":{%s}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, table.concat(parts, ",")))
end
