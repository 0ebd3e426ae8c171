-- Signed DingTalk robot callbacks (PLATFORMS.md §4) for wrk; every request is a new message.
--   wrk -s bench/wrk/dingtalk.lua URL -- DATA THREADS
-- DATA (written by bench/inbound_data.py) is tab-separated: a header line
--   timestamp, sign, msgId prefix, sessionWebhook, its expiry (ms), text format
-- then one line per sender: staffId, conversationId, instance number. The signature covers
-- only the timestamp and the app secret, so the body can vary per request here: request k
-- (counted across threads) gets msgId prefix..k and sender k mod #senders, so the first
-- #senders requests all come from distinct liaisons.

dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") .. "loop.lua")

local function split(line)
  local out = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do out[#out + 1] = field end
  return out
end

function prepare(data)
  senders = {}
  for line in io.lines(data) do
    local f = split(line)
    if head == nil then
      head = f
    else
      senders[#senders + 1] = f
    end
  end
  headers = {
    ["Content-Type"] = "application/json",
    ["timestamp"] = head[1],
    ["sign"] = head[2],
  }
end

function make(k)
  local s = senders[(k % #senders) + 1]
  local body = '{"msgtype":"text","text":{"content":" ' .. string.format(head[6], s[3]) ..
    '"},"msgId":"' .. head[3] .. k ..
    '","createAt":' .. head[1] ..
    ',"conversationType":"2","conversationId":"' .. s[2] ..
    '","conversationTitle":"bench","senderId":"$:LWCP_v1:$' .. s[1] ..
    '","senderNick":"' .. s[1] .. '","senderStaffId":"' .. s[1] ..
    '","chatbotUserId":"$:LWCP_v1:$bot","isInAtList":true,' ..
    '"atUsers":[{"dingtalkId":"$:LWCP_v1:$bot"}],"sessionWebhook":"' .. head[4] ..
    '","sessionWebhookExpiredTime":' .. head[5] .. '}'
  return wrk.format("POST", "/hooks/dingtalk", headers, body)
end
