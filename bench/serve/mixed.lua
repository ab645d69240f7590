-- wrk script: a mix of valid and invalid requests, for the load test.
-- usage: wrk ... -s mixed.lua http://127.0.0.1:PORT -- RECORDS.jsonl OVERSIZE_BYTES [MAX_REQUESTS]
-- Each wrk thread stops after MAX_REQUESTS responses (or at -d, whichever comes first).
-- Valid: single records and lists of 8. Invalid: malformed JSON, a wrong type, an unknown
-- field (the server runs with unknown_fields=reject), a non-object, too many records,
-- a body over max_body_bytes, an empty body, an unknown path, a wrong method.
-- done() prints the responses by status as one JSON line; any 5xx fails the test.
local requests = {}
local counter = 0
local answered = 0
local limit = math.huge
statuses = {}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local path, oversize = args[1], tonumber(args[2])
  if args[3] then limit = tonumber(args[3]) end
  local records = {}
  for line in io.lines(path) do
    if #line > 0 then table.insert(records, line) end
    if #records >= 256 then break end
  end
  local h = {["Content-Type"] = "application/json"}
  local function post(body) return wrk.format("POST", "/predict", h, body) end
  local many = {}
  for i = 1, 2000 do table.insert(many, "{}") end
  local invalid = {
    post('{"carat": 0.3, "cut": '),                                -- 400 malformed
    post('{"carat": {"value": 0.3}, "cut": "Ideal"}'),             -- 422 wrong type
    post('[{"carat": 0.3}, {"carat": [1, 2]}]'),                   -- 422 wrong type in record 2
    post('{"carat": 0.3, "colour": "red"}'),                       -- 422 unknown field
    post('42'),                                                    -- 422 not a record
    post('[' .. table.concat(many, ",") .. ']'),                   -- 413 too many records
    post('{"cut": "' .. string.rep("x", oversize) .. '"}'),        -- 413 body too large
    post(''),                                                      -- 400 empty
    wrk.format("GET", "/nowhere"),                                 -- 404
    wrk.format("DELETE", "/predict"),                              -- 405
    wrk.format("GET", "/metrics"),                                 -- 200
    wrk.format("GET", "/health"),                                  -- 200
  }
  local r = 1
  for i = 1, 600 do
    if i % 3 == 0 then
      table.insert(requests, invalid[(i / 3 - 1) % #invalid + 1])
    elseif i % 3 == 1 then
      table.insert(requests, post(records[r]))
      r = r % #records + 1
    else
      local list = {}
      for _ = 1, 8 do
        table.insert(list, records[r])
        r = r % #records + 1
      end
      table.insert(requests, post("[" .. table.concat(list, ",") .. "]"))
    end
  end
end

function request()
  counter = counter % #requests + 1
  return requests[counter]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  answered = answered + 1
  if answered >= limit then wrk.thread:stop() end
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
  io.write(string.format('{"statuses": {%s}, "requests": %d, "socket_errors": %d, "p99_ms": %.3f}\n',
    table.concat(parts, ", "), summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(99) / 1000))
end
