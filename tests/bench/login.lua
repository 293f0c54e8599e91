-- Logs the benchmark users in, round robin (bench<i>-<RUN_ID>@example.com).
local users = tonumber(os.getenv("USERS"))
local run = os.getenv("RUN_ID")
local i = 0
request = function()
  i = i % users + 1
  local body = string.format('{"email":"bench%d-%s@example.com","password":"correct horse battery"}', i, run)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
