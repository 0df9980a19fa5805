// Reading instances' log files for `baton logs` (GET /v1/apps/{app}/services/{svc}/logs). The
// node's supervisors write <data_dir>/logs/<app>/<service>/<instance>/{stdout,stderr}.log; this
// reads them back for one service, every instance, each line prefixed with its instance id.
#pragma once

#include <filesystem>

#include "api/handlers.h"

namespace baton::cli {

// A LogReader over `logs_root` (<data_dir>/logs). With follow, new lines are delivered as the
// files grow and as new instances appear. Thread-safe: each request gets its own source.
api::LogReader makeFileLogReader(std::filesystem::path logs_root);

}  // namespace baton::cli
