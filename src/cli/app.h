// The command line as a value: every subcommand's options registered on one CLI11 app, parsed
// without running anything. main() runs what parse() chose; the cli_args fuzzer only parses.
#pragma once

#include <map>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace gemma::cli {

// What a command line asks for: a subcommand to run, or (help, a parse error) an exit status with
// the text to print. Nothing is printed and nothing exits while parsing.
struct ParsedArgs {
  Command command;    // the chosen subcommand (run it while its CommandLine lives); empty: nothing to run
  int exit_code = 0;  // without a command: what main returns
  std::string out;    // without a command: for stdout (--help's text)
  std::string error;  // without a command: for stderr, one line (a parse error), or CLI11's text
};

class CommandLine {
 public:
  CommandLine();  // registers run, chat, tokenize, detokenize, inspect, perplexity, bench, convert
  CommandLine(const CommandLine&) = delete;
  CommandLine& operator=(const CommandLine&) = delete;

  // Parses argv (argv[0] is the program). Parse errors come back in the result, never as an
  // exception or an exit. Call once per CommandLine: the options keep what they parsed.
  ParsedArgs parse(int argc, const char* const* argv);

 private:
  CLI::App app_{"gemma: run Google's Gemma models on the CPU"};
  std::map<CLI::App*, Command> commands_;
};

}  // namespace gemma::cli
