list(APPEND GEMMA_SOURCES
  model/config.cpp
  model/variants.cpp
  model/canonical.cpp
  model/weights.cpp
  model/kv_cache.cpp
  model/forward.cpp
  model/load_gguf.cpp
  model/load_hf.cpp
  model/load_orbax.cpp
  model/load_torch.cpp
  model/loader.cpp)
list(APPEND GEMMA_SOURCES model/export.cpp)
