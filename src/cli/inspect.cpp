// gemma inspect: what a checkpoint is, as detected from its files, and what running it costs.
#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "runtime/memory_plan.h"
#include "runtime/prompt.h"
#include "vision/encoder.h"

namespace gemma::cli {

namespace {

struct InspectArgs {
  std::string path, tokenizer;
  int ctx = 0;
  int parallel = 1;
  std::string kv_type = "f16";
  std::string device;  // "cuda": also the plan on the GPU
};

std::string layer_pattern(const ModelConfig& c) {
  std::string s;
  for (const LayerConfig& l : c.layers) s += l.sliding ? 'L' : 'G';
  return s;
}

int inspect(const InspectArgs& a) {
  LoadOptions opts;
  opts.tokenizer_path = a.tokenizer;
  opts.pages = FilePages::kMapped;  // reads no weights
  auto model = Model::load(a.path, opts);
  if (!model.ok()) return fail(model.error());
  const Model& m = **model;
  const ModelConfig& c = m.config();
  const CheckpointInfo& info = m.info();
  const int n_ctx = a.ctx > 0 ? a.ctx : default_context(c);
  fmt::print("file:            {}\n", info.path);
  fmt::print("format:          {} ({})\n", info.format, human_bytes(info.file_bytes));
  fmt::print("generation:      {}\n", generation_name(c.generation));
  fmt::print("variant:         {}{}\n", c.variant, c.instruction_tuned ? " (instruction-tuned: chat template)" : "");
  fmt::print("parameters:      {} ({:.1f} M)\n", info.n_params, static_cast<double>(info.n_params) / 1e6);
  std::string dtypes;
  for (const auto& [name, n] : info.tensors_by_dtype)
    dtypes += fmt::format("{}{} {}", dtypes.empty() ? "" : ", ", n, name);
  fmt::print("tensors:         {}\n", dtypes);
  fmt::print("config:\n");
  fmt::print(
      "  vocab          {} (tokenizer: {})\n", c.vocab_size,
      m.tokenizer() ? fmt::format("{} tokens from {}", m.tokenizer()->vocab_size(), info.tokenizer_source) : "none");
  fmt::print("  hidden         {}\n  layers         {}\n", c.hidden, c.n_layers);
  fmt::print("  heads          {} query, {} KV, head_dim {}\n", c.n_heads, c.n_kv_heads, c.head_dim);
  fmt::print("  ffn            {}\n  context        {}\n", c.ffn, c.context_length);
  fmt::print("  sliding window {} ({} local + {} global layers: {})\n", c.sliding_window, c.n_sliding_layers(),
             c.n_layers - c.n_sliding_layers(), layer_pattern(c));
  float local_base = 0, global_base = 0, global_scale = 1;
  for (const LayerConfig& l : c.layers) (l.sliding ? local_base : global_base) = l.rope_base;
  for (const LayerConfig& l : c.layers)
    if (!l.sliding) global_scale = l.rope_scale;
  fmt::print("  rope           local base {:g}, global base {:g}, global linear scale {:g}\n", local_base, global_base,
             global_scale);
  fmt::print("  query scale    {:.6g}\n  rms eps        {:g}\n  embed scale    {:.6g}\n", c.query_scale, c.rms_eps,
             c.embed_scale);
  fmt::print("  softcaps       attention {:g}, final {:g}\n", c.attn_softcap, c.final_softcap);
  fmt::print("  qk-norm        {}\n  post-norms     {}\n", c.qk_norm ? "yes" : "no", c.post_norms ? "yes" : "no");
  // From the config where there is one; a gemma_pytorch .ckpt has none, so its tower's shapes
  // are read (mapped views: only the tower's headers and a few pages).
  std::optional<VisionConfig> vision = c.vision;
  if (!vision && info.vision_bytes > 0)
    if (auto lv = load_vision(a.path, ""); lv.ok()) vision = lv->config;
  if (vision) {  // the tower's tensors stay unread until an image comes
    const VisionConfig& v = *vision;
    fmt::print(
        "vision tower:    SigLIP {}px / {}px patches ({} patches), width {}, {} layers, {} heads, ffn {}, "
        "{} tokens per image (pool {}x{})\n",
        v.image_size, v.patch_size, v.n_patches(), v.hidden, v.n_layers, v.n_heads, v.ffn, v.tokens_per_image,
        v.pool_kernel(), v.pool_kernel());
    const uint64_t acts =
        static_cast<uint64_t>(v.n_patches()) * (6ull * v.hidden + v.ffn + 3ull * v.patch_size * v.patch_size) * 4;
    fmt::print("                 tensors {} (loaded only when an image is given), encoder activations {}\n",
               human_bytes(info.vision_bytes), human_bytes(acts));
  }
  for (const std::string& n : info.notes) fmt::print("note:            {}\n", n);
  // Memory plan of an engine with these options (runtime/memory_plan.h).
  EngineOptions eo;
  eo.n_ctx = n_ctx;
  eo.max_sequences = a.parallel;
  eo.step_tokens = std::max(eo.step_tokens, a.parallel);
  auto kv_type = parse_kv_type(a.kv_type);
  if (!kv_type.ok()) return fail(kv_type.error());
  eo.kv_type = *kv_type;
  const MemoryPlan plan = plan_memory(m, eo);
  fmt::print("memory plan (context {}, {} sequence{}):\n", n_ctx, a.parallel, a.parallel == 1 ? "" : "s");
  fmt::print("  weights        {} (as stored; memory-mapped where the format allows)\n", human_bytes(plan.weights));
  fmt::print("  KV cache       {} ({} per sequence, {}; a full-length cache on every layer would be {})\n",
             human_bytes(plan.kv_total()), human_bytes(plan.kv_per_sequence), a.kv_type,
             human_bytes(plan.kv_full_length));
  fmt::print("  scratch        {} (step of {} tokens, logits {})\n", human_bytes(plan.scratch + plan.logits),
             eo.step_tokens, human_bytes(plan.logits));
  fmt::print("  total          {}\n", human_bytes(plan.total()));
  if (a.device == "cuda") {
    // The CUDA backend holds all of it in device memory (weights uploaded in their stored layout),
    // plus its own scratch for many-token products.
    auto dm = device_memory(a.device);
    if (!dm.ok()) return fail(dm.error());
    const uint64_t need = plan.total() + dm->backend_scratch;
    fmt::print("GPU memory plan (cuda: {}):\n", dm->name);
    fmt::print("  device memory  {} ({} + backend scratch {})\n", human_bytes(need), human_bytes(plan.total()),
               human_bytes(dm->backend_scratch));
    fmt::print("  available      {} free of {}: {}\n", human_bytes(dm->free_bytes), human_bytes(dm->total_bytes),
               need <= dm->free_bytes ? "fits" : "does not fit");
  }
  return 0;
}

}  // namespace

Command add_inspect(CLI::App& app) {
  auto a = std::make_shared<InspectArgs>();
  CLI::App* sub = app.add_subcommand("inspect", "Describe a checkpoint: format, variant, config, tensors, memory plan");
  sub->add_option("path", a->path, "Checkpoint")->required();
  sub->add_option("--tokenizer", a->tokenizer, "tokenizer.json or tokenizer.model");
  sub->add_option("-c,--ctx", a->ctx, "Context size for the memory plan (default: min(model context, 8192))")
      ->check(CLI::Range(1, 1 << 24));
  sub->add_option("--parallel", a->parallel, "Sequences held at once, for the memory plan")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  sub->add_option("--kv-type", a->kv_type, "KV cache element type for the memory plan: f16, f32, bf16 or q8_0")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}))
      ->capture_default_str();
  sub->add_option("--device", a->device, "cuda: also the plan in GPU memory (a -DGEMMA_CUDA=ON build, on a GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  return [a] { return inspect(*a); };
}

}  // namespace gemma::cli
