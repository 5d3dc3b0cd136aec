-- A script that requires a module of its own, as Envoy's examples/lua does with lib.mylibrary.
-- Written for meshfilter's tests (not copied from Envoy): run it with
--   meshfilter envoy run --lua main.lua --lua-path tests/data/lua-require
local mylibrary = require("lib.mylibrary")

function envoy_on_request(request_handle)
  request_handle:headers():add("foo", mylibrary.foobar())
end

function envoy_on_response(response_handle)
  response_handle:headers():add("x-lua-module", mylibrary.name)
end
