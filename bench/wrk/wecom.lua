-- Encrypted WeCom self-built app callbacks (PLATFORMS.md §1) for wrk.
--   wrk -s bench/wrk/wecom.lua URL -- DATA THREADS
-- msg_signature covers the encrypted body, so the requests are made beforehand by
-- bench/inbound_data.py: DATA has one per line, path and query, a tab, the XML body. Request k
-- (counted across threads) is line k mod #lines: past the end the same messages come again,
-- which the bot must drop as duplicates; bench/inbound.py reports how many were distinct.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  nthreads = tonumber(args[2])
  pool = {}
  for line in io.lines(args[1]) do
    local path, body = line:match("^([^\t]*)\t(.*)$")
    pool[#pool + 1] = {path, body}
  end
  counter = 0
  made = 0
  headers = {["Content-Type"] = "text/xml"}
end

function request()
  local k = counter * nthreads + id
  counter = counter + 1
  made = counter
  local e = pool[(k % #pool) + 1]
  return wrk.format("POST", e[1], headers, e[2])
end

function done(summary, latency, requests)
  local made = 0
  for _, t in ipairs(threads) do made = made + t:get("made") end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"made":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, made, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
