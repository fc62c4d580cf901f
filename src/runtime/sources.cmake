list(APPEND GEMMA_SOURCES
  runtime/sampler.cpp
  runtime/prompt.cpp
  runtime/stop_strings.cpp
  runtime/engine.cpp
  runtime/memory_plan.cpp
  runtime/perplexity.cpp
  runtime/multimodal.cpp)
