// gemma tokenize / detokenize: the tokenizer on its own, for scripts and tests.
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"

namespace gemma::cli {

namespace {

struct TokArgs {
  std::string model, tokenizer, text;
  bool bos = false, jsonl = false, text_given = false;
  std::vector<int32_t> ids;
};

Result<Tokenizer> open_tokenizer(const TokArgs& a) {
  if (!a.tokenizer.empty()) return Tokenizer::from_file(a.tokenizer);
  GE_ASSIGN(std::string path, resolve_model_path(a.model, true));
  LoadOptions opts;
  opts.pages = FilePages::kMapped;  // only the tokenizer is needed
  GE_ASSIGN(auto m, Model::load(path, opts));
  if (!m->tokenizer()) return not_found("{}: no tokenizer in the checkpoint; pass --tokenizer", path);
  return *m->tokenizer();
}

int tokenize(const TokArgs& a) {
  auto tok = open_tokenizer(a);
  if (!tok.ok()) return fail(tok.error());
  if (!a.jsonl) {
    std::string text = a.text;
    if (!a.text_given) {
      auto in = read_stdin_bounded();
      if (!in.ok()) return fail(in.error());
      text = std::move(*in);
    }
    auto ids = tok->encode(text, a.bos);
    if (!ids.ok()) return fail(ids.error());
    fmt::print("{}\n", fmt::join(*ids, " "));
    return 0;
  }
  std::string line;
  int line_no = 0, status = 0;
  // A bad line is answered with {"error": ...} in its place (the others still get their ids) and
  // named on stderr, so that a script sees why it failed without parsing the output.
  auto bad_line = [&](const std::string& why) {
    const std::string msg = fmt::format("line {}: {}", line_no, why);
    fmt::print("{}\n", nlohmann::json{{"error", msg}}.dump());
    fmt::print(stderr, "gemma: error: {}\n", msg);
    status = 1;
  };
  for (;;) {
    auto more = read_line_bounded(std::cin, line);
    ++line_no;
    if (!more.ok()) return fail(fmt::format("line {}: {}", line_no, more.error().message));
    if (!*more) break;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      bad_line(utf8_first_invalid(line) ? "invalid UTF-8" : "invalid JSON");
      continue;
    }
    if (!j.is_object()) {
      bad_line("expected a JSON object {\"text\": string}");
      continue;
    }
    if (!j.contains("text")) {
      bad_line("missing \"text\"");
      continue;
    }
    if (!j["text"].is_string()) {
      bad_line(fmt::format("\"text\" is {}, not a string", j["text"].type_name()));
      continue;
    }
    auto ids = tok->encode(j["text"].get<std::string>(), a.bos);
    if (!ids.ok()) {
      bad_line(ids.error().message);
      continue;
    }
    fmt::print("{}\n", nlohmann::json{{"ids", *ids}}.dump());
  }
  return status;
}

int detokenize(const TokArgs& a) {
  auto tok = open_tokenizer(a);
  if (!tok.ok()) return fail(tok.error());
  for (int32_t id : a.ids)
    if (id < 0 || id >= tok->vocab_size()) return fail(fmt::format("token id {} is outside the vocabulary", id));
  std::string s = tok->decode(a.ids);
  fmt::print("{}\n", s);
  return 0;
}

}  // namespace

Command add_tokenize(CLI::App& app) {
  auto a = std::make_shared<TokArgs>();
  CLI::App* sub = app.add_subcommand("tokenize", "Print the token ids of TEXT (or, with --jsonl, of each stdin line)");
  sub->add_option("-m,--model", a->model, "Take the tokenizer from this checkpoint");
  sub->add_option("--tokenizer", a->tokenizer, "tokenizer.json or tokenizer.model");
  sub->add_flag("--bos", a->bos, "Prepend <bos>");
  sub->add_flag("--jsonl", a->jsonl, "Read {\"text\": ...} lines on stdin, write {\"ids\": [...]} lines");
  CLI::Option* text = sub->add_option("text", a->text, "Text to tokenize (default: standard input)");
  return [a, text] {
    a->text_given = text->count() > 0;
    return tokenize(*a);
  };
}

Command add_detokenize(CLI::App& app) {
  auto a = std::make_shared<TokArgs>();
  CLI::App* sub = app.add_subcommand("detokenize", "Print the text of token ids");
  sub->add_option("-m,--model", a->model, "Take the tokenizer from this checkpoint");
  sub->add_option("--tokenizer", a->tokenizer, "tokenizer.json or tokenizer.model");
  sub->add_option("ids", a->ids, "Token ids")->required();
  return [a] { return detokenize(*a); };
}

}  // namespace gemma::cli
