-- The baseline: POST a claim-sized JSON body to the bare Flask echo (bench/echo_app.py).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

wrk.method = "POST"
wrk.path = "/echo"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"code":"ABCD2345","friend":{"external_id":"f-1","email":"f-1@mail.test"},' ..
           '"context":{"ip":"198.51.100.7","user_agent":"bench"}}'

function response(status, headers, body)
  count(status == 200 and "ok" or "other")
end
