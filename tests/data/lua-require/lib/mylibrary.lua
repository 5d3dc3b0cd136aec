-- The module main.lua requires as "lib.mylibrary" (found as <lua-path>/lib/mylibrary.lua).
local M = { name = "lib.mylibrary" }

function M.foobar()
  return "bar"
end

return M
