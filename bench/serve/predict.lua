-- wrk script: POST /predict with records from a JSON Lines file, N per request.
-- usage: wrk ... -s predict.lua http://127.0.0.1:PORT -- RECORDS.jsonl [N]
-- Counts responses by status; done() prints them as one JSON line ("statuses").
local requests = {}
local counter = 0
statuses = {}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local path, per = args[1], tonumber(args[2] or "1")
  local records = {}
  for line in io.lines(path) do
    if #line > 0 then table.insert(records, line) end
    if #records >= 4096 then break end
  end
  local headers = {["Content-Type"] = "application/json"}
  local i = 1
  while #requests < 512 do
    local body
    if per == 1 then
      body = records[i]
      i = i % #records + 1
    else
      local list = {}
      for _ = 1, per do
        table.insert(list, records[i])
        i = i % #records + 1
      end
      body = "[" .. table.concat(list, ",") .. "]"
    end
    table.insert(requests, wrk.format("POST", "/predict", headers, body))
  end
end

function request()
  counter = counter % #requests + 1
  return requests[counter]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do
      total[tostring(status)] = (total[tostring(status)] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, string.format('"%s": %d', status, n)) end
  io.write(string.format('{"statuses": {%s}, "p50_ms": %.3f, "p99_ms": %.3f, "requests": %d, "seconds": %.3f}\n',
    table.concat(parts, ", "), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.duration / 1e6))
end
