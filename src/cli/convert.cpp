// gemma convert: any checkpoint we load, written as GGUF or as a Hugging Face directory.
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "model/export.h"

namespace gemma::cli {

namespace {

struct ConvertArgs {
  std::string in, out, tokenizer, quant, format;
};

int convert(const ConvertArgs& a) {
  LoadOptions lo;
  lo.tokenizer_path = a.tokenizer;
  lo.pages = FilePages::kMapped;  // reads each weight once
  auto model = Model::load(a.in, lo);
  if (!model.ok()) return fail(model.error());
  std::string format = a.format;
  if (format.empty()) format = a.out.size() > 5 && a.out.substr(a.out.size() - 5) == ".gguf" ? "gguf" : "safetensors";
  ExportOptions opt;
  if (!a.quant.empty()) {
    static const std::pair<const char*, DType> kTypes[] = {{"q8_0", DType::Q8_0}, {"q4_0", DType::Q4_0},
                                                           {"f32", DType::F32},   {"f16", DType::F16},
                                                           {"bf16", DType::BF16}};
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
  CLI::App* sub = app.add_subcommand("convert", "Convert a checkpoint to GGUF (OUT ends in .gguf) or a safetensors directory");
  sub->add_option("in", a->in, "Input checkpoint (any supported format)")->required();
  sub->add_option("out", a->out, "Output: a .gguf file, or a directory for safetensors")->required();
  sub->add_option("--quant", a->quant, "GGUF: q8_0 or q4_0 (or f32/f16/bf16); safetensors: f32, f16 or bf16");
  sub->add_option("--format", a->format, "gguf or safetensors (default: from OUT)")
      ->check(CLI::IsMember({"gguf", "safetensors"}));
  sub->add_option("--tokenizer", a->tokenizer, "tokenizer.json or tokenizer.model to include");
  return [a] { return convert(*a); };
}

}  // namespace gemma::cli
