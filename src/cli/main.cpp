// gemma: the command-line front end. `gemma <subcommand> --help` describes each one.
#include <map>

#include "cli/commands.h"
#include "cli/common.h"

int main(int argc, char** argv) {
  using namespace gemma::cli;
  CLI::App app{"gemma: run Google's Gemma models on the CPU"};
  app.require_subcommand(1);
  std::map<CLI::App*, Command> commands;
  for (auto add : {add_run, add_chat, add_serve, add_tokenize, add_detokenize, add_inspect, add_perplexity, add_bench,
                   add_convert}) {
    const size_t before = app.get_subcommands({}).size();
    Command c = add(app);
    commands[app.get_subcommands({})[before]] = std::move(c);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    // One line like every other error, not CLI11's two.
    return fail(fmt::format("{} (see --help)", e.what()));
  }
  for (auto& [sub, cmd] : commands)
    if (sub->parsed()) return cmd();
  return 1;
}
