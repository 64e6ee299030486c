-- Claim fresh friends and qualify the ones claimed earlier, on each connection of each thread.
--   wrk -s claim_qualify.lua URL -- API_KEY RUN_TAG CODES_FILE
-- A claim answers 201 with the referral; its id queues a qualify (first_order, 42.00 USD),
-- which answers 200. Requests alternate as answers come in: a queued referral is qualified
-- before the next friend is claimed.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

function init(args)
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[1]}
  tag = args[2]
  codes = {}
  for line in io.lines(args[3]) do codes[#codes + 1] = line end
  queue, first, last, claimed = {}, 1, 0, 0
end

function request()
  if first <= last then
    local id = queue[first]
    queue[first], first = nil, first + 1
    return wrk.format("POST", "/v1/referrals/qualify", headers, string.format(
      '{"referral_id":"%s","event":{"id":"in_%s","type":"first_order","amount":4200,' ..
      '"currency":"USD","occurred_at":"%s"}}', id, id, os.date("!%Y-%m-%dT%H:%M:%SZ")))
  end
  claimed = claimed + 1
  local friend = string.format("%s-%d-%d", tag, number, claimed)
  return wrk.format("POST", "/v1/referrals/claim", headers, string.format(
    '{"code":"%s","friend":{"external_id":"%s","email":"%s@mail.test"},' ..
    '"context":{"ip":"198.51.100.%d","user_agent":"bench"}}',
    codes[claimed % #codes + 1], friend, friend, claimed % 250))
end

function response(status, headers, body)
  if status == 201 then
    local id = body:match('"id"%s*:%s*"(ref_[%w]+)"')
    if id then
      last = last + 1
      queue[last] = id
    end
    count("claims")
  elseif status == 200 then
    count("qualifies")
  else
    count("status_" .. status)
  end
end
