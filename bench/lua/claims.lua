-- The claim request both claim scripts send (loaded with dofile, like report.lua).
-- claim_setup(args) reads API_KEY RUN_TAG CODES_FILE; claim_request() claims the next fresh
-- friend of this thread with one of the codes, from one of 250 addresses.

function claim_setup(args)
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[1]}
  tag = args[2]
  codes = {}
  for line in io.lines(args[3]) do codes[#codes + 1] = line end
  claimed = 0
end

function claim_request()
  claimed = claimed + 1
  local friend = string.format("%s-%d-%d", tag, number, claimed)
  return wrk.format("POST", "/v1/referrals/claim", headers, string.format(
    '{"code":"%s","friend":{"external_id":"%s","email":"%s@mail.test"},' ..
    '"context":{"ip":"198.51.100.%d","user_agent":"bench"}}',
    codes[claimed % #codes + 1], friend, friend, claimed % 250))
end
