-- Claim fresh friends and qualify the ones claimed earlier, on each connection of each thread.
--   wrk -s claim_qualify.lua URL -- API_KEY RUN_TAG CODES_FILE
-- A claim answers 201 with the referral; its id queues a qualify (first_order, 42.00 USD),
-- which answers 200. Requests alternate as answers come in: a queued referral is qualified
-- before the next friend is claimed.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)")
dofile(here .. "report.lua")
dofile(here .. "claims.lua")

function init(args)
  claim_setup(args)
  queue, first, last = {}, 1, 0
end

function request()
  if first <= last then
    local id = queue[first]
    queue[first], first = nil, first + 1
    return wrk.format("POST", "/v1/referrals/qualify", headers, string.format(
      '{"referral_id":"%s","event":{"id":"in_%s","type":"first_order","amount":4200,' ..
      '"currency":"USD","occurred_at":"%s"}}', id, id, os.date("!%Y-%m-%dT%H:%M:%SZ")))
  end
  return claim_request()
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
