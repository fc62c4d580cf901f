#include "model/export.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "formats/gguf_writer.h"
#include "formats/safetensors_writer.h"
#include "kernels/dequant.h"
#include "kernels/quantize.h"
#include "model/canonical.h"
#include "util/atomic_file.h"

namespace gemma {

namespace {

// The model's tensors under their canonical (GGUF) names.
struct Named {
  std::string name;
  const WeightMatrix* matrix = nullptr;  // a weight matrix, or
  const float* vector = nullptr;         // a norm (full multiplier), with its length
  int64_t length = 0;
};

std::vector<Named> canonical_tensors(const Model& m) {
  const ModelConfig& c = m.config();
  const Weights& w = m.weights();
  std::vector<Named> out;
  out.push_back({"token_embd.weight", &w.embedding});
  out.push_back({"output_norm.weight", nullptr, w.final_norm, c.hidden});
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = w.layers[static_cast<size_t>(l)];
    auto n = [l](const char* s) { return fmt::format("blk.{}.{}.weight", l, s); };
    out.push_back({n("attn_norm"), nullptr, L.attn_norm, c.hidden});
    out.push_back({n("attn_q"), &L.q});
    out.push_back({n("attn_k"), &L.k});
    out.push_back({n("attn_v"), &L.v});
    if (L.q_norm) out.push_back({n("attn_q_norm"), nullptr, L.q_norm, c.head_dim});
    if (L.k_norm) out.push_back({n("attn_k_norm"), nullptr, L.k_norm, c.head_dim});
    out.push_back({n("attn_output"), &L.o});
    if (L.post_attn_norm) out.push_back({n("post_attention_norm"), nullptr, L.post_attn_norm, c.hidden});
    out.push_back({n("ffn_norm"), nullptr, L.ffn_norm, c.hidden});
    out.push_back({n("ffn_gate"), &L.gate});
    out.push_back({n("ffn_up"), &L.up});
    out.push_back({n("ffn_down"), &L.down});
    if (L.post_ffn_norm) out.push_back({n("post_ffw_norm"), nullptr, L.post_ffn_norm, c.hidden});
  }
  return out;
}

// Row r of a matrix as float32 (dequantized, per-row scale applied).
void float_row(const WeightMatrix& w, int64_t r, float* out) {
  dequantize_row(w.type, w.row(r), out, w.cols);
  if (w.row_scales)
    for (int64_t c = 0; c < w.cols; ++c) out[c] *= w.row_scales[r];
}

// Writes a matrix as `type`, converting row by row.
Status fill_matrix(const WeightMatrix& w, DType type, uint8_t* dst) {
  const uint64_t rb = *row_bytes(type, static_cast<uint64_t>(w.cols));
  if (type == w.type && !w.row_scales) {
    for (int64_t r = 0; r < w.rows; ++r) std::memcpy(dst + r * rb, w.row(r), rb);
    return {};
  }
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    float_row(w, r, row.data());
    if (!quantize_row(type, row.data(), dst + r * rb, w.cols))
      return unsupported("cannot write type {}", dtype_name(type));
  }
  return {};
}

const char* arch_name(Generation g) {
  switch (g) {
    case Generation::kGemma1: return "gemma";
    case Generation::kGemma2: return "gemma2";
    case Generation::kGemma3: return "gemma3";
  }
  return "gemma3";
}

// llama.cpp's general.file_type for the dominant weight type.
uint32_t file_type(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q8_0: return 7;
    case DType::BF16: return 32;
    default: return 15;  // mixed (e.g. a Q4_K_M source)
  }
}

void write_tokenizer_gguf(const Tokenizer& t, GgufWriter& g) {
  std::vector<std::string> pieces;
  std::vector<int32_t> types;
  for (int32_t i = 0; i < t.vocab_size(); ++i) {
    std::string p(t.piece(i));
    // llama.cpp writes user-defined pieces with '▁' as ' ' (its loader expects that spelling).
    if (t.kind(i) == TokenKind::UserDefined)
      for (size_t k; (k = p.find("\xE2\x96\x81")) != std::string::npos;) {
        p[k] = ' ';  // (not p.replace(k, 3, " "): GCC 12 warns -Wrestrict on it, falsely, once inlined)
        p.erase(k + 1, 2);
      }
    pieces.push_back(std::move(p));
    types.push_back(static_cast<int32_t>(t.kind(i)));
  }
  g.set_string("tokenizer.ggml.model", "llama");
  g.set_string("tokenizer.ggml.pre", "default");
  g.set_string_array("tokenizer.ggml.tokens", pieces);
  g.set_f32_array("tokenizer.ggml.scores", t.scores());
  g.set_i32_array("tokenizer.ggml.token_type", types);
  g.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(t.bos_id()));
  g.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(t.eos_id()));
  if (t.unk_id() >= 0) g.set_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(t.unk_id()));
  if (t.pad_id() >= 0) g.set_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(t.pad_id()));
  g.set_bool("tokenizer.ggml.add_bos_token", true);
  g.set_bool("tokenizer.ggml.add_eos_token", false);
  g.set_bool("tokenizer.ggml.add_space_prefix", false);
}

nlohmann::ordered_json hf_config(const ModelConfig& c, const Tokenizer* t, DType type) {
  const char* arch[] = {"GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM"};
  const char* model_type[] = {"gemma", "gemma2", "gemma3_text"};
  const int gi = static_cast<int>(c.generation);
  nlohmann::ordered_json j;
  j["architectures"] = {arch[gi]};
  j["model_type"] = model_type[gi];
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden;
  j["intermediate_size"] = c.ffn;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_activation"] = "gelu_pytorch_tanh";
  j["rms_norm_eps"] = c.rms_eps;
  j["max_position_embeddings"] = c.context_length;
  j["query_pre_attn_scalar"] = 1.0 / (static_cast<double>(c.query_scale) * c.query_scale);
  j["tie_word_embeddings"] = true;
  j["torch_dtype"] = type == DType::BF16 ? "bfloat16" : type == DType::F16 ? "float16" : "float32";
  if (t) {
    j["bos_token_id"] = t->bos_id();
    j["eos_token_id"] = t->eos_id();
    if (t->pad_id() >= 0) j["pad_token_id"] = t->pad_id();
  }
  float local_base = 10000, global_base = 10000, global_scale = 1;
  for (const LayerConfig& l : c.layers) {
    (l.sliding ? local_base : global_base) = l.rope_base;
    if (!l.sliding) global_scale = l.rope_scale;
  }
  j["rope_theta"] = c.n_sliding_layers() == c.n_layers ? local_base : global_base;
  if (c.generation != Generation::kGemma1) {
    j["sliding_window"] = c.sliding_window;
    std::vector<std::string> types;
    for (const LayerConfig& l : c.layers) types.push_back(l.sliding ? "sliding_attention" : "full_attention");
    j["layer_types"] = types;
    j["attn_logit_softcapping"] = c.attn_softcap > 0 ? nlohmann::ordered_json(c.attn_softcap) : nullptr;
    j["final_logit_softcapping"] = c.final_softcap > 0 ? nlohmann::ordered_json(c.final_softcap) : nullptr;
  }
  if (c.generation == Generation::kGemma3) {
    j["rope_local_base_freq"] = local_base;
    if (global_scale != 1) j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", global_scale}};
  }
  return j;
}

// A SentencePiece ModelProto (the fields our reader and SentencePiece use), written by hand for
// the same reason we read it by hand: one message, no generated code.
std::string sentencepiece_proto(const Tokenizer& t) {
  auto varint = [](std::string& s, uint64_t v) {
    do {
      uint8_t b = v & 0x7f;
      v >>= 7;
      s += static_cast<char>(b | (v ? 0x80 : 0));
    } while (v);
  };
  auto field_bytes = [&](std::string& s, int num, std::string_view b) {
    varint(s, static_cast<uint64_t>(num) << 3 | 2);
    varint(s, b.size());
    s += b;
  };
  auto field_varint = [&](std::string& s, int num, uint64_t v) {
    varint(s, static_cast<uint64_t>(num) << 3);
    varint(s, v);
  };
  std::string out;
  for (int32_t i = 0; i < t.vocab_size(); ++i) {
    std::string p;
    field_bytes(p, 1, t.piece(i));
    p += static_cast<char>(2 << 3 | 5);  // score: fixed32
    const float sc = t.scores()[static_cast<size_t>(i)];
    p.append(reinterpret_cast<const char*>(&sc), 4);
    field_varint(p, 3, static_cast<uint64_t>(t.kind(i)));
    field_bytes(out, 1, p);
  }
  std::string trainer;
  field_varint(trainer, 3, 2);  // model_type BPE
  field_varint(trainer, 4, static_cast<uint64_t>(t.vocab_size()));
  field_varint(trainer, 35, 1);  // byte_fallback
  field_varint(trainer, 40, static_cast<uint64_t>(static_cast<uint32_t>(t.unk_id())));
  field_varint(trainer, 41, static_cast<uint64_t>(t.bos_id()));
  field_varint(trainer, 42, static_cast<uint64_t>(t.eos_id()));
  field_varint(trainer, 43, static_cast<uint64_t>(static_cast<uint32_t>(t.pad_id())));
  field_bytes(out, 2, trainer);
  std::string norm;
  field_bytes(norm, 1, "identity");
  field_varint(norm, 3, 0);  // add_dummy_prefix
  field_varint(norm, 4, 0);  // remove_extra_whitespaces
  field_bytes(out, 3, norm);
  return out;
}

}  // namespace

Status export_hf(const Model& m, const std::string& dir, const ExportOptions& opt) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return invalid_argument("{}: cannot create directory: {}", dir, ec.message());
  const std::vector<Named> tensors = canonical_tensors(m);
  DType type = DType::BF16;
  for (const Named& n : tensors)
    if (n.matrix && n.matrix->type != DType::BF16) type = DType::F32;
  if (opt.type) type = *opt.type;
  if (type != DType::F32 && type != DType::F16 && type != DType::BF16)
    return invalid_argument("safetensors output type must be f32, f16 or bf16");
  SafetensorsWriter st;
  st.set_metadata("format", "pt");
  for (const Named& n : tensors) {
    const std::string name = hf_from_canonical(n.name, m.config().generation);
    if (n.vector) {
      const float* v = n.vector;
      const int64_t len = n.length;
      GE_TRY(st.add_tensor(name, type, {len}, [v, len, type](uint8_t* dst) -> Status {
        std::vector<float> w(v, v + len);
        for (float& x : w) x -= 1.0f;  // HF stores Gemma norms zero-centred
        quantize_row(type, w.data(), dst, len);
        return {};
      }));
      continue;
    }
    const WeightMatrix* w = n.matrix;
    GE_TRY(
        st.add_tensor(name, type, {w->rows, w->cols}, [w, type](uint8_t* dst) { return fill_matrix(*w, type, dst); }));
  }
  GE_TRY(st.write((fs::path(dir) / "model.safetensors").string()));
  GE_TRY(write_file_atomically((fs::path(dir) / "config.json").string(),
                               hf_config(m.config(), m.tokenizer(), type).dump(2) + "\n"));
  if (const Tokenizer* t = m.tokenizer())
    GE_TRY(write_file_atomically((fs::path(dir) / "tokenizer.model").string(), sentencepiece_proto(*t)));
  return {};
}

Status export_gguf(const Model& m, const std::string& path, const ExportOptions& opt) {
  const ModelConfig& c = m.config();
  if (opt.type && *opt.type != DType::Q8_0 && *opt.type != DType::Q4_0 && *opt.type != DType::F32 &&
      *opt.type != DType::F16 && *opt.type != DType::BF16)
    return invalid_argument("GGUF output type must be q8_0, q4_0, f32, f16 or bf16");
  GgufWriter g;
  const std::string a = arch_name(c.generation);
  g.set_string("general.architecture", a);
  g.set_string("general.name", fmt::format("{} {}", generation_name(c.generation), c.variant));
  g.set_u32("general.quantization_version", 2);
  g.set_u32(a + ".context_length", static_cast<uint32_t>(c.context_length));
  g.set_u32(a + ".embedding_length", static_cast<uint32_t>(c.hidden));
  g.set_u32(a + ".block_count", static_cast<uint32_t>(c.n_layers));
  g.set_u32(a + ".feed_forward_length", static_cast<uint32_t>(c.ffn));
  g.set_u32(a + ".attention.head_count", static_cast<uint32_t>(c.n_heads));
  g.set_u32(a + ".attention.head_count_kv", static_cast<uint32_t>(c.n_kv_heads));
  g.set_u32(a + ".attention.key_length", static_cast<uint32_t>(c.head_dim));
  g.set_u32(a + ".attention.value_length", static_cast<uint32_t>(c.head_dim));
  g.set_f32(a + ".attention.layer_norm_rms_epsilon", c.rms_eps);
  float local_base = 10000, global_base = 10000, global_scale = 1;
  for (const LayerConfig& l : c.layers) {
    (l.sliding ? local_base : global_base) = l.rope_base;
    if (!l.sliding) global_scale = l.rope_scale;
  }
  if (c.n_sliding_layers() == c.n_layers) global_base = local_base;
  g.set_f32(a + ".rope.freq_base", global_base);
  if (c.generation == Generation::kGemma3) g.set_f32(a + ".rope.freq_base_swa", local_base);
  if (global_scale != 1) {
    g.set_string(a + ".rope.scaling.type", "linear");
    g.set_f32(a + ".rope.scaling.factor", global_scale);
  }
  if (c.sliding_window > 0 && c.n_sliding_layers() > 0) {
    g.set_u32(a + ".attention.sliding_window", static_cast<uint32_t>(c.sliding_window));
    std::vector<bool> pattern;
    for (const LayerConfig& l : c.layers) pattern.push_back(l.sliding);
    if (pattern != default_sliding_pattern(c.generation, c.n_layers) || c.generation == Generation::kGemma3)
      g.set_bool_array(a + ".attention.sliding_window_pattern", pattern);
  }
  if (c.attn_softcap > 0) g.set_f32(a + ".attn_logit_softcapping", c.attn_softcap);
  if (c.final_softcap > 0) g.set_f32(a + ".final_logit_softcapping", c.final_softcap);
  // Values llama.cpp's keys cannot express, in keys of our own that llama.cpp ignores: the query
  // scale when it is not head_dim^-0.5 (llama.cpp derives the 27B models' itself), and the
  // embedding scale when the source rounded sqrt(D) to bf16/f16.
  const float qs = c.query_scale;
  if (std::fabs(qs * std::sqrt(static_cast<float>(c.head_dim)) - 1) > 1e-6f)
    g.set_f32(a + ".attention.query_pre_attn_scalar", 1.0f / (qs * qs));
  if (c.embed_scale != std::sqrt(static_cast<float>(c.hidden))) g.set_f32(a + ".embedding_scale", c.embed_scale);
  if (const Tokenizer* t = m.tokenizer()) write_tokenizer_gguf(*t, g);

  DType dominant = DType::F32;
  for (const Named& n : canonical_tensors(m)) {
    if (n.vector) {
      const float* v = n.vector;
      const int64_t len = n.length;
      GE_TRY(g.add_tensor(n.name, DType::F32, {len}, [v, len](uint8_t* dst) -> Status {
        std::memcpy(dst, v, static_cast<size_t>(len) * 4);
        return {};
      }));
      continue;
    }
    const WeightMatrix* w = n.matrix;
    DType type = w->type;
    if (opt.type) type = (*opt.type == DType::Q4_0 && n.name == "token_embd.weight") ? DType::Q8_0 : *opt.type;
    if (ggml_type_of(type) == UINT32_MAX || type == DType::I8) type = DType::F32;  // Q4_0F, int8 rows: exact in F32
    if (dtype_info(type).quantized && w->cols % dtype_info(type).block_elems != 0) type = DType::F16;
    if (n.name == "blk.0.attn_q.weight") dominant = type;
    GE_TRY(
        g.add_tensor(n.name, type, {w->rows, w->cols}, [w, type](uint8_t* dst) { return fill_matrix(*w, type, dst); }));
  }
  g.set_u32("general.file_type", file_type(dominant));
  return g.write(path);
}

}  // namespace gemma
