// gemma convert: any checkpoint we load, written as GGUF or as a Hugging Face directory.
#include <filesystem>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "model/export.h"

namespace gemma::cli {

namespace {

struct ConvertArgs {
  std::string in, out, tokenizer, quant, format;
};

using FileId = std::pair<dev_t, ino_t>;

bool file_id(const std::string& path, FileId& id) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;  // stat follows symlinks: a link to IN is IN
  id = {st.st_dev, st.st_ino};
  return true;
}

// Refuses an output that would replace what the conversion reads: IN itself (or a symlink or hard
// link to it), a file inside an input directory, or, for a directory output, the input's directory
// (config.json and tokenizer.model there are inputs too). The writers already replace outputs by
// rename, so a mapped input is never truncated, but overwriting it would still lose the checkpoint.
Status check_output(const ConvertArgs& a, bool gguf) {
  namespace fs = std::filesystem;
  std::set<FileId> inputs, input_dirs;
  auto add_input = [&](const std::string& p) {
    FileId id;
    if (p.empty() || !file_id(p, id)) return;
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      input_dirs.insert(id);
      // Checkpoints are a directory or two deep; a bound keeps a hostile tree from stalling us.
      int visited = 0;
      for (fs::recursive_directory_iterator it(p, fs::directory_options::skip_permission_denied, ec), end;
           !ec && it != end && ++visited < 100000; it.increment(ec)) {
        FileId f;
        if (it.depth() > 4) it.disable_recursion_pending();
        if (file_id(it->path().string(), f)) inputs.insert(f);
      }
    } else {
      inputs.insert(id);
      const fs::path parent = fs::path(p).parent_path();
      if (file_id(parent.empty() ? "." : parent.string(), id)) input_dirs.insert(id);
    }
  };
  add_input(a.in);
  add_input(a.tokenizer);
  auto same = [&](const std::string& out) {
    FileId id;
    return file_id(out, id) && (inputs.count(id) || (!gguf && input_dirs.count(id)));
  };
  if (gguf) {
    if (same(a.out))
      return invalid_argument("{}: the output is the input checkpoint (or a link to it); choose another path", a.out);
    return {};
  }
  if (same(a.out))
    return invalid_argument("{}: the output directory holds the input checkpoint; choose another directory", a.out);
  for (const char* name : {"model.safetensors", "config.json", "tokenizer.model"})
    if (same((fs::path(a.out) / name).string()))
      return invalid_argument("{}: would overwrite an input file ({}); choose another directory", a.out, name);
  return {};
}

int convert(const ConvertArgs& a) {
  std::string format = a.format;
  if (format.empty()) format = a.out.size() > 5 && a.out.substr(a.out.size() - 5) == ".gguf" ? "gguf" : "safetensors";
  if (Status st = check_output(a, format == "gguf"); !st.ok()) return fail(st.error());
  LoadOptions lo;
  lo.tokenizer_path = a.tokenizer;
  lo.pages = FilePages::kMapped;  // reads each weight once
  auto model = Model::load(a.in, lo);
  if (!model.ok()) return fail(model.error());
  ExportOptions opt;
  if (!a.quant.empty()) {
    static const std::pair<const char*, DType> kTypes[] = {
        {"q8_0", DType::Q8_0}, {"q4_0", DType::Q4_0}, {"f32", DType::F32}, {"f16", DType::F16}, {"bf16", DType::BF16}};
    for (const auto& [n, t] : kTypes)
      if (a.quant == n) opt.type = t;
    if (!opt.type) return fail("--quant must be one of q8_0, q4_0, f32, f16, bf16");
  }
  const Status st = format == "gguf" ? export_gguf(**model, a.out, opt) : export_hf(**model, a.out, opt);
  if (!st.ok()) return fail(st.error());
  fmt::print(stderr, "gemma: wrote {} ({} {}, {})\n", a.out, generation_name((*model)->config().generation),
             (*model)->config().variant, format);
  return 0;
}

}  // namespace

Command add_convert(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  CLI::App* sub =
      app.add_subcommand("convert", "Convert a checkpoint to GGUF (OUT ends in .gguf) or a safetensors directory");
  sub->add_option("in", a->in, "Input checkpoint (any supported format)")->required();
  sub->add_option("out", a->out, "Output: a .gguf file, or a directory for safetensors")->required();
  sub->add_option("--quant", a->quant, "GGUF: q8_0 or q4_0 (or f32/f16/bf16); safetensors: f32, f16 or bf16");
  sub->add_option("--format", a->format, "gguf or safetensors (default: from OUT)")
      ->check(CLI::IsMember({"gguf", "safetensors"}));
  sub->add_option("--tokenizer", a->tokenizer, "tokenizer.json or tokenizer.model to include");
  return [a] { return convert(*a); };
}

}  // namespace gemma::cli
