#include "cli/app.h"

#include <sstream>

#include <fmt/format.h>

namespace gemma::cli {

CommandLine::CommandLine() {
  app_.require_subcommand(1);
  for (auto add : {add_run, add_chat, add_serve, add_tokenize, add_detokenize, add_inspect, add_perplexity, add_bench,
                   add_convert}) {
    const size_t before = app_.get_subcommands({}).size();
    Command c = add(app_);
    commands_[app_.get_subcommands({})[before]] = std::move(c);
  }
}

ParsedArgs CommandLine::parse(int argc, const char* const* argv) {
  ParsedArgs r;
  try {
    app_.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help: CLI11's text, as app.exit() prints it
      std::ostringstream out, err;
      r.exit_code = app_.exit(e, out, err);
      r.out = out.str();
      r.error = err.str();
      return r;
    }
    // One line like every other error, not CLI11's two.
    r.exit_code = 1;
    r.error = fmt::format("gemma: error: {} (see --help)\n", e.what());
    return r;
  }
  for (auto& [sub, cmd] : commands_)
    if (sub->parsed()) {
      r.command = cmd;
      return r;
    }
  r.exit_code = 1;
  return r;
}

}  // namespace gemma::cli
