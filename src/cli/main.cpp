// gemma: the command-line front end. `gemma <subcommand> --help` describes each one.
#include <cstdio>

#include "cli/app.h"

int main(int argc, char** argv) {
  gemma::cli::CommandLine cli;
  gemma::cli::ParsedArgs p = cli.parse(argc, argv);
  if (p.command) return p.command();
  std::fwrite(p.out.data(), 1, p.out.size(), stdout);
  std::fwrite(p.error.data(), 1, p.error.size(), stderr);
  return p.exit_code;
}
