-- Rotates requests over the session tokens in $TOKENS (one per line).
-- METHOD (default GET) and BODY (for POST, sent as JSON) come from the environment.
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do
  if #line > 0 then tokens[#tokens + 1] = line end
end
local method = os.getenv("METHOD") or "GET"
local body = os.getenv("BODY")
local i = 0
request = function()
  i = i % #tokens + 1
  local headers = { ["Authorization"] = "Bearer " .. tokens[i] }
  if body then headers["Content-Type"] = "application/json" end
  return wrk.format(method, nil, headers, body)
end
