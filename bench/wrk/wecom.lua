-- Encrypted WeCom self-built app callbacks (PLATFORMS.md §1) for wrk.
--   wrk -s bench/wrk/wecom.lua URL -- DATA THREADS
-- msg_signature covers the encrypted body, so the requests are made beforehand by
-- bench/inbound_data.py: DATA has one per line, path and query, a tab, the XML body. Request k
-- (counted across threads) is line k mod #lines: past the end the same messages come again,
-- which the bot must drop as duplicates; bench/inbound.py reports how many were distinct.

dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") .. "loop.lua")

function prepare(data)
  pool = {}
  for line in io.lines(data) do
    local path, body = line:match("^([^\t]*)\t(.*)$")
    pool[#pool + 1] = {path, body}
  end
  headers = {["Content-Type"] = "text/xml"}
end

function make(k)
  local e = pool[(k % #pool) + 1]
  return wrk.format("POST", e[1], headers, e[2])
end
