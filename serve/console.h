// The console `shardrec serve` answers at GET /: one static HTML+JS page (no build step, no external
// resource) that asks the server's own API: a user id, or a history picked by title (GET
// /v1/items?q=), gives the recommended titles with scores and, on request, the events behind each;
// the served version is shown and followed. The page is serve/console.html, compiled in; its
// element ids are its contract with tests/serve/console_check.py: user, go-user, search, matches,
// history, go-history, clear, k, explain, results (rows of class "hit"), version, status.
#pragma once

#include <string_view>

namespace shardrec {

std::string_view ConsolePage();

}  // namespace shardrec
