// Writing an output without ever leaving a half-written file under its name: the bytes go to a
// temporary file beside the target, which is fsynced and then renamed over it. A reader that still
// has the old file mapped (convert reading the checkpoint it is asked to overwrite) keeps its
// pages, where truncating in place would kill it with SIGBUS and leave neither file.
#pragma once

#include <cstdio>
#include <functional>
#include <string>

#include "util/result.h"

namespace gemma {

// Calls write(f) on a new temporary file in path's directory, then flushes, fsyncs and renames it
// to `path`. On any failure (write's Error, a short write, ENOSPC...) the temporary file is removed
// and `path` is left as it was.
Status write_file_atomically(const std::string& path, const std::function<Status(FILE* f)>& write);

// write_file_atomically with the whole contents at hand.
Status write_file_atomically(const std::string& path, const std::string& contents);

}  // namespace gemma
