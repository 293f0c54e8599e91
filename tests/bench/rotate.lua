-- Rotates requests over the session tokens in $TOKENS (one per line).
-- METHOD (default GET) and BODY (for POST, sent as JSON) come from the environment.
-- With PATH_TEMPLATE (e.g. "/api/v1/feedings/today?subject_id={subject}"), each request's path
-- is the template with {subject} replaced by the line's second field ("token subject_id").
local tokens, subjects = {}, {}
for line in io.lines(os.getenv("TOKENS")) do
  local t, s = line:match("^(%S+)%s*(%S*)$")
  if t then
    tokens[#tokens + 1] = t
    subjects[#tokens] = s
  end
end
local template = os.getenv("PATH_TEMPLATE")
local method = os.getenv("METHOD") or "GET"
local body = os.getenv("BODY")
local i = 0
request = function()
  i = i % #tokens + 1
  local headers = { ["Authorization"] = "Bearer " .. tokens[i] }
  if body then headers["Content-Type"] = "application/json" end
  local path = nil
  if template then path = template:gsub("{subject}", subjects[i]) end
  return wrk.format(method, path, headers, body)
end
