-- Claim fresh friends only, on each connection of each thread (bench/wrk.py --scale).
--   wrk -s claim.lua URL -- API_KEY RUN_TAG CODES_FILE
-- Each claim answers 201 with a new referral; nothing is qualified.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)")
dofile(here .. "report.lua")
dofile(here .. "claims.lua")

function init(args)
  claim_setup(args)
end

function request()
  return claim_request()
end

function response(status, headers, body)
  if status == 201 then
    count("claims")
  else
    count("status_" .. status)
  end
end
