list(APPEND GEMMA_SOURCES tokenizer/utf8.cpp tokenizer/tokenizer.cpp tokenizer/encode.cpp
     tokenizer/load_gguf.cpp tokenizer/load_hf_json.cpp tokenizer/load_sentencepiece.cpp)
