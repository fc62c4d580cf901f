list(APPEND GEMMA_SOURCES tokenizer/utf8.cpp tokenizer/tokenizer.cpp tokenizer/loaders.cpp)
