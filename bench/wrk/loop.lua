-- The request loop of the inbound scripts, loaded by each (wrk runs the one script given
-- with -s, in every thread's Lua state). The script defines `prepare(data_file)`, which reads
-- its data once per thread, and `make(k)`, the k-th request counted across threads, so that
-- the threads together send request 0, 1, 2, … each exactly once.
--   wrk -s bench/wrk/SCRIPT.lua URL -- DATA THREADS

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  nthreads = tonumber(args[2])
  counter = 0
  made = 0
  prepare(args[1])
end

function request()
  local k = counter * nthreads + id
  counter = counter + 1
  made = counter
  return make(k)
end

-- One line bench/inbound.py reads: wrk's own figures, and the requests the threads made.
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
