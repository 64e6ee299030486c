-- Claim fresh friends only, on each connection of each thread (bench/wrk.py --scale).
--   wrk -s claim.lua URL -- API_KEY RUN_TAG CODES_FILE
-- Each claim answers 201 with a new referral; nothing is qualified.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

function init(args)
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[1]}
  tag = args[2]
  codes = {}
  for line in io.lines(args[3]) do codes[#codes + 1] = line end
  claimed = 0
end

function request()
  claimed = claimed + 1
  local friend = string.format("%s-%d-%d", tag, number, claimed)
  return wrk.format("POST", "/v1/referrals/claim", headers, string.format(
    '{"code":"%s","friend":{"external_id":"%s","email":"%s@mail.test"},' ..
    '"context":{"ip":"198.51.100.%d","user_agent":"bench"}}',
    codes[claimed % #codes + 1], friend, friend, claimed % 250))
end

function response(status, headers, body)
  if status == 201 then
    count("claims")
  else
    count("status_" .. status)
  end
end
