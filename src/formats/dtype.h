// Element and block types of stored tensors. Block-quantized types follow ggml's layouts exactly
// (docs/spec/formats.md §5.5): a row of `cols` elements is `cols / block_elems` consecutive blocks.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace gemma {

enum class DType : uint8_t {
  F32,
  F16,
  BF16,
  Q8_0,
  Q4_0,
  Q4_1,
  Q5_0,
  Q5_1,
  Q4_K,
  Q5_K,
  Q6_K,
  Q8_K,
  Q4_0F,  // internal: Q4_0's layout with a float32 scale (int4 QAT / AWQ groups of 32, exact scales)
  I8,     // plain int8 (gemma_pytorch int8 weights; paired with per-row scales)
  I32,    // plain int32 (AWQ packed words)
  F64,
  kCount
};

struct DTypeInfo {
  std::string_view name;
  int block_elems;  // elements per block (1 for plain types)
  int block_bytes;  // bytes per block
  bool quantized;   // a ggml block type
};

const DTypeInfo& dtype_info(DType t);
inline std::string_view dtype_name(DType t) { return dtype_info(t).name; }

// Bytes of a row of `cols` elements, or nullopt when cols is not a multiple of the block size.
std::optional<uint64_t> row_bytes(DType t, uint64_t cols);

// ggml type ids as stored in GGUF (ggml.h `enum ggml_type`); nullopt for ids we do not support.
std::optional<DType> dtype_from_ggml(uint32_t ggml_type);
uint32_t ggml_type_of(DType t);

}  // namespace gemma
