// Each subcommand registers its options on the CLI11 app and returns a callback that runs it.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace gemma::cli {

using Command = std::function<int()>;

Command add_run(CLI::App& app);
Command add_chat(CLI::App& app);
Command add_tokenize(CLI::App& app);
Command add_detokenize(CLI::App& app);
Command add_inspect(CLI::App& app);
Command add_perplexity(CLI::App& app);
Command add_bench(CLI::App& app);
Command add_convert(CLI::App& app);
Command add_serve(CLI::App& app);

}  // namespace gemma::cli
