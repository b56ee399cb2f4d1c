#ifndef XRAYSINK_TOOLS_LOCAL_DAEMON_TRACE_PRINTER_H_
#define XRAYSINK_TOOLS_LOCAL_DAEMON_TRACE_PRINTER_H_

#include <string>
#include <string_view>

#include "tools/local_daemon/trace.h"

namespace xraysink::tools {

// A trace as an indented tree, one line per entity, each line ending in '\n', after a first line
// with the trace id and, when `remark` is not empty, " (<remark>)":
//   trace 1-5759e988-bd862e3fe1be46a994272793
//     www.example.com (segment) 29.0 ms GET https://www.example.com/health 500 !fault
//       db 3.2 ms !error retries=2 cause: TimeoutError: no answer in 2 s
// Each entity line: name, "(segment)" for segments, the duration ("in progress" when not
// ended), http method, url and status when present, !error / !fault / !throttle, annotations as
// key=value in document order, then each recorded exception ("cause: type: message", or
// "cause: see exception <id>"); an orphan ends with "(orphan: parent <id> not received)".
// Children are ordered by start time then id, so the output is deterministic. Entities nested
// more than 64 levels deep are indented as the 64th level and their line starts with
// "[depth N] " (the roots are at depth 1).
std::string FormatTrace(const Trace& trace, std::string_view remark = "");

}  // namespace xraysink::tools

#endif  // XRAYSINK_TOOLS_LOCAL_DAEMON_TRACE_PRINTER_H_
