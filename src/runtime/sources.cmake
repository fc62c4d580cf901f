list(APPEND GEMMA_SOURCES
  runtime/sampler.cpp
  runtime/chat.cpp
  runtime/session.cpp
  runtime/perplexity.cpp)
