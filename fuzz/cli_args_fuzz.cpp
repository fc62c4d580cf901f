// Fuzzes the CLI's option parsing (cli/app.h) for every subcommand: the input is split at NUL and
// newline bytes into arguments, after "gemma" and a subcommand chosen by the first byte (or, for
// one value in nine, none: the first argument is the subcommand). Only parses: nothing is loaded
// or run. A parse must give a command to run or an error to print, never throw or exit.
#include <cstdint>
#include <string>
#include <vector>

#include "cli/app.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char* const kSubcommands[] = {"run",     "chat",       "tokenize", "detokenize",
                                             "inspect", "perplexity", "bench",    "convert"};
  constexpr size_t kCount = sizeof kSubcommands / sizeof kSubcommands[0];
  if (size == 0) return 0;
  std::vector<std::string> args{"gemma"};
  const size_t pick = data[0] % (kCount + 1);
  if (pick < kCount) args.emplace_back(kSubcommands[pick]);
  std::string cur;
  for (size_t i = 1; i < size; ++i) {
    const char c = static_cast<char>(data[i]);
    if (c == '\0' || c == '\n') {
      args.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (size > 1) args.push_back(std::move(cur));
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);

  gemma::cli::CommandLine cli;
  const gemma::cli::ParsedArgs p = cli.parse(static_cast<int>(args.size()), argv.data());
  // A command to run, or else something to say: help text or an error (exit status 0 or not).
  if (!p.command && p.exit_code != 0 && p.error.empty()) __builtin_trap();
  return 0;
}
