-- Stripe deliveries to the provider ingress: verify the signature, record, answer.
--   wrk -s ingress.lua URL -- EVENTS_FILE THREADS
-- EVENTS_FILE holds one pre-signed delivery a line: "<Stripe-Signature>\t<body>" (Lua has no
-- HMAC); thread n sends lines n, n+THREADS, ..., so no two requests carry the same event
-- until the file runs out (then "wrapped" counts repeats, which are answered as duplicates).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

function init(args)
  local threads = tonumber(args[2])
  signatures, bodies = {}, {}
  local n = 0
  for line in io.lines(args[1]) do
    if n % threads == number - 1 then
      local signature, body = line:match("^([^\t]+)\t(.*)$")
      signatures[#signatures + 1], bodies[#bodies + 1] = signature, body
    end
    n = n + 1
  end
  next_one = 0
end

function request()
  next_one = next_one + 1
  if next_one > #bodies then
    next_one = 1
    count("wrapped")
  end
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json",
                                       ["Stripe-Signature"] = signatures[next_one]},
                    bodies[next_one])
end

function response(status, headers, body)
  if status ~= 200 then
    count("status_" .. status)
  elseif body:find('"duplicates"%s*:%s*0') then
    count("recorded")
  else
    count("duplicates")
  end
end
