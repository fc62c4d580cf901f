// gemma_pytorch checkpoints (docs/spec/formats.md §2.3-2.4): torch.save({'model_state_dict': ...}) or a
// sharded directory, with gemma_pytorch's names and a fused qkv_proj. They carry no config:
// the generation and the shape come from the tensors, the rest (window, RoPE, query scale,
// soft-caps) from gemma_pytorch's variant configs (docs/spec/architecture.md §1).
//
// Conversions to the canonical scheme: qkv_proj is split into attn_q/k/v (views, no copy); norms
// get Gemma's 1 + w folded in as float32. int8 checkpoints (--quant) keep their weights int8:
// the per-output-row weight_scaler travels as the companion tensor "<canonical name>.row_scale"
// (float32 [rows]) that bind_weights attaches to the matrix as WeightMatrix::row_scales.
#include <cctype>
#include <cmath>
#include <filesystem>
#include <optional>
#include <set>

#include "formats/torch/torch_checkpoint.h"
#include "kernels/dequant.h"
#include "model/canonical.h"
#include "model/loaders.h"
#include "model/variants.h"
#include "util/half.h"

namespace gemma {

namespace fs = std::filesystem;

namespace {

std::string layer_key(int l, const char* part) { return fmt::format("model.layers.{}.{}", l, part); }

// "model.layers.<N>.<rest>" -> N, or -1.
int layer_of(const std::string& name) {
  const std::string head = "model.layers.";
  if (name.compare(0, head.size(), head) != 0) return -1;
  size_t i = head.size();
  int64_t n = 0;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])) && n < 100000)
    n = n * 10 + (name[i++] - '0');
  if (i == head.size() || i >= name.size() || name[i] != '.' || n >= 100000) return -1;
  return static_cast<int>(n);
}

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64; }

class Converter {
 public:
  Converter(const TensorSet& raw, LoadedCheckpoint& out, const std::string& src) : raw_(raw), out_(out), src_(src) {}

  Result<const Tensor*> get(const std::string& name, size_t ndim) {
    const Tensor* t = raw_.find(name);
    if (!t) return not_found("{}: missing tensor '{}'", src_, name);
    if (t->shape.size() != ndim)
      return corrupt_input("{}: tensor '{}' has shape {}, expected {} dimensions", src_, name, t->shape_string(), ndim);
    used_.insert(name);
    return t;
  }

  // A norm: 1 + w in float32.
  Status norm(const std::string& from, const std::string& to, int64_t n) {
    GE_ASSIGN(const Tensor* t, get(from, 1));
    if (t->shape[0] != n)
      return corrupt_input("{}: norm '{}' has shape {}, expected [{}]", src_, from, t->shape_string(), n);
    auto folded = fold_norm(*t, out_.tensors);
    if (!folded.ok()) return with_context(std::move(folded).error(), src_);
    folded->name = to;
    out_.tensors.add(std::move(folded).value());
    return {};
  }

  // Rows [r0, r0 + rows) of the linear weight `from` (+ its weight_scaler) as canonical `to`.
  Status linear(const std::string& from, const std::string& to, int64_t r0, int64_t rows, int64_t cols) {
    const std::string wname = from + ".weight";
    GE_ASSIGN(const Tensor* w, get(wname, 2));
    if (w->shape[1] != cols || r0 + rows > w->shape[0])
      return corrupt_input("{}: tensor '{}' has shape {}, expected {} columns and at least {} rows", src_, wname,
                           w->shape_string(), cols, r0 + rows);
    const uint64_t row_bytes = static_cast<uint64_t>(cols) * static_cast<uint64_t>(dtype_info(w->dtype).block_bytes);
    out_.tensors.add(Tensor{to + ".weight",
                            w->dtype,
                            {rows, cols},
                            w->data + static_cast<uint64_t>(r0) * row_bytes,
                            static_cast<uint64_t>(rows) * row_bytes});
    const std::string sname = from + ".weight_scaler";
    const Tensor* s = raw_.find(sname);
    if (w->dtype == DType::I8 && !s) return not_found("{}: int8 tensor '{}' has no weight_scaler", src_, wname);
    if (!s) return {};
    if (w->dtype != DType::I8)
      return corrupt_input("{}: '{}' exists but '{}' is {}, not int8", src_, sname, wname, dtype_name(w->dtype));
    used_.insert(sname);
    if (s->shape.size() != 1 || s->shape[0] != w->shape[0] || !is_float(s->dtype))
      return corrupt_input(
          "{}: '{}' has type {} and shape {}, expected a float vector of {} (one scale per output row)", src_, sname,
          dtype_name(s->dtype), s->shape_string(), w->shape[0]);
    const uint64_t elem = static_cast<uint64_t>(dtype_info(s->dtype).block_bytes);
    auto* f = reinterpret_cast<float*>(out_.tensors.allocate(static_cast<uint64_t>(rows) * 4));
    dequantize_row(s->dtype, s->data + static_cast<uint64_t>(r0) * elem, f, rows);
    out_.tensors.add(Tensor{to + ".weight.row_scale",
                            DType::F32,
                            {rows},
                            reinterpret_cast<const uint8_t*>(f),
                            static_cast<uint64_t>(rows) * 4});
    return {};
  }

  const std::set<std::string>& used() const { return used_; }

 private:
  const TensorSet& raw_;
  LoadedCheckpoint& out_;
  const std::string& src_;
  std::set<std::string> used_;
};

// Finds the checkpoint file(s) behind `path`: a file, a sharded directory, or a directory with
// exactly one *.ckpt (a Kaggle gemma_pytorch download: model.ckpt + tokenizer.model).
Result<std::string> resolve(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return path;
  if (fs::exists(fs::path(path) / "pytorch_model.bin.index.json", ec)) return path;
  std::vector<std::string> ckpts;
  // increment(ec), not a range-for: the iterator's operator++ throws on an unreadable entry.
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".ckpt") ckpts.push_back(it->path().string());
  if (ec) return invalid_argument("{}: cannot list the directory: {}", path, ec.message());
  if (ckpts.size() != 1)
    return corrupt_input(
        "{}: expected one .ckpt file or pytorch_model.bin.index.json in the directory, found {} .ckpt files", path,
        ckpts.size());
  return ckpts[0];
}

// The canonical tensors: embedding, final norm, and per layer the fused qkv_proj split into
// attn_q/k/v (views), the other linears and the norms (1 + w).
Status convert_tensors(Converter& conv, const ModelConfig& c, const std::string& emb_name, const std::string& file) {
  const int64_t V = c.vocab_size, D = c.hidden, H = c.head_dim, F = c.ffn, N_H = c.q_width(), K_H = c.kv_width();
  GE_TRY(conv.linear(emb_name, "token_embd", 0, V, D));
  GE_TRY(conv.norm("model.norm.weight", "output_norm.weight", D));
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string blk = fmt::format("blk.{}.", l);
    auto key = [&](const char* part) { return layer_key(l, part); };
    GE_TRY(conv.linear(key("self_attn.qkv_proj"), blk + "attn_q", 0, N_H, D));
    GE_TRY(conv.linear(key("self_attn.qkv_proj"), blk + "attn_k", N_H, K_H, D));
    GE_TRY(conv.linear(key("self_attn.qkv_proj"), blk + "attn_v", N_H + K_H, K_H, D));
    GE_ASSIGN(const Tensor* fused, conv.get(key("self_attn.qkv_proj.weight"), 2));
    if (fused->shape[0] != N_H + 2 * K_H)
      return corrupt_input("{}: '{}' has shape {}, layer 0's has {} rows", file, key("self_attn.qkv_proj.weight"),
                           fused->shape_string(), N_H + 2 * K_H);
    GE_TRY(conv.linear(key("self_attn.o_proj"), blk + "attn_output", 0, D, N_H));
    GE_TRY(conv.linear(key("mlp.gate_proj"), blk + "ffn_gate", 0, F, D));
    GE_TRY(conv.linear(key("mlp.up_proj"), blk + "ffn_up", 0, F, D));
    GE_TRY(conv.linear(key("mlp.down_proj"), blk + "ffn_down", 0, D, F));
    GE_TRY(conv.norm(key("input_layernorm.weight"), blk + "attn_norm.weight", D));
    if (c.generation == Generation::kGemma1) {
      // Gemma 1's post_attention_layernorm is the pre-FFN norm (docs/spec/formats.md §2.3).
      GE_TRY(conv.norm(key("post_attention_layernorm.weight"), blk + "ffn_norm.weight", D));
    } else {
      GE_TRY(conv.norm(key("post_attention_layernorm.weight"), blk + "post_attention_norm.weight", D));
      GE_TRY(conv.norm(key("pre_feedforward_layernorm.weight"), blk + "ffn_norm.weight", D));
      GE_TRY(conv.norm(key("post_feedforward_layernorm.weight"), blk + "post_ffw_norm.weight", D));
    }
    if (c.qk_norm) {
      GE_TRY(conv.norm(key("self_attn.query_norm.weight"), blk + "attn_q_norm.weight", H));
      GE_TRY(conv.norm(key("self_attn.key_norm.weight"), blk + "attn_k_norm.weight", H));
    }
  }
  return {};
}

// Everything else: the vision tower and projector of multimodal Gemma 3 (not used for text),
// rope tables, anything unknown (an unknown per-layer tensor is an error). Counts every tensor
// into `info`.
Status account_for_the_rest(const TensorSet& raw, const Converter& conv, Generation g, const std::string& file,
                            CheckpointInfo& info) {
  int vision = 0;
  for (const auto& [name, t] : raw.all()) {
    info.tensors_by_dtype[std::string(dtype_name(t.dtype))]++;
    info.n_params += static_cast<uint64_t>(t.numel());
    info.file_bytes += t.nbytes;
    if (conv.used().count(name)) continue;
    if (name.rfind("siglip_vision_model.", 0) == 0 || name.rfind("mm_", 0) == 0) {
      ++vision;
      info.vision_bytes += t.nbytes;  // left in the (mapped) file: load_vision reads it for an image
      continue;
    }
    if (layer_of(name) >= 0)
      return corrupt_input("{}: unexpected tensor '{}' for a {} checkpoint", file, name, generation_name(g));
    info.notes.push_back("ignored tensor " + name);
  }
  if (vision)
    info.notes.push_back(fmt::format("ignored {} vision tower / projector tensors (text model only)", vision));
  return {};
}

}  // namespace

Result<LoadedCheckpoint> load_gemma_pytorch(const std::string& path) {
  GE_ASSIGN(const std::string file, resolve(path));
  TensorSet raw;
  std::vector<std::string> skipped;
  GE_TRY(read_torch_checkpoint(file, raw, &skipped));
  LoadedCheckpoint out;
  CheckpointInfo& info = out.info;
  for (const std::string& s : skipped) info.notes.push_back("ignored tensor " + s + ": type not supported");

  // Generation: Gemma 3 has QK-norm, Gemma 2 the extra FFN norms, Gemma 1 neither.
  const Tensor* emb = raw.find("embedder.weight");
  const Tensor* mm_emb = raw.find("text_token_embedder.weight");
  if (emb && mm_emb) return corrupt_input("{}: both embedder.weight and text_token_embedder.weight", file);
  const bool multimodal = mm_emb != nullptr;
  const std::string emb_name = multimodal ? "text_token_embedder" : "embedder";
  if (!emb && !mm_emb)
    return not_found("{}: no embedder.weight or text_token_embedder.weight: not a gemma_pytorch checkpoint", file);
  if (!emb) emb = mm_emb;
  int n_layers = 0;
  for (const auto& [name, t] : raw.all()) n_layers = std::max(n_layers, layer_of(name) + 1);
  if (n_layers == 0) return not_found("{}: no model.layers.* tensors", file);
  ModelConfig c;
  c.generation = raw.find(layer_key(0, "self_attn.query_norm.weight"))        ? Generation::kGemma3
                 : raw.find(layer_key(0, "pre_feedforward_layernorm.weight")) ? Generation::kGemma2
                                                                              : Generation::kGemma1;
  if (multimodal && c.generation != Generation::kGemma3)
    return corrupt_input("{}: text_token_embedder (Gemma 3 multimodal) without QK-norm tensors", file);

  // Shapes: embedding [V, D], qkv [(N + 2K)·H, D], o [D, N·H], gate [F, D]; H from the QK-norm
  // where there is one, else from the released variant with these widths.
  const std::string src = file;
  Converter conv(raw, out, src);
  if (emb->shape.size() != 2)
    return corrupt_input("{}: {}.weight has shape {}, expected 2 dimensions", file, emb_name, emb->shape_string());
  const int64_t V = emb->shape[0], D = emb->shape[1];
  GE_ASSIGN(const Tensor* qkv, conv.get(layer_key(0, "self_attn.qkv_proj.weight"), 2));
  GE_ASSIGN(const Tensor* o, conv.get(layer_key(0, "self_attn.o_proj.weight"), 2));
  GE_ASSIGN(const Tensor* gate, conv.get(layer_key(0, "mlp.gate_proj.weight"), 2));
  const int64_t QW = o->shape[1], KVW2 = qkv->shape[0] - QW;
  if (o->shape[0] != D || qkv->shape[1] != D || KVW2 <= 0 || KVW2 % 2 != 0)
    return corrupt_input("{}: attention shapes do not fit together: qkv_proj {}, o_proj {}, embedding {}", file,
                         qkv->shape_string(), o->shape_string(), emb->shape_string());
  const int64_t KVW = KVW2 / 2, F = gate->shape[0];
  // The release with these attention widths, preferring one whose layer count and F match too.
  const Variant* known = nullptr;
  for (const Variant& v : released_variants())
    if (v.generation == c.generation && v.hidden == D && v.heads * v.head_dim == QW && v.kv_heads * v.head_dim == KVW &&
        (!known || (v.layers == n_layers && v.ffn == F)))
      known = &v;
  int64_t H = 0;
  if (c.generation == Generation::kGemma3) {
    GE_ASSIGN(const Tensor* qn, conv.get(layer_key(0, "self_attn.query_norm.weight"), 1));
    H = qn->shape[0];
  } else if (known) {
    H = known->head_dim;
    if (known->layers != n_layers || known->ffn != F)
      info.notes.push_back(fmt::format("head_dim {} taken from the released {} variant with the same attention widths",
                                       H, generation_name(c.generation)));
  } else if (QW % 256 == 0 && KVW % 256 == 0) {
    // Every released Gemma 1 and Gemma 2 but the 27B (matched above) has head_dim 256.
    H = 256;
    info.notes.push_back(
        fmt::format("attention widths match no released {} variant: head_dim 256 assumed, as in "
                    "every released one but Gemma 2 27B",
                    generation_name(c.generation)));
  } else {
    return unsupported(
        "{}: cannot tell the head size of this {} checkpoint: q width {} and kv width {} match no released "
        "variant and are not multiples of 256, and gemma_pytorch checkpoints carry no config",
        file, generation_name(c.generation), QW, KVW);
  }
  if (H <= 0 || QW % H != 0 || KVW % H != 0)
    return corrupt_input("{}: head size {} does not divide the q width {} and kv width {}", file, H, QW, KVW);
  c.vocab_size = static_cast<int>(V);
  c.hidden = static_cast<int>(D);
  c.n_layers = n_layers;
  c.n_heads = static_cast<int>(QW / H);
  c.n_kv_heads = static_cast<int>(KVW / H);
  c.head_dim = static_cast<int>(H);
  c.ffn = static_cast<int>(F);
  c.rms_eps = 1e-6f;
  c.qk_norm = c.generation == Generation::kGemma3;
  c.post_norms = c.generation != Generation::kGemma1;
  // Configuration the tensors do not carry: the release's, else the generation's (for a custom
  // shape: the smaller released models' values, query_pre_attn_scalar = H; a multimodal one
  // takes the larger Gemma 3 models' window, context and global RoPE scale).
  const Variant* exact = find_variant(c);
  Variant settings = exact ? *exact : generation_defaults(c.generation);
  if (!exact) {
    if (multimodal) {
      settings.context_length = 131072;
      settings.sliding_window = 1024;
      settings.global_rope_scale = 8;
    }
    info.notes.push_back(
        fmt::format("shape matches no released variant: {} defaults assumed (window {}, "
                    "query_pre_attn_scalar = head_dim {}, "
                    "context {})",
                    generation_name(c.generation), settings.sliding_window, H, settings.context_length));
  }
  apply_variant_settings(settings, c);
  c.variant = settings.name;

  GE_TRY(convert_tensors(conv, c, emb_name, file));
  GE_TRY(account_for_the_rest(raw, conv, c.generation, file, info));
  out.tensors.merge_owners(raw);

  // sqrt(D) in the dtype gemma_pytorch computes the embedding in: the weight's, or for int8 the
  // scaler's (int8 * scaler takes the scaler's dtype).
  DType emb_type = emb->dtype;
  if (emb_type == DType::I8) emb_type = raw.find(emb_name + ".weight_scaler")->dtype;
  const float s = std::sqrt(static_cast<float>(D));
  c.embed_scale = emb_type == DType::BF16  ? bf16_to_f32(f32_to_bf16(s))
                  : emb_type == DType::F16 ? f16_to_f32(f32_to_f16(s))
                                           : s;
  GE_TRY(c.validate(file));
  std::error_code ec;
  const bool file_is_dir = fs::is_directory(file, ec);
  const bool sharded = file_is_dir || (file.size() > 5 && file.compare(file.size() - 5, 5, ".json") == 0);
  info.format = fmt::format("gemma_pytorch ({}{})", sharded ? "sharded torch.save" : "torch.save",
                            emb->dtype == DType::I8 ? ", int8" : "");
  info.path = path;
  out.config = std::move(c);
  fs::path tok_dir = file_is_dir ? fs::path(file) : fs::path(file).parent_path();
  if (tok_dir.empty()) tok_dir = ".";
  out.tokenizer_dir = tok_dir.string();
  return out;
}

}  // namespace gemma
