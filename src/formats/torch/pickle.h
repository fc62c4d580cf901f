// A pickle interpreter that executes nothing (docs/spec/formats.md §2.2, §8.4-8.8). It runs the opcode
// subset that torch.save emits for state dicts (protocols 2, 4 and 5) and builds a small value
// tree: None, bool, int, float, str, tuple, list, dict (OrderedDict too), storage and tensor
// references. The only callables are looked up in a fixed table — collections.OrderedDict,
// torch._utils._rebuild_tensor_v2 / _v3 / _rebuild_parameter, the torch.*Storage classes and the
// torch.<dtype> objects of _rebuild_tensor_v3 — and "calling" one builds a value; every other
// opcode, global or REDUCE target is an error naming it and its byte offset.
//
// Values live in an arena owned by the Pickle and refer to each other by pointer, so cyclic and
// deeply nested pickles are freed without recursion. The stack, the mark stack and the memo are capped.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/dtype.h"
#include "util/result.h"

namespace gemma {

// Element types of torch storages and tensors.
enum class TorchType : uint8_t {
  kFloat32,
  kFloat64,
  kFloat16,
  kBFloat16,
  kInt8,
  kUInt8,
  kInt16,
  kInt32,
  kInt64,
  kBool,
  kComplex64,
  kComplex128,
  // Only via _rebuild_tensor_v3 (no legacy storage class):
  kUInt16,
  kUInt32,
  kUInt64,
  kFloat8E4M3Fn,
  kFloat8E5M2,
  kFloat8E4M3Fnuz,
  kFloat8E5M2Fnuz,
  kUntyped,  // torch.storage.UntypedStorage: bytes; its tensors carry their dtype separately
};

struct TorchTypeInfo {
  std::string_view storage_class;  // "FloatStorage", or "" for types without one
  std::string_view dtype_name;     // torch dtype name: "float32", "bfloat16", ...
  int elem_bytes;
  std::optional<DType> dtype;  // our type, if TensorSet can hold it
};
const TorchTypeInfo& torch_type_info(TorchType t);

enum class PickleKind : uint8_t {
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kTuple,
  kList,
  kDict,
  kGlobal,
  kStorage,
  kTensor
};

// The callables and type objects a torch pickle may name.
enum class TorchGlobal : uint8_t {
  kOrderedDict,
  kRebuildTensorV2,
  kRebuildTensorV3,
  kRebuildParameter,
  kStorageClass,
  kDtype,
};

struct PickleValue;

// A tensor as _rebuild_tensor_v2/_v3 describe it: a view of a storage, in elements of `type`.
struct TensorRef {
  const PickleValue* storage = nullptr;  // kStorage
  TorchType type = TorchType::kFloat32;
  int64_t offset = 0;
  std::vector<int64_t> shape, stride;
};

struct PickleValue {
  PickleKind kind = PickleKind::kNone;
  bool b = false;                                  // kBool
  int64_t i = 0;                                   // kInt; kStorage: numel (bytes for kUntyped)
  double f = 0;                                    // kFloat
  std::string s;                                   // kString; kGlobal: "module.name"; kStorage: record key
  std::vector<PickleValue*> items;                 // kTuple, kList; kDict: key0, value0, key1, value1, ...
  TorchGlobal global = TorchGlobal::kOrderedDict;  // kGlobal
  TorchType type = TorchType::kFloat32;            // kGlobal (storage class or dtype), kStorage
  TensorRef tensor;                                // kTensor

  size_t dict_size() const { return items.size() / 2; }
  // The value of string key `key` in a dict (the last one, as Python's SETITEM overwrites), or nullptr.
  const PickleValue* get(std::string_view key) const;
};

struct PickleLimits {
  size_t max_stack = 1 << 20;  // values on the stack plus open MARKs
  size_t max_memo = 1 << 20;   // memo entries
  // Every value the pickle creates (each costs ~100 bytes for a 1-byte opcode such as ')' or 'N',
  // popped or not) and every reference put into a tuple, list or dict (DUP / BINGET then TUPLE,
  // APPENDS...). A state dict has a few thousand of each; these stop a small file that grows
  // memory by orders of magnitude its size.
  size_t max_values = size_t{1} << 22;
  size_t max_items = size_t{1} << 24;
};

class Pickle {
 public:
  // Runs the pickle in `bytes`; `source` names it in errors ("model.ckpt: data.pkl").
  static Result<Pickle> parse(std::span<const uint8_t> bytes, const std::string& source, PickleLimits limits = {});
  const PickleValue& root() const { return *root_; }
  size_t value_count() const { return arena_->size(); }

 private:
  std::unique_ptr<std::deque<PickleValue>> arena_;  // a deque never moves its elements
  const PickleValue* root_ = nullptr;
};

}  // namespace gemma
